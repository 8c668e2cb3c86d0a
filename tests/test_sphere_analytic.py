"""The analytic multi-shell sphere: series vs closed forms, limits, MNE, metrics, voxelisation."""

from __future__ import annotations

import numpy as np
import pytest

from deepesi.forward.sphere import (
    FOUR_SHELL_RADII_M,
    FOUR_SHELL_SIGMA,
    fibonacci_sphere_points,
    homogeneous_sphere_potential,
    mag,
    make_sphere_head,
    rdm,
    shell_coefficients,
    sphere_potential,
)


def _random_dipoles(rng, n, radius, ecc):
    d = rng.normal(size=(n, 3))
    d /= np.linalg.norm(d, axis=1)[:, None]
    return d * np.asarray(ecc)[:, None] * radius, rng.normal(size=(n, 3)) * 1e-8


def test_homogeneous_series_matches_closed_form():
    rng = np.random.default_rng(1)
    el = fibonacci_sphere_points(60, 0.09)
    pos, mom = _random_dipoles(rng, 6, 0.09, [0.05, 0.2, 0.5, 0.8, 0.9, 0.95])
    series = sphere_potential(pos, mom, el, [0.09], [0.33])
    closed = homogeneous_sphere_potential(pos, mom, el, 0.09, 0.33)
    assert np.abs(series - closed).max() < 1e-9 * np.abs(closed).max()


def test_centred_dipole_cosine_law():
    el = fibonacci_sphere_points(40, 0.09)
    q = 2e-8
    v = sphere_potential([[0.0, 0.0, 0.0]], [[0.0, 0.0, q]], el, [0.09], [0.33])[:, 0]
    expected = 3 * q * (el[:, 2] / 0.09) / (4 * np.pi * 0.33 * 0.09**2)
    np.testing.assert_allclose(v, expected, rtol=1e-12)


def test_equal_conductivities_reduce_to_homogeneous():
    rng = np.random.default_rng(2)
    el = fibonacci_sphere_points(30, 0.092)
    pos, mom = _random_dipoles(rng, 4, 0.078, [0.1, 0.5, 0.9, 0.98])
    multi = sphere_potential(pos, mom, el, FOUR_SHELL_RADII_M, [0.33] * 4)
    homog = homogeneous_sphere_potential(pos, mom, el, 0.092, 0.33)
    assert np.abs(multi - homog).max() < 1e-9 * np.abs(homog).max()


def test_shell_coefficients_homogeneous():
    n = np.arange(1, 21)
    np.testing.assert_allclose(shell_coefficients(20, [0.09], [1.0]), (2 * n + 1) / n)


def test_four_shell_matches_mne_berg_approximation():
    """MNE's EEG sphere forward (Berg dipoles, independent code) agrees to well under 1 %."""
    mne = pytest.importorskip("mne")

    rng = np.random.default_rng(3)
    el = fibonacci_sphere_points(32, 0.092, upper_only=True)
    pos, _ = _random_dipoles(rng, 4, 0.078, [0.1, 0.5, 0.8, 0.95])
    names = [f"E{i}" for i in range(len(el))]
    info = mne.create_info(names, 1000.0, "eeg")
    info.set_montage(mne.channels.make_dig_montage(dict(zip(names, el)), coord_frame="head"))
    sphere = mne.make_sphere_model(
        r0=(0.0, 0.0, 0.0), head_radius=0.092,
        relative_radii=tuple(r / 0.092 for r in FOUR_SHELL_RADII_M[::-1]),
        sigmas=FOUR_SHELL_SIGMA[::-1], verbose=False,
    )
    src = mne.setup_volume_source_space(
        pos=dict(rr=pos, nn=np.tile([0.0, 0.0, 1.0], (4, 1))), sphere=sphere, verbose=False
    )
    fwd = mne.make_forward_solution(info, None, src, sphere, eeg=True, meg=False, verbose=False)
    gain_mne = fwd["sol"]["data"].reshape(len(el), len(pos), 3)
    ours = np.stack(
        [sphere_potential(pos, np.tile(np.eye(3)[k], (4, 1)), el) for k in range(3)], axis=2
    )
    for s in range(len(pos)):
        for k in range(3):
            assert rdm(ours[:, s, k], gain_mne[:, s, k]) < 5e-3
            assert abs(mag(ours[:, s, k], gain_mne[:, s, k]) - 1) < 5e-3


def test_more_conductive_skull_gives_larger_scalp_potentials():
    rng = np.random.default_rng(4)
    el = fibonacci_sphere_points(40, 0.092)
    pos, mom = _random_dipoles(rng, 3, 0.078, [0.2, 0.6, 0.9])
    sig_hi = list(FOUR_SHELL_SIGMA)
    sig_hi[1] = 0.03
    lo = sphere_potential(pos, mom, el)
    hi = sphere_potential(pos, mom, el, FOUR_SHELL_RADII_M, sig_hi)
    assert np.all(np.linalg.norm(hi - hi.mean(0), axis=0) > np.linalg.norm(lo - lo.mean(0), axis=0))


def test_rotation_invariance():
    rng = np.random.default_rng(5)
    el = fibonacci_sphere_points(20, 0.092)
    pos, mom = _random_dipoles(rng, 2, 0.078, [0.3, 0.9])
    rot, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    v = sphere_potential(pos, mom, el)
    w = sphere_potential(pos @ rot.T, mom @ rot.T, el @ rot.T)
    np.testing.assert_allclose(v, w, rtol=1e-9, atol=1e-15)


def test_bad_inputs():
    el = fibonacci_sphere_points(10, 0.092)
    with pytest.raises(ValueError, match="innermost shell"):
        sphere_potential([[0.0, 0.0, 0.079]], [[0, 0, 1.0]], el)
    with pytest.raises(ValueError, match="decreasing"):
        sphere_potential([[0.0, 0.0, 0.01]], [[0, 0, 1.0]], el, [0.08, 0.09], [1.0, 1.0])
    with pytest.raises(ValueError, match="> 0"):
        sphere_potential([[0.0, 0.0, 0.01]], [[0, 0, 1.0]], el, [0.09, 0.08], [1.0, 0.0])
    with pytest.raises(ValueError, match="NaN"):
        sphere_potential([[np.nan, 0.0, 0.01]], [[0, 0, 1.0]], el)


def test_metrics():
    x = np.random.default_rng(6).normal(size=(30, 4))
    np.testing.assert_allclose(rdm(2.5 * x, x), 0.0, atol=1e-12)
    np.testing.assert_allclose(mag(2.5 * x, x), 2.5)
    np.testing.assert_allclose(rdm(-x, x), 2.0)


def test_make_sphere_head_volumes():
    head = make_sphere_head(4.0)
    head.check_forward_ready()
    vols = head.volumes_ml()
    r = np.array(FOUR_SHELL_RADII_M) * 100  # cm
    shell = 4 / 3 * np.pi * (r**3 - np.append(r[1:], 0) ** 3)
    for name, expected in zip(("Scalp", "Bone", "CSF", "GM"), shell, strict=True):
        assert abs(vols[name] - expected) < 0.15 * expected
    assert head.tissues["Bone"].conductivity == pytest.approx(0.01)
    assert head.tissues["CSF"].conductivity == pytest.approx(1.79)
