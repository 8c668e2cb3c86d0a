"""Head geometry from the label volume: compartment masks, their centre and their boundaries.

Three nested compartments (all boolean volumes on the head's voxel grid, cavities filled):

- :func:`intracranial_mask`: inside the inner skull
  (:data:`~deepesi.anatomy.tissues.INTRACRANIAL_TISSUES`);
- :func:`skull_mask`: inside the outer skull (adds
  :data:`~deepesi.anatomy.tissues.SKULL_TISSUES`);
- :func:`head_mask`: inside the scalp (every labelled voxel).

Rays cast from :func:`head_centre` find a mask's outer boundary (:func:`radial_boundary`); the
boundary-element surfaces (:mod:`deepesi.forward.surfaces`) and the placement of EEG electrodes
on the scalp (:mod:`deepesi.sensors`) are both built on them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage

from .tissues import INTRACRANIAL_TISSUES, SKULL_TISSUES

if TYPE_CHECKING:
    from .headmodel import HeadModel

__all__ = [
    "boundary_distance",
    "boundary_faces",
    "head_centre",
    "head_mask",
    "intracranial_mask",
    "project_radially",
    "radial_boundary",
    "skull_mask",
]


# ---------------------------------------------------------------------------- masks
def intracranial_mask(head: HeadModel) -> np.ndarray:
    """Voxels inside the skull: WM, GM and CSF, closed and with holes filled.

    Parameters
    ----------
    head : HeadModel
        The head; its tissue table must name at least one of
        :data:`~deepesi.anatomy.tissues.INTRACRANIAL_TISSUES`.

    Returns
    -------
    ndarray of bool, shape ``head.shape``
    """
    names = [n for n in INTRACRANIAL_TISSUES if n in head.tissues]
    if not names:
        raise ValueError(
            f"head model {head.name!r} has no WM/GM/CSF labels; cannot find the inner skull."
        )
    mask = head.tissue_mask(*names)
    if not mask.any():
        raise ValueError(f"head model {head.name!r} has no WM/GM/CSF voxels.")
    return ndimage.binary_fill_holes(ndimage.binary_closing(mask, iterations=1))


def skull_mask(head: HeadModel) -> np.ndarray:
    """Voxels inside the outer skull surface: the intracranial space plus every bone tissue
    (:data:`~deepesi.anatomy.tissues.SKULL_TISSUES` present in the head's tissue table)."""
    names = [n for n in SKULL_TISSUES if n in head.tissues]
    mask = intracranial_mask(head) | (head.tissue_mask(*names) if names else False)
    return ndimage.binary_fill_holes(mask)


def head_mask(head: HeadModel) -> np.ndarray:
    """Voxels inside the scalp: every labelled voxel, with enclosed cavities filled."""
    return ndimage.binary_fill_holes(head.labels > 0)


def head_centre(head: HeadModel) -> np.ndarray:
    """The point rays are cast from (metres, MRI): centroid of the intracranial space.

    Falls back to the centroid of the whole head when there is no WM/GM/CSF.
    """
    try:
        mask = intracranial_mask(head)
    except ValueError:
        mask = head.labels > 0
    return head.voxel_to_mri(np.argwhere(mask).mean(axis=0)[None])[0]


# ---------------------------------------------------------------------------- ray casting
def radial_boundary(
    mask: np.ndarray, affine_m: np.ndarray, centre: np.ndarray, directions: np.ndarray,
    *, step: float | None = None, chunk: int = 256,
) -> np.ndarray:
    """Distance from ``centre`` to the outermost crossing of the mask boundary along each ray.

    Parameters
    ----------
    mask : ndarray of bool, shape (nx, ny, nz)
        The volume whose boundary is sought.
    affine_m : ndarray, shape (4, 4)
        Voxel → MRI affine in metres.
    centre : ndarray, shape (3,)
        Ray origin (metres).
    directions : ndarray, shape (n, 3)
        Unit ray directions.
    step : float | None
        Sampling step along the rays (metres); default a quarter of the smallest voxel edge.
    chunk : int
        Rays sampled at once (memory).

    Returns
    -------
    radii : ndarray, shape (n,)
        Metres; the boundary is where the trilinearly interpolated mask crosses 0.5. NaN for
        rays that never enter the mask.
    """
    vox = np.sqrt((affine_m[:3, :3] ** 2).sum(axis=0))
    step = float(vox.min() / 4.0) if step is None else float(step)
    grid = np.meshgrid(*[[0, s - 1] for s in mask.shape], indexing="ij")
    corners = np.array(grid).reshape(3, -1).T
    corners_m = corners @ affine_m[:3, :3].T + affine_m[:3, 3]
    r_max = np.linalg.norm(corners_m - centre, axis=1).max()
    ts = np.arange(0.0, r_max + step, step)
    inv = np.linalg.inv(affine_m)
    field = mask.astype(np.float32)
    directions = np.asarray(directions, float)
    radii = np.full(len(directions), np.nan)
    for start in range(0, len(directions), chunk):
        d = directions[start : start + chunk]
        pts = centre[None, None, :] + ts[None, :, None] * d[:, None, :]  # (k, nt, 3)
        ijk = pts.reshape(-1, 3) @ inv[:3, :3].T + inv[:3, 3]
        val = ndimage.map_coordinates(field, ijk.T, order=1, mode="constant", cval=0.0)
        val = val.reshape(len(d), len(ts))
        inside = val >= 0.5
        has = inside.any(axis=1)
        last = len(ts) - 1 - np.argmax(inside[:, ::-1], axis=1)
        nxt = np.minimum(last + 1, len(ts) - 1)
        rows = np.arange(len(d))
        v0, v1 = val[rows, last], val[rows, nxt]
        frac = np.where(v0 > v1, (v0 - 0.5) / np.maximum(v0 - v1, 1e-12), 0.0)
        r = ts[last] + np.clip(frac, 0.0, 1.0) * step
        radii[start : start + chunk] = np.where(has, r, np.nan)
    return radii


def project_radially(
    points: np.ndarray, mask: np.ndarray, affine_m: np.ndarray, centre: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Move points along the ray from ``centre`` onto the outer boundary of ``mask``.

    Returns
    -------
    projected : ndarray, shape (n, 3)
        Points on the boundary (metres).
    shift : ndarray, shape (n,)
        Signed radial displacement (metres; positive = moved outwards).
    """
    points = np.asarray(points, float)
    vec = points - centre
    r = np.linalg.norm(vec, axis=1)
    if np.any(r == 0):
        raise ValueError("cannot project a point that sits at the head centre.")
    d = vec / r[:, None]
    radii = radial_boundary(mask, affine_m, centre, d)
    if np.any(np.isnan(radii)):
        raise ValueError(
            f"{int(np.isnan(radii).sum())} point(s) lie in directions where the head has no "
            "tissue; check the head model and the sensor coordinates."
        )
    return centre + radii[:, None] * d, radii - r


def boundary_faces(mask: np.ndarray, affine_m: np.ndarray) -> np.ndarray:
    """Centres (metres, MRI) of the voxel faces between the mask and the outside.

    The grid is padded with outside voxels, so a mask that touches the edge of the volume
    (a head cut at the neck) is closed by the faces of the edge.
    """
    padded = np.pad(np.asarray(mask, bool), 1)
    centres = []
    for axis in range(3):
        a = np.moveaxis(padded, axis, 0)
        change = a[1:] != a[:-1]
        idx = np.argwhere(change).astype(float)
        idx[:, 0] += 0.5  # face between index k and k+1 (padded, moved axes)
        order = np.argsort([axis] + [d for d in range(3) if d != axis])
        centres.append(idx[:, order] - 1.0)  # back to original axes and unpadded indices
    ijk = np.concatenate(centres)
    return ijk @ affine_m[:3, :3].T + affine_m[:3, 3]


def boundary_distance(points: np.ndarray, mask: np.ndarray, affine_m: np.ndarray) -> np.ndarray:
    """Distance (metres) from points to the boundary of ``mask`` (its outer voxel faces).

    Measured to the nearest centre of a boundary voxel face (see :func:`boundary_faces`), so
    it is exact to within about half a voxel.
    """
    from scipy.spatial import cKDTree

    faces = boundary_faces(mask, affine_m)
    if not len(faces):
        raise ValueError("the mask is empty; it has no boundary.")
    dist, _ = cKDTree(faces).query(np.asarray(points, float).reshape(-1, 3))
    return dist
