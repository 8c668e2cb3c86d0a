"""Seed ensembles: several nets of one forward read as one model (combine_models), trained by
train_seed_ensemble, saved and read back, and their disagreement reported by apply_network."""

from __future__ import annotations

import mne
import numpy as np
import pytest
import torch

from deepesi.simulation import SimulationConfig, simulate_batch
from deepesi.simulation.sphere import make_sphere_leadfield
from deepesi.training import (
    combine_models,
    member_path,
    read_model,
    train_model,
    train_seed_ensemble,
)
from test_training import CFG
from test_training import TINY as TRAINING_TINY

# the tiny net and data of the training tests; each member here gets its own seed
TINY = {**{k: v for k, v in TRAINING_TINY.items() if k != "seed"}, "epochs": 1}


@pytest.fixture(scope="module")
def lf():
    torch.set_num_threads(1)
    return make_sphere_leadfield()


@pytest.fixture(scope="module")
def members(lf, tmp_path_factory):
    out = tmp_path_factory.mktemp("members")
    return [train_model(lf, CFG, out / f"m{s}.pt", seed=s, **TINY) for s in (0, 1, 2)]


def _softmax_maps(model, data):
    """The model's maps normalised to sum 1 per sample (its posterior)."""
    p = model.predict(data)
    return p / p.sum(axis=0, keepdims=True)


def test_mean_rule_is_the_mixture_of_the_members_posteriors(lf, members):
    data = simulate_batch(lf, 7, CFG, seed=5).data[:, :, 0].T
    ens = combine_models(members)
    assert ens.n_members == 3 and members[0].n_members == 1
    expected = np.mean([_softmax_maps(m, data) for m in members], axis=0)
    np.testing.assert_allclose(_softmax_maps(ens, data), expected, rtol=1e-4, atol=1e-9)
    # a member read through the ensemble is that net
    for k, m in enumerate(members):
        np.testing.assert_allclose(ens.predict(data, member=k), m.predict(data), rtol=1e-5)
    # relative units: the combined map keeps the data's scale like a single net
    np.testing.assert_allclose(ens.predict(3 * data), 3 * ens.predict(data), rtol=1e-5)


def test_geometric_rule_is_the_normalised_product(lf, members):
    data = simulate_batch(lf, 4, CFG, seed=6).data[:, :, 0].T
    ens = combine_models(members, rule="geometric")
    logs = np.mean([np.log(_softmax_maps(m, data)) for m in members], axis=0)
    expected = np.exp(logs - logs.max(axis=0))
    expected /= expected.sum(axis=0)
    np.testing.assert_allclose(_softmax_maps(ens, data), expected, rtol=1e-3, atol=1e-9)


def test_ensemble_file_round_trip_and_int8(lf, members, tmp_path):
    data = simulate_batch(lf, 3, CFG, seed=7).data[:, :, 0].T
    ens = combine_models(members)
    ens.save(tmp_path / "ens.pt")
    back = read_model(tmp_path / "ens.pt", lf)
    assert back.n_members == 3 and back.weights_hash() == ens.weights_hash()
    np.testing.assert_allclose(back.predict(data), ens.predict(data), rtol=1e-6)
    seeds = [m["seed"] for m in back.meta["ensemble"]["members"]]
    assert seeds == [0, 1, 2]
    assert "ensemble of 3" in repr(back)
    ens.save(tmp_path / "ens8.pt", int8=True)
    small = read_model(tmp_path / "ens8.pt")
    assert np.corrcoef(small.predict(data).ravel(), ens.predict(data).ravel())[0, 1] > 0.99


def test_combine_refuses_what_cannot_be_combined(lf, members, tmp_path):
    with pytest.raises(ValueError, match="at least 2"):
        combine_models(members[:1])
    with pytest.raises(ValueError, match="rule"):
        combine_models(members, rule="median")
    with pytest.raises(TypeError, match="list"):
        combine_models(members[0])
    with pytest.raises(ValueError, match="already an ensemble"):
        combine_models([combine_models(members[:2]), members[2]])
    window = train_model(lf, SimulationConfig(n_sources=(1, 2), n_times=3), tmp_path / "w.pt",
                         seed=4, **TINY)
    with pytest.raises(ValueError, match="input window"):
        combine_models([members[0], window])
    relu = train_model(lf, CFG, tmp_path / "r.pt", seed=4, loss="map", **TINY)
    with pytest.raises(ValueError, match="output"):
        combine_models([members[0], relu])
    with pytest.raises(ValueError, match="geometric"):
        combine_models([relu, train_model(lf, CFG, tmp_path / "r2.pt", seed=5, loss="map",
                                          **TINY)], rule="geometric")
    foreign = train_model(make_sphere_leadfield(n_channels=24), CFG, tmp_path / "f.pt", seed=6,
                          **TINY)
    with pytest.raises(ValueError, match="channels"):
        combine_models([members[0], foreign])


def test_train_seed_ensemble_trains_each_seed_once_and_reuses_members(lf, members, tmp_path):
    out = tmp_path / "ens.pt"
    ens = train_seed_ensemble(lf, CFG, out, seeds=(0, 1), **TINY)
    assert out.is_file() and member_path(out, 0).is_file() and member_path(out, 1).is_file()
    # the members are the nets the same settings give with those seeds (deterministic)
    assert ens.meta["ensemble"]["members"][0]["weights_hash"] == members[0].weights_hash()
    assert ens.meta["ensemble"]["members"][1]["weights_hash"] == members[1].weights_hash()
    # a second call with overwrite reads the member files instead of training again
    mtime = member_path(out, 0).stat().st_mtime_ns
    again = train_seed_ensemble(lf, CFG, out, seeds=(0, 1), overwrite=True, **TINY)
    assert member_path(out, 0).stat().st_mtime_ns == mtime
    assert again.weights_hash() == ens.weights_hash()
    with pytest.raises(FileExistsError):
        train_seed_ensemble(lf, CFG, out, seeds=(0, 1), **TINY)
    with pytest.raises(ValueError, match="different"):
        train_seed_ensemble(lf, CFG, tmp_path / "x.pt", seeds=(1, 1), **TINY)
    with pytest.raises(TypeError, match="seeds"):
        train_seed_ensemble(lf, CFG, tmp_path / "x.pt", seeds=(1, 2), seed=3, **TINY)


def test_apply_network_reports_the_members_agreement(lf, members):
    from deepesi.inverse import apply_network

    sim = simulate_batch(lf, 1, SimulationConfig(n_sources=1, snr_db=30, n_times=9), seed=2)
    info = lf.info.copy()
    evoked = mne.EvokedArray(sim.data[0], info, tmin=0.0, verbose=False)
    ens = combine_models(members)
    # the compartment gate may move the map's peak; agreement is about the nets' own maps
    res = apply_network(evoked, ens, source_space=lf.source_space, compartment="peak",
                        verbose=False)
    agree = res.meta["ensemble"]
    assert agree["members"] == 3 and len(agree["member_peaks_mm"]) == 3
    src = lf.source_space
    k = int(np.argmin(np.abs(res.times - res.peak_time)))
    peaks = [int(np.argmax(ens.predict(res_data(evoked, ens), member=m)[:, k]))
             for m in range(3)]
    pos = src.pos[peaks] * 1e3
    spread = max(np.linalg.norm(a - b) for a in pos for b in pos)
    assert agree["peak_spread_mm"] == pytest.approx(spread, abs=0.01)
    top = src.pos[int(np.argmax(res.amplitudes[:, k]))] * 1e3
    within = np.mean([np.linalg.norm(p - top) <= agree["agree_radius_mm"] for p in pos])
    assert agree["agreement"] == pytest.approx(within)
    single = apply_network(evoked, members[0], source_space=lf.source_space, verbose=False,
                           compartment="peak")
    assert "ensemble" not in single.meta
    # two copies of one net agree fully, on the same map as the net alone
    twins = apply_network(evoked, combine_models([members[0], members[0]]),
                          source_space=lf.source_space, verbose=False, compartment="peak")
    assert twins.meta["ensemble"]["peak_spread_mm"] == 0.0
    assert twins.meta["ensemble"]["agreement"] == 1.0
    np.testing.assert_allclose(twins.amplitudes, single.amplitudes, rtol=1e-4)


def res_data(evoked, model):
    """The data as apply_network reads them (average reference of the sphere's EEG)."""
    from deepesi.inverse import prepare_data

    data, _, _ = prepare_data(evoked, list(model.ch_names), list(model.ch_types))
    return data


def test_cli_train_seeds_writes_members_and_the_ensemble(lf, tmp_path, capsys):
    from deepesi.cli import main
    from deepesi.commands.localize import ensemble_summary
    from deepesi.forward.io import write_forward

    fwd = write_forward(lf, tmp_path / "m-fwd.fif")
    common = ["--forward", str(fwd), "--epochs", "1", "--batches-per-epoch", "2",
              "--batch-size", "8", "--hidden", "16", "--workers", "0", "--quiet"]
    out = tmp_path / "ens.pt"
    assert main(["train", "-o", str(out), *common, "--seeds", "3", "4"]) == 0
    ens = read_model(out)
    assert ens.n_members == 2 and [m["seed"] for m in ens.meta["ensemble"]["members"]] == [3, 4]
    single = [read_model(member_path(out, s)) for s in (3, 4)]
    assert [m.meta["seed"] for m in single] == [3, 4]
    assert single[0].weights_hash() != single[1].weights_hash()
    assert main(["train", "-o", str(tmp_path / "x.pt"), *common, "--seeds", "3"]) == 2
    assert main(["train", "-o", str(tmp_path / "x.pt"), *common, "--seeds", "3", "3"]) == 2
    assert "at least 2 different seeds" in capsys.readouterr().err

    from types import SimpleNamespace

    result = SimpleNamespace(meta={"ensemble": {"members": 3, "agreement": 1 / 3,
                                                "agree_radius_mm": 10.0, "peak_spread_mm": 42.0}})
    line = ensemble_summary(result)
    assert "1 of 3" in line and "42 mm" in line and "WARNING" in line


def test_localize_prints_and_the_report_shows_the_agreement(lf, members, tmp_path, capsys):
    from deepesi.cli import main
    from deepesi.inverse import apply_network
    from deepesi.viz.report import ensemble_html

    sim = simulate_batch(lf, 1, SimulationConfig(n_sources=1, snr_db=30, n_times=9), seed=4)
    evoked = mne.EvokedArray(sim.data[0], lf.info.copy(), tmin=0.0, verbose=False)
    rec = tmp_path / "rec-ave.fif"
    evoked.save(rec, verbose=False)
    combine_models(members).save(tmp_path / "ens.pt")
    assert main(["localize", str(rec), "--model", str(tmp_path / "ens.pt"), "-o",
                 str(tmp_path / "res")]) == 0
    printed = capsys.readouterr().out
    assert "ensemble of 3 nets:" in printed and "of 3 put the peak within" in printed
    res = apply_network(evoked, read_model(tmp_path / "ens.pt"), verbose=False)
    html = ensemble_html(res)
    assert "Ensemble of 3 nets" in html
    assert ("Warning" in html) == (res.meta["ensemble"]["agreement"] < 0.5)
    single = apply_network(evoked, members[0], verbose=False)
    assert ensemble_html(single) == ""
