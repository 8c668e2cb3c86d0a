"""File helpers: atomic writes that never leave a half-written file and never overwrite inputs,
and readers of images and affines that fail with a message saying how to fix the input."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ._validation import check_affine, check_file, first_line

if TYPE_CHECKING:
    import nibabel as nib


def to_jsonable(obj: Any) -> Any:
    """``obj`` in plain JSON types: the one converter of every deepesi JSON file.

    Mappings become dicts with string keys; lists, tuples and arrays become lists; numpy scalars
    their Python values; non-finite floats ``None`` (JSON has no NaN); paths strings; anything
    else its ``str``.
    """
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float):
        return obj if np.isfinite(obj) else None
    if obj is None or isinstance(obj, bool | int | str):
        return obj
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    return str(obj)


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
        if (dest.is_dir() and not dest.is_symlink()) or (tmp.is_dir() and os.path.lexists(dest)):
            # a folder cannot replace or be replaced in one step: move the old one aside first
            # (and back if the new one cannot take its place); it goes with the temporary folder
            old = tmpdir / ".replaced"
            os.replace(dest, old)
            try:
                os.replace(tmp, dest)
            except OSError:
                os.replace(old, dest)
                raise
        else:
            os.replace(tmp, dest)  # atomic, also over an existing file
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)


def load_image(
    path: str | os.PathLike, what: str, fix: str = "check that it is a NIfTI/MGH image"
) -> nib.spatialimages.SpatialImage:
    """Open an image with nibabel (header only; voxels are read on access).

    Parameters
    ----------
    path : path-like
        The image file.
    what : str
        Name used in error messages, e.g. ``'aseg.mgz'``.
    fix : str
        What the user should do when the file is missing or unreadable.

    Raises
    ------
    FileNotFoundError
        ``path`` is not an existing file.
    ValueError
        nibabel cannot read it.
    """
    import nibabel as nib

    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}; {fix}.")
    try:
        img = nib.load(str(path))
        img.shape  # noqa: B018 - touch the header
    except Exception as err:  # nibabel raises many types for damaged or foreign files
        raise ValueError(
            f"cannot read {what} at {path} ({type(err).__name__}: {err}); the file is damaged "
            f"or not an image; {fix}."
        ) from err
    return img


def read_affine_text(
    path: str | os.PathLike, what: str = "affine file", fix: str = "write it as 4 rows of 4 numbers"
) -> np.ndarray:
    """Read a 4x4 affine written as text (4 rows of 4 numbers, as ``numpy.savetxt`` writes).

    Parameters
    ----------
    path : path-like
        The text file.
    what : str
        Name used in error messages.
    fix : str
        What the user should do when the file does not hold a valid affine.

    Raises
    ------
    FileNotFoundError
        ``path`` is not an existing file.
    ValueError
        It does not hold a valid 4x4 affine.
    """
    path = check_file(path, what)
    try:
        value = np.loadtxt(path, ndmin=2)
    except ValueError as err:
        raise ValueError(f"cannot read {what} {path} as a 4x4 matrix ({err}); {fix}.") from err
    if value.shape != (4, 4):
        raise ValueError(
            f"{what} {path} holds an array of shape {value.shape}, expected 4x4; {fix}."
        )
    return check_affine(value, f"{what} {path}")


def read_noise_cov(path: str | os.PathLike) -> Any:
    """An MNE noise covariance file, with one line for a file that is missing, damaged or not a
    covariance (MNE's reader raises AttributeError/ValueError deep inside on damaged files) and
    a check that its values are finite."""
    import mne

    path = check_file(path, "noise covariance")
    if path.stat().st_size == 0:
        raise ValueError(f"noise covariance {path} is empty (0 bytes).")
    try:
        cov = mne.read_cov(path, verbose=False)
    except (KeyboardInterrupt, MemoryError):
        raise
    except Exception as err:
        detail = first_line(err)
        raise ValueError(
            f"cannot read {path.name} as a noise covariance: {detail} ({type(err).__name__}). "
            "The file is damaged or not a -cov.fif; recompute it with mne.compute_covariance "
            "and save it with cov.save."
        ) from err
    data = np.asarray(cov.data)
    if not np.isfinite(data).all():
        raise ValueError(f"noise covariance {path.name} holds NaN/Inf: the file is damaged; "
                         "recompute it.")
    diag = np.diag(data) if data.ndim == 2 else data
    if np.any(diag < 0):
        raise ValueError(f"noise covariance {path.name} has negative variances: the file is "
                         "damaged; recompute it.")
    return cov
