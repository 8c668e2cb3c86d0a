"""Head model from any labelled NIfTI image plus a label map naming what each label is.

The label map is a file (or a dict) that maps each integer label of the image to one of deepesi's
tissues (CHARM names or aliases such as 'skull', 'skin', 'gray_matter'), optionally with a
conductivity:

- TSV with a header row and columns ``label``, ``tissue`` and optionally ``conductivity`` (S/m)::

      label   tissue        conductivity
      1       csf
      2       gray_matter   0.33
      3       white_matter
      7       skull         0.0041

- JSON ``{"1": "csf", "2": {"tissue": "GM", "conductivity": 0.33}, ...}``.

Several labels may map to the same tissue (e.g. BrainWeb's fat, muscle/skin → scalp). The tissue
name ``outside`` (aliases ``background``, ``air``, ``none``) maps a label to 0. Output labels use
the CHARM numbering whatever the input numbering.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Mapping
from pathlib import Path

import nibabel as nib
import numpy as np

from .._io import load_image, read_affine_text
from .._validation import check_affine, check_file, check_integer_labels
from .headmodel import HeadModel
from .skull import split_skull
from .tissues import TissueTable

#: Tissue names that mean "not part of the head" (label 0).
OUTSIDE_NAMES = frozenset({"outside", "background", "air", "none", "0"})


def read_labelled_nifti(
    image: str | os.PathLike | nib.spatialimages.SpatialImage,
    label_map: str | os.PathLike | Mapping,
    *,
    regions_image: str | os.PathLike | nib.spatialimages.SpatialImage | None = None,
    mri_to_mni: np.ndarray | str | os.PathLike | None = None,
    name: str | None = None,
    split_bone: bool = False,
) -> HeadModel:
    """Read a labelled NIfTI (or any nibabel image) as a head model.

    Parameters
    ----------
    image : path-like | nibabel image
        Integer label image; its affine (voxel → world mm) becomes the head's affine.
    label_map : path-like | dict
        TSV or JSON file, or a dict ``{label: tissue}`` / ``{label: {'tissue': ..., 'conductivity':
        ...}}`` (see the module docstring). Every non-zero label of the image must be in it.
    regions_image : path-like | nibabel image | None
        Region ids per voxel (FreeSurfer/deepesi ids, see :mod:`deepesi.anatomy.regions`) on the
        same grid as ``image``.
    mri_to_mni : array (4, 4) | path-like | None
        MRI mm → MNI mm affine (or a text file with it). Without ``regions_image``, regions are
        then looked up in the MNI atlas.
    name : str | None
        Head name; default the image file name without extension.
    split_bone : bool
        Split undifferentiated 'Bone' (label 4) into compact and spongy bone with
        :func:`deepesi.anatomy.skull.split_skull` (WM, GM and CSF define the inside). Use it when
        the segmentation has one skull class; it needs voxels of about 1 mm.

    Returns
    -------
    HeadModel
    """
    img, img_name = _load_image(image, "label image")
    data = check_integer_labels(img.dataobj, f"label image {img_name}").astype(np.int64)
    affine = check_affine(img.affine, f"affine of {img_name}")

    base = TissueTable.charm()
    entries = _read_label_map(label_map)
    lut_src, lut_dst, conds = [], [], {}
    for label, (tissue, cond) in entries.items():
        if str(tissue).strip().lower() in OUTSIDE_NAMES:
            target = 0
        else:
            try:
                canonical = base.canonical_name(str(tissue))
            except KeyError as err:
                raise ValueError(
                    f"label map: label {label} names tissue {tissue!r}, which deepesi does not "
                    f"know. Use one of {base.names} (or an alias such as 'skull', 'skin', "
                    "'gray_matter'), or 'outside' for background."
                ) from err
            target = base.label_of(canonical)
            if cond is not None:
                if canonical in conds and not np.isclose(conds[canonical], cond):
                    raise ValueError(
                        f"label map gives tissue {canonical} two conductivities "
                        f"({conds[canonical]} and {cond} S/m); one tissue has one conductivity."
                    )
                conds[canonical] = cond
        lut_src.append(label)
        lut_dst.append(target)

    present = np.unique(data)
    unmapped = sorted(set(present.tolist()) - set(lut_src) - {0})
    if unmapped:
        raise ValueError(
            f"label image {img_name} has label(s) {unmapped[:20]} that the label map does not "
            "name; add them to the label map (use tissue 'outside' for background labels)."
        )
    lut = np.zeros(int(max(present.max(), max(lut_src, default=0))) + 1, np.uint8)
    lut[lut_src] = lut_dst
    labels = lut[data]
    if not labels.any():
        raise ValueError(
            f"label image {img_name} has no voxel of any tissue after applying the label map "
            "(all outside); check the image and the map."
        )
    tissues = base.with_conductivities(conds) if conds else base
    split_meta = None
    if split_bone:
        bone = labels == base.label_of("Bone")
        if not bone.any():
            raise ValueError(
                "split_bone=True but no label maps to 'Bone' (undifferentiated skull); map the "
                "skull label to 'bone'/'skull', or leave split_bone=False."
            )
        inside = np.isin(labels, [base.label_of(n) for n in ("WM", "GM", "CSF")])
        voxel = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))
        compact, spongy = split_skull(bone, inside, voxel_size=voxel)
        labels[compact] = base.label_of("Compact_bone")
        labels[spongy] = base.label_of("Spongy_bone")
        split_meta = {
            "rule": "deepesi.anatomy.skull.split_skull (defaults)",
            "compact_fraction": float(compact.sum() / bone.sum()),
        }

    regions = None
    if regions_image is not None:
        rimg, rname = _load_image(regions_image, "regions image")
        rdata = check_integer_labels(rimg.dataobj, f"regions image {rname}")
        if rdata.shape != data.shape or not np.allclose(rimg.affine, img.affine, atol=1e-4):
            raise ValueError(
                f"regions image {rname} (shape {rdata.shape}) is not on the grid of the label "
                f"image {img_name} (shape {data.shape}), or their affines differ; resample it "
                "onto the label image grid (nearest neighbour) first."
            )
        regions = rdata
        if regions.max(initial=0) > np.iinfo(np.uint16).max:
            raise ValueError(f"regions image {rname} has ids above 65535.")
        regions = regions.astype(np.uint16)
        if not regions.any():
            raise ValueError(f"regions image {rname} is empty (all zeros); pass None instead.")

    m2m = _read_affine(mri_to_mni) if mri_to_mni is not None else None
    region_source = "regions image" if regions is not None else None
    if regions is None and m2m is not None:
        from .atlas import label_regions_from_mni

        if np.isin(labels, [tissues.label_of("GM"), tissues.label_of("WM")]).any():
            regions = label_regions_from_mni(labels, affine, m2m, tissues)
            region_source = "MNI atlas via mri_to_mni"
    meta = {
        "reader": "deepesi.anatomy.read_labelled_nifti",
        "image": img_name,
        "label_map": {str(k): v[0] for k, v in entries.items()},
        "conductivities_from_map": conds,
        "regions": region_source,
        "skull_split": split_meta,
        "absent_tissues": tissues.absent_from(labels),
    }
    return HeadModel(
        labels=labels,
        affine=affine,
        tissues=tissues,
        regions=regions,
        name=name or _stem(img_name),
        mri_to_mni=m2m,
        meta=meta,
    )


def _read_label_map(label_map: str | os.PathLike | Mapping) -> dict[int, tuple[str, float | None]]:
    """Parse a label map into ``{label: (tissue, conductivity | None)}``."""
    if isinstance(label_map, Mapping):
        raw, what = dict(label_map), "label map"
    else:
        path = check_file(label_map, "label map")
        what = f"label map {path}"
        text = path.read_text(errors="replace")
        if path.suffix.lower() == ".json" or text.lstrip().startswith("{"):
            try:
                raw = json.loads(text)
            except json.JSONDecodeError as err:
                raise ValueError(f"{what} is not valid JSON ({err}).") from err
            if not isinstance(raw, dict):
                raise ValueError(f"{what} must hold a JSON object {{label: tissue}}.")
        else:
            raw = _read_tsv(text, what)
    if not raw:
        raise ValueError(f"{what} is empty; it must name the tissue of every label.")
    out: dict[int, tuple[str, float | None]] = {}
    for key, value in raw.items():
        try:
            label = int(str(key).strip())
        except ValueError as err:
            raise ValueError(f"{what}: label {key!r} is not an integer.") from err
        if label < 0:
            raise ValueError(f"{what}: label {label} is negative.")
        if isinstance(value, Mapping):
            if "tissue" not in value:
                raise ValueError(f"{what}: entry for label {label} has no 'tissue'.")
            tissue, cond = value["tissue"], value.get("conductivity")
        else:
            tissue, cond = value, None
        if cond is not None and cond != "":
            try:
                cond = float(cond)
            except (TypeError, ValueError) as err:
                raise ValueError(
                    f"{what}: conductivity {cond!r} of label {label} is not a number (S/m)."
                ) from err
            if not np.isfinite(cond) or cond <= 0:
                raise ValueError(
                    f"{what}: conductivity of label {label} must be finite and > 0 S/m, "
                    f"got {cond}."
                )
        else:
            cond = None
        if label in out:
            raise ValueError(f"{what}: label {label} appears twice.")
        out[label] = (str(tissue), cond)
    return out


def _read_tsv(text: str, what: str) -> dict:
    rows = csv.reader(text.splitlines(), delimiter="\t")
    rows = [r for r in rows if r and any(c.strip() for c in r)]
    rows = [r for r in rows if not r[0].lstrip().startswith("#")]
    if not rows:
        raise ValueError(f"{what} is empty.")
    header = [h.strip().lower() for h in rows[0]]
    if "label" not in header or "tissue" not in header:
        raise ValueError(
            f"{what} must be tab-separated with a header row naming the columns 'label' and "
            f"'tissue' (and optionally 'conductivity'); got header {rows[0]}."
        )
    il, it = header.index("label"), header.index("tissue")
    ic = header.index("conductivity") if "conductivity" in header else None
    out = {}
    for n, row in enumerate(rows[1:], start=2):
        if len(row) <= max(il, it):
            raise ValueError(f"{what}, line {n}: expected at least {max(il, it) + 1} columns.")
        key = row[il].strip()
        if key in out:
            raise ValueError(f"{what}: label {key} appears twice.")
        cond = row[ic].strip() if ic is not None and ic < len(row) else None
        out[key] = {"tissue": row[it].strip(), "conductivity": cond or None}
    return out


def _load_image(image, what: str) -> tuple[nib.spatialimages.SpatialImage, str]:
    """An image given as a path or as a nibabel image, and its name for messages."""
    if isinstance(image, nib.spatialimages.SpatialImage):
        return image, image.get_filename() or "<in-memory image>"
    path = Path(image).expanduser()
    return load_image(path, what, fix="check the path and that it is a NIfTI/MGH image"), str(path)


def _read_affine(value) -> np.ndarray:
    """A 4x4 MRI → MNI affine given as an array or as a text file."""
    if isinstance(value, str | os.PathLike):
        return read_affine_text(value, "mri_to_mni affine file")
    return check_affine(np.asarray(value, dtype=float), "mri_to_mni")


def _stem(name: str) -> str:
    base = Path(name).name
    for suffix in (".nii.gz", ".nii", ".mgz", ".mgh", ".gz"):
        if base.endswith(suffix):
            return base[: -len(suffix)] or "head"
    return base or "head"
