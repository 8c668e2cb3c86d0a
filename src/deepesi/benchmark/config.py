"""The benchmark's scenario grid and settings (:class:`BenchmarkConfig`), its names and columns."""

from __future__ import annotations

import dataclasses
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import product
from typing import Any

import numpy as np

from .._validation import validate_type
from ..inverse.classical import CLASSICAL_METHODS
from ..inverse.classical import check_method as _check_classical

__all__ = ["DEEPESI", "METRICS", "NETWORK_METHODS", "PLACEMENTS", "SCENARIO_KEYS",
           "SOURCE_SET_METHODS", "BenchmarkConfig"]

#: Name of the network in the method list and the records.
DEEPESI = "deepesi"
#: Methods whose answer is a list of off-grid sources (:mod:`deepesi.benchmark.sets`), scored
#: by their positions and their number; the first two use the network.
SOURCE_SET_METHODS = ("deepesi-sources", "deepesi-map-sources", "dipoles")
#: Methods that need the network.
NETWORK_METHODS = (DEEPESI, "deepesi-sources", "deepesi-map-sources")
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
#: The minimum-norm methods, whose operators the benchmark builds once per sensor set.
_MIN_NORM = ("MNE", "dSPM", "sLORETA", "eLORETA")
_SIM_OVERRIDES = ("cortical_density", "deep_density", "cortical_thickness", "loose", "waveforms")


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
        ``'deepesi'`` and any of :data:`deepesi.inverse.CLASSICAL_METHODS` (their aliases, e.g.
        ``'mixed_norm'``, are accepted and stored under the canonical name).
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
    source_set_options : dict
        Keywords of the source-set methods (:meth:`deepesi.inverse.SourceSetFitter.fit`, and
        ``proposal_samples``: the samples the network's proposal reads, None for all).
    simulation : dict
        Overrides for :class:`deepesi.simulation.SimulationConfig` (``cortical_density``,
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
    source_set_options: dict = field(default_factory=dict)
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
        self.extents_mm = _extent_ranges(self.extents_mm)
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
        self.classical_options = _classical_options(self.classical_options)
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


def _extent_ranges(ranges: Any) -> tuple[tuple[float, float], ...]:
    """The extent ranges as (min, max) pairs in mm; one pair may be given directly."""
    if np.ndim(ranges) == 1 and len(ranges) == 2:  # one (min, max) pair given directly
        ranges = [ranges]
    extents = []
    for ext in _seq(ranges):
        lo, hi = (float(v) for v in (ext if np.ndim(ext) else (ext, ext)))
        if not 0.0 <= lo <= hi <= 200.0:
            raise ValueError(f"extent ranges must satisfy 0 <= min <= max <= 200 mm, got {ext}.")
        extents.append((lo, hi))
    if not extents:
        raise ValueError("extents_mm needs at least one (min, max) range in mm.")
    return tuple(extents)


def _classical_options(options: Mapping) -> dict[str, dict]:
    """The per-method MNE options under the canonical method names."""
    opts = {}
    for name, val in dict(options).items():
        validate_type(val, Mapping, f"classical_options[{name!r}]", "dict")
        method = _check_method(name)
        extra = sorted(set(val) - {"method_params"}) if method in _MIN_NORM else []
        if extra:
            raise ValueError(
                f"classical_options[{name!r}]: the cached minimum-norm path takes only "
                f"'method_params', got {extra}; lambda2 comes from lambda_snr, depth from "
                "depth."
            )
        opts[method] = dict(val)
    return opts


def _seq(value: Any) -> list:
    if isinstance(value, str | bytes) or np.ndim(value) == 0:
        return [value]
    return list(value)


def _positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or int(value) != value or int(value) < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}.")
    return int(value)


def _check_method(method: str) -> str:
    """The canonical name of a benchmark method: ``'deepesi'`` (any case) or a classical one."""
    validate_type(method, str, "method name")
    if method.strip().lower() == DEEPESI:
        return DEEPESI
    if method.strip().lower() in SOURCE_SET_METHODS:
        return method.strip().lower()
    try:
        return _check_classical(method)
    except ValueError:
        raise ValueError(
            f"unknown method {method!r}; choose {DEEPESI!r}, a source-set method "
            f"{list(SOURCE_SET_METHODS)} or one of {list(CLASSICAL_METHODS)}."
        ) from None


def _crc(text: str) -> int:
    return zlib.crc32(text.encode())


def _extent_label(ext: tuple[float, float]) -> str:
    lo, hi = ext
    return f"{lo:g}" if lo == hi else f"{lo:g}-{hi:g}"
