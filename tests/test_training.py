"""Tests of training: checkpoints and resume, model files and mismatch errors, DDP on CPU."""

from __future__ import annotations

import os
import socket

import numpy as np
import pytest
import torch

from deepesi.forward.leadfield import LeadField
from deepesi.simulation import SimulationConfig, simulate_batch
from deepesi.simulation.sphere import make_sphere_leadfield
from deepesi.training import (
    cross_entropy_loss,
    read_model,
    smooth_target,
    smoothing_kernel,
    train_model,
)
from deepesi.training.losses import _lr_factor
from deepesi.training.model import _scale_to_moment

TINY = dict(
    net_kwargs={"image_size": 8, "channels": (4, 8), "hidden": 32},
    batch_size=16,
    batches_per_epoch=3,
    n_val=32,
    verbose=False,
    seed=3,
)
CFG = SimulationConfig(n_sources=(1, 2), snr_db=(5, 15))


@pytest.fixture(scope="module")
def lf():
    torch.set_num_threads(1)
    return make_sphere_leadfield()


def _states_equal(a, b) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_train_save_load_predict(lf, tmp_path):
    out = tmp_path / "m.pt"
    model = train_model(lf, CFG, out, epochs=2, **TINY)
    assert out.exists() and (tmp_path / "m.pt.ckpt").exists()
    assert [h["epoch"] for h in model.history] == [1, 2]
    back = read_model(out, lf)
    assert _states_equal(model.net.state_dict(), back.net.state_dict())
    data = simulate_batch(lf, 5, CFG, seed=0).data[:, :, 0].T  # (n_ch, 5)
    pred = back.predict(data)
    assert pred.shape == (lf.n_sources, 5) and (pred >= 0).all()
    # rows matched by name: reversed rows with reversed names give the same maps
    np.testing.assert_allclose(back.predict(data[::-1], ch_names=lf.ch_names[::-1]), pred)
    # relative units scale with the data
    np.testing.assert_allclose(back.predict(3 * data), 3 * pred, rtol=1e-5, atol=1e-12)
    # scaling to A·m with the lead field keeps the pattern
    amp = back.predict(data, leadfield=lf)
    nz = pred.max(0) > 0
    np.testing.assert_allclose(amp.argmax(0)[nz], pred.argmax(0)[nz])
    assert np.isfinite(amp).all() and (amp >= 0).all()
    with pytest.raises(FileExistsError):
        train_model(lf, CFG, out, epochs=1, **TINY)


def test_bfloat16_training_learns_like_float32(lf, tmp_path):
    kw = {**TINY, "batches_per_epoch": 6, "n_val": 64}
    runs = {
        p: train_model(lf, CFG, tmp_path / f"{p}.pt", epochs=3, precision=p, lr=3e-3, **kw)
        for p in ("float32", "bfloat16")
    }
    f32, b16 = ([h["val_loss"] for h in runs[p].history] for p in ("float32", "bfloat16"))
    assert np.isfinite(b16).all() and b16[-1] < b16[0]  # it learns
    assert abs(b16[-1] - f32[-1]) < 0.05 * abs(f32[0])  # and about as well as float32
    assert runs["bfloat16"].meta["precision"] == "bfloat16"
    assert all(p.dtype == torch.float32 for p in runs["bfloat16"].net.parameters())
    with pytest.raises(ValueError, match="precision"):
        train_model(lf, CFG, tmp_path / "x.pt", precision="float16", **TINY)
    # inference runs in float32 by default, whatever the training precision (the same maps on
    # any CPU); bfloat16 on request, float32 maps either way
    model = runs["bfloat16"]
    data = simulate_batch(lf, 40, CFG, seed=5).data[:, :, 0].T
    default, half = model.predict(data), model.predict(data, precision="bfloat16")
    assert default.dtype == half.dtype == np.float32 and not np.array_equal(default, half)
    np.testing.assert_array_equal(default, model.predict(data, precision="float32"))
    np.testing.assert_allclose(half, default, rtol=0.05, atol=0.02 * default.max())
    assert np.mean(half.argmax(0) == default.argmax(0)) >= 0.9
    with pytest.raises(ValueError, match="precision"):
        model.predict(data, precision="half")


def test_cross_entropy_loss_values():
    # one-hot target: the loss is -log softmax of the true class
    logits = torch.tensor([[0.0, np.log(3.0), 0.0]])
    target = torch.tensor([[0.0, 5.0, 0.0]])
    assert float(cross_entropy_loss(logits, target)) == pytest.approx(-np.log(3 / 5), rel=1e-6)
    # soft target (two equal sources): the minimum is at equal logits on both, -log(1/2)
    soft = torch.tensor([[1.0, 1.0, 0.0]])
    best = torch.tensor([[10.0, 10.0, -10.0]])
    assert float(cross_entropy_loss(best, soft)) == pytest.approx(np.log(2), abs=1e-6)
    assert float(cross_entropy_loss(torch.tensor([[10.0, 0.0, -10.0]]), soft)) > np.log(2) + 1
    # the target's scale does not matter
    assert float(cross_entropy_loss(logits, 7 * target)) == pytest.approx(
        float(cross_entropy_loss(logits, target))
    )


def test_lr_schedule_warms_up_and_decays():
    f = [_lr_factor(p) for p in np.linspace(0, 1, 101)]
    assert f[0] == pytest.approx(0.1) and max(f) == pytest.approx(1.0, abs=1e-3)
    peak = int(np.argmax(f))
    assert peak <= 4 and np.all(np.diff(f[peak:]) <= 1e-12)
    assert f[-1] == pytest.approx(0.02) and _lr_factor(5.0) == pytest.approx(0.02)


@pytest.mark.parametrize("loss, output", [("ce", "softmax"), ("map", "relu")])
def test_loss_sets_output_and_round_trips(lf, tmp_path, loss, output):
    model = train_model(lf, CFG, tmp_path / "m.pt", epochs=1, loss=loss, **TINY)
    assert model.net.output == output and model.meta["loss"] == loss
    back = read_model(tmp_path / "m.pt", lf)
    assert back.net.output == output
    maps = back.predict(simulate_batch(lf, 4, CFG, seed=1).data[:, :, 0].T)
    assert (maps >= 0).all()
    if output == "softmax":  # exp(z - max z) peaks at exactly 1 before the data scale
        x = torch.randn(3, lf.n_channels, 1)
        np.testing.assert_allclose(back.net(x).amax(1).detach().numpy(), 1.0, rtol=1e-6)
    with pytest.raises(ValueError, match="loss must be one of"):
        train_model(lf, CFG, tmp_path / "x.pt", epochs=1, loss="mse", **TINY)


def test_least_squares_scaling_recovers_moment(lf):
    """Given the true support, the A·m scaling recovers the simulated dipole moment exactly."""
    cfg = SimulationConfig(n_sources=(1, 1), extent_mm=(0, 0), snr_db=(100, 100))
    b = simulate_batch(lf, 20, cfg, seed=2)
    maps = (b.sources[:, :, 0] > 0).T.astype(np.float32)  # one-hot maps, max 1
    amp = _scale_to_moment(maps, b.data[:, :, 0].T.astype(float), lf)
    np.testing.assert_allclose(amp.max(0), b.amplitudes[:, 0], rtol=1e-3)


def test_resume_gives_identical_state(lf, tmp_path):
    # the plateau schedule does not depend on the epoch budget, so a run stopped after one epoch
    # and resumed to three must equal a three-epoch run (the cosine schedule is stretched over
    # whatever budget the resumed call gives, by design)
    opts = {**TINY, "schedule": "plateau"}
    full = train_model(lf, CFG, tmp_path / "full.pt", epochs=3, **opts)
    part = tmp_path / "part.pt"
    train_model(lf, CFG, part, epochs=1, **opts)
    os.remove(part)  # as if interrupted before the end: only the checkpoint is left
    resumed = train_model(lf, CFG, part, epochs=3, resume=True, **opts)
    assert _states_equal(full.net.state_dict(), resumed.net.state_dict())
    assert [h["val_loss"] for h in full.history] == [h["val_loss"] for h in resumed.history]
    ckpt_full = torch.load(tmp_path / "full.pt.ckpt", weights_only=True)
    ckpt_res = torch.load(tmp_path / "part.pt.ckpt", weights_only=True)
    assert _states_equal(ckpt_full["model"], ckpt_res["model"])
    for k, v in ckpt_full["optimizer"]["state"].items():
        assert torch.equal(v["exp_avg"], ckpt_res["optimizer"]["state"][k]["exp_avg"])
    # resuming with other settings is refused
    with pytest.raises(ValueError, match="different settings"):
        train_model(lf, CFG, part, epochs=4, resume=True, **{**TINY, "seed": 4})


def test_mismatch_errors(lf, tmp_path):
    out = tmp_path / "m.pt"
    train_model(lf, CFG, out, epochs=1, **TINY)
    model = read_model(out)
    other_src = make_sphere_leadfield(spacing=0.015)
    with pytest.raises(ValueError, match="another source space"):
        read_model(out, other_src)
    other_gain = make_sphere_leadfield(conductivity_scale=1.2)
    with pytest.raises(ValueError, match="different lead field"):
        model.check_leadfield(other_gain)
    fewer = make_sphere_leadfield(n_channels=32)
    with pytest.raises(ValueError, match="channel mismatch"):
        model.check_leadfield(fewer)
    data = np.zeros((lf.n_channels, 3))
    with pytest.raises(ValueError, match="expects 64"):
        model.predict(data[:32])
    with pytest.raises(ValueError, match="missing"):
        model.predict(data[:32], ch_names=lf.ch_names[:32])
    with pytest.raises(ValueError, match="NaN"):
        model.predict(np.full((lf.n_channels, 2), np.nan))
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a model")
    with pytest.raises(ValueError, match="not a deepesi model"):
        read_model(bad)
    with pytest.raises(FileNotFoundError):
        read_model(tmp_path / "missing.pt")


def test_window_model_predicts_every_sample(lf, tmp_path):
    cfg = SimulationConfig(n_times=5)
    model = train_model(lf, cfg, tmp_path / "w.pt", epochs=1, **TINY)
    data = simulate_batch(lf, 1, SimulationConfig(n_times=12), seed=1).data[0]
    assert model.predict(data).shape == (lf.n_sources, 12)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, world: int, port: int, out_dir: str, lf, positions) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        WORLD_SIZE=str(world),
        LOCAL_RANK=str(rank),
    )
    torch.set_num_threads(1)
    kw = {**TINY, "net_kwargs": {**TINY["net_kwargs"], "positions": positions}}
    model = train_model(lf, CFG, os.path.join(out_dir, "ddp.pt"), epochs=2, device="cpu", **kw)
    torch.save(model.net.state_dict(), os.path.join(out_dir, f"rank{rank}.pt"))
    torch.distributed.destroy_process_group()


def test_ddp_two_processes_gloo(lf, tmp_path):
    # the workers get the lead field without its mne.Info (cheaper to send; no MNE import there)
    bare = LeadField(lf.gain, lf.ch_names, lf.ch_types, lf.source_space)
    positions = [ch["loc"][:3].tolist() for ch in lf.info["chs"]]
    torch.multiprocessing.spawn(
        _ddp_worker, args=(2, _free_port(), str(tmp_path), bare, positions), nprocs=2, join=True
    )
    s0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    s1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    assert _states_equal(s0, s1)  # data-parallel replicas stay identical
    model = read_model(tmp_path / "ddp.pt")
    assert model.meta["world_size"] == 2
    assert _states_equal(model.net.state_dict(), s0)


def test_read_model_names_and_progress_option():
    import inspect

    import deepesi.training as training

    assert training.load_model is training.read_model  # the former name stays
    params = inspect.signature(train_model).parameters
    assert "verbose" in params and "progress" not in params


def test_cli_train_and_simulate_need_a_forward(tmp_path, capsys):
    from deepesi.cli import main

    assert main(["train", "-o", str(tmp_path / "m.pt"), "--quiet"]) == 2
    assert "no forward model" in capsys.readouterr().err
    assert main(["simulate", "-o", str(tmp_path / "s.h5"), "-n", "0"]) == 2
    assert "--n-samples" in capsys.readouterr().err


def test_smoothing_kernel_is_a_row_normalised_gaussian():
    pos = np.array([[0.0, 0, 0], [0.005, 0, 0], [0.010, 0, 0], [0.1, 0, 0]])
    k = smoothing_kernel(pos, 0.005).toarray()
    np.testing.assert_allclose(np.diag(k), 1.0)
    assert k[0, 1] == pytest.approx(np.exp(-0.5)) and k[0, 2] == pytest.approx(np.exp(-2.0))
    assert k[0, 3] == 0 and k[3, 3] == 1  # beyond 2.5 σ: no weight
    np.testing.assert_allclose(k, k.T)
    assert smoothing_kernel(pos, 0.0) is None
    y = np.array([[0.0, 1.0, 0.0, 0.0]], np.float32)
    ys = smooth_target(y, smoothing_kernel(pos, 0.005))
    np.testing.assert_allclose(ys, [[np.exp(-0.5), 1.0, np.exp(-0.5), 0.0]], rtol=1e-6)
    assert smooth_target(y, None) is y


def test_int8_and_half_model_files(lf, tmp_path):
    model = train_model(lf, CFG, tmp_path / "m.pt", epochs=1, **TINY)
    data = simulate_batch(lf, 20, CFG, seed=6).data[:, :, 0].T
    ref = model.predict(data)
    for kw in ({"half": True}, {"int8": True}):
        f = model.save(tmp_path / f"{next(iter(kw))}.pt", **kw)
        back = read_model(f, lf)
        assert f.stat().st_size < (tmp_path / "m.pt").stat().st_size
        assert all(p.dtype == torch.float32 for p in back.net.parameters())
        pred = back.predict(data)
        np.testing.assert_allclose(pred, ref, rtol=0.05, atol=0.02 * ref.max())
        assert np.mean(pred.argmax(0) == ref.argmax(0)) >= 0.9


def test_batch_budget_training_is_deterministic_with_ensemble_and_real_noise(lf, tmp_path):
    """Same command, same seed: the same net (weights hash), with a forward ensemble and noise
    drawn from a recording; another seed gives another net."""
    import mne

    from deepesi.simulation import make_noise_bank

    rng = np.random.default_rng(0)
    x = rng.standard_normal((20, lf.n_channels, 30)) * 1e-6
    epochs = mne.EpochsArray(x, mne.create_info(list(lf.ch_names), 250.0, "eeg"), tmin=-0.1,
                             verbose=False)
    bank = make_noise_bank(epochs, verbose=False)
    cfg = SimulationConfig(n_sources=(1, 2), snr_db=(5, 15), noise_bank=bank,
                           brain_noise_fraction=(0.0, 0.3))
    other = make_sphere_leadfield(conductivity_scale=1.3)
    other = LeadField(other.gain, lf.ch_names, lf.ch_types, lf.source_space, lf.info, lf.trans)
    runs = [
        train_model(lf, cfg, tmp_path / f"m{k}.pt", epochs=2, ensemble=[lf, other],
                    **{**TINY, "seed": seed})
        for k, seed in enumerate((3, 3, 4))
    ]
    assert runs[0].weights_hash() == runs[1].weights_hash()
    assert runs[0].weights_hash() != runs[2].weights_hash()
    assert runs[0].meta["ensemble"]["n_members"] == 2
    assert runs[0].sim_config["noise_bank"].startswith("epochs baseline")
    assert read_model(tmp_path / "m0.pt").weights_hash() == runs[0].weights_hash()


def test_training_thread_count_is_fixed_not_the_machines(lf, tmp_path):
    """train_model runs its steps on a fixed number of PyTorch threads (default 2), whatever
    the process was set to, and restores the setting: the net does not depend on the core
    count (measured: 1 and 2 threads give different nets, benchmarks/
    training_reproducibility.py)."""
    hashes = []
    for k, process_threads in enumerate((1, 2)):
        torch.set_num_threads(process_threads)
        model = train_model(lf, CFG, tmp_path / f"t{k}.pt", epochs=1, **TINY)
        assert torch.get_num_threads() == process_threads
        assert model.meta["threads"] == 2
        hashes.append(model.weights_hash())
    torch.set_num_threads(1)
    assert hashes[0] == hashes[1]
    with pytest.raises(ValueError, match="threads"):
        train_model(lf, CFG, tmp_path / "bad.pt", threads=0, **TINY)


def test_deep_prior_reweights_the_softmax_posterior(lf, tmp_path):
    """deep_prior reads a cross-entropy net's map under another prior of deep sources: the
    training prior changes nothing, a lower one scales deep against cortical points by exactly
    (p/f) / ((1-p)/(1-f)); each map keeps its maximum; a 'map'-loss net is refused."""
    model = train_model(lf, CFG, tmp_path / "ce.pt", epochs=1, **TINY)
    f = model.trained_deep_fraction
    assert f == CFG.deep_fraction == 0.4
    deep = lf.source_space.is_subcortical
    w = model.deep_prior_weights(0.1)
    np.testing.assert_allclose(w[deep], 0.1 / f)
    np.testing.assert_allclose(w[~deep], 0.9 / (1 - f))
    data = simulate_batch(lf, 6, CFG, seed=1).data[:, :, 0].T
    base = model.predict(data)
    np.testing.assert_allclose(model.predict(data, deep_prior=f), base, rtol=1e-5)
    low = model.predict(data, deep_prior=0.1)
    np.testing.assert_allclose(low.max(0), base.max(0), rtol=1e-5)
    ratio = (low / low.max(0)) / (base / base.max(0))  # per sample, up to the renormalisation
    odds = ratio[deep].mean(0) / ratio[~deep].mean(0)
    np.testing.assert_allclose(odds, (0.1 / f) / (0.9 / (1 - f)), rtol=1e-3)
    for bad in (0.0, 1.0, 1.5):
        with pytest.raises(ValueError, match="probability"):
            model.deep_prior_weights(bad)
    relu = train_model(lf, CFG, tmp_path / "map.pt", epochs=1, loss="map", **TINY)
    with pytest.raises(ValueError, match="cross-entropy"):
        relu.predict(data, deep_prior=0.2)
