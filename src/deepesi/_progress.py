"""Progress bars (tqdm) that follow the package log level (``verbose=`` / ``--quiet``)."""

from __future__ import annotations

from collections.abc import Iterable

from tqdm.auto import tqdm

from ._logging import progress_enabled


def progress(iterable: Iterable | None = None, *, enabled: bool | None = None, **kwargs) -> tqdm:
    """A tqdm progress bar, shown when INFO messages are (``enabled`` overrides that)."""
    kwargs.setdefault("dynamic_ncols", True)
    kwargs.setdefault("leave", False)
    show = progress_enabled() if enabled is None else bool(enabled)
    return tqdm(iterable, disable=not show, **kwargs)
