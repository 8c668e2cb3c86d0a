"""Electrodes on the scalp: position checks and the projection onto the head model's scalp.

Each electrode is moved along the ray from the head centre
(:func:`deepesi.anatomy.masks.head_centre`) onto the outer boundary of the head
(:func:`deepesi.anatomy.masks.head_mask`); electrodes far from the scalp before the projection
mean a wrong transform, wrong units or a montage that does not fit the head.
"""

from __future__ import annotations

import numpy as np

from .._logging import logger
from ..anatomy.masks import boundary_distance, head_centre, head_mask, project_radially

__all__ = ["check_positions", "place_on_scalp"]


def check_positions(names: list[str], pos: np.ndarray, what: str) -> None:
    """Refuse NaN/Inf positions and positions that are all zeros (channels never placed)."""
    bad = [n for n, p in zip(names, pos, strict=True) if not np.all(np.isfinite(p))]
    if bad:
        raise ValueError(
            f"{len(bad)} {what} position(s) are NaN/Inf: {bad[:10]}"
            f"{' ...' if len(bad) > 10 else ''}."
            " Drop these channels (ch_names=...) or fix the montage/digitisation."
        )
    zero = [n for n, p in zip(names, pos, strict=True) if np.allclose(p, 0.0)]
    if zero:
        raise ValueError(
            f"{len(zero)} {what} channel(s) have no position (all zeros): {zero[:10]}. "
            "Set a montage on the data first (raw.set_montage) or drop these channels."
        )


def tangent_frames(normal: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two unit vectors (n, 3) each, orthogonal to each other and to the unit ``normal``
    (n, 3): the tangent planes of scalp points."""
    helper = np.where(np.abs(normal[:, [2]]) < 0.9, [[0.0, 0.0, 1.0]], [[1.0, 0.0, 0.0]])
    e1 = np.cross(normal, helper)
    e1 /= np.linalg.norm(e1, axis=1, keepdims=True)
    return e1, np.cross(normal, e1)


def place_on_scalp(
    head, pos_mri: np.ndarray, names: list[str], max_distance: float, what: str,
    mask: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, list]:
    """Project electrodes onto the scalp; refuse if they are far from it before projection.

    Parameters
    ----------
    head : HeadModel
        The head (MRI frame).
    pos_mri : ndarray, shape (n, 3)
        Electrode positions, MRI frame, metres.
    names : list of str
        Their names (for the messages).
    max_distance : float
        Largest median distance (m) to the scalp before projection; none may be further than
        ``4 * max_distance`` (except at the edge of the volume).
    what : str
        What the electrodes are, for the messages.
    mask : ndarray of bool | None
        The head mask, if already computed (:func:`deepesi.anatomy.masks.head_mask`).

    Returns
    -------
    projected : ndarray, shape (n, 3)
        Positions on the scalp (MRI, m).
    distance : ndarray, shape (n,)
        Distances to the scalp before projection (m).
    at_edge : list of str
        Channels that landed on the edge of the volume (where the head model is cut, e.g. below
        the face): only warned about, whatever their distance, since the model does not reach
        them.
    """
    mask = head_mask(head) if mask is None else mask
    dist = boundary_distance(pos_mri, mask, head.affine_m)
    median = float(np.median(dist))
    projected, _ = project_radially(pos_mri, mask, head.affine_m, head_centre(head))
    ijk = head.mri_to_voxel(projected)
    # the ray leaves the grid while still inside the head: the boundary found is the outermost
    # voxel layer of the grid (the head is cut there), not the scalp
    edge = (ijk < 0.25).any(axis=1) | (ijk > np.array(head.shape) - 1.25).any(axis=1)
    far = [f"{n} ({d * 1000:.0f} mm)" for n, d, e in zip(names, dist, edge, strict=True)
           if d > 4 * max_distance and not e]
    if median > max_distance or far:
        raise ValueError(
            f"the {what} are far from the scalp of head {head.name!r} after registration "
            f"(median distance {median * 1000:.1f} mm, allowed {max_distance * 1000:.1f} mm"
            + (f"; beyond {4 * max_distance * 1000:.0f} mm: {', '.join(far[:10])}" if far else "")
            + "). Check the head→MRI trans (right subject? inverted?), the position units "
            "(MNE uses metres) and the montage; or raise max_distance."
        )
    at_edge = [n for n, e in zip(names, edge, strict=True) if e]
    if at_edge:
        logger.warning(
            "%d electrode(s) lie where head %r is cut by the edge of its volume and were placed "
            "on the cut: %s. Their potentials are less accurate; consider dropping them.",
            len(at_edge), head.name, ", ".join(at_edge),
        )
    return projected, dist, at_edge
