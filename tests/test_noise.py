"""Realistic training noise: the noise bank from a recording and the brain background."""

from __future__ import annotations

import mne
import numpy as np
import pytest

from deepesi.simulation import (
    NoiseBank,
    SimulationConfig,
    Simulator,
    make_noise_bank,
    read_noise_bank,
)
from deepesi.simulation.noise import brain_noise, pink_noise
from deepesi.simulation.sphere import make_sphere_leadfield

SFREQ = 200.0


@pytest.fixture(scope="module")
def lf():
    return make_sphere_leadfield(spacing=0.015)


def _epochs(ch_names, n_epochs=60, seed=0):
    """Epochs of spatially mixed AR(1) noise (known structure) and an evoked bump after 0 s."""
    rng = np.random.default_rng(seed)
    n_ch, n_t = len(ch_names), 80
    mixing = rng.standard_normal((n_ch, n_ch)) * 1e-6 / np.sqrt(n_ch)
    z = rng.standard_normal((n_epochs, n_ch, n_t))
    for t in range(1, n_t):  # AR(1): temporal structure a covariance does not carry
        z[:, :, t] = 0.8 * z[:, :, t - 1] + 0.6 * z[:, :, t]
    x = np.einsum("cd,edt->ect", mixing, z)
    times = np.arange(n_t) / SFREQ - 0.2
    x += 5e-6 * np.exp(-((times - 0.1) / 0.02) ** 2) * rng.standard_normal((n_ch, 1))
    info = mne.create_info(list(ch_names), SFREQ, "eeg")
    return mne.EpochsArray(x, info, tmin=-0.2, baseline=(None, 0), verbose=False)


def test_bank_reproduces_baseline_covariance(lf):
    epochs = _epochs(lf.ch_names)
    bank = make_noise_bank(epochs, verbose=False)
    assert len(bank.segments) == 60 and bank.segments[0].shape == (lf.n_channels, 41)
    ref = mne.compute_covariance(epochs, tmax=0.0, method="empirical", verbose=False).data
    draws = bank.draw(4000, 5, rng=1)
    cov = np.einsum("nct,ndt->cd", draws, draws) / (draws.shape[0] * draws.shape[2])
    err = np.linalg.norm(cov - ref) / np.linalg.norm(ref)
    assert err < 0.1, err
    # the temporal structure is kept: lag-1 autocorrelation near the AR coefficient
    lag1 = np.sum(draws[:, :, 1:] * draws[:, :, :-1]) / np.sum(draws[:, :, :-1] ** 2)
    assert 0.7 < lag1 < 0.9, lag1
    # the response after 0 s is not in the bank
    assert np.abs(np.concatenate(bank.segments, axis=1)).max() < 2e-5


def test_bank_from_evoked_and_raw_and_errors(lf, tmp_path):
    epochs = _epochs(lf.ch_names)
    ev_bank = make_noise_bank(epochs.average(), verbose=False)
    assert len(ev_bank.segments) == 1 and ev_bank.n_windows(5) == 41 - 4
    raw = mne.io.RawArray(np.concatenate(list(epochs.get_data()), axis=1), epochs.info,
                          verbose=False)
    raw_bank = make_noise_bank(raw, tmax=2.0, verbose=False)
    assert raw_bank.segments[0].shape[1] == 401
    assert np.allclose(raw_bank.segments[0].mean(axis=1), 0.0, atol=1e-20)
    path = ev_bank.save(tmp_path / "bank.npz")
    back = read_noise_bank(path)
    assert back.ch_names == ev_bank.ch_names
    assert np.allclose(back.segments[0], ev_bank.segments[0], rtol=1e-12, atol=1e-24)
    with pytest.raises(FileExistsError):
        ev_bank.save(path)
    with pytest.raises(ValueError, match="lacks 1 channel"):
        ev_bank.rows_for([*lf.ch_names[:3], "Cz-missing"])
    with pytest.raises(ValueError, match="shorter than"):
        ev_bank.draw(2, 500)
    with pytest.raises(ValueError, match="noise window"):
        make_noise_bank(epochs, tmin=0.3, tmax=0.3)
    with pytest.raises(TypeError, match="noise_bank must be"):
        SimulationConfig(noise_bank=np.zeros((3, 3)))


def test_simulator_draws_bank_noise(lf):
    epochs = _epochs(lf.ch_names, seed=3)
    bank = make_noise_bank(epochs, verbose=False)
    cfg = SimulationConfig(n_times=5, sfreq=SFREQ, snr_db=(-40.0, -40.0), noise_bank=bank,
                           bank_noise_fraction=(1.0, 1.0), n_sources=(1, 1))
    x = Simulator(lf, cfg).simulate(2000, 0).data.astype(float)
    cov = np.einsum("nct,ndt->cd", x, x)
    p = np.eye(lf.n_channels) - 1.0 / lf.n_channels  # the simulator's average reference
    ref = p @ bank.covariance() @ p
    iu = np.triu_indices(lf.n_channels)
    assert np.corrcoef(cov[iu], ref[iu])[0, 1] > 0.97
    assert cfg.to_dict()["noise_bank"].startswith("epochs baseline")
    # the same seed, the same data; without the bank, another noise
    again = Simulator(lf, cfg).simulate(2000, 0).data
    assert np.array_equal(again, x.astype(np.float32))


def test_pink_noise_spectrum():
    x = pink_noise((200, 1024), 1.0, np.random.default_rng(0))
    assert np.allclose(x.std(axis=1), 1.0)
    psd = np.mean(np.abs(np.fft.rfft(x, axis=1)) ** 2, axis=0)
    f = np.arange(len(psd))
    sel = (f > 4) & (f < 200)
    slope = np.polyfit(np.log(f[sel]), np.log(psd[sel]), 1)[0]
    assert -1.2 < slope < -0.8, slope


def test_brain_noise_is_in_the_span_of_the_gain(lf):
    gain_flat = np.ascontiguousarray(lf.gain.reshape(lf.n_channels, -1).T)
    bg = brain_noise(gain_flat, 8, 6, n_sources=50, exponent=1.0,
                     rng=np.random.default_rng(2))
    assert bg.shape == (8, lf.n_channels, 6) and np.isfinite(bg).all()
    # each sample is a sum of 50 dipole fields: fits the gain's column space exactly
    coef, *_ = np.linalg.lstsq(gain_flat.T, bg[0], rcond=None)
    assert np.linalg.norm(gain_flat.T @ coef - bg[0]) < 1e-8 * np.linalg.norm(bg[0])
    again = brain_noise(gain_flat, 8, 6, n_sources=50, exponent=1.0,
                        rng=np.random.default_rng(2))
    assert np.array_equal(bg, again)


def test_brain_noise_in_the_simulator_changes_only_the_noise(lf):
    base = SimulationConfig(n_times=4, n_sources=(1, 1))
    with_bg = SimulationConfig(n_times=4, n_sources=(1, 1), brain_noise_fraction=(0.5, 0.5))
    a = Simulator(lf, base).simulate(16, 5)
    b = Simulator(lf, with_bg).simulate(16, 5)
    assert np.array_equal(a.centres, b.centres)  # sources are drawn before the noise
    assert not np.allclose(a.data, b.data)


def test_noise_bank_validates_segments():
    with pytest.raises(ValueError, match="segment 0 has shape"):
        NoiseBank([np.zeros((3, 4))], ["a", "b"], 100.0)
    with pytest.raises(ValueError, match="NaN"):
        NoiseBank([np.full((2, 4), np.nan)], ["a", "b"], 100.0)


def test_cli_train_with_recording_noise_and_brain_noise(lf, tmp_path, capsys):
    from deepesi.cli import main
    from deepesi.forward.io import write_forward
    from deepesi.training import read_model

    fwd = write_forward(lf, tmp_path / "m-fwd.fif")
    epochs = _epochs(lf.ch_names, n_epochs=10)
    epochs.save(tmp_path / "rec-epo.fif", verbose=False)
    common = ["--forward", str(fwd), "--epochs", "1", "--batches-per-epoch", "2",
              "--batch-size", "8", "--hidden", "16", "--workers", "0", "--quiet"]
    assert main(["train", "-o", str(tmp_path / "m.pt"), *common, "--noise-from",
                 str(tmp_path / "rec-epo.fif"), "--brain-noise", "0", "0.5"]) == 0
    model = read_model(tmp_path / "m.pt")
    assert model.sim_config["noise_bank"].startswith("epochs baseline")
    assert model.sim_config["brain_noise_fraction"] == [0.0, 0.5]
    assert main(["train", "-o", str(tmp_path / "e.pt"), *common, "--ensemble", "3"]) == 2
    assert "--ensemble redraws the head" in capsys.readouterr().err
