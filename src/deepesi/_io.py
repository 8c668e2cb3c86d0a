"""Safe file output: atomic writes that never leave a half-written file and never overwrite inputs."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


def check_overwrite(path: str | os.PathLike, overwrite: bool) -> Path:
    """Return ``path`` as a :class:`~pathlib.Path`, refusing to replace an existing file.

    Parameters
    ----------
    path : path-like
        Destination.
    overwrite : bool
        If False and ``path`` exists, raise :class:`FileExistsError`.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(
            f"{path} already exists; pass overwrite=True (CLI: --overwrite) to replace it, "
            "or choose another output path."
        )
    return path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; move it into place only if the block succeeds.

    Works for files and for directories (whatever the block creates at the temporary path).
    The temporary name keeps the destination's suffixes so that writers that dispatch on the
    extension (nibabel, MNE) behave as for the final name.
    """
    dest = check_overwrite(path, overwrite)
    dest.parent.mkdir(parents=True, exist_ok=True)
    suffix = "".join(dest.suffixes)
    stem = dest.name[: len(dest.name) - len(suffix)] if suffix else dest.name
    tmpdir = Path(tempfile.mkdtemp(prefix=f".{stem}.", dir=dest.parent))
    tmp = tmpdir / f"{stem}{suffix}"
    try:
        yield tmp
        if not tmp.exists():
            raise RuntimeError(f"internal error: nothing was written for {dest}")
        if dest.exists():
            if dest.is_dir() and not dest.is_symlink():
                shutil.rmtree(dest)
            else:
                dest.unlink()
        os.replace(tmp, dest)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
