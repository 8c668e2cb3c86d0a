"""EEG montages on the scalp, sensors from an mne.Info, and every bad input (deepesi.sensors)."""

from __future__ import annotations

import numpy as np
import pytest

from deepesi.anatomy.masks import boundary_distance, head_mask
from deepesi.sensors import (
    EEG_LAYOUTS,
    MNI_FIDUCIALS,
    Sensors,
    check_trans,
    make_eeg_sensors,
    sensors_from_info,
)
from helpers_meg import helmet_info

# fiducials on the 72 mm conftest scalp sphere, 20 degrees below the equator (as on a head)
_H, _Z = 0.072 * np.cos(np.radians(20)), -0.072 * np.sin(np.radians(20))
SPHERE_FID = {"nasion": [0.0, _H, _Z], "lpa": [-_H, 0.0, _Z], "rpa": [_H, 0.0, _Z]}
VOXEL = 0.004  # conftest sphere head voxel size (m)


def _sphere_montage(radius=0.072, scale=1.0, nan=False, fiducials=True):
    """A custom montage with electrodes and fiducials exactly on a sphere of ``radius``."""
    import mne

    rng = np.random.default_rng(1)
    d = rng.normal(size=(30, 3))
    d[:, 2] = np.abs(d[:, 2])
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    pos = {f"E{i}": radius * v * scale for i, v in enumerate(d)}
    if nan:
        pos["E3"] = np.array([np.nan, 0.0, 0.0])
    fid = {k: np.asarray(v) / 0.072 * radius * scale for k, v in SPHERE_FID.items()}
    if not fiducials:
        return mne.channels.make_dig_montage(ch_pos=pos, coord_frame="unknown"), d
    return mne.channels.make_dig_montage(ch_pos=pos, coord_frame="unknown", **fid), d


def test_custom_montage_registers_exactly(sphere_head):
    montage, d = _sphere_montage()
    auto = make_eeg_sensors(sphere_head, montage, mri_fiducials=SPHERE_FID)
    assert abs(auto.meta["scale"] - 1.0) < 0.03  # the fitted scale of a head-sized montage
    assert max(auto.meta["fiducial_residual_mm"].values()) < 0.03 * 72
    s = make_eeg_sensors(sphere_head, montage, mri_fiducials=SPHERE_FID, scale=None)
    assert s.ch_types == ["eeg"] * 30 and s.eeg_reference == "average"
    assert max(s.meta["fiducial_residual_mm"].values()) < 1e-6
    # electrodes stay in their directions and land on the 72 mm scalp (within one voxel)
    u = s.eeg_pos_mri / np.linalg.norm(s.eeg_pos_mri, axis=1, keepdims=True)
    np.testing.assert_allclose(u, d, atol=1e-9)
    assert np.all(np.abs(np.linalg.norm(s.eeg_pos_mri, axis=1) - 0.072) < VOXEL)
    # the Info holds the projected positions in the head frame
    h2m = s.trans["trans"]
    loc = np.array([ch["loc"][:3] for ch in s.info["chs"]])
    np.testing.assert_allclose(loc @ h2m[:3, :3].T + h2m[:3, 3], s.eeg_pos_mri, atol=1e-9)
    assert any(p["desc"] == "Average EEG reference" for p in s.info["projs"])


@pytest.mark.parametrize("montage", ["standard_1020", "biosemi64", "easycap-M1",
                                     "GSN-HydroCel-128"])
def test_standard_montages_land_on_scalp(sphere_head, montage):
    s = make_eeg_sensors(sphere_head, montage, mri_fiducials=SPHERE_FID)
    dist = boundary_distance(s.eeg_pos_mri, head_mask(sphere_head), sphere_head.affine_m)
    assert dist.max() < VOXEL
    assert set(s.meta["fiducial_residual_mm"]) == {"nasion", "lpa", "rpa"}
    assert all(np.isfinite(v) for v in s.meta["fiducial_residual_mm"].values())
    assert 0.5 < s.meta["scale"] < 1.0  # MNE's montages are bigger than a 72 mm sphere


def test_template_registration_residual():
    template = pytest.importorskip("deepesi.anatomy.template")
    head = template.load_template()
    s = make_eeg_sensors(head, "standard_1020")
    # standard_1020 and MNI_FIDUCIALS share the fsaverage/MNI fiducials: tiny residual
    assert max(s.meta["fiducial_residual_mm"].values()) < 2.0
    assert abs(s.meta["scale"] - 1.0) < 0.05
    assert s.meta["projection_mm"]["median"] < 4.0
    assert boundary_distance(s.eeg_pos_mri, head_mask(head), head.affine_m).max() < 0.001
    cz = s.eeg_pos_mri[s.ch_names.index("Cz")] * 1000
    assert abs(cz[0]) < 5 and cz[2] > 70  # Cz on the vertex, in MNI mm


def test_named_layouts_are_symmetric_10_05_sets(sphere_head):
    """The 128-channel layout is the 64-channel one plus 64 distinct, left/right-paired 10-05
    positions, none below the 64-channel cap's lowest electrode; both place on the scalp."""
    import re

    import mne

    pos = mne.channels.make_standard_montage("colin27_1005").get_positions()["ch_pos"]
    montage64, names64 = EEG_LAYOUTS["standard_1010_64"]
    montage128, names128 = EEG_LAYOUTS["standard_1005_128"]
    assert montage64 == montage128 == "standard_1005"
    assert len(names64) == len(set(names64)) == 64
    assert len(names128) == len(set(names128)) == 128 and names128[:64] == names64
    lowest = min(pos[n][2] for n in names64)

    def mirror(name):  # odd numbers left, even right, z on the midline
        m = re.fullmatch(r"([A-Za-z]+?)(\d+)(h?)", name)
        if m is None:
            return name
        k = int(m.group(2))
        return f"{m.group(1)}{k + 1 if k % 2 else k - 1}{m.group(3)}"

    for name in names128[64:]:
        assert mirror(name) in names128[64:], name
        assert pos[name][2] >= lowest - 1e-6, name
        left, right = pos[name], pos[mirror(name)]
        assert np.allclose(left[[1, 2]], right[[1, 2]], atol=5e-3)  # mirror images
    s = make_eeg_sensors(sphere_head, "standard_1005_128", mri_fiducials=SPHERE_FID)
    assert s.ch_names == list(names128)
    dist = boundary_distance(s.eeg_pos_mri, head_mask(sphere_head), sphere_head.affine_m)
    assert dist.max() < VOXEL


def test_subset_and_order(sphere_head):
    names = ["Oz", "Cz", "Fz"]
    s = make_eeg_sensors(sphere_head, "standard_1020", ch_names=names, mri_fiducials=SPHERE_FID)
    assert s.ch_names == names and s.info["ch_names"] == names
    assert s.eeg_pos_mri[1, 2] > s.eeg_pos_mri[0, 2]  # Cz above Oz
    assert s.eeg_pos_mri[2, 1] > s.eeg_pos_mri[0, 1]  # Fz in front of Oz


def test_hash_is_stable_and_sensitive(sphere_head):
    a = make_eeg_sensors(sphere_head, "standard_1020", ch_names=["Cz", "Fz"],
                         mri_fiducials=SPHERE_FID)
    b = make_eeg_sensors(sphere_head, "standard_1020", ch_names=["Cz", "Fz"],
                         mri_fiducials=SPHERE_FID)
    c = make_eeg_sensors(sphere_head, "standard_1020", ch_names=["Cz", "Pz"],
                         mri_fiducials=SPHERE_FID)
    assert a.hash() == b.hash() != c.hash()
    d = make_eeg_sensors(sphere_head, "standard_1020", ch_names=["Cz", "Fz"],
                         mri_fiducials=SPHERE_FID, reference="none")
    assert d.hash() != a.hash()


def test_mni_fiducials_match_mne():
    import os

    import mne

    fname = os.path.join(os.path.dirname(mne.__file__), "data", "fsaverage",
                         "fsaverage-fiducials.fif")
    pts, _ = mne.io.read_fiducials(fname)
    got = {p["ident"]: p["r"] for p in pts}
    np.testing.assert_allclose(MNI_FIDUCIALS["lpa"], got[1], atol=1e-7)
    np.testing.assert_allclose(MNI_FIDUCIALS["nasion"], got[2], atol=1e-7)
    np.testing.assert_allclose(MNI_FIDUCIALS["rpa"], got[3], atol=1e-7)


# ------------------------------------------------------------------ errors
def test_unknown_montage_name(sphere_head):
    with pytest.raises(ValueError, match=r"unknown montage 'standard_9999'.*biosemi64"):
        make_eeg_sensors(sphere_head, "standard_9999", mri_fiducials=SPHERE_FID)


def test_unknown_channel_names_listed(sphere_head):
    with pytest.raises(ValueError, match=r"\['XX1', 'Cz2'\].*Available.*Fp1"):
        make_eeg_sensors(sphere_head, "standard_1020", ch_names=["Cz", "XX1", "Cz2"],
                         mri_fiducials=SPHERE_FID)


def test_montage_without_fiducials(sphere_head):
    montage, _ = _sphere_montage(fiducials=False)
    with pytest.raises(ValueError, match="no nasion, lpa, rpa fiducial"):
        make_eeg_sensors(sphere_head, montage, mri_fiducials=SPHERE_FID)


def test_nan_positions(sphere_head):
    montage, _ = _sphere_montage(nan=True)
    with pytest.raises(ValueError, match=r"NaN/Inf: \['E3'\]"):
        make_eeg_sensors(sphere_head, montage, mri_fiducials=SPHERE_FID)


def test_millimetre_montage_is_refused(sphere_head):
    montage, _ = _sphere_montage(scale=1000.0)  # positions in mm instead of m
    with pytest.raises(ValueError, match=r"not in metres|far from the scalp"):
        make_eeg_sensors(sphere_head, montage, mri_fiducials=SPHERE_FID)
    with pytest.raises(ValueError, match="far from the scalp"):
        make_eeg_sensors(sphere_head, montage, mri_fiducials=SPHERE_FID, scale=None)


def test_head_without_fiducials_needs_trans(sphere_head):
    with pytest.raises(ValueError, match=r"no MRI→MNI transform.*trans="):
        make_eeg_sensors(sphere_head, "standard_1020")


def _eeg_head_positions(sphere_head, trans):
    s = make_eeg_sensors(sphere_head, "standard_1020", ch_names=["Fz", "Cz", "Pz", "C3", "C4"],
                         mri_fiducials=SPHERE_FID)
    pos_mri = s.eeg_pos_mri
    m2h = np.linalg.inv(trans)
    return s.ch_names, pos_mri @ m2h[:3, :3].T + m2h[:3, 3]


def test_sensors_from_synthetic_info(sphere_head):
    import mne

    trans = mne.transforms.rotation(0.1, 0.2, -0.3)
    trans[:3, 3] = [0.01, -0.02, 0.03]
    names, pos_head = _eeg_head_positions(sphere_head, trans)
    info = helmet_info(trans, eeg_names=names, eeg_pos_head=pos_head)
    s = sensors_from_info(info, mne.transforms.Transform("head", "mri", trans), sphere_head)
    assert s.eeg_names == names and s.n_meg == 2 * 89 and s.n_eeg == 5
    assert s.meta["projection_mm"]["max"] < VOXEL * 1000
    assert boundary_distance(s.eeg_pos_mri, head_mask(sphere_head),
                             sphere_head.affine_m).max() < VOXEL
    eeg_only = sensors_from_info(info, trans, sphere_head, picks="eeg")
    assert eeg_only.ch_types == ["eeg"] * 5
    with pytest.raises(ValueError, match="picks"):
        sensors_from_info(info, trans, sphere_head, picks=("ecog",))


def test_sensors_from_info_wrong_or_missing_trans(sphere_head):
    import mne

    trans = np.eye(4)
    names, pos_head = _eeg_head_positions(sphere_head, trans)
    info = helmet_info(trans, eeg_names=names, eeg_pos_head=pos_head)
    with pytest.raises(ValueError, match="trans is required"):
        sensors_from_info(info, None, sphere_head)
    wrong = np.eye(4)
    wrong[:3, 3] = [0.0, 0.0, 0.05]  # 5 cm off: electrodes float above the head
    with pytest.raises(ValueError, match="far from the scalp"):
        sensors_from_info(info, wrong, sphere_head)
    mm = np.eye(4)
    mm[:3, 3] = [0.0, 0.0, 30.0]
    with pytest.raises(ValueError, match="millimetres"):
        sensors_from_info(info, mm, sphere_head)
    with pytest.raises(ValueError, match="'head' and 'mri'"):
        check_trans(mne.transforms.Transform("meg", "head", np.eye(4)))
    with pytest.raises(FileNotFoundError):
        check_trans("does-not-exist-trans.fif")
    # a Transform given the other way round is inverted
    inv = check_trans(mne.transforms.Transform("mri", "head", wrong))
    np.testing.assert_allclose(inv["trans"], np.linalg.inv(wrong))


def test_sensors_from_info_nan_and_missing_positions(sphere_head):
    trans = np.eye(4)
    names, pos_head = _eeg_head_positions(sphere_head, trans)
    pos_head = pos_head.copy()
    pos_head[1] = np.nan
    info = helmet_info(trans, eeg_names=names, eeg_pos_head=pos_head)
    with pytest.raises(ValueError, match=r"NaN/Inf: \['Cz'\]"):
        sensors_from_info(info, trans, sphere_head)
    pos_head[1] = 0.0
    info = helmet_info(trans, eeg_names=names, eeg_pos_head=pos_head)
    with pytest.raises(ValueError, match=r"no position.*\['Cz'\]"):
        sensors_from_info(info, trans, sphere_head)


def test_sensors_container_validation():
    with pytest.raises(ValueError, match="unknown channel type"):
        Sensors(["a"], ["ecog"], None, None, np.zeros((0, 3)))
    with pytest.raises(ValueError, match="eeg_pos_mri has 0 rows"):
        Sensors(["a"], ["eeg"], None, None, np.zeros((0, 3)))


# ------------------------------------------------------------------ real data
@pytest.fixture(scope="module")
def sample_head():
    """A scalp-only head model of the MNE sample subject (seghead.mgz, 3 mm)."""
    import os
    from pathlib import Path

    import nibabel as nib

    from conftest import shared_data_dir
    from deepesi.anatomy import HeadModel

    root = shared_data_dir()
    if root is None:
        pytest.skip("needs DEEPESI_SHARED_DATA")
    img = nib.load(Path(root) / "mne-sample/subjects/sample/mri/seghead.mgz")
    labels = (np.asarray(img.dataobj) > 0).astype(np.uint8) * 5
    assert os.path.isdir(root)
    return HeadModel(labels, img.header.get_vox2ras_tkr(), name="sample-scalp")


def test_sensors_from_sample_recording(sample_dir, sample_head):
    import mne

    ave = sample_dir / "MEG/sample/sample_audvis-auditory-ave.fif"
    trans = sample_dir / "MEG/sample/sample_audvis_trunc-trans.fif"
    s = sensors_from_info(ave, trans, sample_head)
    assert s.n_eeg == 60 and s.ch_types.count("grad") == 204 and s.ch_types.count("mag") == 102
    # digitized electrodes sit within a few mm of the MRI scalp (good coregistration)
    assert s.meta["projection_mm"]["median"] < 4.0 and s.meta["projection_mm"]["max"] < 10.0
    assert boundary_distance(s.eeg_pos_mri, head_mask(sample_head),
                             sample_head.affine_m).max() < 0.003
    info = mne.io.read_info(ave, verbose=False)
    bad = mne.transforms.Transform("head", "mri", np.eye(4))  # forgot the real trans
    with pytest.raises(ValueError, match="far from the scalp"):
        sensors_from_info(info, bad, sample_head)
