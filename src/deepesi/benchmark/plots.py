"""The benchmark's figures: error vs SNR, error vs source depth, cortical vs subcortical."""

from __future__ import annotations

import os
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np

from .._io import atomic_path
from .config import DEEPESI
from .stats import bootstrap_median

__all__ = ["plot_benchmark"]

#: The figures :func:`plot_benchmark` writes, in order.
FIGURES = ("error_vs_snr.png", "error_vs_depth.png", "cortical_vs_subcortical.png")


def plot_benchmark(
    result: Any, out_dir: str | os.PathLike, overwrite: bool = False
) -> list[Path]:
    """Figures (PNG): error vs SNR, error vs depth, cortical vs subcortical, per method.

    Parameters
    ----------
    result : BenchmarkResult
        The records to plot.
    out_dir : path-like
        Folder to write into (created if needed).
    overwrite : bool
        Replace existing figures.

    Returns
    -------
    list of Path
        ``error_vs_snr.png``, ``error_vs_depth.png`` and ``cortical_vs_subcortical.png`` in
        ``out_dir``. Depth and class use the per-source localization error
        (``source_error_mm``), pooled over the other scenario columns.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, draw in zip(FIGURES, (_plot_snr, _plot_depth, _plot_class), strict=True):
        fig = draw(result, plt)
        with atomic_path(out / name, overwrite=overwrite) as tmp:
            fig.savefig(tmp, dpi=120, bbox_inches="tight")
        plt.close(fig)
        paths.append(out / name)
    return paths


def _source_rows(result: Any) -> list[tuple[str, str, float, float]]:
    """(method, class, depth, error) per true source of every record."""
    rows = []
    for r in result.records:
        for cls, depth, err in zip(r["source_class"], r["source_depth_mm"],
                                   r["source_error_mm"], strict=True):
            rows.append((r["method"], cls, depth, np.nan if err is None else err))
    return rows


def _plot_snr(result: Any, plt):
    placements = [p for p in result.config.placements
                  if any(r["placement"] == p for r in result.records)]
    methods = result.methods
    fig, axes = plt.subplots(1, len(placements), figsize=(4.2 * len(placements), 3.6),
                             sharey=True, squeeze=False)
    rows = result.summary(by=("placement", "snr_db"), metrics=("le_mm",))
    snrs = sorted({r["snr_db"] for r in rows})
    dodge = 0.04 * (max(snrs) - min(snrs) if len(snrs) > 1 else 1.0)
    for ax, p in zip(axes[0], placements, strict=True):
        for j, m in enumerate(methods):
            sel = [r for r in rows if r["placement"] == p and r["method"] == m]
            shift = (j - (len(methods) - 1) / 2) * dodge / max(len(methods), 1)
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


def _plot_depth(result: Any, plt):
    cfg = result.config
    rows = _source_rows(result)
    depth = np.asarray([r[2] for r in rows])
    fig, ax = plt.subplots(figsize=(6, 4))
    if len(depth) == 0:
        return fig
    edges = np.unique(np.quantile(depth, np.linspace(0, 1, 7)))
    if len(edges) < 2:
        edges = np.array([depth.min(), depth.min() + 1.0])
    rng = np.random.default_rng(cfg.seed)
    for m in result.methods:
        d = np.asarray([r[2] for r in rows if r[0] == m])
        e = np.asarray([r[3] for r in rows if r[0] == m])
        x, y, lo, hi = [], [], [], []
        for a, b in pairwise(edges):
            sel = (d >= a) & ((d < b) | (b == edges[-1]))
            med, ql, qh = bootstrap_median(e[sel], cfg.n_bootstrap, cfg.ci, rng)
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


def _plot_class(result: Any, plt):
    cfg = result.config
    methods = result.methods
    rows = _source_rows(result)
    fig, ax = plt.subplots(figsize=(max(5, 0.8 * len(methods) + 2), 4))
    rng = np.random.default_rng(cfg.seed)
    width = 0.38
    for j, cls in enumerate(("cortical", "subcortical")):
        y, lo, hi = [], [], []
        for m in methods:
            e = np.asarray([r[3] for r in rows if r[0] == m and r[1] == cls])
            med, ql, qh = bootstrap_median(e, cfg.n_bootstrap, cfg.ci, rng)
            y.append(med)
            lo.append(med - ql)
            hi.append(qh - med)
        x = np.arange(len(methods)) + (j - 0.5) * width
        ax.bar(x, y, width, yerr=[lo, hi], capsize=2, label=cls)
    ax.set_xticks(np.arange(len(methods)), methods, rotation=30, ha="right")
    ax.set_ylabel("localization error per source (mm), median, 95% CI")
    ax.legend()
    ax.grid(axis="y", alpha=0.3)
    return fig
