"""Building a :class:`~deepesi.sources.SourceSpace` from a head model (:func:`make_source_space`).

Grid points in cortex and deep structures, their orientations (outward cortical normals; free
or surface-normal dipoles in deep structures) and their neighbour graph (the rule is in
:func:`make_source_space`; :data:`DEEP_REGION_LINKS`, :data:`CORTICAL_MIN_NORMAL_DOT`).
"""

from __future__ import annotations

import nibabel as nib
import numpy as np
from scipy import ndimage, sparse
from scipy.spatial import cKDTree

from .._logging import logger
from .._validation import check_option, validate_type
from ..anatomy.headmodel import HeadModel
from ..anatomy.regions import (
    CEREBELLAR_REGIONS,
    CORTICAL_REGIONS,
    REGION_NAMES,
    SUBCORTICAL_REGIONS,
)
from ..anatomy.tissues import BRAIN_TISSUES
from .space import SourceSpace

__all__ = ["CORTICAL_MIN_NORMAL_DOT", "DEEP_REGION_LINKS", "make_source_space"]

#: Deep structures that may be linked to each other in the neighbour graph, besides each
#: structure to itself: the striatum (caudate, putamen, nucleus accumbens) of each hemisphere,
#: one continuous grey-matter mass bridged by cell strands across the internal capsule.
#: Every other deep structure (thalamus, pallidum, hippocampus, amygdala, brainstem) links only
#: to itself, so an extended source grown on the graph never leaks into a different nucleus.
DEEP_REGION_LINKS: frozenset[frozenset[int]] = frozenset(
    frozenset(pair)
    for pair in ((11, 12), (11, 26), (12, 26), (50, 51), (50, 58), (51, 58))
)

#: Cortical points are linked only if their normals make an angle of at most 90° (dot >= this
#: value), which cuts the links between the two facing banks of a sulcus and across the
#: interhemispheric fissure, where grid neighbours are far apart along the cortical sheet.
CORTICAL_MIN_NORMAL_DOT = 0.0

_DEEP_ORIENTATIONS = ("free", "surface")
_TIE_BREAK_MM = 1e-4


def _compartment(region_id: int) -> str:
    """Which sheet or structure a region belongs to, for the neighbour-graph rule."""
    if region_id in SUBCORTICAL_REGIONS:
        return f"deep-{region_id}"
    if region_id in CEREBELLAR_REGIONS:
        return "cerebellum"  # the vermis joins both cerebellar hemispheres
    if region_id == 3 or 1100 < region_id < 1200:
        return "ctx-lh"
    if region_id == 42 or 2100 < region_id < 2200:
        return "ctx-rh"
    return f"other-{region_id}"


def _linked(ri: np.ndarray, rj: np.ndarray) -> np.ndarray:
    """Whether points of regions ``ri`` and ``rj`` may be neighbours (the documented rule)."""
    pairs, inverse = np.unique(np.stack([ri, rj], axis=1), axis=0, return_inverse=True)
    allowed = np.array(
        [
            _compartment(a) == _compartment(b) or frozenset((a, b)) in DEEP_REGION_LINKS
            for a, b in pairs.tolist()
        ],
        dtype=bool,
    )
    return allowed[inverse.ravel()]


def _brain_labels(head: HeadModel) -> list[int]:
    """Tissue labels of brain tissue (WM, GM) in this head."""
    return [head.tissues.label_of(n) for n in BRAIN_TISSUES if n in head.tissues]


def _bbox_slices(mask: np.ndarray, margin: int = 0) -> tuple[slice, ...]:
    """Index bounding box of ``mask`` (plus ``margin`` voxels), as slices."""
    sl = []
    for axis in range(3):
        other = tuple(a for a in range(3) if a != axis)
        hit = np.flatnonzero(mask.any(axis=other))
        lo = max(int(hit[0]) - margin, 0)
        hi = min(int(hit[-1]) + margin + 1, mask.shape[axis])
        sl.append(slice(lo, hi))
    return tuple(sl)


def _grid_in_mask(head: HeadModel, mask: np.ndarray, spacing_mm: float) -> np.ndarray:
    """Voxel indices (n, 3) of the points of the grid k·spacing (MRI mm) that fall in ``mask``.

    The grid is aligned with the MRI origin, so the same head and spacing always give the
    same points whatever the voxel grid's extent.
    """
    box = _bbox_slices(mask)
    corners = np.array(
        [[s.start - 0.5 if c == 0 else s.stop - 0.5 for s, c in zip(box, bits, strict=True)]
         for bits in np.ndindex(2, 2, 2)]
    )
    xyz = nib.affines.apply_affine(head.affine, corners)
    lo = np.ceil(xyz.min(axis=0) / spacing_mm).astype(int)
    hi = np.floor(xyz.max(axis=0) / spacing_mm).astype(int)
    axes = [np.arange(a, b + 1) * spacing_mm for a, b in zip(lo, hi, strict=True)]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
    # a grid point on a voxel face belongs to the voxel on its +x/+y/+z side, whatever the
    # orientation of the voxel axes (the nudge is far below any voxel size)
    nudged = grid + _TIE_BREAK_MM
    ijk = np.rint(nib.affines.apply_affine(np.linalg.inv(head.affine), nudged)).astype(int)
    inside = np.all((ijk >= 0) & (ijk < np.array(mask.shape)), axis=1)
    grid, ijk = grid[inside], ijk[inside]
    keep = mask[tuple(ijk.T)]
    return grid[keep], ijk[keep]


def _central_voxels(
    head: HeadModel, region_mask: np.ndarray, existing_mm: np.ndarray, n: int, min_sep_mm: float
) -> np.ndarray:
    """Up to ``n`` voxel indices deep inside ``region_mask``, away from ``existing_mm`` points.

    Voxels are ranked by their distance to the region's border (most interior first, ties
    broken by the distance to the region's centroid); each pick is at least ``min_sep_mm``
    from the points already there, when the region is big enough to allow it.
    """
    box = _bbox_slices(region_mask, margin=1)
    sub = region_mask[box]
    depth = ndimage.distance_transform_edt(sub, sampling=head.voxel_size)
    ijk = np.argwhere(sub) + np.array([s.start for s in box])
    xyz = nib.affines.apply_affine(head.affine, ijk)
    centroid = xyz.mean(axis=0)
    order = np.lexsort((np.linalg.norm(xyz - centroid, axis=1), -depth[sub]))
    chosen: list[int] = []
    existing = np.asarray(existing_mm, float).reshape(-1, 3)
    for k in order:
        if len(chosen) == n:
            break
        others = np.concatenate([existing, xyz[chosen]]) if chosen else existing
        if len(others) and np.min(np.linalg.norm(others - xyz[k], axis=1)) < min_sep_mm:
            continue
        chosen.append(int(k))
    for k in order:  # region too small for the separation: take the next most central voxels
        if len(chosen) == n:
            break
        if int(k) not in chosen:
            chosen.append(int(k))
    return ijk[chosen]


def _outward_normals(
    indicator: np.ndarray, head: HeadModel, ijk: np.ndarray, sigma_mm: float
) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors along minus the gradient of the smoothed ``indicator`` at voxels ``ijk``.

    ``indicator`` (float or bool, whole head grid) is high inside (e.g. WM) and low outside
    (e.g. CSF); only a box around ``ijk`` is smoothed. Its smoothed gradient
    points inward, so minus the gradient is the outward normal. Returns the normals (MRI
    frame) and the gradient magnitude (per mm) to flag unreliable ones.
    """
    sigma_vox = sigma_mm / head.voxel_size
    margin = int(np.ceil(4 * sigma_vox.max())) + 2
    lo = np.maximum(ijk.min(axis=0) - margin, 0)
    hi = np.minimum(ijk.max(axis=0) + margin + 1, indicator.shape)
    sub = indicator[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]].astype(np.float32)
    smooth = ndimage.gaussian_filter(sub, sigma_vox, mode="nearest")
    local = (ijk - lo).astype(float)
    grad_ijk = np.empty((len(ijk), 3))
    for axis in range(3):
        step = np.zeros(3)
        step[axis] = 1.0
        plus = ndimage.map_coordinates(smooth, (local + step).T, order=1, mode="nearest")
        minus = ndimage.map_coordinates(smooth, (local - step).T, order=1, mode="nearest")
        grad_ijk[:, axis] = (plus - minus) / 2.0
    # chain rule: d/dxyz = inv(A)^T d/dijk, with A the voxel → mm part of the affine
    grad = grad_ijk @ np.linalg.inv(head.affine[:3, :3])
    norm = np.linalg.norm(grad, axis=1)
    normals = -grad / np.maximum(norm, 1e-30)[:, None]
    return normals, norm


def make_source_space(
    head: HeadModel,
    spacing: float = 5e-3,
    *,
    loose: float = 0.0,
    deep_orientation: str = "free",
    min_points_per_region: int = 1,
    name: str | None = None,
) -> SourceSpace:
    """Build a cortical + subcortical source space on a regular grid inside a head model.

    Points lie on the grid ``k · spacing`` (aligned with the MRI origin) and are taken from

    - **cortex**: grid points in grey matter whose region is cerebral or cerebellar cortex
      (:data:`~deepesi.anatomy.regions.CORTICAL_REGIONS`,
      :data:`~deepesi.anatomy.regions.CEREBELLAR_REGIONS`). Grey matter with no region
      (region 0, or a head without a region volume) is taken as cerebral cortex of unknown
      lobe, left (3) or right (42) by the sign of the MRI x coordinate;
    - **deep structures**: grid points in any of the
      :data:`~deepesi.anatomy.regions.SUBCORTICAL_REGIONS` whose tissue is brain (WM or GM),
      whatever that tissue is: segmentations such as BrainWeb label much of the thalamus and
      brainstem as white matter, and those parts stay sources. Every deep structure present
      in ``head.regions`` gets at least ``min_points_per_region`` points: a structure smaller
      than the grid (e.g. the nucleus accumbens at 5 mm) gets its most central voxels added
      (off-grid, recorded in ``meta['added_points']``; a structure with fewer voxels than
      that gets all of them).

    Orientation: cortical points get a fixed orientation along the outward cortical normal,
    estimated as minus the gradient of a Gaussian-smoothed depth indicator (1 in WM and deep
    structures, 0.5 in GM, 0 elsewhere; σ = max(spacing/2, voxel size)), so it points from
    WM through GM into the CSF; ``loose`` relaxes it. Deep points are free (three orthogonal
    dipoles, normals zero) unless ``deep_orientation='surface'``.

    Neighbour graph: grid neighbours (26-neighbourhood, distance ≤ √3·spacing), symmetric,
    restricted by this rule:

    - cerebral cortex links within a hemisphere (across lobes), never across the midline, and
      only between points whose normals differ by at most 90°
      (:data:`CORTICAL_MIN_NORMAL_DOT`), which removes links across a sulcus;
    - cerebellar cortex links within the cerebellum (both hemispheres, joined by the vermis);
    - a deep structure links only to itself, except the striatum (caudate, putamen,
      accumbens of one hemisphere, :data:`DEEP_REGION_LINKS`);
    - there are no links between cortex, cerebellum and deep structures.

    Parameters
    ----------
    head : HeadModel
        The head; needs grey matter, and ``regions`` for deep structures and lobes.
    spacing : float
        Grid spacing in **metres** (e.g. 5e-3 for 5 mm). Must be between 0.5 mm and 50 mm.
    loose : float
        Loose-orientation weight (0..1) of the cortical points; 0 = strictly fixed.
    deep_orientation : 'free' | 'surface'
        'free' (default): three orthogonal dipoles per deep point. 'surface': one dipole along
        the outward normal of the structure's own boundary (an approximation for layered
        structures such as the hippocampus; interior points take the direction to the nearest
        boundary).
    min_points_per_region : int
        Minimum number of points in each deep structure present in the head (>= 0).
    name : str | None
        Name of the source space; default ``'<head name>-<spacing>mm'``.

    Returns
    -------
    SourceSpace
        Points ordered cortex first, then deep structures by region id; ``meta`` records the
        counts, the added points and the normal estimation.
    """
    spacing, loose = _check_arguments(head, spacing, loose, deep_orientation,
                                      min_points_per_region)
    spacing_mm = spacing * 1000.0
    gm = head.labels == head.tissues.label_of("GM")
    brain = np.isin(head.labels, _brain_labels(head))
    regions = head.regions if head.regions is not None else np.zeros(head.shape, np.uint16)
    deep_mask = brain & np.isin(regions, list(SUBCORTICAL_REGIONS))

    cortex_xyz, cortex_ijk, cortex_reg = _cortex_points(head, gm, regions, spacing_mm)
    deep_xyz, deep_ijk, deep_reg, added, present = _deep_points(
        head, brain, regions, deep_mask, spacing_mm, min_points_per_region
    )
    n_cortex, n_deep = len(cortex_xyz), len(deep_xyz)
    if n_cortex + n_deep == 0:
        raise ValueError(
            f"no source point fits in head model {head.name!r} at {spacing_mm:g} mm: its grey "
            "matter and deep structures are smaller than the grid. Use a finer spacing."
        )

    sigma_mm = max(spacing_mm / 2.0, float(head.voxel_size.max()))
    normals = np.zeros((n_cortex + n_deep, 3))
    free_ori = np.zeros(n_cortex + n_deep, bool)
    n_fallback = 0
    if n_cortex:
        normals[:n_cortex], n_fallback = _cortical_normals(
            head, gm, brain, deep_mask, cortex_xyz, cortex_ijk, sigma_mm
        )
    if n_deep:
        if deep_orientation == "free":
            free_ori[n_cortex:] = True
        else:
            normals[n_cortex:] = _deep_normals(head, regions, deep_xyz, deep_ijk, deep_reg,
                                               sigma_mm)

    pos = np.concatenate([cortex_xyz, deep_xyz]) / 1000.0
    region_ids = np.concatenate([cortex_reg, deep_reg])
    adjacency = _neighbour_graph(pos, region_ids, normals, spacing)
    meta = {
        "spacing_mm": spacing_mm,
        "n_cortical": n_cortex,
        "n_subcortical": n_deep,
        "added_points": added,
        "normal_sigma_mm": sigma_mm,
        "normal_fallback_radial": n_fallback,
        "deep_orientation": deep_orientation,
        "head_name": head.name,
    }
    src = SourceSpace(
        pos=pos,
        region_ids=region_ids,
        normals=normals,
        free_ori=free_ori,
        adjacency=adjacency,
        spacing=spacing,
        loose=loose,
        head_hash=head.hash(),
        mri_to_mni=head.mri_to_mni,
        name=name if name is not None else f"{head.name}-{spacing_mm:g}mm",
        meta=meta,
    )
    missing = [REGION_NAMES[r] for r in present if r not in set(deep_reg.tolist())]
    if missing:  # only possible with min_points_per_region=0
        logger.info("deep structures without source points: %s", ", ".join(missing))
    return src


def _check_arguments(
    head: HeadModel, spacing: float, loose: float, deep_orientation: str,
    min_points_per_region: int,
) -> tuple[float, float]:
    """Validate the arguments of :func:`make_source_space`; return spacing (m) and loose."""
    validate_type(head, HeadModel, "head", "deepesi.anatomy.HeadModel")
    spacing = float(spacing)
    if not 5e-4 <= spacing <= 5e-2:
        raise ValueError(
            f"spacing must be given in metres between 0.0005 and 0.05 (0.5-50 mm), got "
            f"{spacing!r}; did you pass millimetres? Use e.g. spacing=5e-3 for 5 mm."
        )
    loose = float(loose)
    if not 0.0 <= loose <= 1.0:
        raise ValueError(f"loose must be in [0, 1], got {loose}.")
    check_option("deep_orientation", deep_orientation, _DEEP_ORIENTATIONS)
    if isinstance(min_points_per_region, bool) or not isinstance(
        min_points_per_region, int | np.integer
    ) or min_points_per_region < 0:
        raise ValueError(
            f"min_points_per_region must be an integer >= 0, got {min_points_per_region!r}."
        )
    if "GM" not in head.tissues or not head.has_tissue("GM"):
        raise ValueError(
            f"head model {head.name!r} has no grey matter (GM); cortical sources live in GM. "
            "Check the segmentation and its label map."
        )
    return spacing, loose


def _cortex_points(
    head: HeadModel, gm: np.ndarray, regions: np.ndarray, spacing_mm: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Grid points of the cortical sheet: positions (mm), voxels and region ids.

    Grey matter of no region is cerebral cortex of unknown lobe, left (3) or right (42) by the
    sign of x.
    """
    cortex_ids = np.array(sorted({*CORTICAL_REGIONS, *CEREBELLAR_REGIONS}))
    cortex_mask = gm & (np.isin(regions, cortex_ids) | (regions == 0))
    cortex_xyz = np.empty((0, 3))
    cortex_ijk = np.empty((0, 3), int)
    if cortex_mask.any():
        cortex_xyz, cortex_ijk = _grid_in_mask(head, cortex_mask, spacing_mm)
    cortex_reg = regions[tuple(cortex_ijk.T)].astype(np.int32)
    unknown = cortex_reg == 0
    cortex_reg[unknown] = np.where(cortex_xyz[unknown, 0] < 0, 3, 42)
    return cortex_xyz, cortex_ijk, cortex_reg


def _deep_points(
    head: HeadModel, brain: np.ndarray, regions: np.ndarray, deep_mask: np.ndarray,
    spacing_mm: float, min_points_per_region: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, int], list[int]]:
    """Grid points of the deep structures, topped up to ``min_points_per_region`` each.

    Returns positions (mm), voxels and region ids (sorted by region, then x, y, z), the number
    of points added per structure, and the deep structures present in the head.
    """
    labels = head.labels
    deep_xyz = np.empty((0, 3))
    deep_ijk = np.empty((0, 3), int)
    if deep_mask.any():
        deep_xyz, deep_ijk = _grid_in_mask(head, deep_mask, spacing_mm)
    deep_reg = regions[tuple(deep_ijk.T)].astype(np.int32)
    added: dict[str, int] = {}
    present = np.unique(regions[np.isin(regions, list(SUBCORTICAL_REGIONS))]).tolist()
    extra_xyz, extra_ijk, extra_reg = [], [], []
    for rid in present:
        have = int((deep_reg == rid).sum())
        need = int(min_points_per_region) - have
        if need <= 0:
            continue
        in_region = regions == rid
        candidates = in_region & brain
        if not candidates.any():
            candidates, where = in_region & (labels > 0), "in other tissue"
            if not candidates.any():
                candidates, where = in_region, "outside the head (label 0)"
            logger.warning(
                "%s has no WM/GM voxel in head %r; its %d added point(s) lie %s.",
                REGION_NAMES[rid], head.name, need, where,
            )
        ijk = _central_voxels(
            head, candidates, deep_xyz[deep_reg == rid], need, min_sep_mm=spacing_mm / 2
        )
        if len(ijk) < need:
            logger.warning(
                "%s has only %d voxel(s) in head %r; it gets %d source point(s), not %d.",
                REGION_NAMES[rid], int(candidates.sum()), head.name, have + len(ijk),
                min_points_per_region,
            )
        extra_ijk.append(ijk)
        extra_xyz.append(nib.affines.apply_affine(head.affine, ijk))
        extra_reg.append(np.full(len(ijk), rid, np.int32))
        added[REGION_NAMES[rid]] = len(ijk)
    if extra_ijk:
        deep_xyz = np.concatenate([deep_xyz, *extra_xyz])
        deep_ijk = np.concatenate([deep_ijk, *extra_ijk])
        deep_reg = np.concatenate([deep_reg, *extra_reg])
    order = np.lexsort((deep_xyz[:, 2], deep_xyz[:, 1], deep_xyz[:, 0], deep_reg))
    return deep_xyz[order], deep_ijk[order], deep_reg[order], added, present


def _cortical_normals(
    head: HeadModel, gm: np.ndarray, brain: np.ndarray, deep_mask: np.ndarray,
    cortex_xyz: np.ndarray, cortex_ijk: np.ndarray, sigma_mm: float,
) -> tuple[np.ndarray, int]:
    """Outward cortical normals (minus the gradient of a smoothed depth indicator: 1 in WM and
    deep structures, 0.5 in GM, 0 elsewhere), and how many fell back to the radial direction."""
    labels = head.labels
    depth = np.zeros(head.shape, np.float32)
    depth[gm] = 0.5
    if "WM" in head.tissues:
        depth[labels == head.tissues.label_of("WM")] = 1.0
    depth[deep_mask] = 1.0
    nrm, mag = _outward_normals(depth, head, cortex_ijk, sigma_mm)
    weak = mag < 1e-3 / sigma_mm  # flat indicator: no surface at this scale
    n_fallback = 0
    if weak.any():
        # e.g. a GM blob with no WM or CSF nearby: fall back to the radial direction
        centre = nib.affines.apply_affine(head.affine, np.argwhere(brain).mean(axis=0))
        radial = cortex_xyz[weak] - centre
        radial /= np.maximum(np.linalg.norm(radial, axis=1), 1e-12)[:, None]
        nrm[weak] = radial
        n_fallback = int(weak.sum())
    return nrm, n_fallback


def _deep_normals(
    head: HeadModel, regions: np.ndarray, deep_xyz: np.ndarray, deep_ijk: np.ndarray,
    deep_reg: np.ndarray, sigma_mm: float,
) -> np.ndarray:
    """Outward normals of each deep structure's own boundary (``deep_orientation='surface'``);
    interior points where the boundary is too far take the direction from the centroid."""
    normals = np.zeros((len(deep_xyz), 3))
    for rid in np.unique(deep_reg):
        sel = np.flatnonzero(deep_reg == rid)
        in_region = regions == rid
        nrm, mag = _outward_normals(in_region, head, deep_ijk[sel], sigma_mm)
        centroid = nib.affines.apply_affine(head.affine, np.argwhere(in_region).mean(axis=0))
        weak = mag < 1e-6
        radial = deep_xyz[sel] - centroid
        radial /= np.maximum(np.linalg.norm(radial, axis=1), 1e-12)[:, None]
        radial[np.linalg.norm(radial, axis=1) < 0.5] = (0.0, 0.0, 1.0)
        nrm[weak] = radial[weak]
        normals[sel] = nrm
    return normals


def _neighbour_graph(
    pos: np.ndarray, region_ids: np.ndarray, normals: np.ndarray, spacing: float
) -> sparse.csr_matrix:
    """Symmetric grid-neighbour graph (distance <= √3·spacing) under the linking rule."""
    pairs = cKDTree(pos).query_pairs(np.sqrt(3.0) * spacing * (1 + 1e-6), output_type="ndarray")
    if len(pairs):
        i, j = pairs[:, 0], pairs[:, 1]
        keep = _linked(region_ids[i], region_ids[j])
        # after _linked, both ends of a kept cortical edge are cortical (or both cerebellar)
        cortical = ~np.isin(region_ids[i], list(SUBCORTICAL_REGIONS))
        dots = np.einsum("ij,ij->i", normals[i], normals[j])
        keep &= ~cortical | (dots >= CORTICAL_MIN_NORMAL_DOT)
        i, j = i[keep], j[keep]
    else:
        i = j = np.empty(0, int)
    n = len(pos)
    adjacency = sparse.coo_matrix(
        (np.ones(2 * len(i), np.float32), (np.r_[i, j], np.r_[j, i])), shape=(n, n)
    ).tocsr()
    adjacency.sort_indices()
    return adjacency
