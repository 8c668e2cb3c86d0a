"""Head model from a FreeSurfer subject: aseg (+ ribbon, brain.mgz) inside, BEM surfaces outside.

The head is built on an isotropic grid aligned with FreeSurfer *surface RAS* (tkr RAS) -- the
frame of the ``.surf`` files and of MNE's 'mri' frame -- covering the outer skin surface:

- scalp = inside ``bem/outer_skin.surf`` but outside ``outer_skull.surf``;
- skull = inside ``outer_skull.surf`` but outside ``inner_skull.surf``, split into compact and
  spongy bone by :func:`deepesi.anatomy.skull.split_skull`;
- inside ``inner_skull.surf``: brain tissues from ``aseg.mgz`` (see :data:`ASEG_TISSUES`), CSF
  elsewhere (ventricles and the intracranial space that is not brain). Cerebral cortex is refined
  at the grid resolution with ``lh/rh.ribbon.mgz`` when they match the aseg, and by ``brain.mgz``
  intensity otherwise (see :func:`read_freesurfer_subject`).

Regions: deep structures and cerebellar cortex from the subject's own aseg, cortical lobes from the
MNI atlas (:func:`deepesi.anatomy.atlas.label_regions_from_mni`) through ``talairach.xfm``.
"""

from __future__ import annotations

import os
import re
import time
import warnings
from collections.abc import Mapping
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

from .._deprecate import progress_to_verbose
from .._io import load_image
from .._logging import verbose
from .._progress import progress as _progress
from .._validation import check_dir, check_file, check_integer_labels
from .headmodel import HeadModel
from .regions import CEREBELLAR_REGIONS, SUBCORTICAL_REGIONS
from .skull import MIN_TABLE_MM, TABLE_FRACTION, split_skull
from .tissues import TissueTable
from .voxelize import read_surface, resample_nearest, voxelize_surface

#: FreeSurfer (aseg / samseg) label → tissue name. Deep grey nuclei, hippocampus and amygdala are
#: grey matter; brainstem and ventral diencephalon white matter; ventricles and choroid plexus CSF.
ASEG_TISSUES: dict[int, str] = {
    **dict.fromkeys((2, 41, 7, 46, 16, 28, 60, 77, 78, 79, 85, 251, 252, 253, 254, 255), "WM"),
    **dict.fromkeys(
        (3, 42, 8, 47, 10, 11, 12, 13, 17, 18, 26, 49, 50, 51, 52, 53, 54, 58, 80, 81, 82), "GM"
    ),
    **dict.fromkeys((4, 5, 14, 15, 24, 29, 31, 43, 44, 61, 63, 72), "CSF"),
    **dict.fromkeys((30, 62), "Blood"),
}

#: Lateralised FreeSurfer labels (used to give every cortical voxel a hemisphere).
LEFT_LABELS = frozenset((2, 3, 4, 5, 7, 8, 10, 11, 12, 13, 17, 18, 26, 28, 29, 30, 31, 78, 81))
RIGHT_LABELS = frozenset(
    (41, 42, 43, 44, 46, 47, 49, 50, 51, 52, 53, 54, 58, 60, 61, 62, 63, 79, 82)
)

#: FreeSurfer's affine from MNI305 (talairach.xfm target) to MNI152 space, from the FreeSurfer
#: "CoordinateSystems" documentation (also used by MNE and nilearn users).
MNI305_TO_MNI152 = np.array(
    [
        [0.9975, -0.0073, 0.0176, -0.0429],
        [0.0146, 1.0009, -0.0024, 1.5496],
        [-0.0130, -0.0093, 0.9971, 1.1840],
        [0.0, 0.0, 0.0, 1.0],
    ]
)

#: Minimum fraction of ribbon voxels that must fall on aseg cerebral cortex / white matter for the
#: ribbon files to be trusted as belonging to the same subject and frame.
RIBBON_MIN_AGREEMENT = 0.8

#: Largest grid built (voxels); 1 mm heads have ~1e7.
MAX_VOXELS = 3e8

_CEREBRAL = (2, 3, 41, 42)
_BEM = ("inner_skull", "outer_skull", "outer_skin")


@progress_to_verbose
@verbose
def read_freesurfer_subject(
    subject: str,
    subjects_dir: str | os.PathLike | None = None,
    *,
    voxel_size: float = 1.0,
    conductivities: Mapping[str | int, float] | None = None,
    verbose: bool | str | int | None = None,
) -> HeadModel:
    """Build a head model from a FreeSurfer subject folder and its BEM surfaces.

    Parameters
    ----------
    subject : str
        Subject name (folder in ``subjects_dir``).
    subjects_dir : path-like | None
        FreeSurfer subjects directory; None uses ``$SUBJECTS_DIR``.
    voxel_size : float
        Edge of the isotropic output voxels, mm (1.0: the FreeSurfer resolution).
    conductivities : dict | None
        Conductivity overrides in S/m, by tissue name or label, e.g. ``{'skull': 0.006}``.
    verbose : bool | str | int | None
        Log level for the call (:func:`deepesi.set_log_level`); the progress bar is shown at
        INFO.

    Returns
    -------
    HeadModel
        Labels in the CHARM convention on a surface-RAS-aligned grid; ``regions`` with the
        subject's deep structures (aseg) and lobes (atlas); ``mri_to_mni`` from ``talairach.xfm``
        (MNI152, see Notes); ``meta`` with the files used, the cortex-refinement method, the
        skull split parameters and the tissues the inputs cannot provide.

    Notes
    -----
    Needs ``mri/aseg.mgz`` and ``bem/{inner_skull,outer_skull,outer_skin}.surf`` (make them with
    ``mne watershed_bem`` or ``mne flash_bem``); uses ``mri/lh.ribbon.mgz``, ``rh.ribbon.mgz``,
    ``brain.mgz`` and ``transforms/talairach.xfm`` when present.

    - Every volume is placed by its own scanner (vox2ras) affine and brought to surface RAS with
      aseg's ``vox2ras-tkr``, so volumes of any resolution line up with the surfaces.
    - Cerebral cortex: where the ribbons agree with aseg (at least 80 % of ribbon voxels on aseg
      cerebral cortex/WM) the ribbon gives the grey matter; otherwise aseg's cortex voxels are
      split by ``brain.mgz`` intensity into WM, GM and sulcal CSF (nearest of the three class
      medians measured on the subject's own aseg WM, cortex and lateral ventricles); without
      ``brain.mgz`` aseg's cortex is used as is.
    - Brain voxels outside ``inner_skull.surf`` are dropped (the surfaces define the
      compartments, as in MNE's BEM); their number is recorded in ``meta``.
    - ``talairach.xfm`` maps to MNI305; FreeSurfer's MNI305→MNI152 affine is applied so that
      ``mri_to_mni`` matches the MNI152 atlas (differences are ~1-2 mm).
    - Eyes, muscle and (beyond aseg's small 'vessel' labels) blood are not in these inputs and
      are left absent, not invented; ``meta['absent_tissues']`` lists them.
    """
    t0 = time.perf_counter()
    subject_dir = _subject_dir(subject, subjects_dir)
    voxel_size = float(voxel_size)
    if not np.isfinite(voxel_size) or not 0.1 <= voxel_size <= 10:
        raise ValueError(f"voxel_size must be between 0.1 and 10 mm, got {voxel_size}.")
    tissues = TissueTable.charm(conductivities)
    with _progress(total=7, desc=f"head model {subject}") as steps:
        return _build_head(subject, subject_dir, voxel_size, tissues, steps, t0)


def _build_head(
    subject: str, subject_dir: Path, voxel_size: float, tissues: TissueTable, steps, t0: float
) -> HeadModel:
    """The steps of :func:`read_freesurfer_subject`, reporting to the progress bar ``steps``."""

    # ---- inputs
    mri = subject_dir / "mri"
    aseg_img = load_image(mri / "aseg.mgz", "aseg.mgz (FreeSurfer's subcortical segmentation)",
                          fix="run FreeSurfer's recon-all on this subject")
    aseg = _integer_labels(aseg_img, "aseg.mgz")
    unknown = sorted(set(np.unique(aseg).tolist()) - set(ASEG_TISSUES) - {0})
    if unknown:
        raise ValueError(
            f"aseg.mgz of {subject!r} contains label(s) {unknown[:10]} that deepesi does not map "
            f"to a tissue (known: {sorted(ASEG_TISSUES)}); is this really an aseg (not "
            "aparc+aseg or a custom atlas)? For other label images use read_labelled_nifti."
        )
    scanner_to_tkr = aseg_img.header.get_vox2ras_tkr() @ np.linalg.inv(aseg_img.affine)
    surfaces = {}
    for name in _BEM:
        path = subject_dir / "bem" / f"{name}.surf"
        if not path.is_file():
            raise FileNotFoundError(
                f"BEM surface {path} not found; make the BEM surfaces with `mne watershed_bem "
                f"-s {subject}` (or mne.bem.make_watershed_bem / make_flash_bem)."
            )
        surfaces[name] = read_surface(path, f"BEM surface {name}")
    steps.update()

    # ---- grid: surface-RAS aligned, covering the skin, voxel centres on integer mm when 1 mm
    skin_v = surfaces["outer_skin"][0]
    lo = np.floor(skin_v.min(axis=0) / voxel_size) * voxel_size - 2 * voxel_size
    hi = np.ceil(skin_v.max(axis=0) / voxel_size) * voxel_size + 2 * voxel_size
    shape = tuple(int(n) for n in np.round((hi - lo) / voxel_size).astype(int) + 1)
    if np.prod(shape, dtype=float) > MAX_VOXELS:
        raise ValueError(
            f"a {voxel_size:g} mm grid over this head has {np.prod(shape, dtype=float):.3g} voxels "
            f"(limit {MAX_VOXELS:.0e}); use a larger voxel_size (1 mm is FreeSurfer's resolution)."
        )
    affine = np.diag([voxel_size, voxel_size, voxel_size, 1.0])
    affine[:3, 3] = lo

    # ---- BEM compartments
    masks = {
        name: voxelize_surface(v, f, shape, affine, name=f"BEM surface {name}")
        for name, (v, f) in surfaces.items()
    }
    skin, oskull, iskull = masks["outer_skin"], masks["outer_skull"], masks["inner_skull"]
    nesting = {
        "outer_skull_outside_skin_vox": int(np.sum(oskull & ~skin)),
        "inner_skull_outside_outer_skull_vox": int(np.sum(iskull & ~oskull)),
    }
    oskull &= skin
    iskull &= oskull
    if not iskull.any():
        raise ValueError(f"inner_skull.surf of {subject!r} encloses no voxel of the grid.")
    steps.update()

    # ---- aseg on the grid
    def to_grid(img: nib.spatialimages.SpatialImage, data: np.ndarray) -> np.ndarray:
        return resample_nearest(data, scanner_to_tkr @ img.affine, shape, affine)

    fs = to_grid(aseg_img, aseg)
    steps.update()

    # ---- cortex refinement
    fs_labels = np.where(iskull, fs, 0)
    ribbon, ribbon_note = _ribbon(mri, fs_labels, to_grid, iskull)
    brain_img = _optional_volume(mri / "brain.mgz")
    tissue_of = np.zeros(max(ASEG_TISSUES) + 1, np.uint8)
    for lab, name in ASEG_TISSUES.items():
        tissue_of[lab] = tissues.label_of(name)
    labels = tissue_of[fs_labels]
    labels[iskull & (fs_labels == 0)] = tissues.label_of("CSF")
    wm, gm, csf = (tissues.label_of(n) for n in ("WM", "GM", "CSF"))
    intensity_note = None
    if brain_img is not None and ribbon is None:
        brain = to_grid(brain_img, np.asanyarray(brain_img.dataobj))
        labels, intensity_note = _split_cortex_by_intensity(labels, fs_labels, brain, wm, gm, csf)
    if ribbon is not None:
        lh_rib, rh_rib = ribbon
        claimable = np.isin(fs_labels, (*_CEREBRAL, 24, 77)) | (fs_labels == 0)
        on_rib = (lh_rib | rh_rib) & iskull & claimable
        labels[on_rib] = gm
        # aseg cortex the ribbon does not claim: white matter if it touches aseg WM, else CSF
        leftover = np.isin(fs_labels, (3, 42)) & ~on_rib
        near_wm = ndimage.binary_dilation(np.isin(fs_labels, (2, 41)), iterations=1)
        labels[leftover & near_wm] = wm
        labels[leftover & ~near_wm] = csf
        # hemisphere of ribbon voxels that aseg left unlabelled
        fs_labels = fs_labels.copy()
        fs_labels[on_rib & lh_rib & ~np.isin(fs_labels, _CEREBRAL)] = 3
        fs_labels[on_rib & rh_rib & ~np.isin(fs_labels, _CEREBRAL)] = 42
    cortex_method = (
        "ribbon" if ribbon is not None else "brain.mgz intensity" if intensity_note else "aseg"
    )
    brain_outside = int(np.sum((fs != 0) & ~iskull))
    del fs
    steps.update()

    # ---- skull and scalp
    skull = oskull & ~iskull
    compact, spongy = split_skull(skull, iskull, voxel_size=voxel_size)
    labels[compact] = tissues.label_of("Compact_bone")
    labels[spongy] = tissues.label_of("Spongy_bone")
    labels[skin & ~oskull] = tissues.label_of("Scalp")
    steps.update()

    # ---- MNI transform and regions
    xfm_path = mri / "transforms" / "talairach.xfm"
    mri_to_mni = None
    if xfm_path.is_file():
        mni305 = read_talairach_xfm(xfm_path)
        mri_to_mni = MNI305_TO_MNI152 @ mni305 @ np.linalg.inv(scanner_to_tkr)
    regions, region_meta = regions_from_fs_labels(labels, fs_labels, affine, mri_to_mni, tissues)
    steps.update()

    n_bone = int(compact.sum() + spongy.sum())
    meta = {
        "reader": "deepesi.anatomy.read_freesurfer_subject",
        "subject": str(subject),
        "subject_dir": str(subject_dir),
        "frame": "FreeSurfer surface RAS (tkr RAS) = MNE 'mri' frame, mm",
        "files": {
            "aseg": str(mri / "aseg.mgz"),
            **{name: str(subject_dir / "bem" / f"{name}.surf") for name in _BEM},
            "brain": str(mri / "brain.mgz") if brain_img is not None else None,
            "talairach": str(xfm_path) if mri_to_mni is not None else None,
        },
        "voxel_size_mm": voxel_size,
        "cortex_method": cortex_method,
        "ribbon": ribbon_note,
        "intensity_split": intensity_note,
        "bem_nesting_clipped": nesting,
        "brain_voxels_outside_inner_skull_dropped": brain_outside,
        "skull_split": {
            "rule": "deepesi.anatomy.skull.split_skull",
            "table_fraction": TABLE_FRACTION,
            "min_table_mm": MIN_TABLE_MM,
            "compact_fraction": float(compact.sum() / n_bone) if n_bone else None,
        },
        "mni": "MNI152 via talairach.xfm (MNI305) and FreeSurfer's MNI305->MNI152 affine"
        if mri_to_mni is not None else "none: no transforms/talairach.xfm",
        **region_meta,
        "absent_tissues": tissues.absent_from(labels),
        "absent_note": "tissues not present in FreeSurfer/BEM inputs are left absent, not "
        "invented (eyes, muscle, bone as one compartment; blood only from aseg 'vessel').",
        "build_seconds": round(time.perf_counter() - t0, 2),
    }
    head = HeadModel(
        labels=labels,
        affine=affine,
        tissues=tissues,
        regions=regions,
        name=str(subject),
        mri_to_mni=mri_to_mni,
        meta=meta,
    )
    steps.update()
    return head


# --------------------------------------------------------------------------- helpers
def read_talairach_xfm(path: str | os.PathLike) -> np.ndarray:
    """Read a linear FreeSurfer ``talairach.xfm`` as a 4x4 scanner-RAS → MNI305 affine (mm)."""
    path = check_file(path, "talairach.xfm")
    text = path.read_text(errors="replace")
    match = re.search(r"Linear_Transform\s*=\s*([^;]*);", text)
    if match is None:
        raise ValueError(
            f"{path} has no 'Linear_Transform = ...;' block; it is not a linear MNI .xfm file "
            "(re-run FreeSurfer's talairach step)."
        )
    try:
        values = np.array(match.group(1).split(), dtype=float)
    except ValueError as err:
        raise ValueError(f"{path}: the linear transform holds non-numbers ({err}).") from err
    if values.size != 12:
        raise ValueError(f"{path}: expected 12 numbers in the linear transform, got {values.size}.")
    xfm = np.eye(4)
    xfm[:3] = values.reshape(3, 4)
    return xfm


def regions_from_fs_labels(
    labels: np.ndarray,
    fs_labels: np.ndarray,
    affine: np.ndarray,
    mri_to_mni: np.ndarray | None,
    tissues: TissueTable,
) -> tuple[np.ndarray, dict]:
    """Region ids from a FreeSurfer-style labelling (aseg, samseg) plus the MNI atlas for lobes.

    Deep structures (:data:`~deepesi.anatomy.regions.SUBCORTICAL_REGIONS`) come from the subject's
    labels on every brain (WM/GM) voxel they cover; structures the labelling lacks come from the
    atlas. Cerebellar cortex (8/47) from the labels on GM. Cerebral GM gets its hemisphere from the
    nearest lateralised FreeSurfer label and its lobe (1101-1106 / 2101-2106) from the atlas;
    3/42 where no lobe is known (no MNI transform, or no atlas).

    Returns
    -------
    regions : ndarray of uint16
    meta : dict
        How the regions were made (for ``HeadModel.meta``).
    """
    brain = np.isin(labels, [tissues.label_of(n) for n in ("WM", "GM") if n in tissues])
    gm = labels == tissues.label_of("GM")
    regions = np.zeros(labels.shape, np.uint16)
    deep = np.isin(fs_labels, list(SUBCORTICAL_REGIONS)) & brain
    regions[deep] = fs_labels[deep]
    cereb = np.isin(fs_labels, list(CEREBELLAR_REGIONS)) & gm
    regions[cereb] = fs_labels[cereb]
    cortex = gm & ~deep & ~cereb

    atlas_regions, atlas_note = None, None
    if mri_to_mni is not None:
        try:
            from .atlas import label_regions_from_mni
        except ImportError as err:  # pragma: no cover - depends on the installation
            atlas_note = f"atlas unavailable ({err}); cortex labelled 3/42 without lobes"
        else:
            atlas_regions = label_regions_from_mni(labels, affine, mri_to_mni, tissues)
            atlas_note = "lobes and missing deep structures from the MNI atlas"
    else:
        atlas_note = "no MNI transform: cortex labelled 3/42 without lobes"

    # hemisphere of each cortical voxel: that of the nearest lateralised FreeSurfer label
    lateral = np.zeros(labels.shape, np.int8)
    lateral[np.isin(fs_labels, list(LEFT_LABELS))] = 1
    lateral[np.isin(fs_labels, list(RIGHT_LABELS))] = 2
    if cortex.any():
        if lateral.any():
            idx = ndimage.distance_transform_edt(
                lateral == 0, return_distances=False, return_indices=True
            )
            hemi = lateral[tuple(i[cortex] for i in idx)]
            del idx
        else:  # no lateralised labels: the side of the midline (MNI x if known, else MRI x)
            xyz = nib.affines.apply_affine(affine, np.argwhere(cortex))
            if mri_to_mni is not None:
                xyz = nib.affines.apply_affine(mri_to_mni, xyz)
            hemi = np.where(xyz[:, 0] < 0, 1, 2).astype(np.int8)
        lobe = np.zeros(int(cortex.sum()), np.uint16)
        if atlas_regions is not None:
            a = atlas_regions[cortex].astype(np.int64)
            is_lobe = ((a >= 1101) & (a <= 1106)) | ((a >= 2101) & (a <= 2106))
            lobe[is_lobe] = a[is_lobe] % 1000
        cortical = np.where(hemi == 2, 42, 3).astype(np.uint16)
        with_lobe = lobe > 0
        cortical[with_lobe] = np.where(hemi[with_lobe] == 2, 2000, 1000) + lobe[with_lobe]
        regions[cortex] = cortical

    present = set(np.unique(fs_labels).tolist())
    missing = [rid for rid in SUBCORTICAL_REGIONS if rid not in present]
    from_atlas = []
    if atlas_regions is not None:
        free = brain & ~deep & ~cereb
        for rid in missing:
            sel = free & (atlas_regions == rid)
            if sel.any():
                regions[sel] = rid
                from_atlas.append(SUBCORTICAL_REGIONS[rid])
        for rid in CEREBELLAR_REGIONS:  # cerebellar cortex the labelling lacks
            if rid not in present:
                sel = gm & ~deep & (atlas_regions == rid)
                if sel.any():
                    regions[sel] = rid
                    from_atlas.append(CEREBELLAR_REGIONS[rid])
    meta = {
        "regions": {
            "deep_structures": "subject labelling (individual > atlas)",
            "structures_from_atlas": from_atlas,
            "deep_structures_missing": [
                SUBCORTICAL_REGIONS[r] for r in missing
                if SUBCORTICAL_REGIONS[r] not in from_atlas
            ],
            "cortex": atlas_note,
        }
    }
    return regions, meta


def _subject_dir(subject: str, subjects_dir: str | os.PathLike | None) -> Path:
    if not isinstance(subject, str) or not subject:
        raise TypeError(f"subject must be a non-empty string, got {subject!r}.")
    if subjects_dir is None:
        env = os.environ.get("SUBJECTS_DIR")
        if not env:
            raise ValueError(
                "subjects_dir is None and $SUBJECTS_DIR is not set; pass subjects_dir= (the "
                "folder that holds the FreeSurfer subject folders)."
            )
        subjects_dir = env
    subjects_dir = check_dir(subjects_dir, "FreeSurfer subjects_dir")
    return check_dir(subjects_dir / subject, f"FreeSurfer subject folder for {subject!r}")


def _optional_volume(path: Path) -> nib.spatialimages.SpatialImage | None:
    if not path.is_file():
        return None
    return load_image(path, path.name, "re-create it or remove it")


def _integer_labels(img: nib.spatialimages.SpatialImage, what: str) -> np.ndarray:
    """The voxels of a label image as int32 (FreeSurfer ids fit; half the memory of int64)."""
    return check_integer_labels(img.dataobj, what).astype(np.int32, copy=False)


def _ribbon(mri: Path, fs_labels: np.ndarray, to_grid, iskull: np.ndarray):
    """The lh/rh ribbons on the grid, or None with the reason (missing, or not matching aseg)."""
    paths = [mri / "lh.ribbon.mgz", mri / "rh.ribbon.mgz"]
    if not all(p.is_file() for p in paths):
        return None, "not used: lh.ribbon.mgz / rh.ribbon.mgz not found"
    ribbons = []
    for p in paths:
        img = load_image(p, p.name, "re-create it (recon-all) or remove it")
        ribbons.append(to_grid(img, (np.asanyarray(img.dataobj) > 0).astype(np.uint8)) > 0)
    both = ribbons[0] | ribbons[1]
    n = int(both.sum())
    if n == 0:
        return None, "not used: the ribbons are empty or outside the head grid"
    agree = float(np.sum(both & np.isin(fs_labels, _CEREBRAL)) / n)
    outside = float(np.sum(both & ~iskull) / n)
    if agree < RIBBON_MIN_AGREEMENT:
        msg = (
            f"not used: only {agree:.0%} of ribbon voxels fall on aseg cerebral cortex/WM "
            f"({outside:.0%} outside inner_skull.surf); the ribbon files do not match aseg.mgz "
            "(different subject, processing or header)"
        )
        warnings.warn(f"{mri.parent.name}: lh/rh.ribbon.mgz {msg}.", stacklevel=3)
        return None, msg
    return (ribbons[0], ribbons[1]), f"used: {agree:.0%} of ribbon voxels on aseg cortex/WM"


def _split_cortex_by_intensity(
    labels: np.ndarray, fs_labels: np.ndarray, brain: np.ndarray, wm: int, gm: int, csf: int
) -> tuple[np.ndarray, dict | None]:
    """Split aseg cortex voxels into WM / GM / sulcal CSF by the nearest brain.mgz class median."""
    brain = brain.astype(float)
    classes = {
        "wm": np.isin(fs_labels, (2, 41)),
        "gm": np.isin(fs_labels, (3, 42)),
        "csf": np.isin(fs_labels, (4, 43)),
    }
    if any(int(m.sum()) < 20 for m in classes.values()):
        return labels, None
    med = {k: float(np.median(brain[m])) for k, m in classes.items()}
    if not med["csf"] < med["gm"] < med["wm"]:  # not a T1-like contrast: leave aseg as is
        return labels, None
    lo = (med["csf"] + med["gm"]) / 2.0
    hi = (med["gm"] + med["wm"]) / 2.0
    ctx = classes["gm"]
    labels = labels.copy()
    labels[ctx & (brain >= hi)] = wm
    labels[ctx & (brain < lo)] = csf
    return labels, {
        "class_medians": med,
        "thresholds": [lo, hi],
        "cortex_voxels_to_wm": int(np.sum(ctx & (brain >= hi))),
        "cortex_voxels_to_csf": int(np.sum(ctx & (brain < lo))),
    }
