"""Benchmark: deepesi against the classical inverse methods over a grid of simulated scenarios.

The test data are simulated on a *test* lead field that differs from the one the network was
trained on (finer mesh, perturbed conductivities, off-grid sources: the caller builds it), while
every method inverts with the *model's* lead field, as a user would: all methods see the same
data and the same (mismatched) forward. For every sample and method the maps are scored with
:mod:`deepesi.metrics`; :class:`BenchmarkResult` holds one tidy record per (sample, method) and
summarises them as medians with seeded bootstrap confidence intervals. How the benchmark is built
and why is described in ``docs/benchmarks.md``.

Modules: :mod:`~deepesi.benchmark.config` (the grid, :class:`BenchmarkConfig`),
:mod:`~deepesi.benchmark.data` (sensor sets and the simulated test data),
:mod:`~deepesi.benchmark.scoring` (one map against the truth), :mod:`~deepesi.benchmark.run`
(:func:`run_benchmark`), :mod:`~deepesi.benchmark.stats` (:func:`bootstrap_median`),
:mod:`~deepesi.benchmark.results` (:class:`BenchmarkResult`, :func:`read_benchmark`) and
:mod:`~deepesi.benchmark.plots` (:func:`plot_benchmark`).
"""

from .config import (
    DEEPESI,
    METRICS,
    NETWORK_METHODS,
    PLACEMENTS,
    SCENARIO_KEYS,
    SOURCE_SET_METHODS,
    BenchmarkConfig,
)
from .data import default_set_name
from .plots import plot_benchmark
from .results import BenchmarkResult, read_benchmark
from .run import run_benchmark
from .stats import bootstrap_median

__all__ = [
    "DEEPESI",
    "METRICS",
    "NETWORK_METHODS",
    "PLACEMENTS",
    "SCENARIO_KEYS",
    "SOURCE_SET_METHODS",
    "BenchmarkConfig",
    "BenchmarkResult",
    "bootstrap_median",
    "default_set_name",
    "plot_benchmark",
    "read_benchmark",
    "run_benchmark",
]
