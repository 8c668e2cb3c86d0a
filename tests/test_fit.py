"""Goodness of fit of a map's peaks (deepesi.inverse.fit), for the network and the classical
methods, against known dipoles."""

from __future__ import annotations

import logging

import mne
import numpy as np
import pytest

from deepesi.inverse import SourceMap, apply_classical, apply_network, read_source_map
from deepesi.inverse.fit import fit_dipoles, map_fit
from deepesi.simulation.sphere import make_sphere_leadfield

mne.set_log_level("WARNING")


class PointModel:
    """A stand-in network whose map is a Gaussian blob at a chosen source point."""

    def __init__(self, lf, centre: int):
        self.ch_names, self.ch_types = list(lf.ch_names), list(lf.ch_types)
        self.n_sources = lf.n_sources
        self.source_space = lf.source_space
        self.source_space_hash = lf.source_space.hash()
        self.channel_scale = np.full(lf.n_channels, 1e-6)
        self.whitener = None
        d = np.linalg.norm(lf.source_space.pos - lf.source_space.pos[centre], axis=1)
        self.map = np.exp(-0.5 * (d / 0.01) ** 2)

    def predict(self, data):
        return np.repeat(self.map[:, None], data.shape[1], axis=1)


@pytest.fixture(scope="module")
def setup():
    lf = make_sphere_leadfield(spacing=0.012)
    src = lf.source_space
    true = int(np.flatnonzero(~src.is_subcortical)[40])
    moment = np.array([1.0, -0.5, 0.3]) * 1e-8
    wave = np.exp(-0.5 * ((np.arange(9) - 4) / 1.5) ** 2)
    signal = (lf.gain[:, true] @ moment)[:, None] * wave
    rng = np.random.default_rng(0)
    noise = 0.05e-6 * rng.standard_normal(signal.shape)
    noise -= noise.mean(axis=0)
    info = mne.create_info(list(lf.ch_names), 250.0, "eeg")
    evoked = mne.EvokedArray(signal + noise, info, tmin=-0.016, nave=1)
    cov = mne.make_ad_hoc_cov(info, std={"eeg": 0.05e-6})
    return lf, true, evoked, cov


def test_fit_dipoles_exact_and_empty(setup):
    lf, true, _, _ = setup
    g = lf.gain / 1e-6  # whitened by a white 1 µV noise
    x = g[:, true] @ np.array([1e-8, 2e-8, 0.0])
    gof, q = fit_dipoles(g, x, np.array([true]))
    assert gof == pytest.approx(1.0, abs=1e-10)
    np.testing.assert_allclose(q[0], [1e-8, 2e-8, 0.0], rtol=1e-6, atol=1e-15)
    assert fit_dipoles(g, x, np.array([], int))[0] == 0.0
    other = int(np.argmax(np.linalg.norm(lf.source_space.pos - lf.source_space.pos[true],
                                         axis=1)))
    assert fit_dipoles(g, x, np.array([other]))[0] < 0.9


def test_network_fit_right_and_wrong_map(setup, caplog):
    lf, true, evoked, cov = setup
    good = apply_network(evoked, PointModel(lf, true), noise_cov=cov, forward=lf)
    assert good.goodness_of_fit > 0.95
    assert good.fit["support"][0] == true and not good.fit["poor"]
    assert good.fit["best_dipole_gof"] == pytest.approx(good.goodness_of_fit, abs=0.02)
    far = int(np.argmax(np.linalg.norm(lf.source_space.pos - lf.source_space.pos[true], axis=1)))
    with caplog.at_level(logging.WARNING, logger="deepesi"):
        bad = apply_network(evoked, PointModel(lf, far), noise_cov=cov, forward=lf)
    assert bad.fit["poor"] and bad.goodness_of_fit < good.goodness_of_fit - 0.2
    assert "explain" in caplog.text
    assert "GOF" in repr(bad)
    # no forward: no fit, and refine needs one
    assert apply_network(evoked, PointModel(lf, true), noise_cov=cov).fit == {}
    with pytest.raises(ValueError, match="needs the model's forward"):
        apply_network(evoked, PointModel(lf, true), refine=True)


def test_refine_moves_a_peak_one_step_back(setup):
    lf, true, evoked, cov = setup
    src = lf.source_space
    nb = src.adjacency[true].indices
    off = int(nb[np.argmin(np.linalg.norm(src.pos[nb] - src.pos[true], axis=1))])
    res = apply_network(evoked, PointModel(lf, off), noise_cov=cov, forward=lf, refine=True)
    assert res.fit["support"][0] == off
    assert res.fit["refined_support"][0] == true
    assert res.fit["refined_gof"] > res.goodness_of_fit


def test_classical_methods_report_their_fit(setup, tmp_path):
    lf, true, evoked, cov = setup
    for method in ("dSPM", "dipole_scan"):
        res = apply_classical(evoked, method, lf, cov)
        assert 0.0 <= res.goodness_of_fit <= 1.0
        assert res.fit["time"] == pytest.approx(res.peak_time)
    scan = apply_classical(evoked, "dipole_scan", lf, cov)
    assert scan.fit["support"] == [true]
    assert scan.goodness_of_fit == pytest.approx(scan.fit["best_dipole_gof"], abs=1e-9)
    folder = scan.save(tmp_path / "scan")
    back = read_source_map(folder)
    assert back.goodness_of_fit == pytest.approx(scan.goodness_of_fit)
    assert back.fit["support"] == [true]


def test_map_fit_without_data():
    lf = make_sphere_leadfield(spacing=0.012)
    vals = np.zeros(lf.n_sources)
    vals[3] = 1.0
    out = map_fit(vals, lf.source_space, lf.gain, np.zeros(lf.n_channels), time=0.0)
    assert out["gof"] == 0.0 and out["best_dipole_gof"] is None and not out["poor"]
    assert isinstance(SourceMap.from_amplitudes(vals, [0.0], lf.source_space).fit, dict)


def test_poor_fit_is_relative_at_low_snr(setup):
    """At a low whitened SNR the best single dipole explains little; a map explaining less than
    half of that is flagged although it is within the 20-point margin."""
    lf, true, _, _ = setup
    rng = np.random.default_rng(3)
    gain_w = lf.gain / 1e-6
    signal = gain_w[:, true] @ np.array([1.0, -0.5, 0.3]) * 1e-8
    x_w = signal + rng.standard_normal(signal.shape) * 2 * np.linalg.norm(signal) / np.sqrt(
        signal.size)
    pos = lf.source_space.pos
    d = np.linalg.norm(pos - pos[true], axis=1)
    at_true = map_fit(np.exp(-0.5 * (d / 0.01) ** 2), lf.source_space, gain_w, x_w, time=0.0)
    assert 0.03 < at_true["best_dipole_gof"] < 0.25 and not at_true["poor"]
    # the point whose dipole explains the least (a far one on the sphere still explains some)
    single = [fit_dipoles(gain_w, x_w, np.array([j]))[0] for j in range(lf.n_sources)]
    far = int(np.argmin(single))
    d_far = np.linalg.norm(pos - pos[far], axis=1)
    wrong = map_fit(np.exp(-0.5 * (d_far / 0.01) ** 2), lf.source_space, gain_w, x_w, time=0.0)
    assert wrong["gof"] > wrong["best_dipole_gof"] - 0.2  # the margin alone would pass it
    assert wrong["gof"] < 0.5 * wrong["best_dipole_gof"] and wrong["poor"]
