"""Tests for deepesi.anatomy.nifti.read_labelled_nifti."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from conftest import make_sphere_labels
from deepesi.anatomy.nifti import read_labelled_nifti

# a BrainWeb-like numbering: 1 CSF, 2 GM, 3 WM, 4 fat, 6 skin, 7 skull, 11 marrow
BRAINWEB_TSV = """label\ttissue\tconductivity
# comment lines are allowed
1\tcsf\t
2\tgray_matter\t0.33
3\twhite_matter\t
4\tskin\t
6\tskin\t
7\tskull\t0.0041
11\tdiploe\t
"""


def _image(tmp_path, labels=(6, 4, 7, 11, 7, 1, 2, 3), radii=(80, 76, 72, 69, 66, 62, 58, 50)):
    vol, affine = make_sphere_labels(
        shape=48, voxel_mm=4.0, radii_mm=radii, labels=labels
    )
    path = tmp_path / "seg.nii.gz"
    nib.save(nib.Nifti1Image(vol.astype(np.int16), affine), path)
    return path, vol, affine


def test_tsv_map_several_labels_to_one_tissue(tmp_path):
    path, vol, affine = _image(tmp_path)
    tsv = tmp_path / "map.tsv"
    tsv.write_text(BRAINWEB_TSV)
    head = read_labelled_nifti(path, tsv)
    assert head.name == "seg"
    assert np.allclose(head.affine, affine)
    expected = np.zeros_like(vol)
    for src, dst in ((1, 3), (2, 2), (3, 1), (4, 5), (6, 5), (7, 4), (11, 8)):
        expected[vol == src] = dst
    assert np.array_equal(head.labels, expected)
    assert head.tissues["GM"].conductivity == 0.33
    assert head.tissues["Bone"].conductivity == 0.0041
    assert head.tissues["WM"].conductivity == 0.126  # default kept
    head.check_forward_ready()
    assert head.regions is None


def test_json_map_and_dict(tmp_path):
    path, _, _ = _image(tmp_path)
    mapping = {"1": "CSF", "2": {"tissue": "GM", "conductivity": 0.3}, "3": "wm", "4": "scalp",
               "6": "Scalp", "7": "compact", "11": "spongy", "0": "background"}
    js = tmp_path / "map.json"
    js.write_text(json.dumps(mapping))
    a = read_labelled_nifti(path, js, name="x")
    b = read_labelled_nifti(nib.load(path), {int(k): v for k, v in mapping.items()})
    assert a.name == "x" and np.array_equal(a.labels, b.labels)
    assert a.tissues["GM"].conductivity == 0.3
    assert a.has_tissue("Compact_bone") and a.has_tissue("Spongy_bone")


def test_regions_from_image_and_from_atlas(tmp_path):
    path, vol, affine = _image(tmp_path)
    tsv = tmp_path / "map.tsv"
    tsv.write_text(BRAINWEB_TSV)
    regions = np.zeros(vol.shape, np.uint16)
    regions[vol == 2] = 1101
    regions[24, 24, 24] = 10
    rpath = tmp_path / "regions.nii.gz"
    nib.save(nib.Nifti1Image(regions, affine), rpath)
    head = read_labelled_nifti(path, tsv, regions_image=rpath)
    assert np.array_equal(head.regions, regions)
    head = read_labelled_nifti(path, tsv, mri_to_mni=np.eye(4))
    assert head.regions is not None and np.all(head.regions[head.labels == 2] > 0)
    np.savetxt(tmp_path / "m.txt", np.eye(4))
    assert read_labelled_nifti(path, tsv, mri_to_mni=tmp_path / "m.txt").mri_to_mni is not None


def test_split_bone(tmp_path):
    # 1 mm voxels: skull 58..66 mm → tables max(0.25 * 8, 1) = 2 mm, diploë 60..64 mm
    vol, affine = make_sphere_labels(
        shape=150, voxel_mm=1.0, radii_mm=(70, 66, 58, 54, 40), labels=(6, 7, 1, 2, 3)
    )
    path = tmp_path / "one_skull.nii.gz"
    nib.save(nib.Nifti1Image(vol, affine), path)
    mapping = {6: "scalp", 7: "skull", 1: "csf", 2: "gm", 3: "wm"}
    head = read_labelled_nifti(path, mapping, split_bone=True)
    assert not head.has_tissue("Bone")
    frac = head.meta["skull_split"]["compact_fraction"]
    expected = 1 - (64**3 - 60**3) / (66**3 - 58**3)
    assert abs(frac - expected) < 0.05
    head.check_forward_ready()
    with pytest.raises(ValueError, match="no label maps to 'Bone'"):
        read_labelled_nifti(path, {**mapping, 7: "compact"}, split_bone=True)


def test_bad_label_maps(tmp_path):
    path, _, _ = _image(tmp_path)
    bad = tmp_path / "bad.tsv"
    bad.write_text(BRAINWEB_TSV.replace("diploe", "marrow"))
    with pytest.raises(ValueError, match="'marrow'"):
        read_labelled_nifti(path, bad)
    bad.write_text(BRAINWEB_TSV.replace("11\tdiploe\t\n", ""))
    with pytest.raises(ValueError, match=r"label\(s\) \[11\]"):
        read_labelled_nifti(path, bad)
    bad.write_text("lab\tname\n1\tcsf\n")
    with pytest.raises(ValueError, match="header row"):
        read_labelled_nifti(path, bad)
    bad.write_text(BRAINWEB_TSV.replace("0.0041", "-1"))
    with pytest.raises(ValueError, match="> 0 S/m"):
        read_labelled_nifti(path, bad)
    two = BRAINWEB_TSV.replace("4\tskin\t", "4\tskin\t0.3")
    bad.write_text(two.replace("6\tskin\t", "6\tskin\t0.4"))
    with pytest.raises(ValueError, match="two conductivities"):
        read_labelled_nifti(path, bad)
    js = tmp_path / "bad.json"
    js.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        read_labelled_nifti(path, js)
    with pytest.raises(ValueError, match="not an integer"):
        read_labelled_nifti(path, {"one": "csf"})
    with pytest.raises(FileNotFoundError, match="label map not found"):
        read_labelled_nifti(path, tmp_path / "missing.tsv")


def test_bad_images(tmp_path):
    path, vol, affine = _image(tmp_path)
    tsv = tmp_path / "map.tsv"
    tsv.write_text(BRAINWEB_TSV)
    with pytest.raises(FileNotFoundError, match="label image not found"):
        read_labelled_nifti(tmp_path / "nope.nii.gz", tsv)
    fpath = tmp_path / "prob.nii.gz"
    nib.save(nib.Nifti1Image(vol.astype(np.float32) * 0.5, affine), fpath)
    with pytest.raises(ValueError, match="non-integer"):
        read_labelled_nifti(fpath, tsv)
    broken = tmp_path / "broken.nii.gz"
    broken.write_bytes(b"garbage")
    with pytest.raises(ValueError, match="cannot read"):
        read_labelled_nifti(broken, tsv)
    # regions on another grid / empty regions
    rpath = tmp_path / "regions.nii.gz"
    nib.save(nib.Nifti1Image(np.ones((10, 10, 10), np.uint16), affine), rpath)
    with pytest.raises(ValueError, match="not on the grid"):
        read_labelled_nifti(path, tsv, regions_image=rpath)
    shifted = affine.copy()
    shifted[0, 3] += 2.0
    nib.save(nib.Nifti1Image(np.ones(vol.shape, np.uint16), shifted), rpath)
    with pytest.raises(ValueError, match="affines differ"):
        read_labelled_nifti(path, tsv, regions_image=rpath)
    nib.save(nib.Nifti1Image(np.zeros(vol.shape, np.uint16), affine), rpath)
    with pytest.raises(ValueError, match="empty"):
        read_labelled_nifti(path, tsv, regions_image=rpath)
    with pytest.raises(ValueError, match="mri_to_mni"):
        read_labelled_nifti(path, tsv, mri_to_mni=np.eye(3))
    # everything mapped to outside
    with pytest.raises(ValueError, match="no voxel of any tissue"):
        read_labelled_nifti(path, dict.fromkeys((1, 2, 3, 4, 6, 7, 11), "outside"))


def test_missing_tissues_fail_the_forward_check(tmp_path):
    # no scalp
    path, _, _ = _image(tmp_path, labels=(7, 1, 2, 3), radii=(72, 62, 58, 50))
    head = read_labelled_nifti(path, {7: "skull", 1: "csf", 2: "gm", 3: "wm"})
    with pytest.raises(ValueError, match="no scalp"):
        head.check_forward_ready()
    # scalp but no skull around the brain
    path, _, _ = _image(tmp_path, labels=(6, 1, 2, 3), radii=(80, 62, 58, 50))
    head = read_labelled_nifti(path, {6: "skin", 1: "csf", 2: "gm", 3: "wm"})
    with pytest.raises(ValueError, match="no skull"):
        head.check_forward_ready()
