"""Scoring one estimated map against the truth: the geometry between the test and model grids,
the one-to-one matching of peaks to sources, and every metric of :data:`METRICS`."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy import sparse
from scipy.optimize import linear_sum_assignment
from scipy.spatial import ConvexHull, cKDTree
from scipy.spatial.distance import cdist

from ..forward.leadfield import LeadField
from ..metrics import (
    area_under_roc,
    dipole_localization_error,
    earth_movers_distance,
    find_peaks,
    nmse,
    peak_localization_error,
    region_precision_recall,
    spatial_dispersion,
)
from .config import METRICS


@dataclass
class _Geometry:
    """Everything that relates the test source space to the model's, computed once per set."""

    test_pos: np.ndarray
    model_pos: np.ndarray
    test_subcortical: np.ndarray
    model_subcortical: np.ndarray
    test_depth: np.ndarray  # (n_test,) m below the convex hull of the test source space
    model_adj: sparse.csr_matrix
    union_pos: np.ndarray
    union_adj: sparse.csr_matrix
    union_regions: np.ndarray
    proj_index: np.ndarray  # model point -> nearest test point, -1 when too far
    test_to_model: np.ndarray  # test point -> nearest model point

    @classmethod
    def build(cls, test: LeadField, model: LeadField) -> _Geometry:
        ts, ms = test.source_space, model.source_space
        hull = ConvexHull(ts.pos)
        depth = np.clip(-(ts.pos @ hull.equations[:, :3].T + hull.equations[:, 3]), 0, None)
        d_m, nearest_t = cKDTree(ts.pos).query(ms.pos)
        radius = 0.5 * np.sqrt(3.0) * ts.spacing * (1 + 1e-6)
        _, nearest_m = cKDTree(ms.pos).query(ts.pos)
        return cls(
            test_pos=ts.pos,
            model_pos=ms.pos,
            test_subcortical=ts.is_subcortical,
            model_subcortical=ms.is_subcortical,
            test_depth=depth.min(axis=1),
            model_adj=ms.adjacency,
            union_pos=np.vstack([ts.pos, ms.pos]),
            union_adj=sparse.block_diag([ts.adjacency, ms.adjacency], format="csr"),
            union_regions=np.concatenate([ts.region_ids, ms.region_ids]).astype(np.int64),
            proj_index=np.where(d_m <= radius, nearest_t, -1),
            test_to_model=nearest_m,
        )

    def project(self, true_map: np.ndarray) -> np.ndarray:
        """The test-grid map on the model grid (nearest test point within half a voxel diagonal;
        every active test point also reaches its nearest model point)."""
        out = np.where(self.proj_index >= 0, true_map[np.maximum(self.proj_index, 0)], 0.0)
        active = np.flatnonzero(true_map > 0)
        np.maximum.at(out, self.test_to_model[active], true_map[active])
        return out


def _matching(dist: np.ndarray) -> np.ndarray:
    """The peak (column) matched to each source (row) of a (sources x peaks) distance matrix.

    Hungarian assignment minimising the total distance; a source left without a peak (fewer
    peaks than sources) takes its nearest peak.
    """
    rows, cols = linear_sum_assignment(dist)
    match = dist.argmin(axis=1)
    match[rows] = cols
    return match


def _matched_error(dist: np.ndarray) -> np.ndarray:
    """Per-source error from a (sources x peaks) distance matrix, one peak per source
    (:func:`_matching`)."""
    return dist[np.arange(dist.shape[0]), _matching(dist)]


def _match_to_patches(geo: _Geometry, patches: list[np.ndarray], peak_pos: np.ndarray
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Each true source's matched estimate (one-to-one, :func:`_matching`) by the distance from
    the estimate to the nearest point of the source's patch (0 inside it, m): the (sources x
    estimates) distances and the matched estimate of each source."""
    to_patch = np.stack([cdist(geo.test_pos[p], peak_pos).min(axis=0) for p in patches])
    return to_patch, _matching(to_patch)


def _score(
    geo: _Geometry,
    true_map: np.ndarray,
    centres: np.ndarray,
    patches: list[np.ndarray],
    est: np.ndarray,
    max_support: int | None,
    positions: np.ndarray | None = None,
) -> tuple[dict[str, float], list[float]]:
    """Metrics of one estimated map (model grid) against the truth (test grid); mm at the edge.

    ``max_support`` None skips the EMD (NaN), which takes most of the scoring time.
    ``positions`` (n_est, 3; m): a source-set method's own off-grid sources, which then give the
    localization errors (matched one-to-one as the peaks are) instead of the map's peaks; the map
    (each source at its nearest grid point) still gives the map metrics.
    """
    nan = float("nan")
    n_t = len(geo.test_pos)
    out: dict[str, float] = dict.fromkeys(METRICS, nan)
    out["confusion"] = nan
    per_source = [nan] * len(centres)
    if not (np.isfinite(est).all() and (est > 0).any()):
        return out, per_source
    # per-source localization error: the K strongest local maxima matched one-to-one to the
    # sources, by the distance to the nearest point of each true patch (0 inside it) and, as in
    # most papers, to the patch centre
    if positions is not None and len(positions):
        peak_pos = np.asarray(positions, float).reshape(-1, 3)
        peaks = cKDTree(geo.model_pos).query(peak_pos)[1]
    else:
        peaks = find_peaks(est, geo.model_pos, adjacency=geo.model_adj, rel_threshold=0.0,
                           n_max=len(centres))
        peak_pos = geo.model_pos[peaks]
    to_patch, match = _match_to_patches(geo, patches, peak_pos)
    errors = to_patch[np.arange(len(centres)), match]
    per_source = [float(e * 1e3) for e in errors]
    # cortical <-> deep confusion: the matched peak lies in the other compartment than the source
    wrong = geo.model_subcortical[peaks[match]] != geo.test_subcortical[np.asarray(centres)]
    out["confusion"] = float(np.mean(wrong))
    out["le_mm"] = float(np.mean(errors) * 1e3)
    out["le_centre_mm"] = float(np.mean(_matched_error(cdist(geo.test_pos[centres], peak_pos))))
    out["le_centre_mm"] *= 1e3
    # distance metrics exactly, on the union of both point sets (no interpolation)
    true_u = np.concatenate([true_map, np.zeros(len(est))])
    est_u = np.concatenate([np.zeros(n_t), est])
    pos_u = geo.union_pos
    out["ple_mm"] = peak_localization_error(true_u, est_u, pos_u) * 1e3
    out["dle_mm"] = dipole_localization_error(true_u, est_u, pos_u, adjacency=geo.union_adj) * 1e3
    out["sd_mm"] = spatial_dispersion(true_u, est_u, pos_u) * 1e3
    if max_support is not None:
        with warnings.catch_warnings():  # the binning error bound is documented, not news
            warnings.simplefilter("ignore", RuntimeWarning)
            out["emd_mm"] = earth_movers_distance(true_u, est_u, pos_u,
                                                  max_support=max_support) * 1e3
    regions = region_precision_recall(true_u, est_u, geo.union_regions)
    out.update(precision=regions.precision, recall=regions.recall, f1=regions.f1)
    # detection and shape metrics need the same points: the truth projected onto the model grid
    proj = geo.project(true_map)
    out.update(area_under_roc(proj, est, geo.model_pos))
    out["nmse"] = nmse(proj, est)
    return out, per_source
