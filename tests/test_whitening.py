"""Tests of noise whitening: the whitener's algebra, whitened-SNR simulation and whitened nets."""

from __future__ import annotations

import mne
import numpy as np
import pytest
import torch

from deepesi.simulation import SimulationConfig, Simulator
from deepesi.simulation.sphere import make_sphere_leadfield
from deepesi.training import normalise_input, read_model, train_model
from deepesi.whitening import (
    make_whitener,
    noise_cov_matrix,
    reference_projector,
    regularize_cov,
    ssp_projector,
    zca_whitener,
)


def _random_cov(n: int, seed: int, cond: float = 1e4) -> np.ndarray:
    """A random SPD matrix with log-spread eigenvalues (condition number ``cond``)."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    return (q * np.logspace(0, np.log10(cond), n)) @ q.T * 1e-12


@pytest.fixture(scope="module")
def lf():
    torch.set_num_threads(1)
    return make_sphere_leadfield(n_channels=24)


def test_zca_whitener_whitens_and_keeps_channels():
    c = _random_cov(12, 0)
    w = zca_whitener(c)
    np.testing.assert_allclose(w, w.T, atol=1e-9 * np.abs(w).max())
    np.testing.assert_allclose(w @ c @ w.T, np.eye(12), atol=1e-8)
    # the same norms as MNE's PCA form diag(λ^-1/2) Uᵀ
    evals, evecs = np.linalg.eigh(c)
    pca = evecs.T / np.sqrt(evals)[:, None]
    x = np.random.default_rng(1).standard_normal((12, 7))
    np.testing.assert_allclose(np.linalg.norm(w @ x, axis=0), np.linalg.norm(pca @ x, axis=0))


def test_average_reference_direction_is_dropped():
    c = _random_cov(10, 2)
    types = ["eeg"] * 8 + ["mag"] * 2
    proj = reference_projector(types)
    np.testing.assert_allclose(proj @ proj, proj, atol=1e-12)
    w = zca_whitener(c, proj)
    ones = np.r_[np.ones(8), 0, 0]
    np.testing.assert_allclose(w @ ones, 0, atol=1e-6 * np.abs(w).max())
    # on the data's space (rank 9) the projected covariance is whitened to a projector
    m = w @ proj @ c @ proj.T @ w.T
    np.testing.assert_allclose(m @ m, m, atol=1e-8)
    assert round(np.trace(m)) == 9
    np.testing.assert_array_equal(reference_projector(types, average_reference=False), np.eye(10))


def test_whitened_noise_is_white():
    c = _random_cov(6, 3, cond=1e6)
    rng = np.random.default_rng(4)
    noise = np.linalg.cholesky(c) @ rng.standard_normal((6, 40_000))
    wn = zca_whitener(c) @ noise
    np.testing.assert_allclose(np.cov(wn), np.eye(6), atol=0.03)


def test_regularize_and_channel_matching():
    c = _random_cov(4, 5)
    types = ["grad", "grad", "mag", "mag"]
    r = regularize_cov(c, types, 0.1)
    np.testing.assert_allclose(np.diag(r - c)[:2], 0.1 * np.mean(np.diag(c)[:2]))
    np.testing.assert_allclose(np.diag(r - c)[2:], 0.1 * np.mean(np.diag(c)[2:]))
    np.testing.assert_array_equal(r - np.diag(np.diag(r)), c - np.diag(np.diag(c)))
    names = ["A", "B", "C", "D"]
    cov = mne.Covariance(c, names, [], [], 100, verbose=False)
    order = ["C", "A", "D", "B"]
    idx = [names.index(n) for n in order]
    np.testing.assert_allclose(noise_cov_matrix(cov, order), c[np.ix_(idx, idx)])
    np.testing.assert_allclose(
        make_whitener(cov, order, [types[i] for i in idx], average_reference=False),
        zca_whitener(regularize_cov(c[np.ix_(idx, idx)], [types[i] for i in idx]),
                     ch_types=[types[i] for i in idx]),
    )


def test_bad_covariances_fail_clearly():
    c = _random_cov(3, 6)
    with pytest.raises(ValueError, match="lacks 1 of the 3"):
        noise_cov_matrix(mne.Covariance(c, ["A", "B", "C"], [], [], 10, verbose=False),
                         ["A", "B", "X"])
    with pytest.raises(ValueError, match="NaN"):
        noise_cov_matrix(np.full((3, 3), np.nan), ["A", "B", "C"])
    with pytest.raises(ValueError, match="symmetric"):
        noise_cov_matrix(c + np.triu(c, 1), ["A", "B", "C"])
    with pytest.raises(ValueError, match=r"\(4,\)\*2 in the lead field"):
        noise_cov_matrix(c, ["A", "B", "C", "D"])
    with pytest.raises(ValueError, match="zero"):
        zca_whitener(np.zeros((3, 3)))
    with pytest.raises(ValueError, match="reg"):
        regularize_cov(c, ["eeg"] * 3, -1)


def test_simulator_whitened_snr_is_exact(lf):
    cov = _random_cov(len(lf.ch_names), 7, cond=1e5) * 1e-1
    cfg = SimulationConfig(n_sources=(1, 1), snr_db=(0, 20), snr_space="whitened",
                           noise_cov=cov, colored_noise_fraction=(1, 1))
    sim = Simulator(lf, cfg)
    clean = Simulator(lf, SimulationConfig(n_sources=(1, 1), snr_db=(100, 100))).simulate(
        30, seed=8)
    batch = sim.simulate(30, seed=8)
    w = make_whitener(cov, lf.ch_names, lf.ch_types)
    noise = batch.data.astype(float) - clean.data  # same sources: the same random stream
    measured = 10 * np.log10(np.sum((w @ clean.data) ** 2, axis=(1, 2))
                             / np.sum((w @ noise) ** 2, axis=(1, 2)))
    np.testing.assert_allclose(measured, batch.snr_db, atol=0.05)
    with pytest.raises(ValueError, match="needs a noise_cov"):
        Simulator(lf, SimulationConfig(snr_space="whitened"))
    with pytest.raises(ValueError, match="snr_space"):
        SimulationConfig(snr_space="raw")


def test_whitened_net_round_trip_and_predict(lf, tmp_path):
    cov = _random_cov(len(lf.ch_names), 9, cond=1e3) * 1e-1
    cfg = SimulationConfig(n_sources=(1, 1), snr_db=(5, 15), snr_space="whitened",
                           noise_cov=cov, colored_noise_fraction=(0.5, 1.0))
    tiny = dict(net_kwargs={"image_size": 8, "channels": (4, 8), "hidden": 32}, batch_size=16,
                batches_per_epoch=3, n_val=32, verbose=False, seed=3, epochs=1)
    model = train_model(lf, cfg, tmp_path / "w.pt", **tiny)
    w = make_whitener(cov, lf.ch_names, lf.ch_types)
    np.testing.assert_allclose(model.whitener, w)
    assert "whitened input" in repr(model) and model.meta["whiten"] is True
    back = read_model(tmp_path / "w.pt", lf)
    np.testing.assert_allclose(back.whitener, w)
    data = Simulator(lf, cfg).simulate(4, seed=1).data[:, :, 0].T  # (n_ch, 4)
    seen = []
    forward = back.net.forward
    back.net.forward = lambda x, **kw: seen.append(x.clone()) or forward(x, **kw)
    pred = back.predict(data)
    # the net sees the whitened, max-normalised sample; the map keeps the per-type amplitude
    x = normalise_input(torch.from_numpy(data.T[:, :, None].astype(np.float32)),
                        torch.as_tensor(w, dtype=torch.float32))
    np.testing.assert_allclose(seen[0].numpy(), x.numpy(), rtol=1e-4, atol=1e-6)
    with torch.inference_mode():
        maps = forward(x).numpy().T
    peak = np.abs(data / back.channel_scale[:, None]).max(axis=0)
    np.testing.assert_allclose(pred, maps * peak, rtol=1e-4, atol=1e-7 * pred.max())
    # not the per-type scaled input
    scaled = normalise_input(torch.from_numpy(data.T[:, :, None].astype(np.float32)),
                             torch.as_tensor(back.channel_scale, dtype=torch.float32))
    assert np.abs(seen[0].numpy() - scaled.numpy()).max() > 0.1
    # without a covariance there is nothing to whiten with
    with pytest.raises(ValueError, match="noise_cov"):
        train_model(lf, SimulationConfig(), tmp_path / "x.pt", whiten=True, **tiny)
    plain = train_model(lf, SimulationConfig(noise_cov=cov), tmp_path / "p.pt", whiten=False,
                        **tiny)
    assert plain.whitener is None and plain.meta["whiten"] is False


def test_cli_train_with_noise_cov_whitens(lf, tmp_path, capsys):
    from deepesi.cli import main
    from deepesi.forward.io import write_forward

    fwd = write_forward(lf, tmp_path / "m-fwd.fif")
    c = _random_cov(len(lf.ch_names), 11, cond=1e3)
    cov_file = tmp_path / "noise-cov.fif"
    mne.write_cov(cov_file, mne.Covariance(c, list(lf.ch_names), [], [], 100, verbose=False))
    common = ["--forward", str(fwd), "--epochs", "1", "--batches-per-epoch", "2",
              "--batch-size", "8", "--hidden", "16", "--workers", "0", "--quiet",
              "--noise-cov", str(cov_file)]
    assert main(["train", "-o", str(tmp_path / "w.pt"), *common]) == 0
    model = read_model(tmp_path / "w.pt")
    np.testing.assert_allclose(model.whitener, make_whitener(c, lf.ch_names, lf.ch_types))
    assert model.sim_config["snr_space"] == "whitened"
    assert model.sim_config["colored_noise_fraction"] == [0.5, 1.0]
    assert main(["train", "-o", str(tmp_path / "p.pt"), "--no-whiten", "--snr-space", "sensor",
                 *common]) == 0
    plain = read_model(tmp_path / "p.pt")
    assert plain.whitener is None and plain.sim_config["snr_space"] == "sensor"
    bad = tmp_path / "bad-cov.fif"
    bad.write_text("not a covariance")
    assert main(["train", "-o", str(tmp_path / "b.pt"), *common[:-1], str(bad)]) != 0
    assert "as a noise covariance" in capsys.readouterr().err
    assert not (tmp_path / "b.pt").exists()


def _projection(ch_names, seed: int) -> tuple[mne.Projection, np.ndarray]:
    """An inactive SSP projection of one random unit vector (zero mean, like a field pattern
    after the average reference) over ``ch_names``."""
    u = np.random.default_rng(seed).standard_normal(len(ch_names))
    u -= u.mean()
    u /= np.linalg.norm(u)
    data = dict(kind=1, desc="test-ssp", nrow=1, ncol=len(ch_names), row_names=None,
                col_names=list(ch_names), data=u[None])
    return mne.Projection(data=data, kind=1, desc="test-ssp", active=False,
                          explained_var=None), u


def test_ssp_projector_matches_mne_and_checks_input(lf):
    proj, u = _projection(lf.ch_names, 2)
    p = ssp_projector([proj], lf.ch_names)
    np.testing.assert_allclose(p, np.eye(len(u)) - np.outer(u, u), atol=1e-12)
    np.testing.assert_allclose(ssp_projector(p, lf.ch_names), p)
    # what MNE does to data with this projection
    info = mne.create_info(list(lf.ch_names), 100.0, "eeg")
    x = np.random.default_rng(0).standard_normal((len(u), 7))
    ev = mne.EvokedArray(x, info, verbose=False)
    ev.add_proj([proj]).apply_proj(verbose=False)
    np.testing.assert_allclose(p @ x, ev.data, atol=1e-12)
    assert ssp_projector(None, lf.ch_names) is None and ssp_projector([], lf.ch_names) is None
    # a projection on other channels projects nothing here
    other, _ = _projection([f"X{i}" for i in range(5)], 3)
    assert ssp_projector([other], lf.ch_names) is None
    with pytest.raises(TypeError, match=r"mne\.Projection"):
        ssp_projector([u], lf.ch_names)
    with pytest.raises(ValueError, match="shape"):
        ssp_projector(np.eye(3), lf.ch_names)
    with pytest.raises(ValueError, match="not a projector"):
        ssp_projector(2 * np.eye(len(u)), lf.ch_names)


def test_simulator_and_whitener_apply_the_recordings_ssp(lf, tmp_path):
    """Simulated data lie in the projectors' range (like the projected recording), the whitened
    SNR is still exact, and the trained net's whitener removes the projected direction."""
    cov = _random_cov(len(lf.ch_names), 11, cond=1e4) * 1e-1
    proj, u = _projection(lf.ch_names, 4)
    cfg = SimulationConfig(n_sources=(1, 2), snr_db=(0, 20), snr_space="whitened",
                           noise_cov=cov, colored_noise_fraction=(0.5, 1), projs=[proj])
    batch = Simulator(lf, cfg).simulate(40, seed=5)
    data = batch.data.astype(float)
    along = np.einsum("c,nct->nt", u, data)
    assert np.abs(along).max() < 1e-5 * np.abs(data).max()
    # without projs the direction carries signal and noise
    plain = Simulator(lf, SimulationConfig(noise_cov=cov)).simulate(40, seed=5).data
    assert np.abs(np.einsum("c,nct->nt", u, plain)).max() > 0.05 * np.abs(plain).max()
    clean_cfg = SimulationConfig(n_sources=(1, 2), snr_db=(100, 100), projs=[proj])
    clean = Simulator(lf, clean_cfg).simulate(40, seed=5).data.astype(float)
    p = ssp_projector([proj], lf.ch_names)
    w = make_whitener(cov, lf.ch_names, lf.ch_types, projector=p)
    np.testing.assert_allclose(w @ p, w, atol=1e-9 * np.abs(w).max())
    assert np.abs(w @ u).max() < 1e-9 * np.abs(w).max()
    noise = data - clean
    measured = 10 * np.log10(np.sum((w @ clean) ** 2, axis=(1, 2))
                             / np.sum((w @ noise) ** 2, axis=(1, 2)))
    np.testing.assert_allclose(measured, batch.snr_db, atol=0.05)
    assert cfg.to_dict()["projs"] == "given" and SimulationConfig().to_dict()["projs"] is None
    SimulationConfig.from_dict(cfg.to_dict())  # 'given' is not restored, and not an error
    tiny = dict(net_kwargs={"image_size": 8, "channels": (4, 8), "hidden": 32}, batch_size=16,
                batches_per_epoch=2, n_val=16, verbose=False, seed=3, epochs=1)
    model = train_model(lf, cfg, tmp_path / "ssp.pt", **tiny)
    np.testing.assert_allclose(model.whitener, w, atol=1e-9 * np.abs(w).max())


def test_cli_train_with_projs(lf, tmp_path, capsys):
    from deepesi.cli import main
    from deepesi.forward.io import write_forward

    fwd = write_forward(lf, tmp_path / "m-fwd.fif")
    c = _random_cov(len(lf.ch_names), 12, cond=1e3)
    cov_file = tmp_path / "noise-cov.fif"
    mne.write_cov(cov_file, mne.Covariance(c, list(lf.ch_names), [], [], 100, verbose=False))
    proj, u = _projection(lf.ch_names, 6)
    proj_file = tmp_path / "rec-proj.fif"
    mne.write_proj(proj_file, [proj])
    common = ["--forward", str(fwd), "--epochs", "1", "--batches-per-epoch", "2",
              "--batch-size", "8", "--hidden", "16", "--workers", "0", "--quiet",
              "--noise-cov", str(cov_file)]
    assert main(["train", "-o", str(tmp_path / "s.pt"), *common, "--projs", str(proj_file)]) == 0
    model = read_model(tmp_path / "s.pt")
    assert model.sim_config["projs"] == "given"
    # (the FIF stores the vector in float32)
    assert np.abs(model.whitener @ u).max() < 1e-6 * np.abs(model.whitener).max()
    empty = tmp_path / "empty-proj.fif"
    mne.write_cov(empty, mne.Covariance(c, list(lf.ch_names), [], [], 100, verbose=False))
    assert main(["train", "-o", str(tmp_path / "e.pt"), *common, "--projs", str(empty)]) != 0
    assert "holds no SSP projectors" in capsys.readouterr().err
    assert not (tmp_path / "e.pt").exists()


def test_eeg_meg_whitener_keeps_every_sensor_type():
    """EEG (V², ~1e-11) and MEG (T², ~1e-26) in one covariance: all n-1 directions survive (only
    the average reference's is dropped), and the result whitens; an SSP over magnetometers and
    gradiometers (oblique after per-type scaling) is still removed exactly."""
    types = ["eeg"] * 8 + ["mag"] * 6 + ["grad"] * 10
    n = len(types)
    unit = np.array([1e-5 if t == "eeg" else 1e-13 if t == "mag" else 1e-11 for t in types])
    c = _random_cov(n, 21, cond=1e3) * 1e12 * np.outer(unit, unit)
    names = [f"C{i}" for i in range(n)]
    w = make_whitener(c, names, types, reg=0.1)
    p_ref = reference_projector(types)
    creg = regularize_cov(c, types, 0.1)
    e = np.linalg.eigvalsh(w @ p_ref @ creg @ p_ref.T @ w.T)
    np.testing.assert_allclose(np.sort(e)[1:], 1.0, atol=1e-8)
    assert abs(np.sort(e)[0]) < 1e-8
    meg = np.array([t != "eeg" for t in types])
    u = np.where(meg, np.random.default_rng(3).standard_normal(n) * unit, 0.0)
    u /= np.linalg.norm(u)
    ssp = np.eye(n) - np.outer(u, u)
    ws = make_whitener(c, names, types, reg=0.1, projector=ssp)
    assert np.abs(ws @ u).max() < 1e-9 * np.abs(ws).max()
    np.testing.assert_allclose(ws @ ssp, ws, atol=1e-9 * np.abs(ws).max())
    full = ssp @ p_ref
    e = np.linalg.eigvalsh(ws @ full @ creg @ full.T @ ws.T)
    np.testing.assert_allclose(np.sort(e)[2:], 1.0, atol=1e-8)  # rank n - 2
