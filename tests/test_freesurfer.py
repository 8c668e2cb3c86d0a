"""Tests for deepesi.anatomy.freesurfer.read_freesurfer_subject (synthetic subject + MNE sample)."""

from __future__ import annotations

import shutil
import warnings

import nibabel as nib
import numpy as np
import pytest
from scipy.spatial import ConvexHull

from deepesi.anatomy.freesurfer import (
    MNI305_TO_MNI152,
    read_freesurfer_subject,
    read_talairach_xfm,
)

R_SKIN, R_OSKULL, R_ISKULL = 78.0, 70.0, 62.0
THAL_L = np.array([-12.0, -15.0, 6.0])
C_RAS = np.array([4.0, -7.0, 20.0])  # scanner RAS of the volume centre (≠ surface RAS)


def _sphere_surface(radius, n=1500, seed=0):
    rng = np.random.default_rng(seed)
    p = rng.normal(size=(n, 3))
    p /= np.linalg.norm(p, axis=1)[:, None]
    return p * radius, ConvexHull(p).simplices


def _conformed_affine(size, vox):
    """FreeSurfer-like LIA affine whose centre sits at C_RAS in scanner space."""
    aff = np.array([[-vox, 0, 0, 0], [0, 0, vox, 0], [0, -vox, 0, 0], [0, 0, 0, 1.0]])
    aff[:3, 3] = C_RAS - aff[:3, :3] @ (np.array([size] * 3) / 2.0)
    return aff


def _tkr_coords(size, vox):
    aff = _conformed_affine(size, vox)
    aff[:3, 3] -= C_RAS  # surface RAS = scanner RAS - c_ras
    ijk = np.indices((size,) * 3).reshape(3, -1).T
    return nib.affines.apply_affine(aff, ijk).reshape(size, size, size, 3)


def _make_subject(root, *, aseg_extra=None, drop=(), xfm=True):
    subj = root / "fake"
    (subj / "mri" / "transforms").mkdir(parents=True)
    (subj / "bem").mkdir()
    size, vox = 64, 2.0
    xyz = _tkr_coords(size, vox)
    r = np.linalg.norm(xyz, axis=-1)
    left = xyz[..., 0] < 0
    aseg = np.zeros((size,) * 3, np.uint8)
    aseg[r < 55] = np.where(left, 3, 42)[r < 55]
    aseg[r < 45] = np.where(left, 2, 41)[r < 45]
    for centre, lab in ((THAL_L, 10), (THAL_L * [-1, 1, 1], 49)):
        aseg[np.linalg.norm(xyz - centre, axis=-1) < 6] = lab
    aseg[np.linalg.norm(xyz - [0, 10, 10], axis=-1) < 5] = 4
    if aseg_extra is not None:
        aseg_extra(aseg, xyz)
    if "aseg" not in drop:
        nib.save(nib.MGHImage(aseg, _conformed_affine(size, vox)), subj / "mri" / "aseg.mgz")
    for name, rad in (("outer_skin", R_SKIN), ("outer_skull", R_OSKULL), ("inner_skull", R_ISKULL)):
        if name in drop:
            continue
        v, f = _sphere_surface(rad, seed=int(rad))
        if name == "open":
            f = f[:-2]
        nib.freesurfer.write_geometry(str(subj / "bem" / f"{name}.surf"), v, f)
    if xfm:
        (subj / "mri" / "transforms" / "talairach.xfm").write_text(
            "MNI Transform File\n\nTransform_Type = Linear;\nLinear_Transform = \n"
            "1.0 0.0 0.0 2.0\n0.0 1.0 0.0 -3.0\n0.0 0.0 1.0 4.0;\n"
        )
    return subj


@pytest.fixture
def fake_subject(tmp_path):
    return _make_subject(tmp_path)


def test_synthetic_subject_volumes_and_frame(fake_subject):
    head = read_freesurfer_subject("fake", fake_subject.parent, voxel_size=2.0, verbose=False)
    vols = head.volumes_ml()
    sphere = lambda r: 4 / 3 * np.pi * r**3 / 1000  # noqa: E731
    intracranial = vols["WM"] + vols["GM"] + vols["CSF"]
    assert intracranial == pytest.approx(sphere(R_ISKULL), rel=0.04)
    assert vols["Compact_bone"] + vols["Spongy_bone"] == pytest.approx(
        sphere(R_OSKULL) - sphere(R_ISKULL), rel=0.08
    )
    assert vols["Scalp"] == pytest.approx(sphere(R_SKIN) - sphere(R_OSKULL), rel=0.08)
    assert vols["Spongy_bone"] > 0 and vols["Compact_bone"] > 0
    assert vols["WM"] == pytest.approx(sphere(45.0) - 2 * sphere(6.0) - sphere(5.0), rel=0.1)
    assert head.meta["absent_tissues"] == ["Bone", "Eye_balls", "Blood", "Muscle"]
    # deep structure at its surface-RAS position (not shifted by c_ras): the frame is tkr RAS
    thal = np.argwhere(head.regions == 10)
    centre = nib.affines.apply_affine(head.affine, thal).mean(axis=0)
    assert np.linalg.norm(centre - THAL_L) < 1.5
    assert head.subcortical_regions_present()["Right-Thalamus"] == pytest.approx(len(thal), rel=0.1)
    # every GM voxel has a region; cortical hemispheres follow x. The fake aseg has no
    # cerebellum and only 2 of the 15 deep structures: the others come from the MNI atlas
    gm = head.tissue_mask("GM")
    assert np.all(head.regions[gm] > 0)
    reg = head.regions[gm]
    is_left = (reg == 3) | ((reg > 1100) & (reg < 1200))
    is_right = (reg == 42) | ((reg > 2100) & (reg < 2200))
    assert np.mean(is_left | is_right) > 0.8
    xyz = head.voxel_to_mri(np.argwhere(gm)) * 1000
    ctx = is_left | is_right
    assert np.mean(is_left[ctx] == (xyz[ctx, 0] < 0)) > 0.97
    assert "Left-Cerebellum-Cortex" in head.meta["regions"]["structures_from_atlas"]
    assert head.regions[tuple(head.mri_to_voxel([THAL_L / 1000]).round().astype(int)[0])] == 10
    # MNI: talairach.xfm (scanner → MNI305) after surface RAS → scanner, then → MNI152
    tkr_to_scanner = np.eye(4)
    tkr_to_scanner[:3, 3] = C_RAS
    xfm = np.eye(4)
    xfm[:3, 3] = [2.0, -3.0, 4.0]
    assert np.allclose(head.mri_to_mni, MNI305_TO_MNI152 @ xfm @ tkr_to_scanner, atol=1e-4)
    head.check_forward_ready()
    assert head.meta["cortex_method"] == "aseg"


def test_ribbon_used_when_it_matches_and_refused_when_not(tmp_path):
    subj = _make_subject(tmp_path)
    size, vox = 64, 2.0
    xyz = _tkr_coords(size, vox)
    r = np.linalg.norm(xyz, axis=-1)
    ribbon = ((r >= 47) & (r < 53)).astype(np.uint8)  # thinner than aseg's cortex
    aff = _conformed_affine(size, vox)
    for hemi, sel in (("lh", xyz[..., 0] < 0), ("rh", xyz[..., 0] >= 0)):
        nib.save(nib.MGHImage(ribbon * sel, aff), subj / "mri" / f"{hemi}.ribbon.mgz")
    head = read_freesurfer_subject("fake", tmp_path, voxel_size=2.0, verbose=False)
    assert head.meta["cortex_method"] == "ribbon"
    gm = head.tissue_mask("GM") & ~np.isin(head.regions, (10, 49))
    rr = np.linalg.norm(head.voxel_to_mri(np.argwhere(gm)) * 1000, axis=1)
    assert rr.min() > 45.5 and rr.max() < 54.5
    # a ribbon shifted by 30 mm does not match aseg: warned about and not used
    shifted = np.roll(ribbon, 15, axis=1)
    for hemi in ("lh", "rh"):
        nib.save(nib.MGHImage(shifted, aff), subj / "mri" / f"{hemi}.ribbon.mgz")
    with pytest.warns(UserWarning, match="do not match aseg"):
        head = read_freesurfer_subject("fake", tmp_path, voxel_size=2.0, verbose=False)
    assert head.meta["cortex_method"] == "aseg"


@pytest.mark.parametrize(
    ("drop", "match"),
    [
        (("aseg",), "aseg.mgz"),
        (("outer_skin",), "watershed_bem"),
        (("inner_skull",), "inner_skull"),
    ],
)
def test_missing_inputs(tmp_path, drop, match):
    _make_subject(tmp_path, drop=drop)
    with pytest.raises(FileNotFoundError, match=match):
        read_freesurfer_subject("fake", tmp_path, voxel_size=3.0, verbose=False)


def test_bad_inputs(tmp_path, monkeypatch):
    def add_unknown(aseg, xyz):
        aseg[0, 0, 0] = 99

    _make_subject(tmp_path, aseg_extra=add_unknown)
    with pytest.raises(ValueError, match=r"label\(s\) \[99\]"):
        read_freesurfer_subject("fake", tmp_path, verbose=False)
    with pytest.raises(FileNotFoundError, match="subject folder"):
        read_freesurfer_subject("nobody", tmp_path, verbose=False)
    monkeypatch.delenv("SUBJECTS_DIR", raising=False)
    with pytest.raises(ValueError, match="SUBJECTS_DIR"):
        read_freesurfer_subject("fake", verbose=False)
    with pytest.raises(ValueError, match="voxel_size"):
        read_freesurfer_subject("fake", tmp_path, voxel_size=0.0, verbose=False)


def test_too_fine_grid_and_unreadable_aseg(fake_subject):
    root = fake_subject.parent
    with pytest.raises(ValueError, match="larger voxel_size"):
        read_freesurfer_subject("fake", root, voxel_size=0.2, verbose=False)
    (fake_subject / "mri" / "aseg.mgz").write_bytes(b"not an mgz file")
    with pytest.raises(ValueError, match="cannot read aseg"):
        read_freesurfer_subject("fake", root, verbose=False)


def test_open_and_damaged_surfaces(tmp_path):
    subj = _make_subject(tmp_path)
    v, f = _sphere_surface(R_OSKULL)
    nib.freesurfer.write_geometry(str(subj / "bem" / "outer_skull.surf"), v, f[:-2])
    with pytest.raises(ValueError, match="not a closed surface"):
        read_freesurfer_subject("fake", tmp_path, voxel_size=3.0, verbose=False)
    (subj / "bem" / "outer_skull.surf").write_bytes(b"nonsense")
    with pytest.raises(ValueError, match="cannot read"):
        read_freesurfer_subject("fake", tmp_path, voxel_size=3.0, verbose=False)
    aseg = subj / "mri" / "aseg.mgz"
    aseg.unlink()
    nib.save(nib.MGHImage(np.full((8, 8, 8), 0.5, np.float32), np.eye(4)), aseg)
    with pytest.raises(ValueError, match="non-integer"):
        read_freesurfer_subject("fake", tmp_path, voxel_size=3.0, verbose=False)


def test_no_talairach_means_no_lobes(tmp_path):
    _make_subject(tmp_path, xfm=False)
    head = read_freesurfer_subject("fake", tmp_path, voxel_size=3.0, verbose=False)
    assert head.mri_to_mni is None
    cortical = set(np.unique(head.regions).tolist()) - {0, 10, 49}
    assert cortical == {3, 42}


def test_talairach_parser(tmp_path):
    p = tmp_path / "t.xfm"
    p.write_text("MNI Transform File\nLinear_Transform = \n1 2 3 4\n5 6 7 8\n9 10 11 12;\n")
    assert np.array_equal(read_talairach_xfm(p)[:3].ravel(), np.arange(1, 13))
    p.write_text("MNI Transform File\nTransform_Type = Nonlinear;\n")
    with pytest.raises(ValueError, match="Linear_Transform"):
        read_talairach_xfm(p)


# ------------------------------------------------------------------ the MNE sample subject
def test_sample_subject(sample_dir, tmp_path):
    import mne

    subjects_dir = sample_dir / "subjects"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # its ribbons do not match its aseg
        head = read_freesurfer_subject("sample", subjects_dir, voxel_size=3.0, verbose=False)
    head.check_forward_ready()
    deep = head.subcortical_regions_present()
    assert len(deep) == 15 and min(deep.values()) >= 5
    vols = head.volumes_ml()
    assert 1300 < vols["WM"] + vols["GM"] + vols["CSF"] < 1800  # inner skull volume ~1.59 L
    assert vols["Compact_bone"] > 0 and vols["Spongy_bone"] > 0
    # the MNI transform is MNE's read_talxfm (MNI305), then MNI305 → MNI152
    mne_t = mne.read_talxfm("sample", subjects_dir)["trans"].copy()
    mne_t[:3, 3] *= 1000.0
    assert np.allclose(np.linalg.inv(MNI305_TO_MNI152) @ head.mri_to_mni, mne_t, atol=1e-3)
    # left thalamus: left of the midline, near its MNI152 location (about -11, -18, 7)
    thal = nib.affines.apply_affine(head.affine, np.argwhere(head.regions == 10)).mean(axis=0)
    mni = nib.affines.apply_affine(head.mri_to_mni, thal)
    assert thal[0] < 0
    assert np.linalg.norm(mni - [-11, -18, 7]) < 12
    # the head survives a save / load round trip
    loaded = type(head).load(head.save(tmp_path / "sample_head"))
    assert loaded.hash() == head.hash()


def test_sample_missing_surface(sample_dir, tmp_path):
    src = sample_dir / "subjects" / "sample"
    dst = tmp_path / "sample"
    shutil.copytree(src / "mri", dst / "mri")
    (dst / "bem").mkdir()
    shutil.copy(src / "bem" / "inner_skull.surf", dst / "bem")
    with pytest.raises(FileNotFoundError, match="outer_skull"):
        read_freesurfer_subject("sample", tmp_path, voxel_size=3.0, verbose=False)
