"""Head model from a SimNIBS CHARM ``m2m_<subject>/`` folder.

What CHARM writes and what we use (SimNIBS 4, ``simnibs.utils.file_finder.SubjectFiles``):

- ``final_tissues.nii.gz``: the tissue labels, already in our numbering (1 WM, 2 GM, 3 CSF,
  5 scalp, 6 eyes, 7 compact bone, 8 spongy bone, 9 blood, 10 muscle; 4 'bone' is unused by
  CHARM). Newer SimNIBS versions can add 11 cartilage and 12 fat (see
  ``final_tissues_FreeSurferColorLUT.txt``); they have no separate standard conductivity here and
  are folded into scalp by default (``extra_labels``). 100 (electrode) and 500 (saline/gel) are
  mesh tags of electrode simulations, not anatomy: they are refused.
- ``segmentation/labeling.nii.gz`` (+ ``labeling_LUT.txt``): the samseg labelling with FreeSurfer
  LUT numbers (10/49 thalamus, 16 brainstem, 17/53 hippocampus, ...; plus 5xx extra-cerebral
  labels). Deep structures and cerebellar cortex come from it.
- ``toMNI/MNI2conform_12DOF.txt``: a 4x4 affine that maps MNI coordinates (mm) to subject
  coordinates (mm) -- SimNIBS's ``mni2subject_coords(..., '12dof')`` applies it as is, and
  ``subject2mni_coords`` its inverse. ``mri_to_mni`` is therefore its inverse. Cortical lobes come
  from the MNI atlas through it.

The MRI frame of the resulting head is the world (scanner RAS) frame of ``final_tissues.nii.gz``
(= CHARM's ``T1.nii.gz``), not FreeSurfer surface RAS: the ``trans`` used with MNE must map
MNE's head frame to this frame.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

import nibabel as nib
import numpy as np

from .._io import load_image, read_affine_text
from .._validation import check_affine, check_dir, check_integer_labels
from .freesurfer import regions_from_fs_labels
from .headmodel import HeadModel
from .tissues import TissueTable
from .voxelize import resample_nearest

#: Default handling of CHARM labels beyond 1-10: tissue name to fold them into.
CHARM_EXTRA_LABELS: dict[int, str] = {11: "Scalp", 12: "Scalp"}
#: CHARM tags that are not anatomy (electrode simulations).
CHARM_NON_ANATOMY = {100: "Electrode", 500: "Saline_or_gel"}

_MNI_AFFINE_NAMES = ("MNI2conform_12DOF.txt", "MNI2Conform_12DOF.txt")


def read_charm(
    m2m_dir: str | os.PathLike,
    *,
    conductivities: Mapping[str | int, float] | None = None,
    extra_labels: Mapping[int, str | None] | None = None,
    name: str | None = None,
) -> HeadModel:
    """Read a SimNIBS CHARM segmentation folder (``m2m_<subject>/``) as a head model.

    Parameters
    ----------
    m2m_dir : path-like
        The ``m2m_<subject>`` folder written by ``charm``.
    conductivities : dict | None
        Conductivity overrides in S/m by tissue name or label, e.g. ``{'Spongy_bone': 0.03}``.
    extra_labels : dict | None
        How to treat labels outside 1-10: ``{label: tissue name}`` or ``{label: None}`` (outside
        the head). Merged over the default :data:`CHARM_EXTRA_LABELS` (11 cartilage and 12 fat →
        scalp).
    name : str | None
        Head name; default the subject id from the folder name.

    Returns
    -------
    HeadModel
        ``final_tissues`` labels as they are (extra labels folded as above); ``regions`` with deep
        structures from ``segmentation/labeling.nii.gz`` (or, without it, from the MNI atlas) and
        cortical lobes from the atlas; ``mri_to_mni`` from ``toMNI/MNI2conform_12DOF.txt``.
    """
    m2m = check_dir(m2m_dir, "SimNIBS m2m folder")
    match = re.match(r"m2m_(.+)$", m2m.name)
    subject = match.group(1) if match else m2m.name
    final = m2m / "final_tissues.nii.gz"
    img = load_image(
        final, "CHARM final_tissues.nii.gz",
        fix=f"run `charm {subject} T1.nii.gz [T2.nii.gz]` to completion, or pass the m2m_ folder",
    )
    raw = check_integer_labels(img.dataobj, "final_tissues.nii.gz")
    tissues = TissueTable.charm(conductivities)
    labels, folded = _fold_extra_labels(raw, tissues, extra_labels)
    affine = check_affine(img.affine, "final_tissues.nii.gz affine")

    mri_to_mni, mni_file = _charm_mri_to_mni(m2m)
    labeling_path = m2m / "segmentation" / "labeling.nii.gz"
    if labeling_path.is_file():
        lab_img = load_image(labeling_path, "CHARM labeling.nii.gz", "re-run charm")
        fs = check_integer_labels(lab_img.dataobj, "labeling.nii.gz").astype(np.int32)
        if _same_grid(lab_img, img):
            fs_labels = fs
        else:
            fs_labels = resample_nearest(fs, lab_img.affine, labels.shape, affine)
        labeling = str(labeling_path)
    else:
        fs_labels = np.zeros(labels.shape, np.int32)
        labeling = None
    regions, region_meta = regions_from_fs_labels(labels, fs_labels, affine, mri_to_mni, tissues)
    if labeling is None:
        region_meta["regions"]["deep_structures"] = (
            "MNI atlas (no segmentation/labeling.nii.gz)" if mri_to_mni is not None
            else "none: neither segmentation/labeling.nii.gz nor toMNI/ affine"
        )
    meta = {
        "reader": "deepesi.anatomy.read_charm",
        "m2m_dir": str(m2m),
        "frame": "world (scanner RAS) frame of final_tissues.nii.gz / T1.nii.gz, mm",
        "files": {"final_tissues": str(final), "labeling": labeling, "to_mni": mni_file},
        "extra_labels_folded": folded,
        **region_meta,
        "absent_tissues": tissues.absent_from(labels),
    }
    return HeadModel(
        labels=labels,
        affine=affine,
        tissues=tissues,
        regions=regions,
        name=name or subject,
        mri_to_mni=mri_to_mni,
        meta=meta,
    )


def _fold_extra_labels(
    raw: np.ndarray, tissues: TissueTable, extra_labels: Mapping[int, str | None] | None
) -> tuple[np.ndarray, dict]:
    mapping: dict[int, str | None] = dict(CHARM_EXTRA_LABELS)
    for key, value in (extra_labels or {}).items():
        mapping[int(key)] = value
    present = np.unique(raw)
    known = set(tissues.labels.tolist()) | {0}
    lut = np.arange(int(present.max()) + 1 if present.size else 1, dtype=np.int64)
    folded = {}
    for lab in present.tolist():
        if lab in known and lab not in mapping:
            continue
        if lab in mapping:
            target = mapping[lab]
            if target is None:
                lut[lab] = 0
            else:
                try:
                    lut[lab] = tissues.label_of(target)
                except KeyError as err:
                    raise ValueError(
                        f"extra_labels maps CHARM label {lab} to {target!r}, which is not a "
                        f"tissue ({tissues.names}); use one of those names or None."
                    ) from err
            folded[str(lab)] = target
        elif lab in CHARM_NON_ANATOMY:
            raise ValueError(
                f"final_tissues.nii.gz contains label {lab} ({CHARM_NON_ANATOMY[lab]}), a tag "
                "of electrode simulations, not anatomy; use the final_tissues.nii.gz of the "
                "segmentation itself, or pass extra_labels={" + f"{lab}: None" + "}."
            )
        else:
            raise ValueError(
                f"final_tissues.nii.gz contains label {lab}, which is not a CHARM tissue "
                f"(1-10, extra {sorted(CHARM_EXTRA_LABELS)}); say what it is with "
                "extra_labels={" + f"{lab}: 'Scalp'" + "} (a tissue name) or None (outside)."
            )
    return lut[raw].astype(np.uint8), folded


def _charm_mri_to_mni(m2m: Path) -> tuple[np.ndarray | None, str | None]:
    for fname in _MNI_AFFINE_NAMES:
        path = m2m / "toMNI" / fname
        if path.is_file():
            mni_to_subject = read_affine_text(path, "CHARM MNI→subject affine", "re-run charm")
            return np.linalg.inv(mni_to_subject), str(path)
    return None, None


def _same_grid(a: nib.spatialimages.SpatialImage, b: nib.spatialimages.SpatialImage) -> bool:
    return a.shape[:3] == b.shape[:3] and np.allclose(a.affine, b.affine, atol=1e-4)
