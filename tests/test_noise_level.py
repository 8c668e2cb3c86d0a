"""The noise of a recording measured on its baseline: level and independent samples."""

from __future__ import annotations

import mne
import numpy as np
import pytest

from deepesi.inverse.noise_level import baseline_noise, effective_samples_from_correlation


def test_effective_samples_of_white_constant_and_ar1_noise():
    assert effective_samples_from_correlation(np.array([1.0]), 13) == pytest.approx(13)
    assert effective_samples_from_correlation(np.ones(20), 13) == pytest.approx(1)
    rho = 0.8 ** np.arange(30)  # AR(1): the participation ratio of its Toeplitz matrix
    c = rho[np.abs(np.arange(13)[:, None] - np.arange(13)[None])]
    expected = np.trace(c) ** 2 / np.trace(c @ c)
    assert effective_samples_from_correlation(rho, 13) == pytest.approx(expected)
    assert 1 < expected < 13


def _evoked(n_pre, sd, rho, seed=0, n_ch=32, n_post=20):
    rng = np.random.default_rng(seed)
    e = rng.standard_normal((n_ch, n_pre + n_post))
    x = np.empty_like(e)
    x[:, 0] = e[:, 0]
    for t in range(1, x.shape[1]):  # AR(1) with unit stationary variance
        x[:, t] = rho * x[:, t - 1] + np.sqrt(1 - rho**2) * e[:, t]
    info = mne.create_info([f"E{i}" for i in range(n_ch)], 500.0, "eeg")
    return mne.EvokedArray(sd * x, info, tmin=-n_pre / 500.0, verbose=False)


def test_baseline_noise_measures_level_and_correlation():
    ev = _evoked(400, 2.0, 0.7)
    names = list(ev.ch_names)
    m = baseline_noise(ev, names, np.eye(len(names)))
    assert m.n_samples == 400
    assert m.variance == pytest.approx(4.0, rel=0.1)
    assert m.autocorrelation[1] == pytest.approx(0.7, abs=0.05)
    true = effective_samples_from_correlation(0.7 ** np.arange(40), 13)
    assert m.effective_samples(13) == pytest.approx(true, rel=0.15)
    assert m.to_dict(13)["variance_ratio"] == pytest.approx(m.variance, abs=1e-3)
    # a whitener that halves the channels' scale measures a quarter of the variance
    assert baseline_noise(ev, names, 0.5 * np.eye(len(names))).variance == pytest.approx(
        m.variance / 4)


def test_no_baseline_no_measure():
    names = [f"E{i}" for i in range(32)]
    assert baseline_noise(_evoked(10, 1.0, 0.0), names, np.eye(32)) is None  # too short
    ev = _evoked(100, 1.0, 0.0)
    raw = mne.io.RawArray(ev.data, ev.info, verbose=False)
    assert baseline_noise(raw, names, np.eye(32)) is None  # no stimulus in Raw
    assert baseline_noise(ev, [*names[:-1], "missing"], np.eye(32)) is None
