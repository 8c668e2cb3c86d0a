"""The shipped MNI region atlas and region labelling through MNI space."""

from __future__ import annotations

import functools

import nibabel as nib
import numpy as np
import pytest

from deepesi.anatomy import TissueTable
from deepesi.anatomy.atlas import label_regions_from_mni, load_mni_region_atlas, lookup_atlas
from deepesi.anatomy.regions import (
    CEREBELLAR_REGIONS,
    CORTICAL_REGIONS,
    REGION_IDS,
    SUBCORTICAL_REGIONS,
)

#: MNI points (mm) inside well-known structures, and the region the atlas must give.
KNOWN_POINTS = {
    (-25, 2, 0): "Left-Putamen",
    (11, -18, 7): "Right-Thalamus",
    (-11, -18, 7): "Left-Thalamus",
    (-13, 12, 10): "Left-Caudate",
    (20, -4, 0): "Right-Pallidum",
    (-26, -22, -14): "Left-Hippocampus",
    (24, -4, -20): "Right-Amygdala",
    (-9, 11, -7): "Left-Accumbens-area",
    (0, -28, -35): "Brain-Stem",
    (-25, -65, -35): "Left-Cerebellum-Cortex",
    (25, -65, -35): "Right-Cerebellum-Cortex",
    (-10, -100, 0): "ctx-lh-occipital",
    (-38, -22, 56): "ctx-lh-frontal",  # precentral gyrus
    (38, 5, 2): "ctx-rh-insula",
    (-5, 20, 30): "ctx-lh-cingulate",
    (60, -20, -10): "ctx-rh-temporal",
    (-30, 40, 30): "ctx-lh-frontal",
}


def test_atlas_content_and_known_locations():
    atlas, affine = load_mni_region_atlas()
    assert atlas.dtype == np.uint16 and atlas.ndim == 3
    assert affine.shape == (4, 4) and np.allclose(np.abs(np.diag(affine)[:3]), 1.0)
    ids = set(np.unique(atlas).tolist()) - {0}
    want = set(SUBCORTICAL_REGIONS) | set(CEREBELLAR_REGIONS)
    want |= {r for r in CORTICAL_REGIONS if r > 1000}
    assert ids == want
    pts = np.array(list(KNOWN_POINTS), dtype=float)
    got = lookup_atlas(atlas, affine, pts)
    assert [REGION_IDS.get(n) for n in KNOWN_POINTS.values()] == got.tolist()
    # outside the grid -> 0; cached and read-only
    assert lookup_atlas(atlas, affine, np.array([[500.0, 0, 0]])).tolist() == [0]
    assert load_mni_region_atlas()[0] is atlas
    with pytest.raises(ValueError):
        atlas[0, 0, 0] = 1


@functools.lru_cache(maxsize=4)
def _synthetic_head_cached(shift_mm: tuple) -> tuple:
    atlas, affine = load_mni_region_atlas()
    return _make_synthetic_head(atlas, affine, shift_mm)


def _synthetic_head(atlas, affine, shift_mm=(0.0, 0.0, 0.0)):
    """Cached synthetic head (the shipped atlas only)."""
    return _synthetic_head_cached(tuple(float(v) for v in shift_mm))


def _make_synthetic_head(atlas, affine, shift_mm, step=2.0):
    """A 2 mm head in an MRI frame shifted from MNI: GM on the atlas cortex, WM elsewhere in
    the brain (deep structures included), CSF in a ventricle-like box, scalp outside."""
    origin = np.array([-80.0, -120.0, -75.0])
    shape = (81, 101, 86)
    vox_to_mni = np.diag([step, step, step, 1.0])
    vox_to_mni[:3, 3] = origin
    ijk = np.indices(shape).reshape(3, -1).T
    mni = nib.affines.apply_affine(vox_to_mni, ijk)
    ids = lookup_atlas(atlas, affine, mni).reshape(shape)
    labels = np.full(shape, 5, np.uint8)
    brain = ((mni / [70.0, 105.0, 80.0] - [0, -0.1, 0.05]) ** 2).sum(axis=1).reshape(shape) < 1
    labels[brain] = 1
    labels[np.isin(ids, list(CORTICAL_REGIONS) + list(CEREBELLAR_REGIONS))] = 2
    mni_grid = mni.reshape(*shape, 3)
    csf = (np.abs(mni_grid[..., 0]) < 4) & (np.abs(mni_grid[..., 1] - 0) < 6)
    csf &= np.abs(mni_grid[..., 2] - 20) < 4
    labels[csf] = 3
    mri_to_mni = np.eye(4)
    mri_to_mni[:3, 3] = shift_mm
    vox_to_mri = np.linalg.inv(mri_to_mni) @ vox_to_mni
    return labels, vox_to_mri, mri_to_mni, mni_grid


def test_label_regions_rules():
    atlas, affine = load_mni_region_atlas()
    labels, vox_to_mri, mri_to_mni, _mni = _synthetic_head(atlas, affine, shift_mm=(3, -12, 40))
    tissues = TissueTable.charm()
    regions = label_regions_from_mni(labels, vox_to_mri, mri_to_mni, tissues)
    assert regions.dtype == np.uint16 and regions.shape == labels.shape

    def at(x, y, z):
        i, j, k = np.rint((np.array([x, y, z]) - [-80.0, -120.0, -75.0]) / 2.0).astype(int)
        return int(labels[i, j, k]), int(regions[i, j, k])

    # deep structures on WM voxels, at full extent
    assert at(11, -18, 7) == (1, REGION_IDS["Right-Thalamus"])
    assert at(0, -28, -35) == (1, REGION_IDS["Brain-Stem"])
    # every deep structure present; none outside brain tissue
    present = set(np.unique(regions).tolist())
    assert set(SUBCORTICAL_REGIONS) <= present
    assert not regions[(labels != 1) & (labels != 2)].any()
    # cortical ids only on GM; every GM voxel labelled
    sheet = np.isin(regions, list(CORTICAL_REGIONS) + list(CEREBELLAR_REGIONS))
    assert np.all(labels[sheet] == 2)
    assert np.all(regions[labels == 2] > 0)
    # a GM voxel that the atlas leaves empty gets the nearest lobe of its own hemisphere
    x, y, z = -30.0, -20.0, 30.0  # deep left white matter
    i, j, k = np.rint((np.array([x, y, z]) - [-80.0, -120.0, -75.0]) / 2.0).astype(int)
    assert lookup_atlas(atlas, affine, np.array([[x, y, z]]))[0] == 0
    labels2 = labels.copy()
    labels2[i, j, k] = 2
    regions2 = label_regions_from_mni(labels2, vox_to_mri, mri_to_mni, tissues)
    assert 1101 <= regions2[i, j, k] <= 1106
    # the same head without the MRI shift gives the same regions
    labels0, vox0, m2m0, _ = _synthetic_head(atlas, affine)
    assert np.array_equal(labels0, labels)
    assert np.array_equal(label_regions_from_mni(labels0, vox0, m2m0, tissues), regions)


def test_label_regions_errors():
    atlas, affine = load_mni_region_atlas()
    labels, vox_to_mri, mri_to_mni, _ = _synthetic_head(atlas, affine)
    tissues = TissueTable.charm()
    # metres instead of millimetres: nothing lands on the atlas cortex
    m2m_m = np.diag([1e-3, 1e-3, 1e-3, 1.0])
    with pytest.raises(ValueError, match="mri_to_mni"):
        label_regions_from_mni(labels, vox_to_mri, m2m_m, tissues)
    with pytest.raises(ValueError, match="3-D"):
        label_regions_from_mni(labels[0], vox_to_mri, mri_to_mni, tissues)
    with pytest.raises(ValueError, match="4x4"):
        label_regions_from_mni(labels, np.eye(3), mri_to_mni, tissues)
    with pytest.raises(TypeError, match="TissueTable"):
        label_regions_from_mni(labels, vox_to_mri, mri_to_mni, {"GM": 2})
    with pytest.raises(ValueError, match="GM"):
        label_regions_from_mni(labels, vox_to_mri, mri_to_mni, tissues.subset([1, 3, 5]))
    with pytest.raises(ValueError, match="no GM/WM"):
        label_regions_from_mni(np.full_like(labels, 5), vox_to_mri, mri_to_mni, tissues)


def test_label_regions_reproduces_template():
    from deepesi.anatomy.template import load_template

    head = load_template()
    regions = label_regions_from_mni(head.labels, head.affine, head.mri_to_mni, head.tissues)
    agree = np.mean(regions[head.labels > 0] == head.regions[head.labels > 0])
    assert agree > 0.999
