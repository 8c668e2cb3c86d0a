"""Metrics on hand-made maps whose answers are known analytically."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy import sparse
from scipy.stats import wasserstein_distance

from deepesi import metrics


def line(n: int = 21, step: float = 0.01) -> np.ndarray:
    """``n`` points on the x axis, ``step`` metres apart."""
    pos = np.zeros((n, 3))
    pos[:, 0] = np.arange(n) * step
    return pos


def bumps(n: int, centres, width: int = 1, heights=None) -> np.ndarray:
    """Triangular bumps (value 1 at the centre, decreasing to 0 over ``width`` + 1 points)."""
    out = np.zeros(n)
    heights = [1.0] * len(centres) if heights is None else heights
    for c, h in zip(centres, heights):
        for k in range(-width, width + 1):
            if 0 <= c + k < n:
                out[c + k] = max(out[c + k], h * (1 - abs(k) / (width + 1)))
    return out


# ---------------------------------------------------------------------------- peaks
def test_find_peaks_line_radius_and_adjacency():
    pos = line()
    est = bumps(21, [3, 12, 18], heights=[1.0, 0.8, 0.3])
    # the one find_peaks (deepesi.inverse.find_peaks, re-exported by metrics) keeps every
    # positive peak by default; the DLE passes its own threshold of 0.5
    assert metrics.find_peaks(est, pos, rel_threshold=0.5).tolist() == [3, 12]  # 0.3 < 0.5 max
    assert metrics.find_peaks(est, pos).tolist() == [3, 12, 18]
    assert metrics.find_peaks(est, pos, rel_threshold=0.0, n_max=2).tolist() == [3, 12]
    chain = sparse.diags([1.0, 1.0], [-1, 1], shape=(21, 21))
    assert metrics.find_peaks(est, pos, adjacency=chain, rel_threshold=0).tolist() == [3, 12, 18]
    # a plateau gives one peak, the lowest index
    flat = np.zeros(21)
    flat[5:8] = 1.0
    assert metrics.find_peaks(flat, pos).tolist() == [5]
    assert metrics.find_peaks(np.zeros(21), pos).size == 0


# ---------------------------------------------------------------------------- localization
def test_peak_localization_error_is_distance_between_maxima():
    pos = line()
    true = bumps(21, [4])
    est = bumps(21, [11], width=3)
    assert metrics.peak_localization_error(true, est, pos) == pytest.approx(0.07)
    assert metrics.peak_localization_error(true, true, pos) == 0.0


def test_dle_two_sources_with_miss_and_spurious_peak():
    pos = line()
    true = np.zeros(21)
    true[[0, 10]] = 1.0
    est = bumps(21, [1, 10])  # first source 1 cm off, second exact
    # both terms: mean(0.01, 0) -> DLE = 0.5 * 0.005 + 0.5 * 0.005
    assert metrics.dipole_localization_error(true, est, pos) == pytest.approx(0.005)
    est2 = bumps(21, [1, 10, 20])  # plus a spurious peak 10 cm from the nearest source
    expected = 0.5 * (0.01 + 0.0) / 2 + 0.5 * (0.01 + 0.0 + 0.10) / 3
    assert metrics.dipole_localization_error(true, est2, pos) == pytest.approx(expected)
    # single source, single peak: DLE == peak localization error
    one = np.zeros(21)
    one[4] = 1.0
    assert metrics.dipole_localization_error(one, bumps(21, [6]), pos) == pytest.approx(0.02)
    # extended true source (3 active points), two estimated peaks at 1 and 10
    ext = bumps(21, [4])
    term_missed = np.mean([0.02, 0.03, 0.04])  # points 3, 4, 5 to the nearest peak (1)
    term_spurious = np.mean([0.02, 0.05])  # peaks 1 and 10 to the nearest active point
    assert metrics.dipole_localization_error(ext, est, pos) == pytest.approx(
        0.5 * term_missed + 0.5 * term_spurious
    )


def test_spatial_dispersion_weighted_rms_distance():
    pos = line()
    true = np.zeros(21)
    true[5] = 1.0
    est = np.zeros(21)
    est[[6, 7]] = 2.0  # equal amplitudes at 1 and 2 cm
    assert metrics.spatial_dispersion(true, est, pos) == pytest.approx(np.sqrt((1e-4 + 4e-4) / 2))
    assert metrics.spatial_dispersion(true, true * 3, pos) == 0.0
    # amplitude-squared weights: a point twice as strong counts four times as much
    est[7] = 1.0
    assert metrics.spatial_dispersion(true, est, pos) == pytest.approx(
        np.sqrt((4 * 1e-4 + 1 * 4e-4) / 5)
    )


# ---------------------------------------------------------------------------- AUC
def test_auc_perfect_chance_and_close_field_blur():
    pos = line(41)
    true = np.zeros(41)
    true[20] = 1.0
    perfect = metrics.area_under_roc(true, true, pos)
    assert perfect == {"auc_close": 1.0, "auc_far": 1.0, "auc": 1.0}
    flat = metrics.area_under_roc(true, np.ones(41), pos)
    assert flat["auc"] == pytest.approx(0.5)
    # estimate brighter on the neighbours than on the source, dark far away
    est = np.zeros(41)
    est[20] = 0.5
    est[18:20] = est[21:23] = 1.0
    auc = metrics.area_under_roc(true, est, pos, close_radius=0.025)
    # close field = 4 points within 2 cm, all above the source -> 0; far field all below -> 1
    assert auc["auc_close"] == pytest.approx(0.0)
    assert auc["auc_far"] == pytest.approx(1.0)
    assert auc["auc"] == pytest.approx(0.5)
    # half the close field above, half below the source
    est[18], est[22] = 0.0, 0.0
    assert metrics.area_under_roc(true, est, pos, close_radius=0.025)["auc_close"] == 0.5


# ---------------------------------------------------------------------------- EMD
def test_emd_point_masses_and_against_1d_wasserstein():
    pos = line()
    a = np.zeros(21)
    b = np.zeros(21)
    a[2], b[9] = 1.0, 5.0
    assert metrics.earth_movers_distance(a, b, pos) == pytest.approx(0.07)
    assert metrics.earth_movers_distance(a, a, pos) == pytest.approx(0.0, abs=1e-12)
    rng = np.random.default_rng(0)
    for _ in range(3):
        u = rng.random(21) * (rng.random(21) > 0.3)
        v = rng.random(21) * (rng.random(21) > 0.3)
        ref = wasserstein_distance(pos[:, 0], pos[:, 0], u, v)
        assert metrics.earth_movers_distance(u, v, pos) == pytest.approx(ref, rel=1e-6)


def test_emd_3d_split_mass():
    pos = np.array([[0, 0, 0], [0.03, 0, 0], [0, 0.04, 0], [0, 0, 0.05]], float)
    true = np.array([1.0, 0, 0, 0])
    est = np.array([0, 1.0, 1.0, 2.0])  # masses 1/4, 1/4, 1/2 at 3, 4, 5 cm
    assert metrics.earth_movers_distance(true, est, pos) == pytest.approx(
        0.25 * 0.03 + 0.25 * 0.04 + 0.5 * 0.05
    )


def test_emd_approximation_within_bound_and_warns():
    rng = np.random.default_rng(1)
    g = np.stack(np.meshgrid(*[np.arange(6) * 0.01] * 3, indexing="ij"), -1).reshape(-1, 3)
    u = rng.random(len(g))
    v = rng.random(len(g)) ** 4
    exact = metrics.earth_movers_distance(u, v, g, max_support=len(g))
    approx, bound = metrics.earth_movers_distance(u, v, g, max_support=40, return_bound=True)
    assert bound > 0
    assert abs(approx - exact) <= bound + 1e-12
    with pytest.warns(RuntimeWarning, match="approximated"):
        metrics.earth_movers_distance(u, v, g, max_support=40)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        metrics.earth_movers_distance(u, v, g, max_support=len(g))


# ---------------------------------------------------------------------------- nMSE
def test_nmse():
    t = bumps(20, [5], width=2)
    assert metrics.nmse(t, 7.0 * t) == pytest.approx(0.0)
    a, b = np.zeros(20), np.zeros(20)
    a[0], b[10] = 1.0, 3.0
    assert metrics.nmse(a, b) == pytest.approx(2 / 20)
    assert metrics.nmse(a, np.zeros(20)) == pytest.approx(1 / 20)


# ---------------------------------------------------------------------------- regions
def test_region_precision_recall():
    regions = np.repeat([10, 49, 1101, 2101, 0], 4)
    true = np.zeros(20)
    true[0:2] = 1.0  # Left-Thalamus
    true[8] = 0.2  # ctx-lh-frontal, weak but above 10 %
    est = np.zeros(20)
    est[1] = 1.0  # thalamus detected
    est[13] = 0.6  # a false right-frontal detection
    est[9] = 0.3  # frontal below 50 %: missed
    est[17] = 5.0 * 0  # region 0 ignored
    s = metrics.region_precision_recall(true, est, regions)
    assert s.true_regions == (10, 1101)
    assert s.est_regions == (10, 2101)
    assert (s.precision, s.recall) == (0.5, 0.5)
    assert s.f1 == pytest.approx(0.5)
    s2 = metrics.region_precision_recall(true, est, regions, est_threshold=0.25)
    assert s2.est_regions == (10, 1101, 2101)
    assert s2.recall == 1.0 and s2.precision == pytest.approx(2 / 3)
    none = metrics.region_precision_recall(true, np.zeros(20), regions)
    assert np.isnan(none.precision) and none.recall == 0.0


# ---------------------------------------------------------------------------- all + errors
def test_evaluate_perfect_and_empty():
    pos = line()
    regions = np.repeat([10, 49, 1101], 7)
    true = np.zeros(21)
    true[10] = 1.0
    out = metrics.evaluate(true, true, pos, regions)
    assert out["ple"] == 0 and out["dle"] == 0 and out["auc"] == 1.0
    assert out["emd"] == pytest.approx(0, abs=1e-12) and out["nmse"] == 0
    assert out["precision"] == out["recall"] == 1.0
    empty = metrics.evaluate(true, np.zeros(21), pos)
    assert np.isnan(empty["ple"]) and np.isnan(empty["emd"])
    assert empty["auc"] == pytest.approx(0.5)


def test_clear_errors():
    pos = line()
    true = bumps(21, [10])
    with pytest.raises(ValueError, match="negative"):
        metrics.peak_localization_error(true, true - 0.5, pos)
    bad = true.copy()
    bad[3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        metrics.nmse(true, bad)
    with pytest.raises(ValueError, match="20 values but there are 21"):
        metrics.nmse(true, true[:20])
    with pytest.raises(ValueError, match="millimetres"):
        metrics.spatial_dispersion(true, true, pos * 1000)
    with pytest.raises(ValueError, match="shape"):
        metrics.nmse(true[:, None], true[:, None])
    with pytest.raises(ValueError, match="zero everywhere"):
        metrics.peak_localization_error(np.zeros(21), true, pos)
    with pytest.raises(ValueError, match="region_ids"):
        metrics.region_precision_recall(true, true, np.zeros(21))
    with pytest.raises(TypeError, match="numeric"):
        metrics.nmse(np.array(["a"] * 21), true)
