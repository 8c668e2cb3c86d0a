"""LeadField ⇄ mne.Forward, -fwd.fif files, and acceptance by MNE's inverse methods."""

from __future__ import annotations

import numpy as np
import pytest

from deepesi.forward.io import (
    forward_provenance,
    leadfield_from_forward,
    leadfield_to_forward,
    read_forward,
    sidecar_path,
    write_forward,
)
from deepesi.forward.leadfield import LeadField
from deepesi.sensors import make_eeg_sensors, sensors_from_info
from helpers_meg import helmet_info

# fiducials on the 72 mm scalp sphere of the conftest head, tilted so that head ≠ MRI frame
_ROT = np.array([[0.9363, -0.2896, 0.1987], [0.3130, 0.9447, -0.0978], [-0.1593, 0.1538, 0.9752]])
FID = {k: _ROT @ np.array(v) for k, v in
       {"nasion": [0.0, 0.0677, -0.0246], "lpa": [-0.0677, 0.0, -0.0246],
        "rpa": [0.0677, 0.0, -0.0246]}.items()}


@pytest.fixture(scope="module")
def lf():
    """A seeded EEG + MEG lead field on the sphere head with a rotated head→MRI trans."""
    import mne

    from conftest import make_sphere_labels
    from deepesi.anatomy import HeadModel
    from deepesi.sources import make_source_space

    vol, affine = make_sphere_labels()
    head = HeadModel(vol, affine, name="sphere")
    src = make_source_space(head, 0.012)
    eeg = make_eeg_sensors(head, "standard_1020", mri_fiducials=FID,
                           ch_names=["Fz", "Cz", "Pz", "Oz", "C3", "C4", "T7", "T8"])
    trans = np.asarray(eeg.trans["trans"])
    pos_head = np.array([ch["loc"][:3] for ch in eeg.info["chs"]])
    info = helmet_info(trans, grade=1, eeg_names=eeg.ch_names, eeg_pos_head=pos_head)
    sensors = sensors_from_info(info, mne.transforms.Transform("head", "mri", trans), head)
    rng = np.random.default_rng(0)
    gain = rng.normal(size=(len(sensors.ch_names), src.n_sources, 3))
    gain[: sensors.n_eeg] *= 1e-6
    gain[: sensors.n_eeg] -= gain[: sensors.n_eeg].mean(axis=0)  # average reference
    gain[sensors.n_eeg :] *= 1e-13
    meta = {"head_hash": head.hash(), "sensors_hash": sensors.hash(), "note": "test"}
    return LeadField(gain, sensors.ch_names, sensors.ch_types, src, info=sensors.info,
                     trans=sensors.trans, eeg_reference="average", meta=meta)


def test_roundtrip_in_memory_is_exact(lf):
    fwd = leadfield_to_forward(lf)
    assert fwd["nsource"] == lf.n_sources and fwd["nchan"] == lf.n_channels
    assert fwd["coord_frame"] == 4 and fwd["src"][0]["coord_frame"] == 4  # head frame
    back = leadfield_from_forward(fwd, lf.source_space)
    assert back.ch_names == lf.ch_names and back.ch_types == lf.ch_types
    scale = np.abs(lf.gain).max(axis=(1, 2), keepdims=True)  # per channel (EEG vs MEG units)
    np.testing.assert_allclose(back.gain / scale, lf.gain / scale, rtol=0, atol=1e-12)
    np.testing.assert_allclose(back.trans["trans"], lf.trans["trans"], atol=1e-12)
    prov = forward_provenance(fwd)
    assert prov["leadfield_hash"] == lf.hash() and prov["head_hash"] == lf.meta["head_hash"]


def test_forward_columns_are_head_frame_dipoles(lf):
    """Column (x, y, z) of source i is the head-frame dipole: G_head = G_mri R_head→mri."""
    fwd = leadfield_to_forward(lf)
    rot = np.asarray(lf.trans["trans"])[:3, :3]
    assert not np.allclose(rot, np.eye(3))
    g = fwd["sol"]["data"].reshape(lf.n_channels, lf.n_sources, 3)
    np.testing.assert_allclose(g[:, 5], lf.gain[:, 5] @ rot, rtol=1e-12)
    rr_head = (lf.source_space.pos - lf.trans["trans"][:3, 3]) @ rot
    np.testing.assert_allclose(fwd["source_rr"], rr_head, atol=1e-12)


def test_write_read_file(lf, tmp_path):
    fname = tmp_path / "sub-fwd.fif"
    assert write_forward(lf, fname) == fname
    assert fname.is_file() and sidecar_path(fname).is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sub-fwd.deepesi.npz", "sub-fwd.fif"]
    back = read_forward(fname)
    assert back.ch_names == lf.ch_names and back.ch_types == lf.ch_types
    np.testing.assert_allclose(back.gain, lf.gain, rtol=1e-6, atol=1e-6 * np.abs(lf.gain).max())
    assert back.source_space.hash() == lf.source_space.hash()
    assert back.eeg_reference == "average"
    assert back.meta["head_hash"] == lf.meta["head_hash"]
    assert back.meta["sensors_hash"] == lf.meta["sensors_hash"]
    assert back.meta["note"] == "test"
    with pytest.raises(FileExistsError):
        write_forward(lf, fname)
    write_forward(lf, fname, overwrite=True)
    with pytest.raises(ValueError, match=r"-fwd\.fif"):
        write_forward(lf, tmp_path / "sub.fif")


def test_read_plain_mne_file_without_sidecar(lf, tmp_path):
    import mne

    fname = tmp_path / "plain-fwd.fif"
    mne.write_forward_solution(fname, leadfield_to_forward(lf), verbose=False)
    back = read_forward(fname)  # no sidecar: free-orientation source space from the file
    assert back.source_space.free_ori.all()
    np.testing.assert_allclose(back.source_space.pos, lf.source_space.pos, atol=1e-6)
    np.testing.assert_allclose(back.gain, lf.gain, rtol=1e-6, atol=1e-6 * np.abs(lf.gain).max())
    src = lf.source_space
    other = type(src)(src.pos, src.region_ids, src.normals, src.free_ori, src.adjacency,
                      src.spacing, loose=0.3)
    with pytest.raises(ValueError, match="another source space"):
        read_forward(fname, source_space=other)


def test_bad_inputs(lf):
    import mne

    with pytest.raises(TypeError):
        leadfield_to_forward("not a lead field")
    bare = LeadField(lf.gain, lf.ch_names, lf.ch_types, lf.source_space)
    with pytest.raises(ValueError, match="no info/trans"):
        leadfield_to_forward(bare)
    fwd = leadfield_to_forward(lf)
    fixed = mne.convert_forward_solution(fwd, surf_ori=True, force_fixed=True, verbose=False)
    with pytest.raises(ValueError, match="fixed orientations"):
        leadfield_from_forward(fixed, lf.source_space)
    shifted = type(lf.source_space)(lf.source_space.pos + 0.001, lf.source_space.region_ids,
                                    lf.source_space.normals, lf.source_space.free_ori,
                                    lf.source_space.adjacency, lf.source_space.spacing)
    with pytest.raises(ValueError, match="differ from the source space"):
        leadfield_from_forward(fwd, shifted)


def _evoked(lf, n_times=40, seed=1):
    import mne

    rng = np.random.default_rng(seed)
    scale = np.where(np.array(lf.ch_types) == "eeg", 1e-6, 1e-13)[:, None]
    return mne.EvokedArray(rng.normal(size=(lf.n_channels, n_times)) * scale, lf.info.copy(),
                           tmin=0.0, verbose=False)


def test_mne_inverse_accepts_forward(lf):
    import mne

    fwd = leadfield_to_forward(lf)
    evoked = _evoked(lf)  # lf.info carries the average-reference projector MNE requires
    cov = mne.make_ad_hoc_cov(evoked.info, verbose=False)
    inv = mne.minimum_norm.make_inverse_operator(evoked.info, fwd, cov, loose=1.0, depth=0.8,
                                                 verbose=False)
    stc = mne.minimum_norm.apply_inverse(evoked, inv, 1.0 / 9.0, "dSPM", verbose=False)
    assert stc.data.shape == (lf.n_sources, evoked.data.shape[1])
    assert np.all(np.isfinite(stc.data))


def test_mne_lcmv_accepts_forward(lf):
    import mne

    fwd = leadfield_to_forward(lf)
    rng = np.random.default_rng(2)
    scale = np.where(np.array(lf.ch_types) == "eeg", 1e-6, 1e-13)[:, None]
    epochs = mne.EpochsArray(rng.normal(size=(30, lf.n_channels, 60)) * scale, lf.info.copy(),
                             verbose=False)
    data_cov = mne.compute_covariance(epochs, verbose=False)
    noise_cov = mne.make_ad_hoc_cov(epochs.info, verbose=False)
    filters = mne.beamformer.make_lcmv(epochs.info, fwd, data_cov, reg=0.05, noise_cov=noise_cov,
                                       pick_ori="max-power", verbose=False)
    stc = mne.beamformer.apply_lcmv(epochs.average(), filters)
    assert stc.data.shape[0] == lf.n_sources and np.all(np.isfinite(stc.data))


def test_apply_forward_matches_oriented_gain(lf):
    """mne.apply_forward of a unit dipole along the source normal equals deepesi's column."""
    import mne

    fwd = leadfield_to_forward(lf)
    gain, index = lf.oriented()
    i = int(np.flatnonzero(~lf.source_space.free_ori)[7])
    amp = np.zeros((lf.n_sources, 1))
    amp[i] = 1e-8
    stc = mne.VolSourceEstimate(amp, [np.arange(lf.n_sources)], tmin=0.0, tstep=1e-3)
    evoked = mne.apply_forward(fwd, stc, lf.info, use_cps=False, verbose=False)
    col = int(np.flatnonzero(index == i)[0])
    np.testing.assert_allclose(evoked.data[:, 0], gain[:, col] * 1e-8, rtol=1e-7,
                               atol=1e-9 * np.abs(gain[:, col]).max() * 1e-8)
