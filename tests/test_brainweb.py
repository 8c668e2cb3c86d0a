"""BrainWeb reader: class mapping, majority-vote downsampling, eye finding, real-file reading."""

from __future__ import annotations

import gzip

import nibabel as nib
import numpy as np
import pytest

from deepesi.anatomy import brainweb
from deepesi.anatomy.brainweb import (
    BRAINWEB_TO_CHARM,
    downsample_majority,
    find_eyes,
    map_brainweb_classes,
    read_brainweb,
    read_minc_classes,
)
from deepesi.anatomy.regions import SUBCORTICAL_REGIONS

BRAINWEB_FILE = "brainweb/subject47_crisp_v.mnc.gz"


# ---------------------------------------------------------------- class mapping
def test_mapping_of_every_class():
    classes = np.arange(12, dtype=np.uint8).reshape(2, 3, 2)
    labels = map_brainweb_classes(classes)
    #           bg CSF GM WM fat musc skin skull vess around dura marrow
    expected = [0, 3, 2, 1, 5, 10, 5, 7, 9, 5, 3, 8]
    assert labels.dtype == np.uint8
    assert labels.ravel().tolist() == expected
    assert [BRAINWEB_TO_CHARM[c] for c in range(12)] == expected


def test_mapping_custom_and_errors():
    classes = np.array([[[0, 10, 10]]])
    assert map_brainweb_classes(classes, {**BRAINWEB_TO_CHARM, 10: 7}).tolist() == [[[0, 7, 7]]]
    with pytest.raises(ValueError, match="not BrainWeb crisp classes"):
        map_brainweb_classes(np.array([[[0, 12]]]))
    with pytest.raises(TypeError, match="integer"):
        map_brainweb_classes(np.zeros((2, 2, 2)) + 0.5)


# ---------------------------------------------------------------- majority vote
def test_majority_vote_counts_and_ties():
    vol = np.zeros((4, 2, 2), np.uint8)
    # block 0 (x 0-1): 5 GM (2), 3 WM (1) -> GM by count
    vol[0:2].flat[:5] = 2
    vol[0:2].reshape(-1)[5:] = 1
    # block 1 (x 2-3): 4 CSF (3), 4 GM (2) -> tie -> CSF (thin layer first)
    vol[2] = 3
    vol[3] = 2
    out = downsample_majority(vol, 2)
    assert out.shape == (2, 1, 1)
    assert out[:, 0, 0].tolist() == [2, 3]
    # a tie with air goes to the tissue
    vol2 = np.zeros((2, 2, 2), np.uint8)
    vol2[0] = 5
    assert downsample_majority(vol2, 2).item() == 5
    # a custom priority flips the tie
    assert downsample_majority(vol, 2, priority=[2, 3])[1, 0, 0] == 2


def test_majority_vote_keeps_thin_layer_and_pads():
    # a 2-voxel skull layer straddling a block boundary (x = 3, 4) between scalp and CSF:
    # every block sees at most 2 skull voxels of 8, and yet the ties by priority keep a layer
    vol = np.full((9, 6, 6), 5, np.uint8)
    vol[3:5] = 7
    vol[5:] = 3
    vol[4, :, ::2] = 3  # the inner half-layer is broken: only half of its voxels are bone
    out = downsample_majority(vol, 2)
    assert out.shape == (5, 3, 3)  # 9 is padded to 10
    # block x 2-3 holds 4 scalp + 4 bone -> bone; block x 4-5: 2 bone + 6 CSF -> CSF
    assert np.all(out[1] == 7)
    assert np.all(out[0] == 5) and np.all(out[2] == 3)
    # last block: 4 CSF voxels and 4 padded air voxels -> the tie goes to the tissue
    assert np.all(out[4] == 3)
    vol[8] = 0
    assert np.all(downsample_majority(vol, 2)[4] == 0)


def test_majority_vote_errors():
    with pytest.raises(ValueError, match="positive integer"):
        downsample_majority(np.zeros((2, 2, 2), np.uint8), 0)
    with pytest.raises(ValueError, match="3-D integer"):
        downsample_majority(np.zeros((2, 2)), 2)
    vol = np.arange(8, dtype=np.uint8).reshape(2, 2, 2)
    assert np.array_equal(downsample_majority(vol, 1), vol)


# ---------------------------------------------------------------- eyes
def _synthetic_orbits(radius=12.0, centre=(32.0, 55.0, -40.0)):
    """1 mm grid in MNI space: fat (4) with two class-6 balls and an eyelid sheet of class 6."""
    affine = np.eye(4)
    affine[:3, 3] = (-70.0, 0.0, -80.0)
    shape = (141, 101, 81)
    xyz = np.indices(shape).reshape(3, -1).T + affine[:3, 3]
    classes = np.full(shape, 4, np.uint8).reshape(-1)
    for sign in (-1, 1):
        c = np.array(centre) * (sign, 1, 1)
        classes[np.linalg.norm(xyz - c, axis=1) <= radius] = 6
    # eyelid skin: a 3 mm sheet touching the front of both eyes, and the facial skin beyond
    classes[(xyz[:, 1] >= centre[1] + radius - 1) & (xyz[:, 1] <= centre[1] + radius + 2)] = 6
    return classes.reshape(shape), affine


def test_find_eyes_synthetic():
    classes, affine = _synthetic_orbits()
    mask, eyes = find_eyes(classes, affine)
    assert [e["found"] for e in eyes] == [True, True]
    expected_ml = 4 / 3 * np.pi * 12.0**3 / 1000.0  # 7.24 mL
    for e, sign in zip(eyes, (-1, 1), strict=True):
        assert np.allclose(e["centre_mm"], (sign * 32.0, 55.0, -40.0), atol=1.5)
        assert 11.0 <= e["radius_mm"] <= 13.0
        assert abs(e["volume_ml"] - expected_ml) / expected_ml < 0.15
    # the eyelid sheet is not part of the eye beyond the ball
    xyz = np.indices(classes.shape).reshape(3, -1).T + affine[:3, 3]
    assert not mask.reshape(-1)[xyz[:, 1] > 55.0 + 12.0 + 2.5].any()
    assert mask.sum() / 1000.0 == pytest.approx(2 * expected_ml, rel=0.15)


def test_find_eyes_absent():
    classes, affine = _synthetic_orbits()
    classes[classes == 6] = 4
    mask, eyes = find_eyes(classes, affine)
    assert not mask.any()
    assert [e["found"] for e in eyes] == [False, False]
    # a ball far too small for an eye (4 mm) is rejected
    small, _ = _synthetic_orbits(radius=4.0)
    small[:, 55 + 3 :, :] = 4  # drop the eyelid sheet
    mask, eyes = find_eyes(small, affine)
    assert not mask.any()


# ---------------------------------------------------------------- reader errors
def test_read_brainweb_bad_inputs(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_brainweb(tmp_path / "nothere_crisp_v.mnc.gz")
    nii = tmp_path / "labels.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((2, 2, 2), np.uint8), np.eye(4)), nii)
    with pytest.raises(ValueError, match="MINC"):
        read_brainweb(nii)
    garbage = tmp_path / "fake_crisp_v.mnc"
    garbage.write_text("this is not a MINC file\n")
    with pytest.raises(ValueError, match="MINC"):
        read_brainweb(garbage, regions=False, verbose=False)
    notgz = tmp_path / "fake_crisp_v.mnc.gz"
    notgz.write_bytes(b"plain bytes, not gzip")
    with pytest.raises(ValueError, match="gzip"):
        read_brainweb(notgz, regions=False, verbose=False)
    gz_garbage = tmp_path / "fake2_crisp_v.mnc.gz"
    with gzip.open(gz_garbage, "wb") as f:
        f.write(b"CDF\x01 truncated")
    with pytest.raises(ValueError, match="MINC"):
        read_brainweb(gz_garbage, regions=False, verbose=False)
    with pytest.raises(ValueError, match="voxel_size"):
        read_brainweb(garbage, voxel_size=-1.0, verbose=False)
    with pytest.raises(KeyError):
        read_brainweb(garbage, conductivities={"kidney": 0.2}, verbose=False)


# ---------------------------------------------------------------- the real file
@pytest.fixture(scope="module")
def native(shared_data):
    path = shared_data / BRAINWEB_FILE
    if not path.is_file():
        pytest.skip(f"{path} not available")
    return read_minc_classes(path)


def test_real_file_grid_and_classes(native):
    classes, affine = native
    assert classes.shape == (362, 434, 362)
    assert classes.dtype == np.uint8
    # RAS axes, 0.5 mm, MNI origin of BrainWeb
    assert np.allclose(affine[:3, :3], np.eye(3) * 0.5)
    assert np.allclose(affine[:3, 3], [-90.25, -126.25, -72.25])
    assert np.array_equal(np.unique(classes), np.arange(12))


def test_real_file_mapping_on_a_crop(native):
    classes, affine = native
    inv = np.linalg.inv(affine)

    def at(x, y, z, vol):
        i, j, k = np.rint(inv @ [x, y, z, 1.0])[:3].astype(int)
        return int(vol[i, j, k])

    # crop: a 60 mm cube around the left orbit and the frontal lobe
    lo = np.rint(inv @ [-62.0, 20.0, -70.0, 1.0])[:3].astype(int)
    hi = np.rint(inv @ [-2.0, 80.0, -10.0, 1.0])[:3].astype(int)
    crop = classes[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
    labels = map_brainweb_classes(crop)
    for cls, lab in BRAINWEB_TO_CHARM.items():
        assert np.all(labels[crop == cls] == lab)
    # known anatomy in MNI space: the ventricles hold CSF, the thalamus is grey matter...
    assert BRAINWEB_TO_CHARM[at(-3, -2, 15, classes)] == 3  # lateral ventricle near midline
    assert at(-40, -20, 55, classes) in (2, 3)  # left central region is brain
    # ...and there is one eye in each orbit, of adult size
    _mask, eyes = find_eyes(classes, affine)
    assert [e["found"] for e in eyes] == [True, True]
    for e in eyes:
        assert 4.0 < e["volume_ml"] < 9.0
        assert 25 < abs(e["centre_mm"][0]) < 40 and 45 < e["centre_mm"][1] < 70


def test_read_brainweb_real_2mm(native, shared_data, monkeypatch):
    path = shared_data / BRAINWEB_FILE
    classes, affine = native

    def read_once(src, check_header=None):
        """The real file, as the `native` fixture read it with the same function (saves ~10 s)."""
        assert src == path
        if check_header is not None:
            check_header(affine)
        return classes, affine

    monkeypatch.setattr(brainweb, "read_minc_classes", read_once)
    with pytest.raises(ValueError, match="integer multiple"):
        read_brainweb(path, voxel_size=0.7, regions=False, verbose=False)
    head = read_brainweb(path, voxel_size=2.0, regions=True, verbose=False)
    assert np.allclose(head.voxel_size, 2.0)
    assert np.allclose(head.mri_to_mni, np.eye(4))
    # block centres: voxel (0,0,0) covers native voxels 0..3 -> centre -90.25 + 0.75
    assert np.allclose(head.affine[:3, 3], [-89.5, -125.5, -71.5])
    present = {name for name in head.tissues.names if head.has_tissue(name)}
    assert present == set(head.tissues.names) - {"Bone"}
    vols = head.volumes_ml()
    assert 1.3e3 < vols["WM"] + vols["GM"] < 1.8e3
    assert 4.0 < vols["Eye_balls"] < 20.0
    assert set(head.subcortical_regions_present()) == set(SUBCORTICAL_REGIONS.values())
    head.check_forward_ready()
