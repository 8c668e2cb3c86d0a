"""Tests of deepesi.benchmark on a small sphere-model EEG lead field with a stand-in network."""

from __future__ import annotations

import json

import numpy as np
import pytest

from deepesi.benchmark import (
    DEEPESI,
    BenchmarkConfig,
    BenchmarkResult,
    bootstrap_median,
    read_benchmark,
    run_benchmark,
)
from deepesi.benchmark.data import _add_noise, _make_set
from deepesi.benchmark.run import _prepare_classical, _run_classical
from deepesi.benchmark.scoring import _Geometry, _score
from deepesi.simulation.sphere import make_sphere_leadfield

SPACING = 0.012


class ScanModel:
    """Stand-in network: single-dipole scan on the model lead field (noise-free: exact)."""

    def __init__(self, lf):
        self.ch_names, self.ch_types = list(lf.ch_names), list(lf.ch_types)
        self.n_sources = lf.n_sources
        u, s, _ = np.linalg.svd(np.moveaxis(lf.gain, 1, 0), full_matrices=False)
        self.u = u * (s > 1e-6 * s[:, :1])[:, None, :]

    def predict(self, data, ch_names=None):
        x = data[[list(ch_names).index(c) for c in self.ch_names]]
        gof = np.sum(np.einsum("swo,wt->sot", self.u, x) ** 2, axis=(1, 2)) / np.sum(x**2)
        return np.repeat(((gof / gof.max()) ** 4000)[:, None], x.shape[1], axis=1)


@pytest.fixture(scope="module")
def lf():
    return make_sphere_leadfield(spacing=SPACING)


@pytest.fixture(scope="module")
def lf_test():
    return make_sphere_leadfield(spacing=SPACING, conductivity_scale=1.2, jitter=0.002)


def _cfg(**kw):
    base = dict(n_sources=(1,), placements=("cortical", "subcortical"), snr_db=(60.0,),
                extents_mm=((0.0, 0.0),), n_samples=4, n_times=4, seed=3,
                methods=(DEEPESI, "dipole_scan", "sLORETA"), n_bootstrap=200)
    base.update(kw)
    return BenchmarkConfig(**base)


@pytest.fixture(scope="module")
def matched(lf):
    return run_benchmark(ScanModel(lf), lf, _cfg(), model_leadfields=lf, verbose=False)


def test_oracle_on_matched_forward_is_exact(matched):
    """Noise-free point sources on the inversion's own forward: scans find them exactly."""
    for method in (DEEPESI, "dipole_scan"):
        le = matched.column("le_mm", method=method)
        assert len(le) == 8 and np.all(le == 0.0)
        assert np.all(matched.column("dle_mm", method=method) == 0.0)
        assert np.all(matched.column("auc", method=method) == 1.0)
    # the dipole scan puts all its amplitude on the true point: no dispersion, no transport
    assert np.all(matched.column("sd_mm", method="dipole_scan") == 0.0)
    assert np.allclose(matched.column("emd_mm", method="dipole_scan"), 0.0, atol=1e-9)
    assert np.all(matched.column("recall", method="dipole_scan") == 1.0)
    # sLORETA (regularised, depth-weighted, free orientation) is mostly exact, but blurs
    assert np.median(matched.column("le_mm", method="sLORETA")) == 0.0
    assert np.all(matched.column("sd_mm", method="sLORETA") > 10.0)


def test_perfect_extended_estimate_scores_perfectly(lf):
    """An estimate equal to the truth: zero error, dispersion, transport; AUC and recall 1."""
    geo = _Geometry.build(lf, lf)
    src = lf.source_space
    centres = np.array([int(np.flatnonzero(~src.is_subcortical)[10]),
                        int(np.flatnonzero(src.is_subcortical)[3])])
    patches = [src.neighbours_within(c, 0.02) for c in centres]
    assert len(patches[0]) > 3
    truth = np.zeros(src.n_sources)
    for c, p in zip(centres, patches, strict=True):  # tapered: no ties between local maxima
        truth[p] = 1e-9 * (1.0 - 10 * np.linalg.norm(src.pos[p] - src.pos[c], axis=1))
    scores, per_source = _score(geo, truth, centres, patches, truth.copy(), 200)
    assert scores["le_mm"] == 0.0 and per_source == [0.0, 0.0]
    assert scores["sd_mm"] == 0.0 and scores["nmse"] == 0.0
    assert np.isclose(scores["emd_mm"], 0.0, atol=1e-9)
    assert scores["auc"] == 1.0 and scores["recall"] == 1.0 and scores["precision"] == 1.0
    # one peak 12 mm (one grid step) away from a point source
    point = np.zeros(src.n_sources)
    point[centres[0]] = 1.0
    nb = src.adjacency[centres[0]].indices
    step = nb[np.argmin(np.linalg.norm(src.pos[nb] - src.pos[centres[0]], axis=1))]
    est = np.zeros(src.n_sources)
    est[step] = 1.0
    scores, _ = _score(geo, point, centres[:1], [centres[:1]], est, 200)
    assert np.isclose(scores["le_mm"], 12.0) and np.isclose(scores["le_centre_mm"], 12.0)
    assert np.isclose(scores["ple_mm"], 12.0) and np.isclose(scores["emd_mm"], 12.0)
    empty, per_source = _score(geo, point, centres[:1], [centres[:1]], np.zeros_like(est), 200)
    assert np.isnan(empty["le_mm"]) and np.isnan(per_source[0])


def test_records_know_source_class_and_depth(matched, lf):
    for r in matched.records:
        want = "subcortical" if r["placement"] == "subcortical" else "cortical"
        assert r["source_class"] == [want]
        assert r["n_sources"] == 1 and len(r["source_depth_mm"]) == 1
        assert r["source_offgrid_mm"] == [0.0]  # same grid for test and model
    deep = matched.column("depth_mm", placement="subcortical")
    cortical = matched.column("depth_mm", placement="cortical")
    # cortical shell 50-68 mm from the centre, deep ball within 30 mm of it (12 mm grid)
    assert cortical.max() < 20.0 and deep.min() > 30.0


def test_summary_table_and_bootstrap(matched):
    rows = matched.summary(metrics=("le_mm", "sd_mm"))
    assert len(rows) == 3 * 2  # methods x scenarios
    for r in rows:
        assert r["n"] == 4 and r["n_failed"] == 0
        assert r["sd_mm_lo"] <= r["sd_mm"] <= r["sd_mm_hi"]
    md = matched.to_markdown(metrics=("le_mm", "sd_mm"))
    table = [ln for ln in md.splitlines() if ln.startswith("| eeg64")]
    assert len(table) == 6 + 2 * 2 + 6  # summary + paired comparison + confusion rows
    assert "200 resamples" in md


def test_bootstrap_median_known_answers():
    rng = np.random.default_rng(0)
    assert bootstrap_median(np.full(9, 2.5), 100, 0.95, rng) == (2.5, 2.5, 2.5)
    med, lo, hi = bootstrap_median(np.r_[np.arange(101.0), np.nan], 1000, 0.95, rng)
    assert med == 50.0 and lo < 50.0 < hi and hi - lo < 30
    assert np.isnan(bootstrap_median(np.array([np.nan]), 10, 0.95, rng)[0])


def test_seeded_reproducibility(lf):
    cfg = _cfg(methods=("dipole_scan",), snr_db=(0.0,), n_samples=3)
    a = run_benchmark(None, lf, cfg, model_leadfields=lf, verbose=False)
    b = run_benchmark(None, lf, cfg, model_leadfields=lf, verbose=False)
    c = run_benchmark(None, lf, _cfg(methods=("dipole_scan",), snr_db=(0.0,), n_samples=3,
                                     seed=4), model_leadfields=lf, verbose=False)
    assert a.column("le_mm").tolist() == b.column("le_mm").tolist()
    assert a.summary() == b.summary()
    assert a.column("depth_mm").tolist() != c.column("depth_mm").tolist()


def test_mismatched_forward_and_placements(lf, lf_test):
    """Off-grid sources on a perturbed forward: small but non-zero error; mixed has both."""
    cfg = _cfg(n_sources=(2,), placements=("mixed",), methods=("dipole_scan", "MNE"),
               extents_mm=((0.0, 12.0),), n_samples=3)
    res = run_benchmark(None, lf_test, cfg, model_leadfields=lf, verbose=False)
    assert res.meta["sets"]["eeg64"]["same_forward"] is False
    for r in res.records:
        assert sorted(r["source_class"]) == ["cortical", "subcortical"]
        assert len(r["source_error_mm"]) == 2
    offgrid = np.concatenate([r["source_offgrid_mm"] for r in res.records])
    assert 0.0 < offgrid.min() and offgrid.max() < 12.0  # 2 mm jitter per axis
    le = res.column("le_mm", method="MNE")
    assert np.all(np.isfinite(le)) and le.max() < 120


def test_snr_is_whitened_power_ratio(lf):
    s = _make_set("eeg64", None, lf, lf, None, _cfg(methods=("MNE",)))
    rng = np.random.default_rng(1)
    signal = lf.gain[:, 5, :] @ np.array([[1e-8, 0.0, 2e-8, 0.0], [0.0, 1e-8, 0.0, 0.0],
                                          [3e-9, 0.0, 0.0, 1e-8]])
    data, scale = _add_noise(s, signal, 10.0, rng)
    noise = data - scale * signal
    ratio = np.sum((s.whitener @ (scale * signal)) ** 2) / np.sum((s.whitener @ noise) ** 2)
    assert np.isclose(10 * np.log10(ratio), 10.0)
    # EEG noise is average-referenced like the lead field
    assert np.allclose(noise.sum(axis=0), 0.0, atol=1e-18)


def test_cached_minimum_norm_equals_apply_classical(lf):
    """The benchmark's cached operators give exactly what deepesi.inverse gives per call."""
    import mne

    from deepesi.inverse import apply_classical

    cfg = _cfg(methods=("MNE", "sLORETA", "eLORETA"))
    s = _make_set("eeg64", None, lf, lf, None, cfg)
    _prepare_classical(s, cfg)
    x = np.random.default_rng(0).standard_normal((lf.n_channels, 3)) * 1e-6
    evoked = mne.EvokedArray(x, s.info, nave=1, verbose=False)
    for method in cfg.methods:
        ref = apply_classical(evoked, method, s.forward, s.noise_cov).amplitudes
        assert np.allclose(_run_classical(s, method, x, cfg), ref, rtol=1e-10, atol=0)


def test_clear_errors(lf):
    short = lf.pick(lf.ch_names[:-1])
    with pytest.raises(ValueError, match="test forward lacks 1 channel"):
        run_benchmark(ScanModel(lf), short, _cfg(), model_leadfields=lf, verbose=False)
    with pytest.raises(ValueError, match="model's channels differ"):
        run_benchmark(ScanModel(short), lf, _cfg(), model_leadfields=lf, verbose=False)
    with pytest.raises(ValueError, match="no model for sensor set"):
        run_benchmark(None, lf, _cfg(), model_leadfields=lf, verbose=False)
    with pytest.raises(ValueError, match="unknown method"):
        BenchmarkConfig(methods=("deepesi", "magic"))
    with pytest.raises(ValueError, match="placements"):
        BenchmarkConfig(placements=("thalamus",))
    cortical_only = lf.source_space.subset(~lf.source_space.is_subcortical)
    idx = np.flatnonzero(~lf.source_space.is_subcortical)
    from deepesi.forward.leadfield import LeadField

    lf_c = LeadField(lf.gain[:, idx], lf.ch_names, lf.ch_types, cortical_only, lf.info, lf.trans)
    with pytest.raises(ValueError, match="no subcortical points"):
        run_benchmark(None, lf_c, _cfg(methods=("MNE",)), model_leadfields=lf_c,
                      verbose=False)


def test_save_load_plot(matched, tmp_path):
    path = matched.save(tmp_path / "bench.json")
    doc = json.loads(path.read_text())
    assert doc["format"] == "deepesi-benchmark" and len(doc["records"]) == len(matched)
    with pytest.raises(FileExistsError):
        matched.save(path)
    back = read_benchmark(path)
    assert BenchmarkResult.load(path).records == back.records
    assert back.config == matched.config
    assert back.column("le_mm").tolist() == matched.column("le_mm").tolist()
    pngs = matched.plot(tmp_path / "plots")
    assert [p.name for p in pngs] == [
        "error_vs_snr.png", "error_vs_depth.png", "cortical_vs_subcortical.png"
    ]
    assert all(p.stat().st_size > 5000 for p in pngs)


def test_cli(lf, lf_test, tmp_path, capsys):
    from deepesi.cli import main
    from deepesi.forward.io import write_forward

    fwd = write_forward(lf, tmp_path / "model-fwd.fif")
    test = write_forward(lf_test, tmp_path / "test-fwd.fif")
    out = tmp_path / "out"
    argv = ["benchmark", "--forward", str(fwd), "--test-forward", str(test), "--snr", "20",
            "--n", "2", "--n-sources", "1", "--placements", "subcortical", "--extent", "0", "5",
            "--n-times", "3", "--bootstrap", "100", "--no-emd", "-o", str(out)]
    assert main([*argv, "--methods", "deepesi", "MNE"]) == 2
    assert "needs --model" in capsys.readouterr().err
    assert main([*argv, "--methods", "dipole_scan", "MNE", "--quiet"]) == 0
    doc = json.loads((out / "benchmark.json").read_text())
    assert len(doc["records"]) == 2 * 2 and doc["config"]["snr_db"] == [20.0]
    assert doc["config"]["emd_max_support"] is None
    assert all(r["emd_mm"] is None and r["le_mm"] is not None for r in doc["records"])
    assert "| eeg64 | 1 | subcortical | 20 | 0-5 | dipole_scan |" in (
        out / "benchmark.md"
    ).read_text()
    assert (out / "error_vs_depth.png").is_file()
    assert main([*argv, "--methods", "MNE"]) == 2  # outputs exist, no --overwrite
    assert "exists" in capsys.readouterr().err


def test_cortical_deep_confusion(matched, lf):
    """Exact scans never confuse compartments; a peak in the other compartment is counted."""
    for r in matched.confusion_rates():
        if r["method"] in (DEEPESI, "dipole_scan"):
            assert r["rate"] == 0.0 and r["n_sources"] == 4 and r["rate_hi"] < 0.6
    geo = _Geometry.build(lf, lf)
    src = lf.source_space
    cortical = int(np.flatnonzero(~src.is_subcortical)[5])
    deep = int(np.flatnonzero(src.is_subcortical)[2])
    truth = np.zeros(src.n_sources)
    truth[cortical] = 1.0
    est = np.zeros(src.n_sources)
    est[deep] = 1.0
    scores, _ = _score(geo, truth, np.array([cortical]), [np.array([cortical])], est, None)
    assert scores["confusion"] == 1.0
    scores, _ = _score(geo, truth, np.array([cortical]), [np.array([cortical])], truth, None)
    assert scores["confusion"] == 0.0
    assert "Cortical ↔ deep confusion" in matched.to_markdown()


def test_source_set_methods_are_scored_by_their_positions(lf, lf_test):
    """Issue 14: the set methods report their number of sources and are scored at their own
    off-grid positions: on two sources off the grid at 30 dB they beat the grid-bound scan."""
    cfg = _cfg(n_sources=(2,), placements=("cortical",), snr_db=(30.0,), n_samples=4,
               n_times=6, methods=("dipoles", "deepesi-sources", "dipole_scan"))
    res = run_benchmark(ScanModel(lf), lf_test, cfg, model_leadfields=lf, verbose=False)
    sets = [r for r in res.records if r["method"] in ("dipoles", "deepesi-sources")]
    assert all(r["n_estimated"] >= 1 for r in sets)
    assert np.mean([r["count_correct"] for r in sets]) >= 0.5
    # the order criterion is recorded: every kept order paid its price, the next one did not
    for r in sets:
        gains = r["order_gain"]
        assert all(g > 1 for g in gains[:r["n_estimated"]])
        assert len(gains) == r["n_estimated"] or gains[r["n_estimated"]] <= 1
    assert "n_estimated" not in next(r for r in res.records if r["method"] == "dipole_scan")
    # one equivalent extent per true source, of the found source matched to it
    for r in sets:
        ext = r["source_extent_estimated_mm"]
        assert len(ext) == len(r["source_extent_mm"]) == 2
        assert all(e is not None and e >= 0 for e in ext)
    err = {m: np.median([e for r in res.records if r["method"] == m
                         for e in r["source_error_mm"]]) for m in cfg.methods}
    assert err["dipoles"] < err["dipole_scan"]
    assert max(err["dipoles"], err["deepesi-sources"]) < 5.0  # measured 2.5 and 1.6
    with pytest.raises(ValueError, match="source-set"):
        _cfg(methods=("sources",))


def test_external_methods_run_on_the_same_samples(lf, tmp_path):
    """A method from outside deepesi (here a free-orientation dipole scan written with the
    mne.Forward it is given) is run on the same samples and scored like the built-in ones:
    noiseless on the matched forward it finds every source exactly, as the built-in scan."""
    calls = []

    def factory(forward, info, noise_cov):
        gain = forward["sol"]["data"]  # (n_ch, 3·n_src), rows x, y, z per source
        n_src = gain.shape[1] // 3
        u, _, _ = np.linalg.svd(np.moveaxis(gain.reshape(len(gain), n_src, 3), 1, 0),
                                full_matrices=False)
        calls.append(info["ch_names"])

        def apply(evoked):
            energy = np.sum(np.einsum("swo,wt->sot", u, evoked.data) ** 2, axis=1)
            out = np.zeros((3 * n_src, evoked.data.shape[1]))
            best = np.argmax(energy.sum(axis=1))
            out[3 * best] = 1.0  # free-orientation rows: combined by their norm
            return out

        return apply

    cfg = _cfg(methods=("dipole_scan",))
    res = run_benchmark(None, lf, cfg, model_leadfields=lf, verbose=False,
                        external_methods={"peer-scan": factory})
    assert len(calls) == 1 and res.methods == ["dipole_scan", "peer-scan"]
    peer = res.column("le_mm", method="peer-scan")
    assert len(peer) == len(res.column("le_mm", method="dipole_scan")) > 0
    assert np.all(peer < 1e-6)
    assert "peer-scan" in res.to_markdown()
    res.save(tmp_path / "b.json")
    assert read_benchmark(tmp_path / "b.json").methods == ["dipole_scan", "peer-scan"]
    with pytest.raises(ValueError, match="built-in"):
        run_benchmark(None, lf, cfg, model_leadfields=lf, verbose=False,
                      external_methods={"dipole_scan": factory})
    with pytest.raises(TypeError, match="callable"):
        run_benchmark(None, lf, cfg, model_leadfields=lf, verbose=False,
                      external_methods={"peer": 3})
