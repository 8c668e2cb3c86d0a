"""Accuracy metrics for source maps: localization error, dispersion, AUC, EMD, nMSE, region hits.

Every metric takes a *true* and an *estimated* map of non-negative amplitudes over the same source
points (shape ``(n_sources,)``, e.g. the dipole-moment norm per point), the source positions in
metres and, where needed, the region id of each point. Distances are returned in metres. The
definitions, with formulas and which direction is better, are in ``docs/metrics.md``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
from scipy import sparse
from scipy.optimize import linprog
from scipy.spatial import cKDTree
from scipy.spatial.distance import cdist

from ._validation import check_finite
from .inverse.peaks import _median_spacing, find_peaks

__all__ = [
    "RegionScores",
    "area_under_roc",
    "dipole_localization_error",
    "earth_movers_distance",
    "evaluate",
    "find_peaks",
    "nmse",
    "peak_localization_error",
    "region_precision_recall",
    "spatial_dispersion",
]


# ----------------------------------------------------------------------------- validation
def _check_map(values: np.ndarray, name: str, n: int | None = None) -> np.ndarray:
    arr = np.asarray(values)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be a numeric array, got dtype {arr.dtype}.")
    arr = check_finite(arr.astype(float), name)
    if arr.ndim != 1:
        raise ValueError(
            f"{name} must be one value per source point, shape (n_sources,), got {arr.shape}; "
            "for time courses pick a time point (or average) first."
        )
    if n is not None and len(arr) != n:
        raise ValueError(f"{name} has {len(arr)} values but there are {n} source points.")
    if (arr < 0).any():
        raise ValueError(
            f"{name} has negative values (min {arr.min():.3g}); metrics take non-negative "
            "amplitude maps: pass np.abs(values), or the norm over orientations."
        )
    return arr


def _check_pos(pos: np.ndarray) -> np.ndarray:
    pos = check_finite(np.asarray(pos, dtype=float), "source positions")
    if pos.ndim != 2 or pos.shape[1] != 3 or len(pos) == 0:
        raise ValueError(
            f"source positions must have shape (n_sources>0, 3) in metres, got {pos.shape}."
        )
    if np.abs(pos).max() > 1.0:
        raise ValueError(
            "source positions exceed 1 m in magnitude: they look like millimetres; deepesi "
            "metrics take metres (divide by 1000)."
        )
    return pos


def _check_pair(
    true_map: np.ndarray, est_map: np.ndarray, pos: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    true_map = _check_map(true_map, "true map")
    est_map = _check_map(est_map, "estimated map", len(true_map))
    if pos is not None:
        pos = _check_pos(pos)
        if len(pos) != len(true_map):
            raise ValueError(
                f"there are {len(pos)} source positions but the maps have {len(true_map)} values."
            )
    return true_map, est_map, pos


def _require_nonzero(arr: np.ndarray, name: str) -> None:
    if not (arr > 0).any():
        raise ValueError(f"{name} is zero everywhere; the metric is undefined for an empty map.")


# ----------------------------------------------------------------------------- localization
def peak_localization_error(true_map: np.ndarray, est_map: np.ndarray, pos: np.ndarray) -> float:
    """Distance (m) between the maximum of the true map and the maximum of the estimate.

    The metric for a single focal source. Ties are broken by the lowest index.

    Parameters
    ----------
    true_map, est_map : ndarray, shape (n_sources,)
        Non-negative amplitude maps.
    pos : ndarray, shape (n_sources, 3)
        Source positions in metres.

    Returns
    -------
    error : float
        Euclidean distance in metres (0 is best).
    """
    true_map, est_map, pos = _check_pair(true_map, est_map, pos)
    _require_nonzero(true_map, "true map")
    _require_nonzero(est_map, "estimated map")
    return float(np.linalg.norm(pos[np.argmax(true_map)] - pos[np.argmax(est_map)]))


def dipole_localization_error(
    true_map: np.ndarray,
    est_map: np.ndarray,
    pos: np.ndarray,
    *,
    adjacency: sparse.spmatrix | None = None,
    radius: float | None = None,
    rel_threshold: float = 0.5,
    true_threshold: float = 0.0,
) -> float:
    """Two-sided dipole localization error (DLE, m) for one or several sources.

    Following Yao & Dewald (2005) and Chowdhury et al. (2013)::

        DLE = 1/(2|I|) Σ_{i∈I} min_{j∈Ĵ} ‖r_i − r_j‖ + 1/(2|Ĵ|) Σ_{j∈Ĵ} min_{i∈I} ‖r_i − r_j‖

    where ``I`` are the active points of the true map (value > ``true_threshold`` × max) and ``Ĵ``
    the local maxima of the estimate (see :func:`find_peaks`). The first term penalises missed
    sources, the second spurious peaks. For one point source and one estimated peak it equals the
    peak localization error.

    Parameters
    ----------
    true_map, est_map : ndarray, shape (n_sources,)
        Non-negative amplitude maps.
    pos : ndarray, shape (n_sources, 3)
        Source positions in metres.
    adjacency, radius, rel_threshold
        How estimated peaks are found, see :func:`find_peaks`.
    true_threshold : float
        Fraction of the true maximum above which a true point counts as active (0: any positive).

    Returns
    -------
    dle : float
        Metres (0 is best).
    """
    true_map, est_map, pos = _check_pair(true_map, est_map, pos)
    _require_nonzero(true_map, "true map")
    _require_nonzero(est_map, "estimated map")
    if not 0.0 <= true_threshold < 1.0:
        raise ValueError(f"true_threshold must be in [0, 1), got {true_threshold}.")
    active = np.flatnonzero(true_map > true_threshold * true_map.max())
    peaks = find_peaks(
        est_map, pos, adjacency=adjacency, radius=radius, rel_threshold=rel_threshold
    )
    d = cdist(pos[active], pos[peaks])
    return float(0.5 * d.min(axis=1).mean() + 0.5 * d.min(axis=0).mean())


def spatial_dispersion(
    true_map: np.ndarray, est_map: np.ndarray, pos: np.ndarray, *, true_threshold: float = 0.0
) -> float:
    """Spatial dispersion (SD, m) of the estimate around the true source(s).

    Molins et al. (2008) / Hauk et al. (2011, 2022) style::

        SD = sqrt( Σ_j d_j² ê_j² / Σ_j ê_j² ),   d_j = min_{i∈I} ‖r_j − r_i‖

    i.e. the amplitude²-weighted RMS distance of the estimated activity from the nearest active
    true point (``I`` as in :func:`dipole_localization_error`). 0 means all estimated activity sits
    on the true source(s); larger is more blurred or displaced.

    Parameters
    ----------
    true_map, est_map : ndarray, shape (n_sources,)
        Non-negative amplitude maps.
    pos : ndarray, shape (n_sources, 3)
        Source positions in metres.
    true_threshold : float
        Fraction of the true maximum above which a true point counts as active.

    Returns
    -------
    sd : float
        Metres (0 is best).
    """
    true_map, est_map, pos = _check_pair(true_map, est_map, pos)
    _require_nonzero(true_map, "true map")
    _require_nonzero(est_map, "estimated map")
    active = np.flatnonzero(true_map > true_threshold * true_map.max())
    dist, _ = cKDTree(pos[active]).query(pos, k=1)
    w = (est_map / est_map.max()) ** 2
    return float(np.sqrt(np.sum(w * dist**2) / np.sum(w)))


# ----------------------------------------------------------------------------- detection
def _auc(scores_pos: np.ndarray, scores_neg: np.ndarray) -> float:
    """Mann-Whitney AUC: P(score_pos > score_neg) + 0.5 P(equal)."""
    if len(scores_pos) == 0 or len(scores_neg) == 0:
        return float("nan")
    allv = np.concatenate([scores_pos, scores_neg])
    order = np.argsort(allv, kind="mergesort")
    ranks = np.empty(len(allv))
    sorted_v = allv[order]
    # average ranks over ties
    _, start, counts = np.unique(sorted_v, return_index=True, return_counts=True)
    avg = start + (counts + 1) / 2.0
    ranks[order] = np.repeat(avg, counts)
    n_pos, n_neg = len(scores_pos), len(scores_neg)
    u = ranks[:n_pos].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def area_under_roc(
    true_map: np.ndarray,
    est_map: np.ndarray,
    pos: np.ndarray,
    *,
    close_radius: float = 0.02,
    true_threshold: float = 0.0,
) -> dict[str, float]:
    """Area under the ROC curve for detecting the active points, close and far fields separately.

    A deterministic variant of Grova et al. (2006): the positives are the active true points
    (value > ``true_threshold`` × max); the negatives are split into the *close field* (inactive
    points within ``close_radius`` of an active point) and the *far field* (all other inactive
    points). Sweeping a threshold over the estimated amplitude, AUC is computed exactly as the
    Mann-Whitney statistic P(ê_active > ê_inactive) (+½ for ties) against each field. Grova et
    al. balance the classes by drawing as many negatives as positives at random; the AUC does not
    depend on class sizes, so using all of them gives the expectation of that draw without its
    randomness.

    Parameters
    ----------
    true_map, est_map : ndarray, shape (n_sources,)
        Non-negative amplitude maps.
    pos : ndarray, shape (n_sources, 3)
        Source positions in metres.
    close_radius : float
        Radius (m) of the close field around the active points.
    true_threshold : float
        Fraction of the true maximum above which a true point counts as active.

    Returns
    -------
    auc : dict
        ``{'auc_close', 'auc_far', 'auc'}`` in [0, 1] (1 is best, 0.5 is chance); ``'auc'`` is the
        mean of the two (NaN for a field with no points, and the mean then uses the other).
    """
    true_map, est_map, pos = _check_pair(true_map, est_map, pos)
    _require_nonzero(true_map, "true map")
    if close_radius <= 0:
        raise ValueError(f"close_radius must be positive (metres), got {close_radius}.")
    active = true_map > true_threshold * true_map.max()
    if active.all():
        raise ValueError("every point is active in the true map; AUC needs inactive points.")
    dist, _ = cKDTree(pos[active]).query(pos, k=1)
    close = ~active & (dist <= close_radius)
    far = ~active & ~close
    auc_close = _auc(est_map[active], est_map[close])
    auc_far = _auc(est_map[active], est_map[far])
    both = [a for a in (auc_close, auc_far) if not np.isnan(a)]
    return {"auc_close": auc_close, "auc_far": auc_far, "auc": float(np.mean(both))}


# ----------------------------------------------------------------------------- map distances
def _normalise_sum(values: np.ndarray, name: str) -> np.ndarray:
    total = values.sum()
    if total <= 0:
        raise ValueError(f"{name} is zero everywhere; EMD needs a non-empty map.")
    return values / total


def _coarsen(
    pos: np.ndarray, mass: np.ndarray, max_support: int
) -> tuple[np.ndarray, np.ndarray, float]:
    """Merge mass into cubic bins until at most ``max_support`` bins remain.

    Returns the mass-weighted bin centroids, bin masses, and the transport cost of the merge
    (Σ mass × distance to its centroid), an upper bound on how much the merge changes the EMD.
    """
    idx = np.flatnonzero(mass > 0)
    p, m = pos[idx], mass[idx]
    if len(idx) <= max_support:
        return p, m, 0.0
    extent = float(np.ptp(p, axis=0).max())
    size = max(_median_spacing(p), 1e-6)
    while True:
        size *= 1.25
        keys = np.floor((p - p.min(axis=0)) / size).astype(np.int64)
        _, inv = np.unique(keys, axis=0, return_inverse=True)
        inv = inv.ravel()
        if inv.max() + 1 <= max_support or size > 2 * extent:
            break
    n_bins = inv.max() + 1
    bin_mass = np.bincount(inv, weights=m, minlength=n_bins)
    centroids = (
        np.stack(
            [np.bincount(inv, weights=m * p[:, k], minlength=n_bins) for k in range(3)], axis=1
        )
        / bin_mass[:, None]
    )
    cost = float(np.sum(m * np.linalg.norm(p - centroids[inv], axis=1)))
    return centroids, bin_mass, cost


def earth_movers_distance(
    true_map: np.ndarray,
    est_map: np.ndarray,
    pos: np.ndarray,
    *,
    max_support: int = 400,
    return_bound: bool = False,
) -> float | tuple[float, float]:
    """Earth mover's distance (Wasserstein-1, m) between the sum-normalised maps.

    Both maps are scaled to sum 1 and treated as mass distributions over the source positions;
    the EMD is the least total mass × Euclidean distance needed to turn one into the other,
    solved exactly as a transport linear program (``scipy.optimize.linprog``, HiGHS) over the
    points where each map is non-zero. It is the average distance the estimated activity must be
    moved to match the truth: 0 is best.

    When a map has more than ``max_support`` non-zero points the problem would be too large
    (n_true × n_est variables), so its mass is first merged into cubic bins (mass-weighted
    centroids) until at most ``max_support`` bins remain. By the triangle inequality the result
    then differs from the exact EMD by at most the mass-weighted distance moved in that merge;
    that bound is returned with ``return_bound=True`` (0 when the computation was exact).

    Parameters
    ----------
    true_map, est_map : ndarray, shape (n_sources,)
        Non-negative amplitude maps (not both zero).
    pos : ndarray, shape (n_sources, 3)
        Source positions in metres.
    max_support : int
        Largest number of non-zero points per map solved exactly.
    return_bound : bool
        Also return the bound (m) on the approximation error.

    Returns
    -------
    emd : float
        Metres.
    bound : float
        Only with ``return_bound``: maximum absolute error of ``emd`` in metres.
    """
    true_map, est_map, pos = _check_pair(true_map, est_map, pos)
    if int(max_support) < 1:
        raise ValueError(f"max_support must be a positive integer, got {max_support}.")
    a = _normalise_sum(true_map, "true map")
    b = _normalise_sum(est_map, "estimated map")
    pa, ma, ca = _coarsen(pos, a, int(max_support))
    pb, mb, cb = _coarsen(pos, b, int(max_support))
    na, nb = len(ma), len(mb)
    cost = cdist(pa, pb).ravel()
    if na == 1 or nb == 1:
        emd = float(np.sum(cost * (mb if na == 1 else ma)))
    else:
        # flow x[i, j] ≥ 0, Σ_j x[i, j] = ma[i], Σ_i x[i, j] = mb[j] (the last one is redundant)
        rows_a = sparse.kron(sparse.eye(na), np.ones((1, nb)))
        rows_b = sparse.kron(np.ones((1, na)), sparse.eye(nb))
        a_eq = sparse.vstack([rows_a, rows_b]).tocsr()[:-1]
        b_eq = np.concatenate([ma, mb])[:-1]
        b_eq[na:] *= ma.sum() / mb.sum()  # exact balance after float rounding
        res = linprog(cost, A_eq=a_eq, b_eq=b_eq, bounds=(0, None), method="highs")
        if res.status != 0:
            raise RuntimeError(f"EMD transport problem failed: {res.message}")
        emd = float(res.fun)
    bound = ca + cb
    if bound > 0 and not return_bound:
        warnings.warn(
            f"EMD approximated on at most {max_support} bins per map (error ≤ {bound * 1e3:.2f} "
            "mm); raise max_support for an exact value.",
            RuntimeWarning,
            stacklevel=2,
        )
    return (emd, bound) if return_bound else emd


def nmse(true_map: np.ndarray, est_map: np.ndarray) -> float:
    """Normalised mean squared error between the max-normalised maps.

    ``nMSE = (1/n) Σ_j (t_j / max t − ê_j / max ê)²`` (as in Hecker et al. 2021, ConvDip): the
    mean over all source points of the squared difference of the two maps each scaled to a
    maximum of 1. It ignores the overall amplitude and is 0 for a perfect shape; an all-zero
    estimate is treated as the zero map. Dimensionless, in [0, 1], lower is better.

    Parameters
    ----------
    true_map, est_map : ndarray, shape (n_sources,)
        Non-negative amplitude maps.

    Returns
    -------
    nmse : float
    """
    true_map, est_map, _ = _check_pair(true_map, est_map)
    _require_nonzero(true_map, "true map")
    t = true_map / true_map.max()
    e = est_map / est_map.max() if est_map.max() > 0 else est_map
    return float(np.mean((t - e) ** 2))


# ----------------------------------------------------------------------------- regions
@dataclass(frozen=True)
class RegionScores:
    """Region-level detection scores (see :func:`region_precision_recall`)."""

    precision: float
    recall: float
    f1: float
    true_regions: tuple[int, ...] = field(default_factory=tuple)
    est_regions: tuple[int, ...] = field(default_factory=tuple)


def region_precision_recall(
    true_map: np.ndarray,
    est_map: np.ndarray,
    region_ids: np.ndarray,
    *,
    true_threshold: float = 0.1,
    est_threshold: float = 0.5,
    ignore_regions: tuple[int, ...] = (0,),
) -> RegionScores:
    """Precision and recall of the active regions.

    A region's value is the maximum of the map over its points. A region is *active* in the truth
    if its value is ≥ ``true_threshold`` × the global true maximum, and *detected* in the estimate
    if its value is ≥ ``est_threshold`` × the global estimated maximum. Then
    ``precision = |true ∩ detected| / |detected|`` and ``recall = |true ∩ detected| / |true|``
    (1 is best); ``f1`` is their harmonic mean. The estimate's threshold is higher by default
    because inverse solutions leak low-level activity into many regions; the truth's is low
    because any region carrying a tenth of the source is genuinely involved.

    Parameters
    ----------
    true_map, est_map : ndarray, shape (n_sources,)
        Non-negative amplitude maps.
    region_ids : ndarray of int, shape (n_sources,)
        Region id per point (``SourceSpace.region_ids``).
    true_threshold, est_threshold : float
        Relative thresholds in (0, 1].
    ignore_regions : tuple of int
        Region ids never counted (0 = unknown by default).

    Returns
    -------
    scores : RegionScores
        With the sorted region ids of both sets. Precision is NaN when nothing is detected.
    """
    true_map, est_map, _ = _check_pair(true_map, est_map)
    _require_nonzero(true_map, "true map")
    region_ids = np.asarray(region_ids)
    if region_ids.shape != true_map.shape or region_ids.dtype.kind not in "iu":
        raise ValueError(
            f"region_ids must be integers, one per source point ({true_map.shape}), got "
            f"{region_ids.shape} of dtype {region_ids.dtype}."
        )
    for name, thr in (("true_threshold", true_threshold), ("est_threshold", est_threshold)):
        if not 0.0 < thr <= 1.0:
            raise ValueError(f"{name} must be in (0, 1], got {thr}.")
    keep = ~np.isin(region_ids, list(ignore_regions))
    ids = np.unique(region_ids[keep])

    def active(values: np.ndarray, thr: float) -> set[int]:
        if values.max() <= 0:
            return set()
        level = thr * values.max()
        return {int(r) for r in ids if values[keep & (region_ids == r)].max() >= level}

    true_set = active(true_map, true_threshold)
    est_set = active(est_map, est_threshold)
    hits = len(true_set & est_set)
    precision = hits / len(est_set) if est_set else float("nan")
    recall = hits / len(true_set) if true_set else float("nan")
    f1 = 2 * hits / (len(true_set) + len(est_set)) if (true_set or est_set) else float("nan")
    return RegionScores(precision, recall, f1, tuple(sorted(true_set)), tuple(sorted(est_set)))


# ----------------------------------------------------------------------------- all at once
def evaluate(
    true_map: np.ndarray,
    est_map: np.ndarray,
    pos: np.ndarray,
    region_ids: np.ndarray | None = None,
    *,
    adjacency: sparse.spmatrix | None = None,
    max_support: int = 400,
) -> dict[str, float]:
    """Every metric of this module for one pair of maps, with default settings.

    Returns
    -------
    scores : dict
        ``ple`` (m), ``dle`` (m), ``sd`` (m), ``auc_close``, ``auc_far``, ``auc``, ``emd`` (m),
        ``nmse``, and with ``region_ids`` also ``precision``, ``recall``, ``f1``. Metrics that are
        undefined for an all-zero estimate are NaN.
    """
    true_map, est_map, pos = _check_pair(true_map, est_map, pos)
    out: dict[str, float] = {}
    empty = not (est_map > 0).any()
    nan = float("nan")
    out["ple"] = nan if empty else peak_localization_error(true_map, est_map, pos)
    out["dle"] = (
        nan if empty else dipole_localization_error(true_map, est_map, pos, adjacency=adjacency)
    )
    out["sd"] = nan if empty else spatial_dispersion(true_map, est_map, pos)
    out.update(area_under_roc(true_map, est_map, pos))
    if empty:
        out["emd"] = nan
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            out["emd"] = earth_movers_distance(true_map, est_map, pos, max_support=max_support)
    out["nmse"] = nmse(true_map, est_map)
    if region_ids is not None:
        scores = region_precision_recall(true_map, est_map, region_ids)
        out.update(precision=scores.precision, recall=scores.recall, f1=scores.f1)
    return out
