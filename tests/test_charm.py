"""Tests for deepesi.anatomy.charm.read_charm on tiny fake m2m folders written here."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from deepesi.anatomy.charm import read_charm

SHAPE = (48, 48, 48)
VOX = 4.0
THAL_L = np.array([-12.0, -16.0, 8.0])
MNI_SHIFT = np.array([3.0, -5.0, 7.0])  # subject = MNI + shift


def _affine():
    aff = np.diag([VOX, VOX, VOX, 1.0])
    aff[:3, 3] = -VOX * (np.array(SHAPE) - 1) / 2.0 + [1.0, 2.0, -3.0]
    return aff


def _xyz():
    ijk = np.indices(SHAPE).reshape(3, -1).T
    return nib.affines.apply_affine(_affine(), ijk).reshape(*SHAPE, 3)


def _tissues():
    r = np.linalg.norm(_xyz() - [1.0, 2.0, -3.0], axis=-1)
    vol = np.zeros(SHAPE, np.uint8)
    for rad, lab in ((90, 5), (82, 7), (79, 8), (75, 7), (72, 3), (68, 2), (58, 1)):
        vol[r <= rad] = lab
    return vol


def _labeling():
    xyz = _xyz()
    lab = np.zeros(SHAPE, np.int16)
    r = np.linalg.norm(xyz - [1.0, 2.0, -3.0], axis=-1)
    lab[r <= 68] = np.where(xyz[..., 0] < 0, 3, 42)[r <= 68]
    lab[r <= 58] = np.where(xyz[..., 0] < 0, 2, 41)[r <= 58]
    lab[np.linalg.norm(xyz - THAL_L, axis=-1) <= 8] = 10
    lab[np.linalg.norm(xyz - THAL_L * [-1, 1, 1], axis=-1) <= 8] = 49
    lab[r > 82] = 511  # skin
    return lab


def _make_m2m(root, *, tissues=None, labeling=True, mni=True, labeling_grid=None):
    m2m = root / "m2m_ernie"
    (m2m / "segmentation").mkdir(parents=True)
    (m2m / "toMNI").mkdir()
    vol = _tissues() if tissues is None else tissues
    nib.save(nib.Nifti1Image(vol, _affine()), m2m / "final_tissues.nii.gz")
    if labeling:
        lab = _labeling()
        aff = _affine()
        if labeling_grid == "half":  # labeling on a finer grid (2 mm), same world frame
            lab = np.repeat(np.repeat(np.repeat(lab, 2, 0), 2, 1), 2, 2)
            aff = aff.copy()
            aff[:3, :3] /= 2.0
            aff[:3, 3] -= VOX / 4.0
        nib.save(nib.Nifti1Image(lab, aff), m2m / "segmentation" / "labeling.nii.gz")
        (m2m / "segmentation" / "labeling_LUT.txt").write_text("10 Left-Thalamus 0 0 0 255\n")
    if mni:
        mni_to_subject = np.eye(4)
        mni_to_subject[:3, 3] = MNI_SHIFT
        np.savetxt(m2m / "toMNI" / "MNI2conform_12DOF.txt", mni_to_subject)
    return m2m


def test_reads_labels_as_is_with_regions_and_mni(tmp_path):
    m2m = _make_m2m(tmp_path)
    head = read_charm(m2m)
    assert head.name == "ernie"
    assert np.array_equal(head.labels, _tissues())
    assert np.allclose(head.affine, _affine())
    # MNI2conform_12DOF maps MNI → subject; mri_to_mni is its inverse
    assert np.allclose(head.mri_to_mni[:3, 3], -MNI_SHIFT)
    deep = head.subcortical_regions_present()
    assert deep["Left-Thalamus"] > 0 and deep["Right-Thalamus"] > 0
    thal = nib.affines.apply_affine(head.affine, np.argwhere(head.regions == 10)).mean(axis=0)
    assert np.linalg.norm(thal - THAL_L) < 2.0
    cortex = head.regions[head.labels == 2]
    assert np.all(cortex > 0)
    assert set(np.unique(cortex).tolist()) & set(range(1101, 1107))  # lobes from the atlas
    head.check_forward_ready()
    assert head.meta["absent_tissues"] == ["Bone", "Eye_balls", "Blood", "Muscle"]
    assert head.meta["files"]["labeling"].endswith("labeling.nii.gz")


def test_labeling_on_another_grid_is_resampled(tmp_path):
    ref = read_charm(_make_m2m(tmp_path / "a"))
    other = read_charm(_make_m2m(tmp_path / "b", labeling_grid="half"))
    assert np.mean(ref.regions == other.regions) > 0.99


def test_without_labeling_deep_structures_come_from_the_atlas(tmp_path):
    head = read_charm(_make_m2m(tmp_path, labeling=False))
    assert "MNI atlas" in head.meta["regions"]["deep_structures"]
    assert head.subcortical_regions_present()  # atlas deep structures inside the WM sphere
    head = read_charm(_make_m2m(tmp_path / "c", labeling=False, mni=False))
    assert head.mri_to_mni is None
    assert set(np.unique(head.regions).tolist()) <= {0, 3, 42}


def test_extra_labels(tmp_path):
    vol = _tissues()
    vol[0, 24, 24] = 11  # cartilage
    vol[1, 24, 24] = 12  # fat
    head = read_charm(_make_m2m(tmp_path / "a", tissues=vol))
    assert head.labels[0, 24, 24] == 5 and head.labels[1, 24, 24] == 5
    assert head.meta["extra_labels_folded"] == {"11": "Scalp", "12": "Scalp"}
    head = read_charm(_make_m2m(tmp_path / "b", tissues=vol), extra_labels={12: None})
    assert head.labels[1, 24, 24] == 0
    with pytest.raises(ValueError, match="not a tissue"):
        read_charm(_make_m2m(tmp_path / "c", tissues=vol), extra_labels={12: "bone marrow"})
    vol16 = vol.astype(np.int16)
    vol16[2, 24, 24] = 100
    with pytest.raises(ValueError, match="electrode"):
        read_charm(_make_m2m(tmp_path / "d", tissues=vol16))
    vol[2, 24, 24] = 13
    with pytest.raises(ValueError, match="label 13"):
        read_charm(_make_m2m(tmp_path / "e", tissues=vol))


def test_bad_folders(tmp_path):
    with pytest.raises(FileNotFoundError, match="m2m folder"):
        read_charm(tmp_path / "m2m_nobody")
    m2m = _make_m2m(tmp_path)
    (m2m / "final_tissues.nii.gz").unlink()
    with pytest.raises(FileNotFoundError, match="charm ernie"):
        read_charm(m2m)
    nib.save(nib.Nifti1Image(_tissues().astype(np.float32) + 0.5, _affine()),
             m2m / "final_tissues.nii.gz")
    with pytest.raises(ValueError, match="non-integer"):
        read_charm(m2m)
    (m2m / "final_tissues.nii.gz").write_bytes(b"not a nifti")
    with pytest.raises(ValueError, match="cannot read"):
        read_charm(m2m)
    m2m = _make_m2m(tmp_path / "x")
    (m2m / "toMNI" / "MNI2conform_12DOF.txt").write_text("1 0 0\n0 1 0\n")
    with pytest.raises(ValueError, match="4x4"):
        read_charm(m2m)


def test_missing_scalp_fails_forward_check(tmp_path):
    vol = _tissues()
    vol[vol == 5] = 0
    head = read_charm(_make_m2m(tmp_path, tissues=vol))
    with pytest.raises(ValueError, match="no scalp"):
        head.check_forward_ready()
