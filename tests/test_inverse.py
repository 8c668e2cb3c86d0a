"""deepesi.inverse: one result (SourceMap) and one peak definition for the network and every
classical method; operators built once and applied to many recordings."""

from __future__ import annotations

import mne
import numpy as np
import pytest

from deepesi.forward.io import _fallback_source_space
from deepesi.inverse import (
    CLASSICAL_METHODS,
    SourceMap,
    apply_classical,
    apply_network,
    check_method,
    make_classical,
)
from localize_helpers import CH_NAMES, StandInModel

mne.set_log_level("WARNING")
SFREQ = 500.0


@pytest.fixture(scope="module")
def setup():
    """19-channel 10-20 EEG on a sphere, a 20 mm volume grid, ad-hoc noise, one evoked dipole."""
    sphere = mne.make_sphere_model(r0=(0.0, 0.0, 0.04), head_radius=0.09)
    vol = mne.setup_volume_source_space(pos=20.0, sphere=sphere, sphere_units="m", exclude=5.0)
    info = mne.create_info(CH_NAMES, SFREQ, "eeg")
    info.set_montage("easycap-M1")
    fwd = mne.make_forward_solution(info, None, vol, sphere, meg=False, eeg=True)
    cov = mne.make_ad_hoc_cov(info)
    src = _fallback_source_space(fwd)
    n_t = 30
    wave = np.exp(-0.5 * ((np.arange(n_t) - 17) / 3.0) ** 2)  # peaks at sample 17
    gain = fwd["sol"]["data"].reshape(len(CH_NAMES), -1, 3)
    i = int(np.argmin(np.linalg.norm(fwd["source_rr"] - [0.03, 0.0, 0.07], axis=1)))
    signal = (gain[:, i] @ np.array([0.0, 0.6, 0.8]))[:, None] * wave[None] * 2e-8
    noise = 0.2e-6 * np.random.default_rng(0).standard_normal(signal.shape)
    evoked = mne.EvokedArray(signal + noise, info, tmin=-0.01, nave=4)
    return fwd, cov, src, evoked


def _whitened_gfp_peak(evoked, cov) -> float:
    ev = evoked.copy().set_eeg_reference("average", projection=True)
    w, _ = mne.cov.compute_whitener(cov, ev.info, pca=True)
    return float(ev.times[np.argmax(np.sum((w @ ev.data) ** 2, axis=0))])


@pytest.mark.filterwarnings("ignore:.*Convergence NOT reached")
def test_network_and_every_classical_method_give_the_same_fields(setup):
    fwd, cov, src, evoked = setup
    model = StandInModel(src)
    expected_peak = _whitened_gfp_peak(evoked, cov)
    results = {"deepesi": apply_network(evoked, model, source_space=src, noise_cov=cov)}
    for method in CLASSICAL_METHODS:
        options = {"maxit": 30} if method == "gamma_map" else None
        results[method] = apply_classical(evoked, method, fwd, cov, source_space=src,
                                          options=options)
    for name, res in results.items():
        assert isinstance(res, SourceMap), name
        assert res.method == name
        assert res.amplitudes.shape == (src.n_sources, len(evoked.times)), name
        assert (res.amplitudes >= 0).all(), name
        np.testing.assert_allclose(res.times, evoked.times)
        assert res.source_space.hash() == src.hash()
        assert isinstance(res.units, str) and res.units
        assert isinstance(res.params, dict) and res.params["tmin"] == pytest.approx(-0.01)
        # one peak definition: the data's whitened global field power, the same sample for all
        assert res.peak_time == pytest.approx(expected_peak), name
        table = res.peaks(3)
        assert all(r["time"] == pytest.approx(expected_peak) for r in table)
        np.testing.assert_allclose(res.map_at(), res.amplitudes[:, res.sample()])
        stc = res.to_stc()
        assert stc.data.shape == res.amplitudes.shape and stc.tmin == pytest.approx(-0.01)
    assert expected_peak == pytest.approx(-0.01 + 17 / SFREQ)


def test_operator_built_once_applies_like_the_one_call(setup):
    fwd, cov, src, evoked = setup
    for method in ("dSPM", "eLORETA", "dipole_scan", "LCMV"):
        op = make_classical(method, evoked.info, fwd, cov, source_space=src)
        once = apply_classical(evoked, method, fwd, cov, source_space=src)
        np.testing.assert_allclose(op.apply(evoked).amplitudes, once.amplitudes, rtol=1e-10,
                                   err_msg=method)
        # another recording with the same channels (other nave: re-prepared for it)
        other = evoked.copy()
        other.nave = 1
        other.data = other.data[:, ::-1].copy()
        np.testing.assert_allclose(
            op.apply(other).amplitudes,
            apply_classical(other, method, fwd, cov, source_space=src).amplitudes,
            rtol=1e-10, err_msg=method,
        )
    assert "dSPM" in repr(make_classical("dspm", evoked.info, fwd, cov))


def test_operator_refuses_other_channels(setup):
    fwd, cov, _, evoked = setup
    op = make_classical("MNE", evoked.info, fwd, cov)
    bad = evoked.copy()
    bad.info["bads"] = ["Cz"]
    with pytest.raises(ValueError, match=r"lacks \(or marks bad\) \['Cz'\]"):
        op.apply(bad)


def test_classical_takes_raw_and_epochs(setup):
    fwd, cov, _, evoked = setup
    raw = mne.io.RawArray(evoked.data, evoked.info, first_samp=0)
    epochs = mne.EpochsArray(np.stack([evoked.data] * 3), evoked.info, tmin=evoked.tmin)
    ref = apply_classical(evoked, "sLORETA", fwd, cov)
    from_raw = apply_classical(raw, "sLORETA", fwd, cov)  # a raw window: nave 1
    from_epochs = apply_classical(epochs, "sLORETA", fwd, cov)  # averaged: nave 3
    assert from_raw.peak_time == pytest.approx(ref.peak_time - evoked.tmin)
    assert from_epochs.peak_time == pytest.approx(ref.peak_time)
    assert from_raw.peaks(1)[0]["source"] == ref.peaks(1)[0]["source"]
    assert from_epochs.peaks(1)[0]["source"] == ref.peaks(1)[0]["source"]


def test_method_names():
    assert check_method("Mixed_Norm") == "MxNE"
    assert check_method(" gamma-map ") == "gamma_map"
    assert check_method("DIPOLE") == "dipole_scan"
    with pytest.raises(ValueError, match="unknown method 'bogus'"):
        check_method("bogus")
    with pytest.raises(TypeError, match="method must be"):
        check_method(3)
