"""Source sets: off-grid gain interpolation, sub-grid refinement, several sources, their number."""

from __future__ import annotations

import mne
import numpy as np
import pytest
from scipy.spatial.distance import cdist

from deepesi.inverse.peaks import find_peaks
from deepesi.inverse.source_set import (
    LocalGain,
    _Scanner,
    effective_samples,
    equivalent_extent_mm,
    fit_source_set,
    signal_subspace_dimension,
)
from deepesi.simulation.sphere import make_sphere_leadfield

SPACING = 0.008


@pytest.fixture(scope="module")
def grid():
    return make_sphere_leadfield(spacing=SPACING, n_channels=64)


@pytest.fixture(scope="module")
def moved():
    """The same points moved off the grid (3 mm s.d. per axis): their analytic gains are the
    truth the grid must reproduce."""
    return make_sphere_leadfield(spacing=SPACING, n_channels=64, jitter=0.003)


def _interior(grid, moved, n, seed):
    """Points whose moved position is more than a spacing from the grid's edge."""
    lg = LocalGain(grid.gain, grid.source_space.pos, SPACING)
    counts = np.array([len(lg.tree.query_ball_point(p, 2.0 * SPACING))
                       for p in moved.source_space.pos])
    ok = np.flatnonzero(counts >= 20)
    return np.random.default_rng(seed).choice(ok, n, replace=False)


def _data(moved, rows, moments, snr_energy, noise_seed=None):
    x = sum(moved.gain[:, r] @ q for r, q in zip(rows, moments, strict=True))
    x = x / np.linalg.norm(x) * np.sqrt(snr_energy)
    if noise_seed is not None:
        x = x + np.random.default_rng(noise_seed).standard_normal(x.shape)
    return x


def test_local_gain_reproduces_analytic_gain_off_grid(grid, moved):
    lg = LocalGain(grid.gain, grid.source_space.pos, SPACING)
    rows = _interior(grid, moved, 100, 0)
    rdm = [np.linalg.norm(lg.at(moved.source_space.pos[r]) - moved.gain[:, r])
           / np.linalg.norm(moved.gain[:, r]) for r in rows]
    _, nearest = lg.tree.query(moved.source_space.pos[rows])
    rdm_nearest = [np.linalg.norm(grid.gain[:, j] - moved.gain[:, r])
                   / np.linalg.norm(moved.gain[:, r]) for j, r in zip(nearest, rows, strict=True)]
    assert np.median(rdm) < 0.005  # measured 0.07 %
    assert np.median(rdm) < 0.2 * np.median(rdm_nearest)  # nearest grid point: ~5 %
    # on a grid point it returns the point's own gain
    j = rows[0]
    own = lg.at(grid.source_space.pos[j])
    assert np.linalg.norm(own - grid.gain[:, j]) < 5e-3 * np.linalg.norm(grid.gain[:, j])


def test_batched_local_gain_equals_one_at_a_time(grid, moved):
    lg = LocalGain(grid.gain, grid.source_space.pos, SPACING)
    pts = moved.source_space.pos[::7]
    batched = lg.at_many(pts)
    one = np.stack([lg.at(p) for p in pts], axis=1)
    assert batched.shape == (grid.n_channels, len(pts), 3)
    np.testing.assert_allclose(batched, one, rtol=1e-10, atol=1e-12 * np.abs(one).max())
    far = np.array([[1.0, 1.0, 1.0]])  # no grid point near: the nearest point's gain
    np.testing.assert_allclose(lg.at_many(far)[:, 0], grid.gain[:, lg.tree.query(far[0])[1]])
    assert not lg.inside_many(far)[0]


def _brute_energy(g, x, others):
    """Energy of x each point's free dipole explains beside others, by lstsq per point."""
    basis = np.zeros((g.shape[0], 0))
    if others:
        u, sv, _ = np.linalg.svd(np.concatenate(others, axis=1), full_matrices=False)
        basis = u[:, sv > 1e-8 * sv[0]]
    xp = x - basis @ (basis.T @ x)
    out = np.empty(g.shape[1])
    for s in range(g.shape[1]):
        gs = g[:, s] - basis @ (basis.T @ g[:, s])
        q = np.linalg.lstsq(gs, xp, rcond=1e-10)[0]
        out[s] = np.sum(xp**2) - np.sum((xp - gs @ q) ** 2)
    return out


@pytest.mark.parametrize("silent", [False, True])
def test_scanner_energy_equals_per_point_least_squares(grid, silent, monkeypatch):
    """The vectorised scan (orthonormalised gains, 3x3 adjugates) is the exact explained
    energy, beside other sources too, and with a silent orientation (radial MEG), once the
    data's weak components are kept (the scan drops those below 1 % by default)."""
    import deepesi.inverse.scan as scan_module

    monkeypatch.setattr(scan_module, "SUBSPACE_FLOOR", 0.0)
    monkeypatch.setattr(scan_module, "MAX_SUBSPACE", 64)
    g = grid.gain[:, ::5].copy()
    if silent:
        g[:, :, 2] = g[:, :, 0] * 0.5 + g[:, :, 1]  # rank 2 at every point
    scan = _Scanner(g)
    rng = np.random.default_rng(0)
    x = g[:, 10] @ rng.normal(size=(3, 6)) * 50 + rng.normal(size=(g.shape[0], 6))
    for rows in ([], [40], [40, 70]):
        others = [g[:, r] for r in rows]
        e = scan.energy(x, others)
        ref = _brute_energy(g, x, others)
        # an other source's own point explains nothing more (0); per-point least squares
        # fits rounding noise there
        assert np.all(np.abs(e[rows]) < 1e-6 * ref.max())
        e[rows] = ref[rows] = 0.0
        assert np.allclose(e, ref, rtol=1e-4, atol=1e-5 * ref.max()), np.abs(e - ref).max()
        assert scan.best(x, others) == int(np.argmax(ref))


def test_peaks_graph_cache_follows_the_source_space(grid):
    """find_peaks builds each source space's neighbour pairs once; another graph or radius on
    the same source space is not served the cached pairs."""
    src = grid.source_space
    values = np.random.default_rng(1).random(src.n_sources)
    first = find_peaks(values, src)
    assert np.array_equal(find_peaks(values, src), first)
    none = find_peaks(values, src, adjacency=None, radius=1e-9)  # graph alone, no radius
    lonely = find_peaks(values, src.pos, radius=1e-9)  # no neighbours: every point a peak
    assert len(lonely) == src.n_sources
    assert len(none) > len(first)


def test_refinement_converges_to_off_grid_position(grid, moved):
    rng = np.random.default_rng(3)
    lg = LocalGain(grid.gain, grid.source_space.pos, SPACING)
    for r in _interior(grid, moved, 4, 1):
        truth = moved.source_space.pos[r]
        x = _data(moved, [r], [rng.normal(size=3)], 64 * 1e4)  # 40 dB, noiseless
        found = fit_source_set(x, grid.gain, grid.source_space, seeds="scan")
        assert len(found) == 1
        grid_error = lg.tree.query(truth)[0]
        error = np.linalg.norm(found.positions[0] - truth)
        assert error < 1e-3, (error, grid_error)
        assert error < 0.5 * grid_error or grid_error < 1e-3
        assert found.gof > 0.999


def test_two_separated_dipoles_both_found(grid, moved):
    rows = _interior(grid, moved, 40, 2)
    pos = moved.source_space.pos
    pairs = [(a, b) for a in rows for b in rows if a < b and np.linalg.norm(pos[a] - pos[b]) > 0.06]
    rng = np.random.default_rng(4)
    for a, b in pairs[:3]:
        q = rng.normal(size=(2, 3))
        q /= np.linalg.norm(q, axis=1, keepdims=True)
        x = _data(moved, [a, b], q, 64 * 1e4)
        found = fit_source_set(x, grid.gain, grid.source_space, seeds="scan")
        assert len(found) == 2, found.criterion
        err = cdist(pos[[a, b]], found.positions).min(axis=1)
        assert err.max() < 3e-3, err


def test_number_of_sources_from_noise(grid, moved):
    """White noise alone yields no source; a 10 dB source one, not two."""
    for seed in range(3):
        x = np.random.default_rng(seed).standard_normal(64)
        assert len(fit_source_set(x, grid.gain, grid.source_space, seeds="scan")) == 0
    r = _interior(grid, moved, 3, 5)
    for i, row in enumerate(r):
        x = _data(moved, [row], [np.array([1.0, 0.5, -0.3])], 640.0, noise_seed=10 + i)
        found = fit_source_set(x, grid.gain, grid.source_space, seeds="scan")
        assert len(found) == 1, found.criterion
        assert np.linalg.norm(found.positions[0] - moved.source_space.pos[row]) < 0.01


def test_signal_subspace_dimension_of_noise_and_sources():
    """White noise alone passes the 99 % edge in ~1 % of windows; two independent time
    courses well above it give two dimensions, however the forward errs."""
    rng = np.random.default_rng(0)
    alarms = [signal_subspace_dimension(rng.standard_normal((63, 20))) for _ in range(1000)]
    assert 0.0 < np.mean(alarms) < 0.03, np.mean(alarms)
    topo = rng.standard_normal((63, 2))
    courses = np.vstack([np.sin(np.linspace(0, np.pi, 20)), np.cos(np.linspace(0, np.pi, 20))])
    x = 3.0 * topo @ courses + rng.standard_normal((63, 20))
    assert signal_subspace_dimension(x) == 2
    # smooth noise of 3 independent samples: counted as 13 it looks like signal
    smooth = _smooth_noise(rng, 63, 13, 3)
    assert signal_subspace_dimension(smooth) >= 1
    assert signal_subspace_dimension(smooth, n_times=3) == 0


def _smooth_noise(rng, n_ch, n_t, n_eff):
    """Unit-variance (on average) noise with ``n_eff`` independent samples in ``n_t``: white
    over channels, a random combination of the first ``n_eff`` cosines over time."""
    t = (np.arange(n_t) + 0.5) / n_t
    basis = np.array([np.cos(np.pi * k * t) for k in range(n_eff)])
    basis, _ = np.linalg.qr(basis.T)  # (n_t, n_eff), orthonormal columns
    return np.sqrt(n_t / n_eff) * rng.standard_normal((n_ch, n_eff)) @ basis.T


def test_effective_samples_and_the_count_on_low_passed_noise(grid, moved):
    """2·B·T + 1 independent samples; low-passed noise counted sample by sample makes
    spurious sources, counted by its independent samples it does not."""
    assert effective_samples(13, 600.614990234375, 40.0) == pytest.approx(2 * 40 * 13 / 600.615
                                                                          + 1, rel=1e-4)
    assert effective_samples(20, 250.0, 125.0) == 20.0  # white up to Nyquist
    assert effective_samples(20, 250.0, None) == 20.0
    assert effective_samples(5, 1000.0, 1.0) == pytest.approx(1.01)  # at least one
    rng = np.random.default_rng(3)
    row = _interior(grid, moved, 1, 7)[0]
    naive, corrected = [], []
    for _ in range(6):  # 40 samples at 600 Hz low-passed near 15 Hz: 2 independent ones
        course = np.hanning(42)[1:-1]
        signal = np.outer(moved.gain[:, row] @ np.array([1.0, 0.4, -0.2]), course)
        x = signal / np.linalg.norm(signal) * np.sqrt(64 * 40) + _smooth_noise(rng, 64, 40, 2)
        naive.append(len(fit_source_set(x, grid.gain, grid.source_space, seeds="scan")))
        found = fit_source_set(x, grid.gain, grid.source_space, seeds="scan", n_effective=2)
        corrected.append(len(found))  # 0 dB over 2 independent samples: within 2.5 steps
        assert np.linalg.norm(found.positions[0] - moved.source_space.pos[row]) < 0.02
    assert max(naive) > 1, naive  # the uncorrected criterion is fooled
    assert corrected == [1] * 6, corrected


def test_subspace_price_admits_a_weak_second_source(grid, moved):
    """A second source with its own time course, too weak to pay the full price, is kept
    when the data's signal subspace has two dimensions; noise alone still gives none."""
    rows = _interior(grid, moved, 40, 11)
    pos = moved.source_space.pos
    a, b = next((a, b) for a in rows for b in rows
                if a < b and np.linalg.norm(pos[a] - pos[b]) > 0.06)
    rng = np.random.default_rng(5)
    t = np.linspace(0, 1, 20)
    fa = np.outer(moved.gain[:, a] @ np.array([1.0, 0.0, 0.3]), np.sin(np.pi * t))
    fb = np.outer(moved.gain[:, b] @ np.array([0.2, 1.0, 0.0]), np.sin(2 * np.pi * t))
    counts = {None: [], 0.3: []}
    for _ in range(6):
        x = (fa / np.linalg.norm(fa) * np.sqrt(3000.0) + fb / np.linalg.norm(fb) * np.sqrt(200.0)
             + rng.standard_normal((64, 20)))
        for price in counts:
            counts[price].append(len(fit_source_set(x, grid.gain, grid.source_space,
                                                    seeds="scan", subspace_price=price)))
    assert np.mean(np.array(counts[0.3]) == 2) > np.mean(np.array(counts[None]) == 2), counts
    for seed in range(3):
        x = np.random.default_rng(seed).standard_normal((64, 20))
        assert len(fit_source_set(x, grid.gain, grid.source_space, seeds="scan",
                                  subspace_price=0.3)) == 0
    with pytest.raises(ValueError, match="subspace_price"):
        fit_source_set(x, grid.gain, grid.source_space, seeds="scan", subspace_price=0.0)


def test_map_proposal_and_outputs(grid, moved):
    row = _interior(grid, moved, 1, 6)[0]
    x = _data(moved, [row], [np.array([0.0, 1.0, 0.0])], 64 * 100.0, noise_seed=0)
    # a proposal map peaked at the grid point nearest the truth
    lg = LocalGain(grid.gain, grid.source_space.pos, SPACING)
    d = np.linalg.norm(grid.source_space.pos - grid.source_space.pos[lg.tree.query(
        moved.source_space.pos[row])[1]], axis=1)
    found = fit_source_set(x, grid.gain, grid.source_space, proposal=np.exp(-(d / 0.01) ** 2),
                           seeds="map")
    assert len(found) == 1 and found.sources[0].seed == "map"
    assert np.linalg.norm(found.positions[0] - moved.source_space.pos[row]) < 3e-3
    table = found.to_table()
    assert table[0]["x_mm"] == pytest.approx(found.positions[0][0] * 1e3, abs=0.01)
    assert abs(abs(found.sources[0].orientation[1]) - 1.0) < 0.05
    assert found.to_tsv().count("\n") == 2
    assert table[0]["extent_mm"] == pytest.approx(
        equivalent_extent_mm(found.sources[0].amplitude, found.is_subcortical[0]), abs=0.05)
    assert "extent_mm" in found.to_tsv().splitlines()[0]
    dip = found.to_dipole(time=0.1, trans=mne.transforms.Transform("head", "mri"))
    assert isinstance(dip, mne.Dipole) and np.allclose(dip.pos, found.positions)
    with pytest.raises(ValueError, match="proposal"):
        fit_source_set(x, grid.gain, grid.source_space, seeds="map")
    with pytest.raises(ValueError, match="zero"):
        fit_source_set(np.zeros(64), grid.gain, grid.source_space, seeds="scan")


def test_equivalent_extent_is_the_disc_or_ball_of_the_moment():
    # 10 mm disc of cortex at 0.5 nA·m/mm²: 157 nA·m; 8 mm ball at 0.05 nA·m/mm³: 107 nA·m
    assert equivalent_extent_mm(0.5e-3 * np.pi * 0.01**2, False) == pytest.approx(10.0)
    assert equivalent_extent_mm(0.05 * 4 / 3 * np.pi * 0.008**3, True) == pytest.approx(8.0)
    # four times the density: half the cortical radius
    assert equivalent_extent_mm(0.5e-3 * np.pi * 0.01**2, False,
                                cortical_density=2e-3) == pytest.approx(5.0)
    assert equivalent_extent_mm(0.0, False) == 0.0
    with pytest.raises(ValueError, match="amplitude"):
        equivalent_extent_mm(-1e-9, True)


class _BlobModel:
    """A stand-in network: a Gaussian blob at the data's best-fitting grid point, so its map of
    a residual moves to what is left unexplained."""

    def __init__(self, lf):
        self.lf = lf
        self.ch_names, self.ch_types = list(lf.ch_names), list(lf.ch_types)
        self.n_sources, self.source_space = lf.n_sources, lf.source_space
        self.source_space_hash = lf.source_space.hash()
        self.channel_scale = np.full(lf.n_channels, 1e-6)
        self.whitener = None

    def predict(self, data):
        g = self.lf.gain.reshape(self.lf.n_channels, -1)
        q, *_ = np.linalg.lstsq(g, data, rcond=None)
        energy = np.sum(q.reshape(self.lf.n_sources, 3, -1) ** 2, axis=(1, 2))
        d = np.linalg.norm(self.source_space.pos - self.source_space.pos[np.argmax(energy)],
                           axis=1)
        return np.repeat(np.exp(-0.5 * (d / 0.01) ** 2)[:, None], data.shape[1], axis=1)


def test_apply_network_sources_two_dipoles(grid, moved, tmp_path):
    from deepesi.inverse import apply_network, read_source_map

    pos = moved.source_space.pos
    rows = _interior(grid, moved, 40, 7)
    a, b = next((a, b) for a in rows for b in rows if np.linalg.norm(pos[a] - pos[b]) > 0.07)
    wave = np.exp(-0.5 * ((np.arange(11) - 5) / 2.0) ** 2)
    signal = (moved.gain[:, a] @ np.array([2.0, 0.0, 1.0]) * 1e-8)[:, None] * wave
    signal += (moved.gain[:, b] @ np.array([0.0, 1.5, -1.0]) * 1e-8)[:, None] * wave[::-1]
    # an average of 4 trials: the noise is the single-trial covariance / 4
    noise = 0.5 * 0.05e-6 * np.random.default_rng(0).standard_normal(signal.shape)
    info = mne.create_info(list(grid.ch_names), 250.0, "eeg")
    evoked = mne.EvokedArray(signal + noise - (signal + noise).mean(axis=0), info, tmin=-0.02,
                             nave=4)
    cov = mne.make_ad_hoc_cov(info, std={"eeg": 0.05e-6})
    res = apply_network(evoked, _BlobModel(grid), noise_cov=cov, forward=grid, sources=True,
                        source_window=0.02)
    assert len(res.sources) == 2, res.fit["sources"]["criterion"]
    assert res.fit["sources"]["nave"] == 4
    assert res.fit["sources"]["noise"]["source"] == "noise covariance / nave"  # 5 pre-0 samples
    found = np.array([[r["x_mm"], r["y_mm"], r["z_mm"]] for r in res.sources]) * 1e-3
    assert cdist(pos[[a, b]], found).min(axis=1).max() < 3e-3
    from deepesi.viz.report import fit_html

    assert "<b>Sources</b>" in fit_html(res) and fit_html(res).count("<tr><td>") == 2
    back = read_source_map(res.save(tmp_path / "out"))
    assert back.sources == res.sources
    assert (tmp_path / "out" / "sources.tsv").read_text().count("\n") == 3
    with pytest.raises(ValueError, match="needs the model's forward"):
        apply_network(evoked, _BlobModel(grid), noise_cov=cov, sources=True)


def test_apply_network_sources_count_against_the_baseline_noise(grid, moved):
    """An average whose noise is 3× (in s.d.) what the covariance / nave says: counted against
    the covariance, noise makes extra sources; against the baseline, the two real ones."""
    from deepesi.inverse import apply_network

    pos = moved.source_space.pos
    rows = _interior(grid, moved, 40, 7)
    a, b = next((a, b) for a in rows for b in rows if np.linalg.norm(pos[a] - pos[b]) > 0.07)
    n_pre, n_win = 60, 11
    wave = np.zeros(n_pre + n_win)
    wave[n_pre:] = np.exp(-0.5 * ((np.arange(n_win) - 5) / 2.0) ** 2)
    signal = (moved.gain[:, a] @ np.array([2.0, 0.0, 1.0]) * 1.5e-9)[:, None] * wave
    signal += (moved.gain[:, b] @ np.array([0.0, 1.5, -1.0]) * 1.5e-9)[:, None] * np.roll(wave, 2)
    noise = 3 * 0.5 * 0.05e-6 * np.random.default_rng(1).standard_normal(signal.shape)
    info = mne.create_info(list(grid.ch_names), 250.0, "eeg")
    x = signal + noise
    evoked = mne.EvokedArray(x - x.mean(axis=0), info, tmin=-n_pre / 250.0, nave=4)
    cov = mne.make_ad_hoc_cov(info, std={"eeg": 0.05e-6})
    kw = dict(noise_cov=cov, forward=grid, sources=True, source_window=0.02, tmin=0.0)
    naive = apply_network(evoked, _BlobModel(grid), noise_from_baseline=False, **kw)
    res = apply_network(evoked, _BlobModel(grid), **kw)
    noise_info = res.fit["sources"]["noise"]
    assert noise_info["source"] == "baseline" and noise_info["baseline_samples"] == n_pre
    assert 7.0 < noise_info["variance_ratio"] < 11.0  # 3² = 9
    assert len(naive.sources) > 2, (naive.fit["sources"]["criterion"], naive.sources)
    assert len(res.sources) == 2, res.fit["sources"]["criterion"]
    found = np.array([[r["x_mm"], r["y_mm"], r["z_mm"]] for r in res.sources]) * 1e-3
    assert cdist(pos[[a, b]], found).min(axis=1).max() < 6e-3
