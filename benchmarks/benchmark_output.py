"""Shared output of the benchmark-grid scripts: result files, tables, plots, console summary."""

from __future__ import annotations

import json
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
TABLE_METRICS = ("le_mm", "dle_mm", "sd_mm", "auc", "emd_mm", "nmse")


def add_grid_options(p) -> None:
    """The options that cut the benchmark grid down (SNRs, numbers of sources, placements, one
    extent range), shared by the grid scripts."""
    p.add_argument("--snr", type=float, nargs="+", help="SNRs (dB; default the grid's)")
    p.add_argument("--n-sources", type=int, nargs="+", help="numbers of sources (default 1 2 3)")
    p.add_argument("--placements", nargs="+", help="placements (default all three)")
    p.add_argument("--extent", type=float, nargs=2, help="one extent range (mm)")


def grid_from_args(args) -> dict:
    """The :class:`deepesi.benchmark.BenchmarkConfig` keywords of :func:`add_grid_options`."""
    grid = {}
    if args.snr:
        grid["snr_db"] = tuple(args.snr)
    if args.n_sources:
        grid["n_sources"] = tuple(args.n_sources)
    if args.placements:
        grid["placements"] = tuple(args.placements)
    if args.extent:
        grid["extents_mm"] = (tuple(args.extent),)
    return grid


def write_and_print(res, stem: str, run_s: float) -> None:
    """Write ``results/<stem>.json`` (records + summary), ``<stem>.md`` (tables by number of
    sources, placement and SNR) and the plots in ``results/<stem>/``; print the run time, the mean
    runtime per method and the median peak error per placement × SNR × method."""
    res.save(RESULTS / f"{stem}.json", overwrite=True)
    md = res.to_markdown(metrics=TABLE_METRICS, by=("n_sources", "placement", "snr_db"))
    (RESULTS / f"{stem}.md").write_text(md)
    res.plot(RESULTS / stem, overwrite=True)
    methods = res.config.methods
    runtime: dict[str, list[float]] = {}
    for r in res.records:
        runtime.setdefault(r["method"], []).append(r["runtime_s"])
    print(f"benchmark {run_s:.0f} s ({len(res.records) // len(methods)} samples x "
          f"{len(methods)} methods)")
    print("mean runtime per sample (s):",
          json.dumps({k: round(sum(v) / len(v), 3) for k, v in runtime.items()}))
    print(f"{'placement':>11} {'SNR':>6} {'method':>11}  median peak error [95% CI]")
    for r in res.summary(by=("placement", "snr_db"), metrics=("le_mm",)):
        print(f"{r['placement']:>11} {r['snr_db']:4g} dB {r['method']:>11} "
              f"{r['le_mm']:6.1f} [{r['le_mm_lo']:.1f}, {r['le_mm_hi']:.1f}] mm")
