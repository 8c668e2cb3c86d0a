"""The benchmark's result: per-sample records, summaries with bootstrap intervals, tables, JSON.

:class:`BenchmarkResult` holds one tidy record per (sample, method), summarises them as medians
with seeded bootstrap confidence intervals (:meth:`~BenchmarkResult.summary`,
:meth:`~BenchmarkResult.compare`), writes Markdown tables and JSON (:meth:`~BenchmarkResult.save`,
read back with :func:`read_benchmark`) and figures (:func:`deepesi.benchmark.plots.plot_benchmark`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .._io import atomic_path, to_jsonable
from .._validation import check_file
from .config import DEEPESI, METRICS, SCENARIO_KEYS, BenchmarkConfig, _check_method, _crc
from .plots import plot_benchmark
from .stats import bootstrap_median

__all__ = ["BenchmarkResult", "bootstrap_median", "read_benchmark"]

FORMAT = "deepesi-benchmark"
FORMAT_VERSION = 1


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
        """Methods in the configured order, then the outside ones (``run_benchmark(
        external_methods=)``) in the order the records first name them."""
        have = {r["method"] for r in self.records}
        outside = list(dict.fromkeys(r["method"] for r in self.records
                                     if r["method"] not in self.config.methods))
        return [m for m in self.config.methods if m in have] + outside

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
        rows = []
        for g in self._ordered(groups):
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
        rows = []
        for g in self._ordered(groups):
            pairs = np.asarray(groups[g])
            diff = pairs[:, 0] - pairs[:, 1]
            rng = np.random.default_rng([self.config.seed, _crc(repr(g) + metric + "diff")])
            med, lo, hi = bootstrap_median(diff, self.config.n_bootstrap, self.config.ci, rng)
            better = diff > 0 if lower else diff < 0
            rows.append({**dict(zip((*by, "method"), g, strict=True)), "n": len(diff),
                         "diff": med, "diff_lo": lo, "diff_hi": hi,
                         "reference_better": float(better.mean())})
        return rows

    def _ordered(self, groups: Iterable[tuple]) -> list[tuple]:
        """Group keys sorted by their scenario values, then by the configured method order."""
        order = {m: i for i, m in enumerate(self.methods)}
        return sorted(groups, key=lambda g: (tuple(map(_sort_key, g[:-1])), order[g[-1]]))

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
            lines += self._comparison_lines(by)
        lines += self._confusion_lines()
        return "\n".join(lines) + "\n"

    def confusion_rates(self, by: Sequence[str] = ("sensor_set", "placement", "snr_db")
                        ) -> list[dict]:
        """How often a method puts a source's peak in the other compartment (cortex ↔ deep).

        Over the sources of the records of each group (the record's ``confusion`` is the
        fraction of its sources whose matched peak lies in the other compartment), with a
        Wilson 95 % interval.

        Returns
        -------
        rows : list of dict
            Group columns, ``method``, ``n_sources``, ``rate``, ``rate_lo``, ``rate_hi``.
        """
        by = tuple(by)
        groups: dict[tuple, list[tuple[float, int]]] = {}
        for r in self.records:
            c = r.get("confusion")
            if c is None or not np.isfinite(c):
                continue
            k = len(r.get("source_class") or [None])
            groups.setdefault((*(r[b] for b in by), r["method"]), []).append((c * k, k))
        rows = []
        for g in self._ordered(groups):
            wrong = sum(w for w, _ in groups[g])
            n = sum(k for _, k in groups[g])
            lo, hi = _wilson(wrong, n)
            rows.append({**dict(zip((*by, "method"), g, strict=True)), "n_sources": n,
                         "rate": wrong / n if n else float("nan"), "rate_lo": lo,
                         "rate_hi": hi})
        return rows

    def _confusion_lines(self) -> list[str]:
        rows = self.confusion_rates()
        if not rows:
            return []
        lines = ["", "Cortical ↔ deep confusion: % of sources whose matched peak lies in the "
                 "other compartment [Wilson 95 % CI].", "",
                 "| sensor_set | placement | snr_db | method | sources | confusion (%) |",
                 "|---|---|---|---|---|---|"]
        for r in rows:
            lines.append(f"| {r['sensor_set']} | {r['placement']} | {_fmt_key(r['snr_db'])} | "
                         f"{r['method']} | {r['n_sources']} | {100 * r['rate']:.1f} "
                         f"[{100 * r['rate_lo']:.1f}, {100 * r['rate_hi']:.1f}] |")
        return lines

    def _comparison_lines(self, by: Sequence[str]) -> list[str]:
        """The paired-difference table of :meth:`to_markdown` (method − deepesi)."""
        comp = self.compare("le_mm", DEEPESI, by=by)
        lines = [
            "",
            "Paired difference of the localization error (method − deepesi, mm, median "
            f"[{self.config.ci:.0%} CI]) on the same samples; `deepesi better` = fraction of "
            "samples where deepesi's error is strictly smaller.",
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
        return lines

    def save(self, fname: str | os.PathLike, overwrite: bool = False) -> Path:
        """Write config, meta, records and the default summary as JSON (atomically).

        Parameters
        ----------
        fname : path-like
            The JSON file (read it back with :func:`read_benchmark`).
        overwrite : bool
            Replace an existing file.

        Returns
        -------
        Path
            ``fname``.
        """
        doc = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "config": self.config.to_dict(),
            "meta": self.meta,
            "records": self.records,
            "summary": self.summary(),
        }
        with atomic_path(fname, overwrite=overwrite) as tmp:
            tmp.write_text(json.dumps(to_jsonable(doc), separators=(",", ":")))
        return Path(fname)

    @classmethod
    def load(cls, fname: str | os.PathLike) -> BenchmarkResult:
        """Read a file written by :meth:`save` (the same as :func:`read_benchmark`)."""
        return read_benchmark(fname)

    def plot(self, out_dir: str | os.PathLike, overwrite: bool = False) -> list[Path]:
        """Figures (PNG): error vs SNR, error vs depth, cortical vs subcortical, per method.

        Returns the paths written: ``error_vs_snr.png``, ``error_vs_depth.png`` and
        ``cortical_vs_subcortical.png`` in ``out_dir``. Uses the per-source localization error
        (``source_error_mm``) for depth and class, pooled over the other scenario columns. See
        :func:`deepesi.benchmark.plots.plot_benchmark`.
        """
        return plot_benchmark(self, out_dir, overwrite=overwrite)


def read_benchmark(fname: str | os.PathLike) -> BenchmarkResult:
    """Read a benchmark result written by :meth:`BenchmarkResult.save`.

    Parameters
    ----------
    fname : path-like
        The JSON file.

    Returns
    -------
    BenchmarkResult
        Records with the undefined metrics (``null`` in the file) back as NaN.
    """
    path = check_file(fname, "benchmark result")
    doc = json.loads(Path(path).read_text())
    if doc.get("format") != FORMAT:
        raise ValueError(f"{path} is not a deepesi benchmark result.")
    records = [
        {k: (np.nan if v is None and k in METRICS else v) for k, v in r.items()}
        for r in doc["records"]
    ]
    return BenchmarkResult(records, BenchmarkConfig.from_dict(doc["config"]), doc.get("meta"))


def _wilson(k: float, n: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score interval of a proportion ``k / n`` (NaN for n = 0)."""
    if n <= 0:
        return float("nan"), float("nan")
    p = k / n
    den = 1 + z**2 / n
    centre = (p + z**2 / (2 * n)) / den
    half = z * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / den
    return float(max(centre - half, 0.0)), float(min(centre + half, 1.0))


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
