"""The template head shipped with deepesi (BrainWeb subject 47, 1 mm, MNI space)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

import deepesi
from deepesi.anatomy.regions import REGION_IDS, SUBCORTICAL_REGIONS
from deepesi.anatomy.template import load_template

#: Plausible volume ranges (mL) of the deep structures (adult; atlas-defined extent).
DEEP_RANGES_ML = {
    "Thalamus": (6.0, 14.0),
    "Caudate": (3.0, 7.5),
    "Putamen": (4.5, 11.0),
    "Pallidum": (1.2, 4.0),
    "Hippocampus": (3.0, 8.0),
    "Amygdala": (1.0, 4.0),
    "Accumbens-area": (0.3, 2.0),
}


@pytest.fixture(scope="module")
def head():
    return load_template()


def test_loads_fast_offline_and_cached(head):
    t0 = time.perf_counter()
    again = load_template()
    assert again is head
    assert time.perf_counter() - t0 < 0.1
    assert head.name == "template"
    assert np.allclose(head.voxel_size, 1.0)
    with pytest.raises(ValueError):
        head.labels[0, 0, 0] = 1  # the cached template is read-only


def test_tissues_present_with_plausible_volumes(head):
    present = {n for n in head.tissues.names if head.has_tissue(n)}
    # CHARM's undifferentiated "Bone" is not used: BrainWeb separates compact and spongy bone
    assert present == set(head.tissues.names) - {"Bone"}
    v = head.volumes_ml()
    assert 1300 < v["WM"] + v["GM"] < 1800  # BrainWeb subject 47: 1.59 L
    assert 250 < v["CSF"] < 600
    assert 400 < v["Compact_bone"] + v["Spongy_bone"] < 900
    assert 50 < v["Spongy_bone"] < 250
    assert 500 < v["Scalp"] < 1500
    assert 8 < v["Eye_balls"] < 18  # two eyes of 4-9 mL
    assert 5 < v["Blood"] < 60
    assert 100 < v["Muscle"] < 400


def test_fifteen_deep_structures(head):
    vols = head.region_volumes_ml()
    assert set(SUBCORTICAL_REGIONS.values()) <= set(vols)
    for side in ("Left", "Right"):
        for name, (lo, hi) in DEEP_RANGES_ML.items():
            assert lo < vols[f"{side}-{name}"] < hi, (side, name, vols[f"{side}-{name}"])
    assert 15 < vols["Brain-Stem"] < 45
    # deep structures only on brain tissue; deep grey nuclei relabelled GM, brainstem not
    deep = np.isin(head.regions, list(SUBCORTICAL_REGIONS))
    assert np.all(np.isin(head.labels[deep], [1, 2]))
    nuclei = deep & (head.regions != 16)
    assert np.all(head.labels[nuclei] == 2)
    assert np.mean(head.labels[head.regions == 16] == 1) > 0.3
    # cortex and cerebellum on GM only, and every GM voxel has a region
    assert np.all(head.regions[head.labels == 2] > 0)
    assert np.all(head.labels[head.regions >= 1101] == 2)
    assert 50 < vols["Left-Cerebellum-Cortex"] < 120


def test_forward_ready(head):
    head.check_forward_ready()


def test_mni_frame(head):
    assert np.allclose(head.mri_to_mni, np.eye(4))
    inv = np.linalg.inv(head.affine)

    def region_at(x, y, z):
        i, j, k = np.rint(inv @ [x, y, z, 1.0])[:3].astype(int)
        return int(head.regions[i, j, k])

    assert region_at(-25, 2, 0) == REGION_IDS["Left-Putamen"]
    assert region_at(25, 2, 0) == REGION_IDS["Right-Putamen"]
    assert region_at(11, -18, 7) == REGION_IDS["Right-Thalamus"]
    assert region_at(0, -28, -35) == REGION_IDS["Brain-Stem"]
    # left is left: left-hemisphere regions sit at negative x
    ijk = np.argwhere(head.regions == REGION_IDS["ctx-lh-frontal"])
    assert (ijk @ head.affine[:3, :3].T + head.affine[:3, 3])[:, 0].max() < 5.0
    # the head fits the MNI box of BrainWeb and is cropped to the head
    lo = head.affine[:3, 3]
    hi = lo + np.array(head.shape) - 1
    assert np.all(lo >= [-91, -127, -73]) and np.all(hi <= [91, 91, 109])
    assert head.shape[0] < 190 and head.shape[1] < 225


def test_resampled_and_bad_voxel_size(head):
    coarse = load_template(voxel_size=4.0)
    assert np.allclose(coarse.voxel_size, 4.0)
    assert coarse.regions is not None
    coarse.check_forward_ready()
    assert load_template(1.0) is head
    with pytest.raises(ValueError, match="voxel_size"):
        load_template(voxel_size=0)


def test_package_data_small_and_attributed(head):
    data = Path(deepesi.__file__).parent / "data"
    files = [f for sub in ("template", "atlas") for f in (data / sub).iterdir()]
    assert len(files) >= 4
    assert sum(f.stat().st_size for f in files) < 3e6
    attribution = (data / "ATTRIBUTION.md").read_text()
    assert "Aubert-Broche" in attribution and "Harvard-Oxford" in attribution
    assert "AAL" in attribution
    assert "Aubert-Broche" in head.meta["attribution"]


def test_head_summary_marks_absent_tissues():
    """Issue 16 (#7): a tissue with no voxel (the template's generic Bone, whose skull is compact
    + spongy bone) reads 'none' with the reason, not 'Bone 0.0 mL'."""
    from deepesi.anatomy.summary import format_head_summary

    tissues = [{"label": k, "name": n, "volume_ml": v, "conductivity_s_per_m": 0.1}
               for k, (n, v) in enumerate([("GM", 900.0), ("Bone", 0.0),
                                           ("Compact_bone", 500.0), ("Spongy_bone", 100.0)], 1)]
    text = format_head_summary({"name": "t", "shape": [2, 2, 2], "voxel_size_mm": [1, 1, 1],
                                "mni_transform": False, "hash": "0" * 64, "tissues": tissues,
                                "regions": []})
    assert "0.0" not in text.split("Bone")[1].splitlines()[0]
    assert "none" in text and "compact and spongy" in text
