"""``deepesi localize``: end to end with a real (tiny, hand-set) TrainedModel file."""

from __future__ import annotations

import mne
import numpy as np
import pytest
import torch

from deepesi.cli import main
from deepesi.nets import net_from_spec
from deepesi.training import TrainedModel
from localize_helpers import SFREQ, StandInModel, grid_source_space, make_evoked

SOURCE = 9


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A model file (a linear net set to the matched filter), its source space, recordings."""
    root = tmp_path_factory.mktemp("cli")
    src = grid_source_space()
    stand_in = StandInModel(src)
    n_ch = len(stand_in.ch_names)
    net = net_from_spec("linear", n_ch, src.n_sources, {"n_times": 1})
    scale = np.full(n_ch, 1e-6)
    g = stand_in.gain / np.linalg.norm(stand_in.gain, axis=0)
    with torch.no_grad():
        net.fc.weight.copy_(torch.as_tensor(g.T * scale[None, :], dtype=torch.float32))
        net.fc.bias.zero_()
    model = TrainedModel(
        net, stand_in.ch_names, stand_in.ch_types, scale, "0" * 64, src.hash(), {}
    )
    model.save(root / "model.pt")
    src.save(root / "src.npz")
    ev_a = make_evoked(stand_in, SOURCE)
    ev_a.comment = "left"
    ev_b = make_evoked(stand_in, 40)
    ev_b.comment = "right"
    mne.write_evokeds(root / "two-ave.fif", [ev_a, ev_b], verbose=False)
    raw = mne.io.RawArray(ev_a.data, ev_a.info, verbose=False)
    raw.save(root / "rec_raw.fif", verbose=False)
    epochs = mne.EpochsArray(
        np.stack([ev_a.data, ev_a.data, ev_b.data]), ev_a.info,
        events=np.array([[0, 0, 1], [50, 0, 1], [100, 0, 2]]),
        event_id={"left": 1, "right": 2}, tmin=ev_a.tmin, verbose=False,
    )
    epochs.save(root / "rec-epo.fif", verbose=False)
    other = grid_source_space(spacing_mm=11.0)
    other.save(root / "other.npz")
    return root


def _run(files, *args):
    return main(["localize", *map(str, args), "--model", str(files / "model.pt")])


def test_evoked_condition_and_report(files, tmp_path, capsys):
    out = tmp_path / "out"
    rc = _run(files, files / "two-ave.fif", "--condition", "left", "--source-space",
              files / "src.npz", "-o", out, "--report", "--head", "template")
    assert rc == 0
    assert {p.name for p in out.iterdir()} == {
        "sources-vl.stc", "activity.nii.gz", "peaks.tsv", "source_space.npz",
        "localization.json", "report.html",
    }
    first = (out / "peaks.tsv").read_text().splitlines()[1].split("\t")
    assert first[1:3] == [str(SOURCE), "Left-Thalamus"]
    assert float(first[-1]) == pytest.approx(-0.1 + 25 / SFREQ)
    printed = capsys.readouterr().out
    assert "Left-Thalamus" in printed
    # the other condition peaks elsewhere
    out2 = tmp_path / "out2"
    assert _run(files, files / "two-ave.fif", "--condition", "right", "--source-space",
                files / "src.npz", "-o", out2, "-q") == 0
    assert (out2 / "peaks.tsv").read_text().splitlines()[1].split("\t")[1] == "40"


def test_raw_and_epochs(files, tmp_path):
    assert _run(files, files / "rec_raw.fif", "--source-space", files / "src.npz",
                "-o", tmp_path / "a", "-q", "--tmin", "0", "--tmax", "0.1") == 0
    stc = mne.read_source_estimate(tmp_path / "a" / "sources-vl.stc")
    assert stc.tmin == pytest.approx(0.0) and stc.times[-1] == pytest.approx(0.1)
    assert _run(files, files / "rec-epo.fif", "--condition", "left", "--source-space",
                files / "src.npz", "-o", tmp_path / "b", "-q") == 0
    row = (tmp_path / "b" / "peaks.tsv").read_text().splitlines()[1].split("\t")
    assert row[1] == str(SOURCE)


def test_errors_are_one_line_and_write_nothing(files, tmp_path, capsys):
    out = tmp_path / "out"
    cases = [
        ((files / "two-ave.fif", "--source-space", files / "src.npz"), "--condition NAME"),
        ((files / "two-ave.fif", "--condition", "up", "--source-space", files / "src.npz"),
         "'left', 'right'"),
        ((files / "rec_raw.fif",), "--source-space SRC.npz"),
        ((files / "rec_raw.fif", "--source-space", files / "other.npz"),
         "model/source-space mismatch"),
        ((files / "rec_raw.fif", "--source-space", files / "src.npz", "--tmin", "3"),
         "empty time window"),
        ((files / "missing.fif", "--source-space", files / "src.npz"), "recording not found"),
        ((files / "rec-epo.fif", "--condition", "up", "--source-space", files / "src.npz"),
         "events: ['left', 'right']"),
        ((files / "rec_raw.fif", "--source-space", files / "src.npz", "--head", "template"),
         "add --report"),
    ]
    for args, message in cases:
        assert _run(files, *args, "-o", out) == 2
        err = capsys.readouterr().err.strip()
        assert message in err, err
        assert len(err.splitlines()) == 1
        assert not out.exists()


def test_channel_mismatch_and_overwrite(files, tmp_path, capsys):
    raw = mne.io.read_raw_fif(files / "rec_raw.fif", preload=True, verbose=False)
    raw.rename_channels({"Cz": "Vertex"})
    raw.save(tmp_path / "renamed_raw.fif", verbose=False)
    out = tmp_path / "out"
    assert _run(files, tmp_path / "renamed_raw.fif", "--source-space", files / "src.npz",
                "-o", out) == 2
    err = capsys.readouterr().err
    assert "missing from the recording: Cz" in err and "Vertex" in err
    assert not out.exists()
    args = (files / "rec_raw.fif", "--source-space", files / "src.npz", "-o", out, "-q")
    assert _run(files, *args) == 0
    assert _run(files, *args) == 2
    assert "already exists" in capsys.readouterr().err
    assert _run(files, *args, "--overwrite") == 0


def test_forward_gives_the_goodness_of_fit(files, tmp_path, capsys):
    """With the model's forward the printed summary and localization.json carry the fit."""
    import json

    from deepesi.forward.io import write_forward
    from deepesi.forward.leadfield import LeadField

    src = grid_source_space()
    stand_in = StandInModel(src)
    ev = mne.read_evokeds(files / "two-ave.fif", condition="left", verbose=False)
    gain = np.zeros((len(stand_in.ch_names), src.n_sources, 3))
    gain[:, :, 0] = stand_in.gain  # the stand-in's 'dipoles' point along x
    info = mne.pick_info(ev.info, [ev.ch_names.index(c) for c in stand_in.ch_names])
    with info._unlock():
        info["projs"] = []
    lf = LeadField(gain, stand_in.ch_names, stand_in.ch_types, src, info,
                   mne.transforms.Transform("head", "mri", np.eye(4)))
    fwd = write_forward(lf, tmp_path / "model-fwd.fif")
    out = tmp_path / "fit"
    assert _run(files, files / "two-ave.fif", "--condition", "left", "--source-space",
                files / "src.npz", "--forward", fwd, "--refine", "-o", out) == 0
    printed = capsys.readouterr().out
    assert "goodness of fit" in printed and "best single dipole" in printed
    fit = json.loads((out / "localization.json").read_text())["fit"]
    assert fit["support"][0] == SOURCE and fit["gof"] > 0.99
    assert fit["refined_support"][0] == SOURCE
    # without the forward the summary says how to get the fit
    assert _run(files, files / "two-ave.fif", "--condition", "left", "--source-space",
                files / "src.npz", "-o", tmp_path / "nofit") == 0
    assert "--forward" in capsys.readouterr().out
    assert _run(files, files / "two-ave.fif", "--source-space", files / "src.npz", "--refine",
                "-o", tmp_path / "x") == 2
    assert "--refine needs" in capsys.readouterr().err


def test_overwrite_keeps_the_users_files_and_ctrl_c_is_one_line(files, tmp_path, capsys,
                                                                 monkeypatch):
    import json

    out = tmp_path / "res"
    args = (files / "two-ave.fif", "--condition", "left", "--source-space", files / "src.npz",
            "-o", out, "-q")
    assert _run(files, *args, "--report") == 0
    (out / "notes.txt").write_text("my notes")
    written = json.loads((out / "localization.json").read_text())["written"]
    assert "report.html" in written and "notes.txt" not in written
    assert _run(files, *args, "--overwrite") == 0
    assert (out / "notes.txt").read_text() == "my notes"  # the user's file stays
    assert not (out / "report.html").exists()  # deepesi's stale report of the last run goes
    assert (out / "peaks.tsv").is_file()
    # an interrupt: one line, exit 130, nothing half-written
    from deepesi.commands import localize as cmd

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(cmd, "_model_and_source_space", interrupted)
    assert _run(files, *args[:-3], "-o", tmp_path / "never") == 130
    err = capsys.readouterr().err
    assert err.strip().count("\n") == 0 and "interrupted" in err
    assert not (tmp_path / "never").exists()


def test_eeglab_epochs_are_read_as_epochs(files, tmp_path):
    pytest.importorskip("eeglabio")
    from deepesi.inverse import read_recording

    epochs = mne.read_epochs(files / "rec-epo.fif", verbose=False)
    fname = tmp_path / "rec.set"
    epochs.export(fname, fmt="eeglab", verbose=False)
    back = read_recording(fname)
    assert isinstance(back, mne.BaseEpochs) and len(back) == 3
    assert len(read_recording(fname, "left")) == 2
    out = tmp_path / "set-out"
    assert _run(files, fname, "--condition", "left", "--source-space", files / "src.npz",
                "-o", out, "-q") == 0
    assert (out / "peaks.tsv").read_text().splitlines()[1].split("\t")[1] == str(SOURCE)


def test_report_of_a_shipped_template_model_draws_the_template(tmp_path, monkeypatch):
    """Issue 16 (#7): --report with a shipped template model gets the template's anatomy
    without --head."""
    import deepesi.viz.report as report_mod
    from deepesi.pretrained import load_pretrained

    seen = {}

    def fake_report(result, head, *, title, fname):
        seen["head"] = head
        fname.write_text("<html></html>")

    monkeypatch.setattr(report_mod, "make_report", fake_report)
    _, lf = load_pretrained("template-eeg64")
    j = int(np.flatnonzero(~lf.source_space.is_subcortical)[300])
    rng = np.random.default_rng(0)
    x = (lf.gain[:, j] @ np.array([0, 0, 1e-7]))[:, None] * np.hanning(40)[None]
    x = x + np.cumsum(rng.standard_normal(x.shape), axis=1) * 2e-8
    info = mne.create_info(list(lf.ch_names), 250.0, "eeg")
    ev = mne.EvokedArray(x, info, tmin=-0.05, verbose=False)
    ev.set_montage("colin27_1005", verbose=False)
    ev.save(tmp_path / "t-ave.fif", verbose=False)
    assert main(["localize", str(tmp_path / "t-ave.fif"), "--model", "template-eeg64",
                 "-o", str(tmp_path / "out"), "--report", "-q"]) == 0
    assert seen["head"] is not None and seen["head"].name == "template"


def _dipole_recording(lf, j, n_times, noise_sd, seed, tmin, fname):
    """An average-referenced evoked file of one radial-ish dipole at grid point ``j`` of a
    shipped template lead field (Hanning time course, white noise), with its montage; returns
    its info."""
    info = mne.create_info(list(lf.ch_names), 250.0, "eeg")
    x = (lf.gain[:, j] @ np.array([0, 0, 3e-8]))[:, None] * np.hanning(n_times)[None]
    noise = noise_sd * np.random.default_rng(seed).standard_normal(x.shape)
    ev = mne.EvokedArray(x + noise - (x + noise).mean(axis=0), info, tmin=tmin, verbose=False)
    ev.set_montage("colin27_1005", verbose=False)
    ev.save(fname, verbose=False)
    return info


def test_sources_of_a_shipped_model(tmp_path, capsys):
    """Issue 14: --sources with a shipped model fits the sources off the grid and writes
    sources.tsv; without a noise covariance it says what is missing."""
    from deepesi.pretrained import load_pretrained

    _, lf = load_pretrained("template-eeg64")
    j = int(np.flatnonzero(~lf.source_space.is_subcortical)[300])
    info = _dipole_recording(lf, j, 40, 0.5e-6, 1, -0.05, tmp_path / "t-ave.fif")
    cov = mne.make_ad_hoc_cov(info, std={"eeg": 0.5e-6})
    cov.save(tmp_path / "noise-cov.fif", verbose=False)
    args = ["localize", str(tmp_path / "t-ave.fif"), "--model", "template-eeg64", "--sources"]
    assert main([*args, "-o", str(tmp_path / "out"), "--noise-cov",
                 str(tmp_path / "noise-cov.fif")]) == 0
    printed = capsys.readouterr().out
    assert "1 source(s)" in printed and "\nnoise: " in printed
    rows = (tmp_path / "out" / "sources.tsv").read_text().splitlines()
    assert len(rows) == 2
    xyz = np.array([float(v) for v in rows[1].split("\t")[1:4]]) * 1e-3
    assert np.linalg.norm(xyz - lf.source_space.pos[j]) < 0.006
    assert main([*args, "-o", str(tmp_path / "nocov")]) == 2
    assert "--noise-cov" in capsys.readouterr().err


def test_deep_prior_of_a_shipped_model(tmp_path, capsys):
    """--deep-prior reads the shipped net's map under another prior of deep sources (recorded
    in localization.json); a value that is not a probability is one line and exit code 2."""
    import json

    from deepesi.inverse import read_source_map
    from deepesi.pretrained import load_pretrained

    model, lf = load_pretrained("template-eeg64")
    deep = lf.source_space.is_subcortical
    j = int(np.flatnonzero(deep)[40])
    _dipole_recording(lf, j, 20, 0.3e-6, 2, -0.02, tmp_path / "d-ave.fif")
    args = ["localize", str(tmp_path / "d-ave.fif"), "--model", "template-eeg64"]
    assert main([*args, "-o", str(tmp_path / "as"), "--deep-prior", "0.4"]) == 0
    capsys.readouterr()
    assert main([*args, "-o", str(tmp_path / "low"), "--deep-prior", "0.05"]) == 0
    assert "P(deep) = " in capsys.readouterr().out
    doc = json.loads((tmp_path / "low" / "localization.json").read_text())
    assert doc["params"]["deep_prior"] == 0.05
    assert doc["params"]["trained_deep_prior"] == model.trained_deep_fraction
    a, b = (read_source_map(tmp_path / d) for d in ("as", "low"))
    k = np.argmin(np.abs(a.times - a.peak_time))
    share = [m.amplitudes[deep, k].sum() / m.amplitudes[:, k].sum() for m in (a, b)]
    assert share[1] < share[0]  # less of the map in deep structures under the lower prior
    p = [json.loads((tmp_path / d / "localization.json").read_text())["meta"]["compartment"]
         for d in ("as", "low")]
    assert p[1]["rule"] == "mass" and p[1]["deep_probability"] < p[0]["deep_probability"]
    assert p[1]["deep_prior"] == 0.05
    capsys.readouterr()
    assert main([*args, "-o", str(tmp_path / "bad"), "--deep-prior", "1.5"]) == 2
    err = capsys.readouterr().err
    assert "probability" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "bad").exists()


def test_subgrid_peaks_are_printed(files, tmp_path, capsys):
    from deepesi.inverse import read_source_map

    out = tmp_path / "out"
    assert _run(files, files / "two-ave.fif", "--condition", "left", "--source-space",
                files / "src.npz", "-o", out, "--subgrid", "--peaks", "2") == 0
    printed = capsys.readouterr().out
    expected = str(read_source_map(out).peaks(n=2, subgrid=True))
    assert expected in printed
    assert expected != str(read_source_map(out).peaks(n=2))  # off the grid
