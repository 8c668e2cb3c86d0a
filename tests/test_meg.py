"""MEG lead field (one-layer BEM on the inner skull) against MNE's spherical model."""

from __future__ import annotations

import numpy as np
import pytest

from deepesi.forward.meg import compute_meg_leadfield, discrete_source_space
from deepesi.sensors import sensors_from_info
from helpers_meg import helmet_info


@pytest.fixture(scope="module")
def sphere_setup():
    """Sphere head, random sources and the reference gain of MNE's sphere model (MRI frame)."""
    import mne

    from conftest import make_sphere_labels
    from deepesi.anatomy import HeadModel

    vol, affine = make_sphere_labels()
    head = HeadModel(vol, affine, name="sphere")
    rng = np.random.default_rng(0)
    d = rng.normal(size=(40, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    pos = d * rng.uniform(0.01, 0.052, size=(40, 1))
    eye = np.eye(4)
    info_ref = helmet_info(eye)
    sphere = mne.make_sphere_model(r0=(0.0, 0.0, 0.0), head_radius=None, verbose=False)
    fwd = mne.make_forward_solution(
        info_ref, mne.transforms.Transform("head", "mri", eye), discrete_source_space(pos),
        sphere, meg=True, eeg=False, verbose=False,
    )
    ref = fwd["sol"]["data"].reshape(len(info_ref["ch_names"]), len(pos), 3)
    return head, pos, ref, info_ref["ch_names"]


def _rigid(rx, ry, rz, t):
    import mne

    mat = mne.transforms.rotation(rx, ry, rz)
    mat[:3, 3] = t
    return mat


@pytest.mark.parametrize("trans", [np.eye(4), _rigid(0.2, -0.3, 0.5, [0.004, -0.02, 0.03])])
def test_meg_gain_matches_sphere_model(sphere_setup, trans):
    head, pos, ref, names = sphere_setup
    info = helmet_info(trans)  # same sensors in the MRI frame, described in a rotated head frame
    sensors = sensors_from_info(info, trans, head, picks=("meg",))
    gain, ch_names, ch_types, meta = compute_meg_leadfield(head, sensors, pos, grade=3,
                                                           verbose=False)
    assert ch_names == names and gain.shape == (len(names), len(pos), 3)
    assert set(ch_types) == {"mag", "grad"} and meta["bem_triangles"] == 1280
    corr = [np.corrcoef(gain[:, i].ravel(), ref[:, i].ravel())[0, 1] for i in range(len(pos))]
    assert min(corr) > 0.99
    rel = np.linalg.norm(gain - ref) / np.linalg.norm(ref)
    assert rel < 0.03


def test_radial_dipole_is_silent(sphere_setup):
    """In a spherical conductor a radial dipole produces no external magnetic field."""
    head, _, _, _ = sphere_setup
    info = helmet_info(np.eye(4))
    sensors = sensors_from_info(info, np.eye(4), head, picks=("meg",))
    pos = np.array([[0.0, 0.02, 0.03]])
    gain, _, types, _ = compute_meg_leadfield(head, sensors, pos, grade=3, verbose=False)
    mags = np.array(types) == "mag"
    radial = gain[mags, 0] @ (pos[0] / np.linalg.norm(pos[0]))
    tangential = gain[mags, 0] @ np.array([1.0, 0.0, 0.0])
    assert np.abs(radial).max() < 0.05 * np.abs(tangential).max()


def test_meg_needs_meg_channels(sphere_head):
    from deepesi.sensors import make_eeg_sensors

    fid = {"nasion": [0, 0.07, 0], "lpa": [-0.07, 0, 0], "rpa": [0.07, 0, 0]}
    eeg = make_eeg_sensors(sphere_head, "standard_1020", ch_names=["Cz", "Fz"],
                           mri_fiducials=fid)
    with pytest.raises(ValueError, match="no MEG channels"):
        compute_meg_leadfield(sphere_head, eeg, np.zeros((1, 3)), verbose=False)
