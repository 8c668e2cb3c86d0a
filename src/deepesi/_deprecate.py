"""The old ``progress=`` keyword, accepted for one release by the functions that now take
``verbose=`` (``progress=False`` → ``verbose='WARNING'``, ``progress=True`` → ``'INFO'``)."""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


def progress_to_verbose(func: F) -> F:
    """Decorator (put it above ``@verbose``): map a deprecated ``progress=`` to ``verbose=``.

    ``progress`` does not appear in the signature; passing it warns (DeprecationWarning) and,
    unless ``verbose`` is also given, sets the level of the call: False is ``'WARNING'``
    (no progress bars or info messages), True is ``'INFO'``.
    """

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if "progress" in kwargs:
            progress = kwargs.pop("progress")
            warnings.warn(
                f"{func.__name__}(progress=...) is deprecated; pass verbose="
                f"{'True' if progress else 'False'} (or use deepesi.set_log_level) instead.",
                DeprecationWarning,
                stacklevel=2,
            )
            if kwargs.get("verbose") is None and progress is not None:
                kwargs["verbose"] = "INFO" if progress else "WARNING"
        return func(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
