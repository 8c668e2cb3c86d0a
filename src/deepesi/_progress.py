"""Progress bars (tqdm) that a ``progress=False`` / ``--quiet`` switch silences."""

from __future__ import annotations

from collections.abc import Iterable

from tqdm.auto import tqdm


def progress(iterable: Iterable | None = None, *, enabled: bool = True, **kwargs) -> tqdm:
    """A tqdm progress bar, disabled when ``enabled`` is False."""
    kwargs.setdefault("dynamic_ncols", True)
    kwargs.setdefault("leave", False)
    return tqdm(iterable, disable=not enabled, **kwargs)
