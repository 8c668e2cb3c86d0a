"""Benchmark: deepesi against the classical inverse methods over a grid of simulated scenarios.

The test data are simulated on a *test* lead field that differs from the one the network was
trained on (finer mesh, perturbed conductivities, off-grid sources: the caller builds it), while
every method inverts with the *model's* lead field, as a user would: all methods see the same
data and the same (mismatched) forward. For every sample and method the maps are scored with
:mod:`deepesi.metrics`; :class:`BenchmarkResult` holds one tidy record per (sample, method) and
summarises them as medians with seeded bootstrap confidence intervals. How the benchmark is built
and why is described in ``docs/benchmarks.md``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
import warnings
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import pairwise, product
from pathlib import Path
from typing import Any

import numpy as np
from scipy import sparse
from scipy.optimize import linear_sum_assignment
from scipy.spatial import ConvexHull, cKDTree
from scipy.spatial.distance import cdist

from ._io import atomic_path
from ._progress import progress as _progress
from .baselines import CLASSICAL_METHODS, apply_classical
from .forward.leadfield import LeadField
from .metrics import (
    area_under_roc,
    dipole_localization_error,
    earth_movers_distance,
    find_peaks,
    nmse,
    peak_localization_error,
    region_precision_recall,
    spatial_dispersion,
)
from .whitening import reference_projector, zca_whitener

logger = logging.getLogger(__name__)

__all__ = [
    "DEEPESI",
    "METRICS",
    "PLACEMENTS",
    "SCENARIO_KEYS",
    "BenchmarkConfig",
    "BenchmarkResult",
    "bootstrap_median",
    "default_set_name",
    "run_benchmark",
]

#: Name of the network in the method list and the records.
DEEPESI = "deepesi"
#: Where the sources of a scenario are placed.
PLACEMENTS = ("cortical", "subcortical", "mixed")
#: Metric columns of the records (distances in mm), and whether lower is better.
METRICS: dict[str, bool] = {
    "le_mm": True,
    "le_centre_mm": True,
    "ple_mm": True,
    "dle_mm": True,
    "sd_mm": True,
    "emd_mm": True,
    "auc": False,
    "auc_close": False,
    "auc_far": False,
    "nmse": True,
    "precision": False,
    "recall": False,
    "f1": False,
}
#: Columns that identify a scenario, in table order.
SCENARIO_KEYS = ("sensor_set", "n_sources", "placement", "snr_db", "extent_mm")
FORMAT = "deepesi-benchmark"
FORMAT_VERSION = 1
_MIN_NORM = ("MNE", "dSPM", "sLORETA", "eLORETA")
_SIM_OVERRIDES = ("cortical_density", "deep_density", "cortical_thickness", "loose", "waveforms")


# ============================================================================ configuration
@dataclass
class BenchmarkConfig:
    """The scenario grid and the settings every method runs with.

    Each *cell* of the grid is one combination of sensor set × number of sources × placement ×
    SNR × extent range and holds ``n_samples`` samples. The source configurations of a cell are
    the same at every SNR (a paired design: the SNR effect is not confounded by the draw).

    Parameters
    ----------
    n_sources : tuple of int
        Numbers of simultaneously active sources (1–3 by default).
    placements : tuple of str
        'cortical' (all sources in cortex/cerebellum), 'subcortical' (all in deep structures:
        thalamus, basal ganglia, hippocampus, amygdala, brainstem), 'mixed' (at least one of each;
        skipped for one source).
    snr_db : tuple of float
        SNR levels in dB: ``10 log10(‖W s‖² / ‖W n‖²)`` over the window, with ``W`` the whitener of
        the noise covariance (per sensor type this is the usual power SNR).
    extents_mm : tuple of (float, float)
        Ranges of the patch radius (mm along the source graph; 0 = a point); each range is a grid
        axis and the radius is drawn uniformly within it per source.
    sensor_sets : tuple of str | None
        Names of the sensor sets to run (keys of the mappings given to :func:`run_benchmark`);
        None runs all given.
    n_samples : int
        Samples per cell.
    seed : int
        Seed of the simulation, the noise and the bootstrap.
    methods : tuple of str
        ``'deepesi'`` and any of :data:`deepesi.baselines.CLASSICAL_METHODS`.
    n_times : int
        Samples per simulated window. Every method sees the whole window and is scored on the RMS
        over time of its amplitude map (the truth likewise), so that LCMV and the sparse methods
        get a data covariance / time courses and no method is scored on a lucky sample.
    sfreq : float
        Sampling frequency (Hz) of the simulated waveforms.
    lambda_snr : float
        Assumed SNR of the minimum-norm methods, ``lambda2 = 1 / lambda_snr**2`` (MNE's default 3).
    depth : float | None
        Depth-weighting exponent of the minimum-norm and sparse methods (MNE's default 0.8).
    classical_options : dict
        Per-method extra options passed to MNE, e.g. ``{'MxNE': {'alpha': 40}}``; for the
        minimum-norm methods only ``'method_params'`` (e.g. eLORETA's).
    simulation : dict
        Overrides for :class:`deepesi.simulate.SimulationConfig` (``cortical_density``,
        ``deep_density``, ``cortical_thickness``, ``loose``, ``waveforms``).
    n_bootstrap : int
        Bootstrap resamples for the confidence intervals (default 2000).
    ci : float
        Confidence level of the intervals (default 0.95).
    emd_max_support : int | None
        Largest support of a map in the EMD transport problem before binning (see
        :func:`deepesi.metrics.earth_movers_distance`; 200 bins cost ≈0.25 s per dense map on
        a 7 000-point grid, 400 bins ≈2 s). None skips the EMD (NaN), ≈5× faster scoring.
    """

    n_sources: tuple[int, ...] = (1, 2, 3)
    placements: tuple[str, ...] = PLACEMENTS
    snr_db: tuple[float, ...] = (0.0, 5.0, 10.0, 20.0)
    extents_mm: tuple[tuple[float, float], ...] = ((0.0, 20.0),)
    sensor_sets: tuple[str, ...] | None = None
    n_samples: int = 50
    seed: int = 0
    methods: tuple[str, ...] = (DEEPESI, *CLASSICAL_METHODS)
    n_times: int = 20
    sfreq: float = 250.0
    lambda_snr: float = 3.0
    depth: float | None = 0.8
    classical_options: dict = field(default_factory=dict)
    simulation: dict = field(default_factory=dict)
    n_bootstrap: int = 2000
    ci: float = 0.95
    emd_max_support: int | None = 200

    def __post_init__(self) -> None:
        self.n_sources = tuple(_positive_int(k, "n_sources") for k in _seq(self.n_sources))
        self.placements = tuple(str(p).lower() for p in _seq(self.placements))
        bad = sorted(set(self.placements) - set(PLACEMENTS))
        if bad or not self.placements:
            raise ValueError(f"placements must be a non-empty subset of {PLACEMENTS}, got {bad}.")
        self.snr_db = tuple(float(s) for s in _seq(self.snr_db))
        if not self.snr_db or not all(-40.0 <= s <= 100.0 for s in self.snr_db):
            raise ValueError(f"snr_db must be values in [-40, 100] dB, got {self.snr_db}.")
        extents = []
        ranges = self.extents_mm
        if np.ndim(ranges) == 1 and len(ranges) == 2:  # one (min, max) pair given directly
            ranges = [ranges]
        for ext in _seq(ranges):
            lo, hi = (float(v) for v in (ext if np.ndim(ext) else (ext, ext)))
            if not 0.0 <= lo <= hi <= 200.0:
                raise ValueError(
                    f"extent ranges must satisfy 0 <= min <= max <= 200 mm, got {ext}."
                )
            extents.append((lo, hi))
        if not extents:
            raise ValueError("extents_mm needs at least one (min, max) range in mm.")
        self.extents_mm = tuple(extents)
        if self.sensor_sets is not None:
            self.sensor_sets = tuple(str(s) for s in _seq(self.sensor_sets))
        self.n_samples = _positive_int(self.n_samples, "n_samples")
        self.seed = int(self.seed)
        self.methods = tuple(_check_method(m) for m in _seq(self.methods))
        if not self.methods or len(set(self.methods)) != len(self.methods):
            raise ValueError(f"methods must be a non-empty list without repeats: {self.methods}.")
        self.n_times = _positive_int(self.n_times, "n_times")
        if not float(self.sfreq) > 0:
            raise ValueError(f"sfreq must be > 0 Hz, got {self.sfreq}.")
        if not float(self.lambda_snr) > 0:
            raise ValueError(f"lambda_snr must be > 0, got {self.lambda_snr}.")
        opts = {}
        for name, val in dict(self.classical_options).items():
            if not isinstance(val, Mapping):
                raise TypeError(f"classical_options[{name!r}] must be a dict of MNE options.")
            method = _check_method(name)
            extra = sorted(set(val) - {"method_params"}) if method in _MIN_NORM else []
            if extra:
                raise ValueError(
                    f"classical_options[{name!r}]: the cached minimum-norm path takes only "
                    f"'method_params', got {extra}; lambda2 comes from lambda_snr, depth from "
                    "depth."
                )
            opts[method] = dict(val)
        self.classical_options = opts
        unknown = sorted(set(self.simulation) - set(_SIM_OVERRIDES))
        if unknown:
            raise ValueError(f"simulation overrides {unknown} not allowed; use {_SIM_OVERRIDES}.")
        self.n_bootstrap = _positive_int(self.n_bootstrap, "n_bootstrap")
        if not 0.0 < float(self.ci) < 1.0:
            raise ValueError(f"ci must be in (0, 1), got {self.ci}.")
        if self.emd_max_support is not None:
            self.emd_max_support = _positive_int(self.emd_max_support, "emd_max_support")

    def cells(self, sensor_sets: Sequence[str]) -> list[dict]:
        """The scenario cells (without SNR: each cell is scored at every SNR)."""
        out = []
        for s, k, p, e in product(sensor_sets, self.n_sources, self.placements, self.extents_mm):
            if p == "mixed" and k < 2:
                continue
            out.append({"sensor_set": s, "n_sources": k, "placement": p, "extent": e})
        return out

    def to_dict(self) -> dict:
        """Plain-Python description (JSON)."""
        d = dataclasses.asdict(self)
        d["extents_mm"] = [list(e) for e in self.extents_mm]
        for key in ("n_sources", "placements", "snr_db", "methods", "sensor_sets"):
            d[key] = None if d[key] is None else list(d[key])
        return d

    @classmethod
    def from_dict(cls, d: Mapping) -> BenchmarkConfig:
        """Inverse of :meth:`to_dict`."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown BenchmarkConfig field(s): {unknown}.")
        return cls(**dict(d))


def _seq(value: Any) -> list:
    if isinstance(value, str | bytes) or np.ndim(value) == 0:
        return [value]
    return list(value)


def _positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or int(value) != value or int(value) < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}.")
    return int(value)


def _check_method(method: str) -> str:
    if not isinstance(method, str):
        raise TypeError(f"method names must be strings, got {type(method).__name__}.")
    lookup = {m.lower(): m for m in (DEEPESI, *CLASSICAL_METHODS)}
    lookup.update({"gamma-map": "gamma_map", "gammamap": "gamma_map", "dipole": "dipole_scan"})
    name = lookup.get(method.strip().lower())
    if name is None:
        raise ValueError(
            f"unknown method {method!r}; choose from {[DEEPESI, *CLASSICAL_METHODS]}."
        )
    return name


def _crc(text: str) -> int:
    return zlib.crc32(text.encode())


def _extent_label(ext: tuple[float, float]) -> str:
    lo, hi = ext
    return f"{lo:g}" if lo == hi else f"{lo:g}-{hi:g}"


# ============================================================================ geometry
@dataclass
class _Geometry:
    """Everything that relates the test source space to the model's, computed once per set."""

    test_pos: np.ndarray
    model_pos: np.ndarray
    test_subcortical: np.ndarray
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


def _matched_error(dist: np.ndarray) -> np.ndarray:
    """Per-source error from a (sources x peaks) distance matrix, one peak per source.

    Hungarian assignment minimising the total distance; a source left without a peak (fewer
    peaks than sources) takes the distance to its nearest peak.
    """
    rows, cols = linear_sum_assignment(dist)
    errors = dist.min(axis=1)
    errors[rows] = dist[rows, cols]
    return errors


def _score(
    geo: _Geometry,
    true_map: np.ndarray,
    centres: np.ndarray,
    patches: list[np.ndarray],
    est: np.ndarray,
    max_support: int | None,
) -> tuple[dict[str, float], list[float]]:
    """Metrics of one estimated map (model grid) against the truth (test grid); mm at the edge.

    ``max_support`` None skips the EMD (NaN), which takes most of the scoring time.
    """
    nan = float("nan")
    n_t = len(geo.test_pos)
    out: dict[str, float] = dict.fromkeys(METRICS, nan)
    per_source = [nan] * len(centres)
    if not (np.isfinite(est).all() and (est > 0).any()):
        return out, per_source
    # per-source localization error: the K strongest local maxima matched one-to-one to the
    # sources, by the distance to the nearest point of each true patch (0 inside it) and, as in
    # most papers, to the patch centre
    peaks = find_peaks(est, geo.model_pos, adjacency=geo.model_adj, rel_threshold=0.0,
                       n_max=len(centres))
    peak_pos = geo.model_pos[peaks]
    to_patch = np.stack([cdist(geo.test_pos[p], peak_pos).min(axis=0) for p in patches])
    errors = _matched_error(to_patch)
    per_source = [float(e * 1e3) for e in errors]
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


# ============================================================================ test data
@dataclass
class _SensorSet:
    """One sensor set: model, lead fields, noise model, cached inverse operators."""

    name: str
    model: Any
    inverse_lf: LeadField
    test_lf: LeadField
    geo: _Geometry
    noise_cov: Any  # mne.Covariance on the channels, in order
    noise_factor: np.ndarray
    proj: np.ndarray
    whitener: np.ndarray
    forward: Any = None
    info: Any = None
    inverse: dict = field(default_factory=dict)


def _subset_leadfield(lf: LeadField, index: np.ndarray) -> LeadField:
    return LeadField(
        lf.gain[:, index], lf.ch_names, lf.ch_types, lf.source_space.subset(index),
        lf.info, lf.trans, lf.eeg_reference, dict(lf.meta),
    )


def _simulate_cell(
    sset: _SensorSet, cell: dict, cfg: BenchmarkConfig, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Noise-free signals of one cell on the test lead field.

    Returns data (n, n_ch, T), true maps (n, n_test, T), centres (n, K), realised extents (mm)
    and, per sample, the test points of each source's patch.
    """
    from .simulate import SimulationConfig, Simulator

    lf = sset.test_lf
    deep = lf.source_space.is_subcortical
    placement, k, n = cell["placement"], cell["n_sources"], cfg.n_samples
    sim_kwargs = {"waveforms": ("evoked",), **cfg.simulation}
    sim_kwargs["waveforms"] = tuple(_seq(sim_kwargs["waveforms"]))
    base = dict(
        n_sources=(k, k), extent_mm=cell["extent"], n_times=cfg.n_times, sfreq=cfg.sfreq,
        snr_db=(100.0, 100.0), colored_noise_fraction=(0.0, 0.0), noise_cov=None,
        average_reference=lf.eeg_reference == "average", bad_channel_prob=0.0, **sim_kwargs,
    )
    if placement == "cortical":
        index = np.flatnonzero(~deep)
        sub, deep_fraction = _subset_leadfield(lf, index), 0.0
    elif placement == "subcortical":
        index = np.flatnonzero(deep)
        sub, deep_fraction = _subset_leadfield(lf, index), 1.0
    else:
        index, sub, deep_fraction = np.arange(lf.n_sources), lf, 1.0
    sim = Simulator(sub, SimulationConfig(deep_fraction=deep_fraction, **base))
    kept = []
    for _ in range(200):
        batch = sim.simulate(n, rng)
        ok = np.ones(n, bool)
        if placement == "mixed":  # the first source is deep: need a cortical one too
            c = np.where(batch.centres >= 0, batch.centres, 0)
            ok = (~deep[c] & (batch.centres >= 0)).any(axis=1)
        kept.append((batch, np.flatnonzero(ok)))
        if sum(len(i) for _, i in kept) >= n:
            break
    else:
        raise RuntimeError(f"could not draw {n} 'mixed' samples; too few cortical points?")
    data = np.concatenate([b.data[i] for b, i in kept])[:n].astype(float)
    sub_maps = np.concatenate([b.sources[i] for b, i in kept])[:n].astype(float)
    centres_sub = np.concatenate([b.centres[i] for b, i in kept])[:n]
    extents = np.concatenate([b.extent_mm[i] for b, i in kept])[:n].astype(float)
    maps = np.zeros((n, lf.n_sources, cfg.n_times))
    maps[:, index] = sub_maps
    centres = np.where(centres_sub >= 0, index[np.maximum(centres_sub, 0)], -1)
    patches = [
        [index[sim.patch(int(c), float(e) * 1e-3)] for c, e in zip(cs, es, strict=True) if c >= 0]
        for cs, es in zip(centres_sub, extents, strict=True)
    ]
    return data, maps, centres, extents, patches


def _add_noise(
    sset: _SensorSet, signal: np.ndarray, snr_db: float, rng: np.random.Generator
) -> tuple[np.ndarray, float]:
    """Signal scaled to ``snr_db`` (whitened power ratio) plus noise from the noise covariance."""
    noise = sset.proj @ (sset.noise_factor @ rng.standard_normal(signal.shape))
    ps = float(np.sum((sset.whitener @ signal) ** 2))
    pn = float(np.sum((sset.whitener @ noise) ** 2))
    if ps <= 0:
        raise RuntimeError("a simulated signal is zero on every channel; check the lead field.")
    scale = np.sqrt(pn / ps * 10 ** (snr_db / 10))
    return signal * scale + noise, scale


# ============================================================================ methods
def _prepare_classical(sset: _SensorSet, cfg: BenchmarkConfig) -> None:
    """Forward, info with the EEG reference projector, and the minimum-norm operators, once."""
    import mne

    from .forward.io import leadfield_to_forward

    sset.forward = leadfield_to_forward(sset.inverse_lf)
    info = _channel_info(sset.inverse_lf, cfg.sfreq)
    ev = mne.EvokedArray(np.zeros((len(info["ch_names"]), 1)), info, verbose=False)
    if "eeg" in sset.inverse_lf.ch_types:
        ev.set_eeg_reference("average", projection=True, verbose=False)
    sset.info = ev.info
    wanted = [m for m in cfg.methods if m in _MIN_NORM]
    if wanted:
        inv = mne.minimum_norm.make_inverse_operator(
            sset.info, sset.forward, sset.noise_cov, loose="auto", depth=cfg.depth, verbose=False
        )
        lambda2 = 1.0 / cfg.lambda_snr**2
        for method in wanted:
            params = cfg.classical_options.get(method, {}).get("method_params")
            sset.inverse[method] = mne.minimum_norm.prepare_inverse_operator(
                inv, nave=1, lambda2=lambda2, method=method, method_params=params, verbose=False
            )


def _run_classical(sset: _SensorSet, method: str, data: np.ndarray, cfg: BenchmarkConfig):
    import mne

    evoked = mne.EvokedArray(data, sset.info, tmin=0.0, nave=1, verbose=False)
    if method in sset.inverse:
        stc = mne.minimum_norm.apply_inverse(
            evoked, sset.inverse[method], lambda2=1.0 / cfg.lambda_snr**2, method=method,
            pick_ori=None, prepared=True, verbose=False,
        )
        amp = np.zeros((sset.inverse_lf.n_sources, data.shape[1]))
        offsets = np.cumsum([0] + [len(sp["vertno"]) for sp in sset.forward["src"]])
        rows = np.concatenate([
            off + np.searchsorted(sp["vertno"], verts)
            for sp, verts, off in zip(sset.forward["src"], stc.vertices, offsets, strict=False)
        ])
        amp[rows] = np.abs(stc.data)
        return amp
    opts = dict(cfg.classical_options.get(method, {}))
    if method == "LCMV" and "eeg" not in sset.inverse_lf.ch_types:
        # MEG is blind to radial dipoles: the 3-orientation gain is rank-deficient at many points
        # (exactly so in a sphere), and MNE's max-power LCMV then needs the reduced rank
        opts.setdefault("reduce_rank", True)
    res = apply_classical(
        method, evoked, sset.forward, sset.noise_cov, snr=cfg.lambda_snr, depth=cfg.depth,
        options=opts or None,
    )
    return res.amplitude


def _rms(x: np.ndarray) -> np.ndarray:
    return np.sqrt(np.mean(np.asarray(x, float) ** 2, axis=-1))


# ============================================================================ entry point
def _as_mapping(obj: Any, what: str, names: Sequence[str] | None) -> dict:
    if obj is None:
        return {}
    if isinstance(obj, Mapping):
        return {str(k): v for k, v in obj.items()}
    if names is not None and len(names) != 1:
        raise ValueError(
            f"a single {what} was given but config.sensor_sets names {list(names)}; pass a dict "
            "{sensor_set: ...} with one entry per set."
        )
    return {names[0] if names else "": obj}


def default_set_name(lf: LeadField) -> str:
    """'eeg64', 'meg306', 'meeg370'... from a lead field's channel types."""
    types = set(lf.ch_types)
    kind = "eeg" if types == {"eeg"} else "meg" if "eeg" not in types else "meeg"
    return f"{kind}{lf.n_channels}"


def _check_model(model: Any, lf: LeadField, name: str) -> None:
    for attr in ("predict", "ch_names"):
        if not hasattr(model, attr):
            raise TypeError(
                f"model for {name!r} has no {attr!r}; pass a deepesi TrainedModel (load_model) or "
                "an object with predict(data, ch_names=...), ch_names and ch_types."
            )
    if hasattr(model, "check_leadfield") and hasattr(model, "leadfield_hash"):
        model.check_leadfield(lf)
    if sorted(model.ch_names) != sorted(lf.ch_names):
        missing = [c for c in model.ch_names if c not in lf.ch_names]
        extra = [c for c in lf.ch_names if c not in model.ch_names]
        raise ValueError(
            f"sensor set {name!r}: the model's channels differ from its lead field's (missing "
            f"{missing[:8]}, extra {extra[:8]}); pass the lead field the model was trained on."
        )
    n_src = getattr(model, "n_sources", lf.n_sources)
    if n_src != lf.n_sources:
        raise ValueError(
            f"sensor set {name!r}: the model predicts {n_src} sources but its lead field has "
            f"{lf.n_sources}; pass the lead field the model was trained on."
        )


def _noise_covariance(noise_cov: Any, lf: LeadField, name: str):
    import mne

    if noise_cov is None:
        cov = mne.make_ad_hoc_cov(_channel_info(lf, 1000.0), verbose=False)
    elif isinstance(noise_cov, mne.Covariance):
        cov = noise_cov
    else:
        raise TypeError(f"noise_cov must be an mne.Covariance or None, got {type(noise_cov)}.")
    missing = [c for c in lf.ch_names if c not in cov.ch_names]
    if missing:
        raise ValueError(
            f"sensor set {name!r}: the noise covariance lacks {len(missing)} channel(s), e.g. "
            f"{missing[:8]}; estimate it on the lead field's channels."
        )
    cov = cov.copy().pick_channels(lf.ch_names, ordered=True, verbose=False)
    c = np.diag(cov.data) if cov["diag"] else np.asarray(cov.data)
    if not cov["diag"]:
        cov = mne.Covariance(c, cov.ch_names, [], [], cov.nfree, verbose=False)
    return cov, c


def _channel_info(lf: LeadField, sfreq: float):
    """A complete mne.Info of the lead field's channels, in its order, no bads or projectors.

    A lead field read from a -fwd.fif file carries only the forward's reduced info (no sampling
    rate, no projector list); the channel records (kind, coil type, position) are copied from it.
    """
    import copy

    import mne

    info = mne.create_info(list(lf.ch_names), float(sfreq), list(lf.ch_types))
    src = lf.info
    if src is not None and "chs" in src:
        by_name = {ch["ch_name"]: ch for ch in src["chs"]}
        with info._unlock():
            info["chs"] = [copy.deepcopy(by_name[c]) for c in lf.ch_names]
            if src.get("dev_head_t") is not None:
                info["dev_head_t"] = src["dev_head_t"]
        info._update_redundant()
    return info


def _make_set(
    name: str, model: Any, inverse_lf: LeadField, test_lf: LeadField, noise_cov: Any,
    cfg: BenchmarkConfig,
) -> _SensorSet:
    for what, lf in (("model lead field", inverse_lf), ("test lead field", test_lf)):
        if not isinstance(lf, LeadField):
            raise TypeError(f"sensor set {name!r}: the {what} must be a deepesi LeadField, got "
                            f"{type(lf).__name__} (read -fwd.fif files with read_forward).")
    if model is not None:
        _check_model(model, inverse_lf, name)
        inverse_lf = inverse_lf.pick(list(model.ch_names))
    missing = [c for c in inverse_lf.ch_names if c not in test_lf.ch_names]
    if missing:
        raise ValueError(
            f"sensor set {name!r}: the test forward lacks {len(missing)} channel(s) of the model "
            f"({missing[:8]}{' ...' if len(missing) > 8 else ''}); compute the test forward for "
            "the same sensors."
        )
    test_lf = test_lf.pick(inverse_lf.ch_names)
    if test_lf.ch_types != inverse_lf.ch_types:
        raise ValueError(f"sensor set {name!r}: channel types differ between the forwards.")
    if test_lf.eeg_reference != inverse_lf.eeg_reference:
        raise ValueError(f"sensor set {name!r}: the forwards differ in EEG reference.")
    deep = test_lf.source_space.is_subcortical
    if "subcortical" in cfg.placements or "mixed" in cfg.placements:
        if not deep.any():
            raise ValueError(f"sensor set {name!r}: the test source space has no subcortical "
                             "points; drop 'subcortical'/'mixed' from placements.")
    if ("cortical" in cfg.placements or "mixed" in cfg.placements) and deep.all():
        raise ValueError(f"sensor set {name!r}: the test source space has no cortical points.")
    classical = [m for m in cfg.methods if m != DEEPESI]
    if classical and inverse_lf.info is None:
        raise ValueError(f"sensor set {name!r}: the classical methods need the model lead "
                         "field's info and trans (read it from a -fwd.fif file).")
    cov, c = _noise_covariance(noise_cov, inverse_lf, name)
    evals, evecs = np.linalg.eigh(c)
    proj = reference_projector(inverse_lf.ch_types, inverse_lf.eeg_reference == "average")
    return _SensorSet(
        name=name, model=model, inverse_lf=inverse_lf, test_lf=test_lf,
        geo=_Geometry.build(test_lf, inverse_lf), noise_cov=cov,
        noise_factor=evecs * np.sqrt(np.clip(evals, 0, None)), proj=proj,
        whitener=zca_whitener(c, proj, ch_types=inverse_lf.ch_types),
    )


def run_benchmark(
    models: Any,
    test_leadfields: LeadField | Mapping[str, LeadField],
    config: BenchmarkConfig | None = None,
    *,
    model_leadfields: LeadField | Mapping[str, LeadField],
    noise_cov: Any = None,
    progress: bool = True,
) -> BenchmarkResult:
    """Run every method on every sample of the scenario grid and score the maps.

    Parameters
    ----------
    models : TrainedModel | dict of str to TrainedModel | None
        The network per sensor set (anything with ``predict(data, ch_names=...)`` → (n_src,
        n_times), ``ch_names``, ``ch_types``). None (or no ``'deepesi'`` in the methods) runs the
        classical methods only.
    test_leadfields : LeadField | dict of str to LeadField
        The forward the test data are simulated with, per sensor set: it should differ from the
        model's (finer mesh, perturbed conductivities, off-grid sources). It must contain the
        model's channels.
    config : BenchmarkConfig | None
        The grid and settings (defaults if None).
    model_leadfields : LeadField | dict of str to LeadField
        The lead field each model was trained on; the classical methods invert with it too (the
        same mismatched forward for everyone).
    noise_cov : mne.Covariance | None
        Noise covariance of the simulated sensor noise, also given to the classical methods
        (whitening, regularisation). Default: ``mne.make_ad_hoc_cov`` of the channels (EEG 0.2 µV,
        gradiometers 5 fT/cm, magnetometers 20 fT, diagonal).
    progress : bool
        Show a progress bar.

    Returns
    -------
    BenchmarkResult
        One record per (sample, SNR, method).
    """
    cfg = BenchmarkConfig() if config is None else config
    if not isinstance(cfg, BenchmarkConfig):
        raise TypeError(f"config must be a BenchmarkConfig, got {type(cfg).__name__}.")
    names = cfg.sensor_sets
    tests = _as_mapping(test_leadfields, "test lead field", names)
    invs = _as_mapping(model_leadfields, "model lead field", names)
    mods = _as_mapping(models, "model", names)
    if "" in tests:  # one unnamed set: name it after its channels
        tests = {default_set_name(tests[""]): tests[""]}
    names = list(names) if names is not None else list(tests)
    if len(names) == 1:  # a single object given for the only set
        invs = {names[0]: invs[""]} if "" in invs else invs
        mods = {names[0]: mods[""]} if "" in mods else mods
    want_net = DEEPESI in cfg.methods
    for name in names:
        for what, d in (("test lead field", tests), ("model lead field", invs)) + (
            (("model", mods),) if want_net else ()
        ):
            if d.get(name) is None:
                raise ValueError(f"no {what} for sensor set {name!r}; have {sorted(d)}.")
    sets = [
        _make_set(n, mods.get(n) if want_net else None, invs[n], tests[n], noise_cov, cfg)
        for n in names
    ]
    classical = [m for m in cfg.methods if m != DEEPESI]
    records: list[dict] = []
    cells = cfg.cells(names)
    total = len(cells) * cfg.n_samples * len(cfg.snr_db)
    bar = _progress(total=total, enabled=progress, desc="benchmark", unit="sample")
    t_start = time.perf_counter()
    try:
        for sset in sets:
            if classical:
                _prepare_classical(sset, cfg)
            for cell in (c for c in cells if c["sensor_set"] == sset.name):
                key = (f"{cell['sensor_set']}|{cell['n_sources']}|{cell['placement']}|"
                       f"{_extent_label(cell['extent'])}")
                rng = np.random.default_rng([cfg.seed, _crc(key)])
                signals, maps, centres, extents, patches = _simulate_cell(sset, cell, cfg, rng)
                for snr in cfg.snr_db:
                    noise_rng = np.random.default_rng([cfg.seed, _crc(key), _crc(f"{snr:g}")])
                    for i in range(cfg.n_samples):
                        data, scale = _add_noise(sset, signals[i], snr, noise_rng)
                        records.extend(
                            _run_sample(sset, cfg, cell, snr, i, data, maps[i] * scale,
                                        centres[i], extents[i], patches[i])
                        )
                        bar.update(1)
    finally:
        bar.close()
    meta = {
        "elapsed_s": time.perf_counter() - t_start,
        "sets": {
            s.name: {
                "n_channels": s.inverse_lf.n_channels,
                "ch_types": sorted(set(s.inverse_lf.ch_types)),
                "model_leadfield_hash": s.inverse_lf.hash(),
                "test_leadfield_hash": s.test_lf.hash(),
                "model_sources": s.inverse_lf.n_sources,
                "test_sources": s.test_lf.n_sources,
                "same_forward": s.inverse_lf.hash() == s.test_lf.hash(),
            }
            for s in sets
        },
    }
    return BenchmarkResult(records, cfg, meta)


def _run_sample(
    sset: _SensorSet, cfg: BenchmarkConfig, cell: dict, snr: float, index: int,
    data: np.ndarray, true: np.ndarray, centres: np.ndarray, extents: np.ndarray,
    patches: list[np.ndarray],
) -> list[dict]:
    k = int((centres >= 0).sum())
    centres, extents = centres[:k], extents[:k]
    true_map = _rms(true)
    geo = sset.geo
    base = {
        "sensor_set": sset.name,
        "n_sources": cell["n_sources"],
        "placement": cell["placement"],
        "snr_db": float(snr),
        "extent_mm": _extent_label(cell["extent"]),
        "sample": int(index),
        "source_class": ["subcortical" if geo.test_subcortical[c] else "cortical"
                         for c in centres],
        "source_region": [int(sset.test_lf.source_space.region_ids[c]) for c in centres],
        "source_depth_mm": [float(geo.test_depth[c] * 1e3) for c in centres],
        "source_extent_mm": [float(e) for e in extents],
        "source_offgrid_mm": [
            float(np.linalg.norm(geo.test_pos[c] - geo.model_pos[geo.test_to_model[c]]) * 1e3)
            for c in centres
        ],
        "depth_mm": float(geo.test_depth[centres].max() * 1e3),
    }
    out = []
    for method in cfg.methods:
        t0 = time.perf_counter()
        error = ""
        try:
            if method == DEEPESI:
                est = sset.model.predict(data, ch_names=sset.inverse_lf.ch_names)
            else:
                est = _run_classical(sset, method, data, cfg)
            est = np.asarray(est, float)
            if est.ndim == 1:
                est = est[:, None]
            if est.shape[0] != sset.inverse_lf.n_sources:
                raise ValueError(
                    f"{method} returned {est.shape[0]} sources, expected "
                    f"{sset.inverse_lf.n_sources}."
                )
            est_map = np.abs(_rms(est))
        except (RuntimeError, np.linalg.LinAlgError, FloatingPointError) as err:
            logger.warning("%s failed on a %s sample: %s", method, cell["placement"], err)
            est_map, error = np.zeros(sset.inverse_lf.n_sources), f"{type(err).__name__}: {err}"
        runtime = time.perf_counter() - t0
        scores, per_source = _score(geo, true_map, centres, patches, est_map,
                                    cfg.emd_max_support)
        out.append({**base, "method": method, **scores, "source_error_mm": per_source,
                    "runtime_s": runtime, "error": error})
    return out


# ============================================================================ statistics
def bootstrap_median(
    values: np.ndarray, n_boot: int, ci: float, rng: np.random.Generator
) -> tuple[float, float, float]:
    """Median of the finite values with a percentile-bootstrap confidence interval.

    Parameters
    ----------
    values : array
        Values (NaN ignored).
    n_boot : int
        Resamples with replacement, each of the size of the finite values.
    ci : float
        Confidence level, e.g. 0.95 for the 2.5 and 97.5 percentiles of the resampled medians.
    rng : numpy.random.Generator
        Random stream.

    Returns
    -------
    median, low, high : float
        NaN when there is no finite value.
    """
    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    if len(v) == 0:
        return float("nan"), float("nan"), float("nan")
    med = float(np.median(v))
    if len(v) == 1:
        return med, med, med
    boot = np.median(v[rng.integers(0, len(v), size=(int(n_boot), len(v)))], axis=1)
    a = 100 * (1 - ci) / 2
    lo, hi = np.percentile(boot, [a, 100 - a])
    return med, float(lo), float(hi)


class BenchmarkResult:
    """Per-sample records of a benchmark, with summaries, tables, plots and JSON I/O.

    Attributes
    ----------
    records : list of dict
        One per (sensor set, cell, SNR, sample, method): the scenario columns
        (:data:`SCENARIO_KEYS`), ``sample``, ``method``, every metric of :data:`METRICS`
        (distances in mm; NaN for an empty map), ``source_class`` / ``source_region`` /
        ``source_depth_mm`` / ``source_extent_mm`` / ``source_error_mm`` per true source,
        ``source_offgrid_mm`` (distance from the true centre to the nearest model grid point:
        the error floor of any method that answers on the model grid),
        ``depth_mm`` (deepest source), ``runtime_s`` and ``error`` ('' unless the method failed).
    config : BenchmarkConfig
    meta : dict
        Hashes of the forwards, sizes, elapsed time.
    """

    def __init__(self, records: list[dict], config: BenchmarkConfig, meta: dict | None = None):
        self.records = list(records)
        self.config = config
        self.meta = dict(meta or {})

    def __len__(self) -> int:
        return len(self.records)

    def __repr__(self) -> str:
        methods = sorted({r["method"] for r in self.records})
        return f"<BenchmarkResult | {len(self.records)} records | methods {methods}>"

    @property
    def methods(self) -> list[str]:
        """Methods in the configured order."""
        have = {r["method"] for r in self.records}
        return [m for m in self.config.methods if m in have]

    def column(self, name: str, **where: Any) -> np.ndarray:
        """Values of one column over the records matching ``where`` (e.g. ``method='MNE'``)."""
        rows = [r for r in self.records if all(r.get(k) == v for k, v in where.items())]
        return np.asarray([np.nan if r[name] is None else r[name] for r in rows], float)

    def to_pandas(self):
        """The records as a pandas DataFrame (needs pandas; per-source lists stay lists)."""
        import pandas as pd

        return pd.DataFrame(self.records)

    # ------------------------------------------------------------------ summaries
    def summary(
        self,
        by: Sequence[str] = SCENARIO_KEYS,
        metrics: Iterable[str] = tuple(METRICS),
    ) -> list[dict]:
        """Medians with bootstrap confidence intervals per method × group.

        Parameters
        ----------
        by : sequence of str
            Columns that define a group (default: the full scenario); the method is always one.
        metrics : iterable of str
            Metric columns.

        Returns
        -------
        rows : list of dict
            Group columns, ``method``, ``n`` (samples), ``n_failed`` (method errors), and per
            metric ``<m>`` (median over the samples where it is defined), ``<m>_lo``, ``<m>_hi``
            (the :attr:`BenchmarkConfig.ci` interval from ``n_bootstrap`` percentile-bootstrap
            resamples, seeded by the config seed and the group) and ``<m>_n`` (samples where it is
            defined: an empty estimate has no peak, so its localization errors are undefined).
        """
        by = tuple(by)
        metrics = tuple(metrics)
        bad = [m for m in metrics if m not in METRICS]
        if bad:
            raise ValueError(f"unknown metric(s) {bad}; choose from {list(METRICS)}.")
        groups: dict[tuple, list[dict]] = {}
        for r in self.records:
            groups.setdefault((*(r[k] for k in by), r["method"]), []).append(r)
        order = {m: i for i, m in enumerate(self.config.methods)}
        keys = sorted(groups, key=lambda g: (tuple(map(_sort_key, g[:-1])), order[g[-1]]))
        rows = []
        for g in keys:
            recs = groups[g]
            row = dict(zip((*by, "method"), g, strict=True))
            row["n"] = len(recs)
            row["n_failed"] = sum(bool(r.get("error")) for r in recs)
            for m in metrics:
                vals = np.asarray([np.nan if r[m] is None else r[m] for r in recs], float)
                rng = np.random.default_rng([self.config.seed, _crc(repr(g) + m)])
                med, lo, hi = bootstrap_median(vals, self.config.n_bootstrap, self.config.ci, rng)
                row.update({m: med, f"{m}_lo": lo, f"{m}_hi": hi,
                            f"{m}_n": int(np.isfinite(vals).sum())})
            rows.append(row)
        return rows

    def compare(
        self, metric: str = "le_mm", reference: str = DEEPESI, by: Sequence[str] = SCENARIO_KEYS
    ) -> list[dict]:
        """Paired comparison of every method with ``reference`` on the same samples.

        Returns
        -------
        rows : list of dict
            Group columns, ``method``, ``n`` (pairs where both are defined), ``diff`` (median of
            method − reference; positive = reference better for a lower-is-better metric),
            ``diff_lo``/``diff_hi`` (bootstrap interval) and ``reference_better`` (fraction of
            pairs where the reference is strictly better).
        """
        if metric not in METRICS:
            raise ValueError(f"unknown metric {metric!r}; choose from {list(METRICS)}.")
        reference = _check_method(reference)
        by = tuple(by)
        ref = {}
        for r in self.records:
            if r["method"] == reference:
                ref[_pair_key(r)] = r[metric]
        if not ref:
            raise ValueError(f"no records of {reference!r} to compare with.")
        lower = METRICS[metric]
        groups: dict[tuple, list[tuple[float, float]]] = {}
        for r in self.records:
            if r["method"] == reference or _pair_key(r) not in ref:
                continue
            a, b = r[metric], ref[_pair_key(r)]
            if a is None or b is None or not (np.isfinite(a) and np.isfinite(b)):
                continue
            groups.setdefault((*(r[k] for k in by), r["method"]), []).append((a, b))
        order = {m: i for i, m in enumerate(self.config.methods)}
        rows = []
        for g in sorted(groups, key=lambda g: (tuple(map(_sort_key, g[:-1])), order[g[-1]])):
            pairs = np.asarray(groups[g])
            diff = pairs[:, 0] - pairs[:, 1]
            rng = np.random.default_rng([self.config.seed, _crc(repr(g) + metric + "diff")])
            med, lo, hi = bootstrap_median(diff, self.config.n_bootstrap, self.config.ci, rng)
            better = diff > 0 if lower else diff < 0
            rows.append({**dict(zip((*by, "method"), g, strict=True)), "n": len(diff),
                         "diff": med, "diff_lo": lo, "diff_hi": hi,
                         "reference_better": float(better.mean())})
        return rows

    # ------------------------------------------------------------------ output
    def to_markdown(
        self,
        metrics: Sequence[str] = ("le_mm", "dle_mm", "sd_mm", "emd_mm", "auc", "nmse",
                                  "precision", "recall"),
        by: Sequence[str] = SCENARIO_KEYS,
    ) -> str:
        """Markdown tables: median [CI] per method × scenario, then the paired comparison.

        Parameters
        ----------
        metrics : sequence of str
            Metric columns of the main table.
        by : sequence of str
            Scenario columns (default the full scenario).
        """
        cfg = self.config
        rows = self.summary(by=by, metrics=metrics)
        lines = [
            f"Median [{cfg.ci:.0%} CI: percentile bootstrap, {cfg.n_bootstrap} resamples, "
            f"seed {cfg.seed}] over the samples of each scenario; distances in mm. "
            "`n` samples, `fail` method errors; a metric is taken over the samples where it is "
            "defined (an empty map has no peak).",
            "",
        ]
        head = [*by, "method", "n", "fail", *metrics]
        lines.append("| " + " | ".join(head) + " |")
        lines.append("|" + "---|" * len(head))
        for r in rows:
            cells = [_fmt_key(r[k]) for k in by] + [r["method"], str(r["n"]), str(r["n_failed"])]
            for m in metrics:
                digits = 1 if m.endswith("_mm") else 3
                cells.append(
                    _fmt_ci(r[m], r[f"{m}_lo"], r[f"{m}_hi"], digits, r[f"{m}_n"], r["n"])
                )
            lines.append("| " + " | ".join(cells) + " |")
        if DEEPESI in self.methods and len(self.methods) > 1:
            comp = self.compare("le_mm", DEEPESI, by=by)
            lines += [
                "",
                "Paired difference of the localization error (method − deepesi, mm, median "
                f"[{cfg.ci:.0%} CI]) on the same samples; `deepesi better` = fraction of samples "
                "where deepesi's error is strictly smaller.",
                "",
                "| " + " | ".join([*by, "method", "n", "difference", "deepesi better"]) + " |",
                "|" + "---|" * (len(by) + 4),
            ]
            for r in comp:
                cells = [_fmt_key(r[k]) for k in by] + [
                    r["method"], str(r["n"]), _fmt_ci(r["diff"], r["diff_lo"], r["diff_hi"], 1),
                    f"{r['reference_better']:.2f}",
                ]
                lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines) + "\n"

    def save(self, path: str | os.PathLike, overwrite: bool = False) -> Path:
        """Write config, meta, records and the default summary as JSON (atomically)."""
        doc = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "config": self.config.to_dict(),
            "meta": self.meta,
            "records": self.records,
            "summary": self.summary(),
        }
        with atomic_path(path, overwrite=overwrite) as tmp:
            tmp.write_text(json.dumps(_json_safe(doc), separators=(",", ":")))
        return Path(path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> BenchmarkResult:
        """Read a file written by :meth:`save`."""
        from ._validation import check_file

        path = check_file(path, "benchmark result")
        doc = json.loads(Path(path).read_text())
        if doc.get("format") != FORMAT:
            raise ValueError(f"{path} is not a deepesi benchmark result.")
        records = [
            {k: (np.nan if v is None and k in METRICS else v) for k, v in r.items()}
            for r in doc["records"]
        ]
        return cls(records, BenchmarkConfig.from_dict(doc["config"]), doc.get("meta"))

    def plot(self, out_dir: str | os.PathLike, overwrite: bool = False) -> list[Path]:
        """Figures (PNG): error vs SNR, error vs depth, cortical vs subcortical, per method.

        Returns the paths written: ``error_vs_snr.png``, ``error_vs_depth.png`` and
        ``cortical_vs_subcortical.png`` in ``out_dir``. Uses the per-source localization error
        (``source_error_mm``) for depth and class, pooled over the other scenario columns.
        """
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths = []
        for name, draw in (
            ("error_vs_snr.png", self._plot_snr),
            ("error_vs_depth.png", self._plot_depth),
            ("cortical_vs_subcortical.png", self._plot_class),
        ):
            fig = draw(plt)
            with atomic_path(out / name, overwrite=overwrite) as tmp:
                fig.savefig(tmp, dpi=120, bbox_inches="tight")
            plt.close(fig)
            paths.append(out / name)
        return paths

    def _source_rows(self) -> list[tuple[str, str, float, float]]:
        rows = []
        for r in self.records:
            for cls, depth, err in zip(r["source_class"], r["source_depth_mm"],
                                       r["source_error_mm"], strict=True):
                rows.append((r["method"], cls, depth, np.nan if err is None else err))
        return rows

    def _plot_snr(self, plt):
        placements = [p for p in self.config.placements
                      if any(r["placement"] == p for r in self.records)]
        fig, axes = plt.subplots(1, len(placements), figsize=(4.2 * len(placements), 3.6),
                                 sharey=True, squeeze=False)
        rows = self.summary(by=("placement", "snr_db"), metrics=("le_mm",))
        snrs = sorted({r["snr_db"] for r in rows})
        dodge = 0.04 * (max(snrs) - min(snrs) if len(snrs) > 1 else 1.0)
        for ax, p in zip(axes[0], placements, strict=True):
            for j, m in enumerate(self.methods):
                sel = [r for r in rows if r["placement"] == p and r["method"] == m]
                shift = (j - (len(self.methods) - 1) / 2) * dodge / max(len(self.methods), 1)
                x = np.asarray([r["snr_db"] for r in sel]) + shift
                y = np.asarray([r["le_mm"] for r in sel])
                err = np.abs(np.asarray([[r["le_mm_lo"], r["le_mm_hi"]] for r in sel]).T - y)
                ax.errorbar(x, y, yerr=err, marker="o", capsize=2, label=m,
                            lw=2.2 if m == DEEPESI else 1.0)
            ax.set_title(f"{p} sources")
            ax.set_xlabel("SNR (dB)")
            ax.grid(alpha=0.3)
        axes[0][0].set_ylabel("localization error (mm), median, 95% CI")
        handles, labels = axes[0][0].get_legend_handles_labels()
        fig.legend(handles, labels, fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5))
        fig.tight_layout()
        return fig

    def _plot_depth(self, plt):
        rows = self._source_rows()
        depth = np.asarray([r[2] for r in rows])
        fig, ax = plt.subplots(figsize=(6, 4))
        if len(depth) == 0:
            return fig
        edges = np.unique(np.quantile(depth, np.linspace(0, 1, 7)))
        if len(edges) < 2:
            edges = np.array([depth.min(), depth.min() + 1.0])
        rng = np.random.default_rng(self.config.seed)
        for m in self.methods:
            d = np.asarray([r[2] for r in rows if r[0] == m])
            e = np.asarray([r[3] for r in rows if r[0] == m])
            x, y, lo, hi = [], [], [], []
            for a, b in pairwise(edges):
                sel = (d >= a) & ((d < b) | (b == edges[-1]))
                med, ql, qh = bootstrap_median(e[sel], self.config.n_bootstrap,
                                               self.config.ci, rng)
                if np.isfinite(med):
                    x.append(0.5 * (a + b))
                    y.append(med)
                    lo.append(med - ql)
                    hi.append(qh - med)
            ax.errorbar(x, y, yerr=[lo, hi], marker="o", capsize=2, label=m,
                        lw=2.2 if m == DEEPESI else 1.0)
        ax.set_xlabel("source depth below the source-space hull (mm)")
        ax.set_ylabel("localization error (mm), median, 95% CI")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5))
        return fig

    def _plot_class(self, plt):
        rows = self._source_rows()
        fig, ax = plt.subplots(figsize=(max(5, 0.8 * len(self.methods) + 2), 4))
        rng = np.random.default_rng(self.config.seed)
        width = 0.38
        for j, cls in enumerate(("cortical", "subcortical")):
            y, lo, hi = [], [], []
            for m in self.methods:
                e = np.asarray([r[3] for r in rows if r[0] == m and r[1] == cls])
                med, ql, qh = bootstrap_median(e, self.config.n_bootstrap, self.config.ci, rng)
                y.append(med)
                lo.append(med - ql)
                hi.append(qh - med)
            x = np.arange(len(self.methods)) + (j - 0.5) * width
            ax.bar(x, y, width, yerr=[lo, hi], capsize=2, label=cls)
        ax.set_xticks(np.arange(len(self.methods)), self.methods, rotation=30, ha="right")
        ax.set_ylabel("localization error per source (mm), median, 95% CI")
        ax.legend()
        ax.grid(axis="y", alpha=0.3)
        return fig


def _pair_key(r: dict) -> tuple:
    return (*(r[k] for k in SCENARIO_KEYS), r["sample"])


def _sort_key(v: Any) -> tuple:
    return (0, v, "") if isinstance(v, int | float) else (1, 0, str(v))


def _fmt_key(v: Any) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def _fmt_ci(
    med: float, lo: float, hi: float, digits: int, n_def: int | None = None, n: int | None = None
) -> str:
    if not np.isfinite(med):
        return "–"
    text = f"{med:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"
    if n_def is not None and n is not None and n_def < n:
        text += f" (n={n_def})"
    return text


def _json_safe(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, np.integer | bool | np.bool_):
        return obj.item() if hasattr(obj, "item") else obj
    if isinstance(obj, float | np.floating):
        return float(obj) if np.isfinite(obj) else None
    if isinstance(obj, np.ndarray):
        return _json_safe(obj.tolist())
    return obj
