"""Tests of the training-data simulator on a small sphere-model EEG lead field."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.sparse import csgraph

from deepesi.simulation import (
    SimulationConfig,
    Simulator,
    read_simulation,
    simulate_batch,
    simulate_to_hdf5,
)
from deepesi.simulation.sphere import make_sphere_leadfield
from deepesi.training import SimulatedDataset, smoothing_kernel


@pytest.fixture(scope="module")
def lf():
    return make_sphere_leadfield()


def test_reproducible_and_seed_dependent(lf):
    a = simulate_batch(lf, 50, seed=3)
    b = simulate_batch(lf, 50, seed=3)
    c = simulate_batch(lf, 50, seed=4)
    np.testing.assert_array_equal(a.data, b.data)
    np.testing.assert_array_equal(a.sources, b.sources)
    np.testing.assert_array_equal(a.centres, b.centres)
    assert not np.allclose(a.data, c.data)
    assert a.data.shape == (50, 64, 1) and a.sources.shape == (50, lf.n_sources, 1)
    assert a.data.dtype == np.float32 and (a.sources >= 0).all()
    assert ((a.n_active >= 1) & (a.n_active <= 3)).all()
    # centres listed for active sources only
    assert ((a.centres >= 0).sum(1) == a.n_active).all()


@pytest.mark.parametrize("snr", [0.0, 7.5, 20.0])
def test_snr_achieved(lf, snr):
    """Noise = data(snr) − data(no noise), same seed: the power ratio is the requested SNR."""
    base = dict(n_times=20, n_sources=(1, 2))
    noisy = simulate_batch(lf, 40, SimulationConfig(snr_db=(snr, snr), **base), seed=11)
    clean = simulate_batch(lf, 40, SimulationConfig(snr_db=(90.0, 90.0), **base), seed=11)
    signal = clean.data.astype(float)
    noise = noisy.data.astype(float) - signal
    achieved = 10 * np.log10((signal**2).sum((1, 2)) / (noise**2).sum((1, 2)))
    np.testing.assert_allclose(achieved, snr, atol=0.05)
    np.testing.assert_allclose(noisy.snr_db, snr)


def test_snr_with_colored_noise(lf):
    rng = np.random.default_rng(0)
    a = rng.standard_normal((64, 64))
    cov = a @ a.T / 64 * 1e-12
    base = dict(n_times=10, noise_cov=cov, colored_noise_fraction=(1.0, 1.0))
    noisy = simulate_batch(lf, 20, SimulationConfig(snr_db=(5.0, 5.0), **base), seed=2)
    clean = simulate_batch(lf, 20, SimulationConfig(snr_db=(90.0, 90.0), **base), seed=2)
    noise = noisy.data.astype(float) - clean.data
    achieved = 10 * np.log10((clean.data.astype(float) ** 2).sum((1, 2)) / (noise**2).sum((1, 2)))
    np.testing.assert_allclose(achieved, 5.0, atol=0.05)


def test_colored_noise_follows_covariance(lf):
    """With only coloured noise, the noise covariance is proportional to the given one."""
    n = 64
    d = np.linspace(1.0, 10.0, n)
    cov = np.diag(d)  # channel variances 1..10: a strong, easily checked colour
    cfg = dict(
        noise_cov=cov,
        colored_noise_fraction=(1.0, 1.0),
        average_reference=False,
        n_times=50,
        snr_db=(0.0, 0.0),
    )
    noisy = simulate_batch(lf, 60, SimulationConfig(**cfg), seed=5)
    clean = simulate_batch(lf, 60, SimulationConfig(**{**cfg, "snr_db": (90.0, 90.0)}), seed=5)
    noise = noisy.data.astype(float) - clean.data
    var = (noise**2 / (noise**2).sum((1, 2), keepdims=True)).mean((0, 2))
    ratio = var / var.mean() / (d / d.mean())
    assert np.median(np.abs(ratio - 1)) < 0.1


def test_deep_fraction(lf):
    for frac in (0.0, 0.4, 1.0):
        cfg = SimulationConfig(deep_fraction=frac, n_sources=(1, 1))
        b = simulate_batch(lf, 1000, cfg, seed=1)
        realised = b.has_deep.mean()
        assert abs(realised - frac) < 0.05, (frac, realised)
    b = simulate_batch(lf, 1000, SimulationConfig(deep_fraction=0.4), seed=1)
    assert b.has_deep.mean() >= 0.4 - 0.03
    # every deep structure is used (structures drawn uniformly, not by size)
    deep_regions = set(np.unique(lf.source_space.region_ids[lf.source_space.is_subcortical]))
    assert deep_regions <= set(np.unique(b.regions))


def test_extent_on_graph(lf):
    src = lf.source_space
    cfg = SimulationConfig(n_sources=(1, 1), extent_mm=(10.0, 30.0), deep_fraction=0.5)
    b = simulate_batch(lf, 60, cfg, seed=7)
    sim = Simulator(lf, cfg)
    reached = []
    for i in range(len(b)):
        c, r = b.centres[i, 0], b.extent_mm[i, 0] * 1e-3
        support = np.flatnonzero(b.sources[i, :, 0] > 0)
        dist = csgraph.dijkstra(sim.graph, indices=c)
        assert (dist[support] <= r + 1e-6).all()
        # all points within the radius on the graph are active (the patch is the whole ball)
        assert set(np.flatnonzero(dist <= r + 1e-6)) == set(support)
        # a patch stays in its compartment: one deep structure, or cortex
        if src.is_subcortical[c]:
            assert (src.region_ids[support] == src.region_ids[c]).all()
        else:
            assert not src.is_subcortical[support].any()
        reached.append(dist[support].max())
    assert max(reached) > 1.5 * src.spacing  # patches really grow beyond the neighbours
    point = simulate_batch(lf, 20, SimulationConfig(extent_mm=(0, 0), n_sources=(1, 1)), seed=1)
    assert ((point.sources[:, :, 0] > 0).sum(1) == 1).all()


def test_amplitude_scaling(lf):
    src = lf.source_space
    cfg = SimulationConfig(n_sources=(1, 1), extent_mm=(0, 0), deep_fraction=0.5)
    b = simulate_batch(lf, 200, cfg, seed=0)
    deep = src.is_subcortical[b.centres[:, 0]]
    area = src.spacing**3 / cfg.cortical_thickness
    cort = b.amplitudes[~deep, 0] / area
    assert (cort >= cfg.cortical_density[0]).all() and (cort <= cfg.cortical_density[1]).all()
    vol = b.amplitudes[deep, 0] / src.spacing**3
    assert (vol >= cfg.deep_density[0]).all() and (vol <= cfg.deep_density[1]).all()
    # the map holds the moment norm of the active point
    np.testing.assert_allclose(b.sources[:, :, 0].max(1), b.amplitudes[:, 0], rtol=1e-6)


def test_cortical_orientation_and_signal(lf):
    """A cortical point source gives exactly the oriented lead field column times its moment."""
    src = lf.source_space
    cfg = SimulationConfig(
        n_sources=(1, 1), extent_mm=(0, 0), deep_fraction=0.0, snr_db=(100.0, 100.0)
    )
    b = simulate_batch(lf, 10, cfg, seed=0)
    for i in range(10):
        c = b.centres[i, 0]
        expected = lf.gain[:, c, :] @ src.normals[c] * b.amplitudes[i, 0]
        expected -= expected.mean()
        np.testing.assert_allclose(
            b.data[i, :, 0], expected, rtol=1e-3, atol=1e-4 * abs(expected).max()
        )


def test_average_reference_and_bad_channels(lf):
    cfg = SimulationConfig(bad_channel_prob=1.0, bad_channel_fraction=(0.05, 0.1))
    b = simulate_batch(lf, 30, cfg, seed=9)
    assert (~b.good).sum(1).min() >= 3
    for i in range(30):
        x = b.data[i, :, 0]
        assert np.all(x[~b.good[i]] == 0)
        assert abs(x[b.good[i]].mean()) < 1e-5 * np.abs(x).max()
    plain = simulate_batch(lf, 30, SimulationConfig(), seed=9)
    assert np.abs(plain.data.mean(axis=1)).max() < 1e-5 * np.abs(plain.data).max()
    assert plain.good.all()


def test_waveforms(lf):
    cfg = SimulationConfig(n_times=40, n_sources=(1, 1), extent_mm=(0, 0))
    b = simulate_batch(lf, 30, cfg, seed=4)
    assert b.data.shape == (30, 64, 40) and b.sources.shape == (30, lf.n_sources, 40)
    # the map's time course peaks at the source's moment (unit-peak waveforms)
    np.testing.assert_allclose(b.sources.max((1, 2)), b.amplitudes[:, 0], rtol=1e-6)


def test_dataset_streams(lf):
    ds = SimulatedDataset(lf, SimulationConfig(), n_batches=4, batch_size=8, seed=5)
    first = [x for x, _ in ds]
    again = [x for x, _ in ds]
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    # batches differ from each other, and between epochs and ranks
    assert not torch.equal(first[0], first[1])
    ds.set_epoch(1)
    assert not torch.equal(next(iter(ds))[0], first[0])
    other = SimulatedDataset(lf, SimulationConfig(), n_batches=4, batch_size=8, seed=5, rank=1)
    assert not torch.equal(next(iter(other))[0], first[0])
    # two DataLoader workers produce the same stream, in the same order
    ds.set_epoch(0)
    loader = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=2)
    with_workers = [x for x, _ in loader]
    assert all(torch.equal(a, b) for a, b in zip(first, with_workers, strict=True))


def test_hdf5_roundtrip(lf, tmp_path):
    cfg = SimulationConfig(n_times=3)
    path = simulate_to_hdf5(lf, tmp_path / "sim.h5", 25, cfg, seed=1, chunk=10, verbose=False)
    batch, cfg2 = read_simulation(path)
    assert batch.data.shape == (25, 64, 3) and cfg2 == cfg
    assert batch.ch_names == lf.ch_names
    again, _ = read_simulation(
        simulate_to_hdf5(lf, tmp_path / "sim2.h5", 25, cfg, seed=1, chunk=10, verbose=False)
    )
    np.testing.assert_array_equal(batch.data, again.data)
    with pytest.raises(FileExistsError):
        simulate_to_hdf5(lf, path, 5, cfg, verbose=False)
    b = simulate_batch(lf, 5, cfg, seed=0)
    b.save(tmp_path / "b.h5")
    back, _ = read_simulation(tmp_path / "b.h5")
    np.testing.assert_array_equal(back.sources, b.sources)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"n_sources": (0, 2)},
        {"n_sources": (3, 1)},
        {"deep_fraction": 1.5},
        {"extent_mm": (-1, 3)},
        {"snr_db": (10, 5)},
        {"n_times": 0},
        {"waveforms": ("square",)},
        {"loose": 2.0},
    ],
)
def test_config_errors(kwargs):
    with pytest.raises(ValueError):
        SimulationConfig(**kwargs)


def test_input_errors(lf):
    with pytest.raises(TypeError, match="LeadField"):
        simulate_batch("lf", 3)
    with pytest.raises(ValueError, match="noise_cov"):
        simulate_batch(lf, 3, SimulationConfig(noise_cov=np.eye(5)))
    with pytest.raises(ValueError, match="non-negative"):
        simulate_batch(lf, -1)


def test_dataset_centre_sample_target(lf):
    cfg = SimulationConfig(n_times=3)
    kernel = smoothing_kernel(lf.source_space.pos, 0.01)
    ds = SimulatedDataset(lf, cfg, 2, 6, seed=2, target_sample=1, target_kernel=kernel)
    x, y = next(iter(ds))
    full = SimulatedDataset(lf, cfg, 2, 6, seed=2).batch(0)  # whole maps, dense
    assert y.shape == (6, lf.n_sources) and y.dtype == torch.float32
    np.testing.assert_allclose(y.numpy(), full.sources[:, :, 1] @ kernel.toarray(), rtol=1e-5)
    np.testing.assert_array_equal(x.numpy(), full.data)
    with pytest.raises(ValueError, match="target_sample"):
        SimulatedDataset(lf, cfg, 2, 6, target_sample=3)
    with pytest.raises(ValueError, match="needs target_sample"):
        SimulatedDataset(lf, cfg, 2, 6, target_kernel=kernel)


def test_precomputed_patches_match_lazy_ones(lf):
    cfg = SimulationConfig(extent_mm=(0, 20))
    warm = Simulator(lf, cfg)
    warm.precompute_patches()
    assert len(warm._patch_cache) == lf.n_sources
    lazy = Simulator(lf, cfg)
    a, b = warm.simulate(20, seed=8), lazy.simulate(20, seed=8)
    np.testing.assert_array_equal(a.data, b.data)
    np.testing.assert_array_equal(a.sources, b.sources)


def test_map_samples_subset_of_the_full_maps(lf):
    sim = Simulator(lf, SimulationConfig(n_times=4, extent_mm=(0, 15)))
    full, part = sim.simulate(12, seed=4), sim.simulate(12, seed=4, map_samples=[3, 1])
    assert part.sources.shape == (12, lf.n_sources, 2)
    np.testing.assert_array_equal(part.sources, full.sources[:, :, [3, 1]])
    np.testing.assert_array_equal(part.data, full.data)
    np.testing.assert_array_equal(part.centres, full.centres)
    with pytest.raises(ValueError, match="map_samples"):
        sim.simulate(2, seed=0, map_samples=[4])
    with pytest.raises(ValueError, match="map_samples"):
        sim.simulate(2, seed=0, map_samples=[0.5])


def test_simulation_package_needs_no_torch():
    import subprocess
    import sys

    code = "import deepesi.simulation, sys; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_old_module_is_a_deprecated_shim():
    import importlib
    import sys

    import deepesi.simulation as new
    import deepesi.training as training

    sys.modules.pop("deepesi.simulate", None)
    with pytest.warns(DeprecationWarning, match="deepesi.simulation"):
        old = importlib.import_module("deepesi.simulate")
    for name in ("SimulationConfig", "SimulatedBatch", "Simulator", "simulate_batch",
                 "batch_seed", "simulate_to_hdf5", "load_simulation", "read_simulation"):
        assert getattr(old, name) is getattr(new, name)
    for name in ("SimulatedDataset", "smoothing_kernel", "smooth_target"):
        assert getattr(old, name) is getattr(training, name)
    assert new.load_simulation is new.read_simulation


def test_evoked_width_on_a_physical_time_scale(lf):
    """Bumps of 20-50 ms seen through 5 samples at 600 Hz are plateaus and flanks (the window
    of a real average); the window-relative default draws sharp bumps inside the window."""

    def ratios(**kw):
        cfg = SimulationConfig(n_sources=(1, 1), extent_mm=(0.0, 0.0), n_times=5, sfreq=600.0,
                               waveforms=("evoked",), snr_db=(100.0, 100.0), **kw)
        b = Simulator(lf, cfg).simulate(200, seed=0)
        course = np.abs(b.sources[np.arange(200), b.centres[:, 0]])  # (n, n_times)
        return course.min(axis=1) / course.max(axis=1)

    physical = ratios(evoked_width_s=(0.02, 0.05))
    relative = ratios()
    assert np.median(physical) > 0.6 and physical.min() > 0.3, np.median(physical)
    assert np.median(relative) < 0.3, np.median(relative)
    with pytest.raises(ValueError, match="evoked_width_s"):
        SimulationConfig(n_times=5, evoked_width_s=(0.05, 0.01))
