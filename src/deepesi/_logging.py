"""One package logger, ``deepesi``, with MNE's ``verbose`` convention; progress bars follow it.

Every module logs through :data:`logger`. :func:`set_log_level` sets the package level (MNE's
names: ``'DEBUG'``, ``'INFO'``, ``'WARNING'``, ``'ERROR'``; ``True`` = INFO, ``False`` =
WARNING); a public function that takes ``verbose=`` (decorated with :func:`verbose`) runs at that
level for the duration of the call, ``None`` keeping the package level. Progress bars
(:func:`deepesi._progress.progress`) are shown when INFO messages are, so ``verbose=False`` and
the CLI's ``--quiet`` silence both.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import logging
import os
import sys
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

#: The package logger: every deepesi module logs through it.
logger = logging.getLogger("deepesi")

_LEVELS = {
    "DEBUG": logging.DEBUG,
    "INFO": logging.INFO,
    "WARNING": logging.WARNING,
    "ERROR": logging.ERROR,
    "CRITICAL": logging.CRITICAL,
}

F = TypeVar("F", bound=Callable[..., Any])


def _level(verbose: bool | str | int | None) -> int:
    """The logging level that ``verbose`` stands for (None: the package's current level)."""
    if verbose is None:
        return logger.getEffectiveLevel()
    if isinstance(verbose, bool):
        return logging.INFO if verbose else logging.WARNING
    if isinstance(verbose, str):
        name = verbose.strip().upper()
        if name not in _LEVELS:
            raise ValueError(
                f"verbose must be a bool, an int or one of {sorted(_LEVELS)}, got {verbose!r}."
            )
        return _LEVELS[name]
    if isinstance(verbose, int):
        return int(verbose)
    raise TypeError(
        f"verbose must be a bool, an int, a level name or None, got {type(verbose).__name__}."
    )


def set_log_level(verbose: bool | str | int | None = None, return_old: bool = False) -> int | None:
    """Set the level of deepesi's messages and progress bars.

    Parameters
    ----------
    verbose : bool | str | int | None
        ``'DEBUG'``, ``'INFO'`` (messages and progress bars), ``'WARNING'`` (warnings only),
        ``'ERROR'``; ``True`` is INFO, ``False`` WARNING. None reads the environment variable
        ``DEEPESI_LOGGING_LEVEL`` (default INFO).
    return_old : bool
        Return the previous level.

    Returns
    -------
    int | None
        The previous level, with ``return_old``.
    """
    old = logger.level
    if verbose is None:
        verbose = os.environ.get("DEEPESI_LOGGING_LEVEL", "INFO")
    logger.setLevel(_level(verbose))
    return old if return_old else None


@contextlib.contextmanager
def use_log_level(verbose: bool | str | int | None) -> Iterator[None]:
    """Run a block at the level ``verbose`` stands for (None: leave the level as it is)."""
    if verbose is None:
        yield
        return
    old = logger.level
    logger.setLevel(_level(verbose))
    try:
        yield
    finally:
        logger.setLevel(old)


def verbose(func: F) -> F:
    """Decorator: the function's ``verbose`` keyword sets the level for the call (MNE's way)."""
    if "verbose" not in inspect.signature(func).parameters:
        raise TypeError(f"{func.__qualname__} has no 'verbose' parameter to decorate.")

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with use_log_level(kwargs.get("verbose")):
            return func(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def progress_enabled() -> bool:
    """Whether progress bars are shown: when INFO messages are."""
    return logger.isEnabledFor(logging.INFO)


class _FallbackHandler(logging.StreamHandler):
    """Prints deepesi's messages (stderr, message only) unless the application has configured
    logging: when the root logger has handlers, the message propagates there instead, so it is
    shown once either way (and ``pytest``'s ``caplog`` sees it)."""

    def emit(self, record: logging.LogRecord) -> None:
        if logging.getLogger().handlers:
            return
        self.stream = sys.stderr  # the current one (tests and notebooks replace it)
        super().emit(record)


def _init() -> None:
    if not any(isinstance(h, _FallbackHandler) for h in logger.handlers):
        handler = _FallbackHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
    set_log_level(None)


_init()
