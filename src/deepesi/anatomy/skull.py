"""Split a skull mask into compact bone (inner and outer tables) and spongy bone (diploë).

Used when no image tells the layers apart (e.g. a skull built from BEM surfaces). The rule is
geometric and depends only on the masks:

For every skull voxel, let ``d_in`` be its depth below the inner skull boundary (distance to the
intracranial compartment) and ``d_out`` its depth below the outer boundary (distance to whatever
is outside the skull), both measured from the boundary, and ``t = d_in + d_out`` the local skull
thickness through that voxel. Each table is ``max(table_fraction * t, min_table_mm)`` thick; a voxel
is spongy bone (diploë) when it is deeper than that from *both* boundaries, compact bone otherwise.
Skull thinner than about ``2 * min_table_mm`` plus one voxel therefore stays all compact (as in the
thin temporal squama), and the diploë occupies the central ``1 - 2 * table_fraction`` of thicker
bone.

Why these defaults (``table_fraction=0.25``, ``min_table_mm=1.0``): the calvaria is a sandwich of
two cortical tables around the diploë; diploë thickness is highly correlated with total vault
thickness (Lynnerup et al., 2005), so it is modelled as a fixed fraction of the local thickness;
the cortical tables are of the order of 1-2 mm thick in CT of adult skulls (Lillie et al., 2016),
which for a typical 5-8 mm calvaria gives tables of about a quarter of the thickness each. The
three-layer skull matters for EEG forward accuracy (Dannhauer et al., 2011), which is why a
geometric split is better than one homogeneous bone compartment; it is still a model, not a
measurement -- use a segmentation that images the layers (SimNIBS CHARM with T1+T2, CT) when
you have one.

References
----------
- N. Lynnerup, J. G. Astrup, B. Sejrsen (2005). Thickness of the human cranial diploe in relation
  to age, sex and general body build. Head & Face Medicine 1:13. doi:10.1186/1746-160X-1-13
- E. M. Lillie, J. E. Urban, S. K. Lynch, A. A. Weaver, J. D. Stitzel (2016). Evaluation of skull
  cortical thickness changes with age and sex from computed tomography scans. Journal of Bone and
  Mineral Research 31(2):299-307. doi:10.1002/jbmr.2613
- M. Dannhauer, B. Lanfer, C. H. Wolters, T. R. Knösche (2011). Modeling of the human skull in EEG
  source analysis. Human Brain Mapping 32(9):1383-1399. doi:10.1002/hbm.21114
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

#: Default fraction of the local skull thickness taken by each cortical table.
TABLE_FRACTION = 0.25
#: Default minimum thickness of each cortical table (mm).
MIN_TABLE_MM = 1.0


def split_skull(
    skull: np.ndarray,
    intracranial: np.ndarray,
    *,
    voxel_size: float | Sequence[float] = 1.0,
    table_fraction: float = TABLE_FRACTION,
    min_table_mm: float = MIN_TABLE_MM,
) -> tuple[np.ndarray, np.ndarray]:
    """Split a skull mask into compact and spongy bone by depth below its two boundaries.

    Parameters
    ----------
    skull : ndarray of bool, shape (nx, ny, nz)
        Skull voxels.
    intracranial : ndarray of bool, shape (nx, ny, nz)
        Voxels inside the skull (brain, CSF): they define the inner boundary. Everything that is
        neither skull nor intracranial (scalp, air, the grid edge) is outside.
    voxel_size : float or sequence of 3 float
        Voxel edge lengths in mm.
    table_fraction : float
        Fraction of the local thickness taken by each table, in (0, 0.5).
    min_table_mm : float
        Minimum table thickness in mm (>= 0).

    Returns
    -------
    compact, spongy : ndarray of bool
        Disjoint masks whose union is ``skull``.

    Notes
    -----
    See the module docstring for the rule and the literature it rests on.
    """
    skull = _check_mask(skull, "skull")
    intracranial = _check_mask(intracranial, "intracranial")
    if skull.shape != intracranial.shape:
        raise ValueError(
            f"skull mask shape {skull.shape} differs from intracranial mask shape "
            f"{intracranial.shape}; both must be on the same grid."
        )
    overlap = int(np.sum(skull & intracranial))
    if overlap:
        raise ValueError(
            f"{overlap} voxel(s) are both skull and intracranial; the masks must be disjoint "
            "(remove the intracranial voxels from the skull mask first)."
        )
    sampling = np.broadcast_to(np.asarray(voxel_size, dtype=float), (3,))
    if not np.all(np.isfinite(sampling)) or np.any(sampling <= 0):
        raise ValueError(f"voxel_size must be positive mm, got {voxel_size!r}.")
    if not 0.0 < float(table_fraction) < 0.5:
        raise ValueError(
            f"table_fraction must be in (0, 0.5) (each of the two tables takes this fraction of "
            f"the thickness), got {table_fraction!r}."
        )
    if not float(min_table_mm) >= 0:
        raise ValueError(f"min_table_mm must be >= 0 mm, got {min_table_mm!r}.")
    if not skull.any():
        raise ValueError("the skull mask is empty; there is no bone to split.")
    if not intracranial.any():
        raise ValueError(
            "the intracranial mask is empty, so the skull has no inner boundary; pass the "
            "voxels inside the skull (brain + CSF)."
        )
    # work in the bounding box of skull + intracranial, padded by one voxel of 'outside' (so that
    # a skull touching the grid edge has an outer side)
    nz = np.argwhere(skull | intracranial)
    box = tuple(slice(int(a), int(b) + 1) for a, b in zip(nz.min(0), nz.max(0), strict=True))
    pad = ((1, 1),) * 3
    sk = np.pad(skull[box], pad)
    ic = np.pad(intracranial[box], pad)
    h = float(np.prod(sampling) ** (1.0 / 3.0))
    # distance from each voxel centre to the nearest centre on the other side, minus half a voxel
    # = depth below that boundary
    d_in = ndimage.distance_transform_edt(~ic, sampling=sampling) - h / 2.0
    d_out = ndimage.distance_transform_edt(sk | ic, sampling=sampling) - h / 2.0
    inner = (slice(1, -1),) * 3
    d_in, d_out = d_in[inner], d_out[inner]
    thickness = d_in + d_out
    table = np.maximum(float(table_fraction) * thickness, float(min_table_mm))
    spongy = np.zeros_like(skull)
    spongy[box] = skull[box] & (d_in > table) & (d_out > table)
    return skull & ~spongy, spongy


def _check_mask(mask: np.ndarray, what: str) -> np.ndarray:
    mask = np.asarray(mask)
    if mask.ndim != 3:
        raise ValueError(f"{what} mask must be 3-D, got shape {mask.shape}.")
    if mask.dtype != bool:
        if mask.dtype.kind not in "iu" or not np.isin(mask, (0, 1)).all():
            raise ValueError(f"{what} mask must be boolean (or 0/1 integers), got {mask.dtype}.")
        mask = mask.astype(bool)
    return mask
