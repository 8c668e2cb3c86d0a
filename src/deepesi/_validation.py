"""Input checks shared across deepesi: each error says what was wrong and how to fix it."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

_TYPE_NAMES = {
    "path-like": (str, os.PathLike),
    "int": (int, np.integer),
    "numeric": (int, float, np.integer, np.floating),
}


def validate_type(item: Any, types: Any, item_name: str = "item", type_name: str | None = None
                  ) -> Any:
    """Raise TypeError unless ``item`` is an instance of ``types``; return ``item``.

    Parameters
    ----------
    item : object
        What to check.
    types : type | str | tuple of (type | str)
        Allowed types; the strings ``'path-like'``, ``'int'`` and ``'numeric'`` stand for their
        usual families, ``None`` for ``type(None)``. ``bool`` is never an ``'int'`` here.
    item_name : str
        Name of the argument, for the message.
    type_name : str | None
        How to call the allowed types in the message (default: their names).
    """
    if not isinstance(types, tuple):
        types = (types,)
    allowed: list[type] = []
    for t in types:
        if t is None:
            allowed.append(type(None))
        elif isinstance(t, str):
            if t not in _TYPE_NAMES:
                raise ValueError(f"internal error: unknown type family {t!r}")
            allowed.extend(_TYPE_NAMES[t])
        else:
            allowed.append(t)
    is_bool_for_int = isinstance(item, bool) and bool not in allowed and any(
        t in ("int", "numeric") for t in types if isinstance(t, str)
    )
    if not isinstance(item, tuple(allowed)) or is_bool_for_int:
        if type_name is None:
            names = [t if isinstance(t, str) else "None" if t is None else t.__name__
                     for t in types]
            type_name = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]
        raise TypeError(f"{item_name} must be an instance of {type_name}, got "
                        f"{type(item).__name__} instead.")
    return item


def check_option(parameter: str, value: Any, allowed: Iterable[Any], extra: str = "") -> Any:
    """Raise ValueError unless ``value`` is one of ``allowed``; return ``value``.

    Parameters
    ----------
    parameter : str
        Name of the argument, for the message.
    value : object
        The value given.
    allowed : iterable
        The values accepted.
    extra : str
        Appended to the message (e.g. how to choose).
    """
    allowed = tuple(allowed)
    if value in allowed:
        return value
    options = ", ".join(repr(a) for a in allowed)
    tail = f" {extra}" if extra else ""
    raise ValueError(f"invalid value for {parameter}: {value!r}; allowed: {options}.{tail}")


def check_file(path: str | os.PathLike, what: str = "file") -> Path:
    """Return ``path`` as a Path if it is an existing file, else raise FileNotFoundError."""
    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"{what} not found: {path}. Check the path and spelling.")
    if not path.is_file():
        raise FileNotFoundError(f"{what} {path} is a directory, expected a file.")
    return path


def check_dir(path: str | os.PathLike, what: str = "directory") -> Path:
    """Return ``path`` as a Path if it is an existing directory, else raise FileNotFoundError."""
    path = Path(path).expanduser()
    if not path.is_dir():
        raise FileNotFoundError(f"{what} not found (or not a directory): {path}.")
    return path


def check_finite(arr: np.ndarray, name: str) -> np.ndarray:
    """Raise ValueError if ``arr`` holds NaN or Inf, naming how many and where the first is."""
    arr = np.asarray(arr)
    if arr.dtype.kind in "fc":
        bad = ~np.isfinite(arr)
        if bad.any():
            first = tuple(int(i) for i in np.argwhere(bad)[0])
            raise ValueError(
                f"{name} contains {int(bad.sum())} NaN/Inf value(s) (first at index {first}); "
                "remove or interpolate them before calling deepesi."
            )
    return arr


def check_affine(affine: np.ndarray, name: str = "affine") -> np.ndarray:
    """Validate a 4x4 voxel-to-world affine (finite, invertible, last row 0 0 0 1)."""
    affine = np.asarray(affine, dtype=float)
    if affine.shape != (4, 4):
        raise ValueError(f"{name} must be a 4x4 matrix, got shape {affine.shape}.")
    check_finite(affine, name)
    if not np.allclose(affine[3], [0, 0, 0, 1]):
        raise ValueError(f"{name} last row must be [0, 0, 0, 1], got {affine[3].tolist()}.")
    if abs(np.linalg.det(affine[:3, :3])) < 1e-12:
        raise ValueError(f"{name} is singular (zero voxel size); check the image header.")
    return affine


def check_integer_labels(data: np.ndarray, what: str = "label volume") -> np.ndarray:
    """Return a 3-D label volume as an integer array, refusing what is not a segmentation.

    A trailing singleton 4th axis (``(nx, ny, nz, 1)``, common in NIfTI files) is dropped.
    Floating-point volumes are accepted when every value is a finite whole number (and are then
    converted to int64); integer and boolean volumes are returned as they are.

    Parameters
    ----------
    data : array-like
        The label volume.
    what : str
        Name used in error messages.

    Returns
    -------
    ndarray of int (or bool), shape (nx, ny, nz)

    Raises
    ------
    ValueError
        Not 3-D, NaN/Inf, fractional values (an intensity image or a probability map), a
        non-numeric dtype, or negative labels.
    """
    data = np.asanyarray(data)
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise ValueError(f"{what} must be a 3-D label volume, got shape {data.shape}.")
    if data.dtype.kind == "f":
        if not np.all(np.isfinite(data)):
            raise ValueError(f"{what} contains NaN/Inf; a segmentation holds integer labels.")
        whole = data == np.round(data)
        if not np.all(whole):
            examples = np.unique(data[~whole])[:5].tolist()
            raise ValueError(
                f"{what} holds non-integer values (e.g. {examples}); it looks like an intensity "
                "image or a probability map, not a segmentation. Pass the integer label image."
            )
        data = data.astype(np.int64)
    elif data.dtype.kind not in "iub":
        raise ValueError(f"{what} has dtype {data.dtype}; expected integer labels.")
    if data.size and data.dtype.kind == "i" and data.min() < 0:
        raise ValueError(f"{what} has negative labels (min {data.min()}); labels must be >= 0.")
    return data


def check_voxel_size(voxel_size: float, what: str = "voxel_size") -> float:
    """Return ``voxel_size`` (mm) as a float, or raise ValueError unless it is finite and > 0."""
    try:
        value = float(voxel_size)
    except (TypeError, ValueError):
        raise TypeError(f"{what} must be a number of mm, got {voxel_size!r}.") from None
    if not (np.isfinite(value) and value > 0):
        raise ValueError(f"{what} must be > 0 mm, got {voxel_size!r}.")
    return value


def check_random_state(seed: int | np.random.Generator | None) -> np.random.Generator:
    """Turn ``seed`` into a :class:`numpy.random.Generator` (None gives a fresh, unseeded one)."""
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None or isinstance(seed, int | np.integer):
        return np.random.default_rng(seed)
    raise TypeError(
        f"seed must be None, an int or a numpy.random.Generator, got {type(seed).__name__}."
    )


def first_line(err: BaseException, limit: int = 200) -> str:
    """The first line of an exception's message (its type's name when it has none), at most
    ``limit`` characters: a library's multi-line error inside one of ours."""
    lines = str(err).strip().splitlines()
    text = lines[0] if lines else type(err).__name__
    return text if len(text) <= limit else text[:limit] + "..."
