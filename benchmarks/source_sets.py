"""Source sets against maps: localization per number of sources, number of sources found, speed.

Usage::

    python benchmarks/benchmark_template.py --test test-realistic --n 20 --n-sources 1 2 3 \
        --snr 5 10 --extent 0 0 --no-emd --threads 1 --name source_sets_focal \
        --methods deepesi deepesi-sources deepesi-map-sources dipoles LCMV
    python benchmarks/source_sets.py benchmarks/results/source_sets_focal.json

Reads a benchmark result that holds source-set methods (``deepesi-sources``: the network's map
of the data and of each residual proposes, the residual's best dipole competes, alternating
projection, off-grid refinement, BIC order; ``deepesi-map-sources``: the network alone
proposes; ``dipoles``: the residual's best dipole alone, i.e. sequential dipole fitting with
alternating projection, a classical method) and map methods (the network's and the classical
maps, scored by their K strongest peaks with the *true* K given). Prints and writes
(``results/<stem>-sets.json``, ``.md``) per number of sources × placement × SNR: the pooled
median localization error over all sources (mm), the fraction of samples whose number of
sources was estimated right (set methods; the map methods are told it), the paired difference
of each method's per-sample error to ``--reference`` with its bootstrap interval, and the
mean time per sample; per set method, the median error of the equivalent extent
(:func:`deepesi.inverse.equivalent_extent_mm`) over the true patches of radius > 0.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"


def _extent_error(records: list[dict]) -> float:
    """Median |estimated - true| patch radius (mm) over the true sources of radius > 0 (the
    equivalent extent of the matched found source); NaN when there are none."""
    errs = [abs(e - t) for r in records
            for e, t in zip(r.get("source_extent_estimated_mm") or [],
                            r.get("source_extent_mm") or [], strict=False)
            if e is not None and t is not None and t > 0]
    return float(np.median(errs)) if errs else float("nan")


def _pooled(records: list[dict]) -> float:
    errs = [e for r in records for e in r["source_error_mm"] if e is not None and np.isfinite(e)]
    return float(np.median(errs)) if errs else float("nan")


def _plot(res, methods: list[str], fname: Path) -> None:
    """Per-source localization error by number of sources and method (box plots), and the
    fraction of samples whose number of sources each set method got right."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ks = sorted({r["n_sources"] for r in res.records})
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), gridspec_kw={"width_ratios": [3, 1.3]})
    ax = axes[0]
    width = 0.8 / len(methods)
    colours = plt.get_cmap("tab10")
    for i, m in enumerate(methods):
        data = [[e for r in res.records if r["method"] == m and r["n_sources"] == k
                 for e in r["source_error_mm"] if e is not None and np.isfinite(e)] for k in ks]
        x = np.arange(len(ks)) + (i - (len(methods) - 1) / 2) * width
        bp = ax.boxplot(data, positions=x, widths=width * 0.9, showfliers=False,
                        patch_artist=True, medianprops={"color": "k"})
        for b in bp["boxes"]:
            b.set_facecolor(colours(i))
        ax.plot([], [], "s", color=colours(i), label=m)
    ax.set_xticks(np.arange(len(ks)), [f"{k} source{'s' if k > 1 else ''}" for k in ks])
    ax.set_ylabel("localization error per source (mm)")
    ax.set_title("error of every true source (matched one-to-one)")
    ax.legend(fontsize=8, ncol=2)
    ax.grid(axis="y", alpha=0.3)
    ax = axes[1]
    sets = [m for m in methods if any("n_estimated" in r for r in res.records
                                      if r["method"] == m)]
    for j, m in enumerate(sets):  # markers and dashes differ: the curves often coincide
        acc = [np.mean([bool(r.get("count_correct")) for r in res.records
                        if r["method"] == m and r["n_sources"] == k]) * 100 for k in ks]
        ax.plot(ks, acc, ("o-", "s--", "^:")[j % 3], color=colours(methods.index(m)), label=m,
                markersize=8 - 2 * (j % 3), alpha=0.9)
    ax.set_xticks(ks)
    ax.set_ylim(0, 105)
    ax.set_xlabel("true number of sources")
    ax.set_ylabel("number estimated right (%)")
    ax.set_title("number of sources")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.suptitle(f"{res.meta.get('test_forward', 'test')} forward, "
                 f"SNR {', '.join(f'{s:g}' for s in res.config.snr_db)} dB, "
                 f"{res.config.n_samples} samples per cell", fontsize=10)
    fig.tight_layout()
    fig.savefig(fname, dpi=110)
    plt.close(fig)


def main() -> None:
    from deepesi.benchmark import read_benchmark

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("result", help="benchmark result JSON")
    p.add_argument("--reference", default="deepesi-sources")
    p.add_argument("--against", nargs="+",
                   default=["gamma_map", "LCMV", "invertmeeg-flex-nl-champagne"],
                   help="the methods the reference is held against for 2-3 sources (issue 14: "
                        "pooled median <= 0.7 x the best of them)")
    args = p.parse_args()
    res = read_benchmark(args.result)
    methods = list(res.methods)  # the configured ones, then outside methods (peers)
    keys = ("n_sources", "placement", "snr_db")
    groups: dict[tuple, dict[str, list[dict]]] = {}
    for r in res.records:
        groups.setdefault(tuple(r[k] for k in keys), {}).setdefault(r["method"], []).append(r)
    compare = {(*(c[k] for k in keys), c["method"]): c
               for c in res.compare("le_mm", args.reference, by=keys)}
    rows = []
    for g in sorted(groups):
        for m in methods:
            recs = groups[g].get(m, [])
            if not recs:
                continue
            row = dict(zip(keys, g, strict=True))
            row.update(method=m, n=len(recs), pooled_median_mm=_pooled(recs),
                       runtime_s=float(np.mean([r["runtime_s"] for r in recs])))
            if "n_estimated" in recs[0]:
                row["count_correct"] = float(np.mean([bool(r.get("count_correct")) for r in recs]))
                row["n_estimated_mean"] = float(np.mean([r["n_estimated"] for r in recs]))
            c = compare.get((*g, m))
            if c is not None:
                row.update(diff_mm=c["diff"], diff_lo=c["diff_lo"], diff_hi=c["diff_hi"])
            rows.append(row)
    # pooled over the grid: every method's median and the count accuracy at >= 5 dB
    overall = []
    for m in methods:
        recs = [r for r in res.records if r["method"] == m]
        o = {"method": m, "n": len(recs), "pooled_median_mm": _pooled(recs),
             "runtime_s": float(np.mean([r["runtime_s"] for r in recs]))}
        for k in sorted({r["n_sources"] for r in recs}):
            o[f"pooled_median_mm_{k}src"] = _pooled([r for r in recs if r["n_sources"] == k])
        if recs and "n_estimated" in recs[0]:
            ok = [bool(r.get("count_correct")) for r in recs if r["snr_db"] >= 5]
            o["count_correct_ge5dB"] = float(np.mean(ok)) if ok else float("nan")
            o["extent_error_mm"] = _extent_error(recs)
        overall.append(o)
    head = ("| sources | placement | SNR | method | n | pooled median (mm) | Δ vs "
            f"{args.reference} [95 % CI] (mm) | count right | s/sample |")
    lines = [head, "|" + "---|" * 9]
    for r in rows:
        diff = (f"{r['diff_mm']:+.1f} [{r['diff_lo']:+.1f}, {r['diff_hi']:+.1f}]"
                if "diff_mm" in r else "—")
        count = f"{100 * r['count_correct']:.0f} %" if "count_correct" in r else "(given)"
        lines.append(f"| {r['n_sources']} | {r['placement']} | {r['snr_db']:g} | {r['method']} | "
                     f"{r['n']} | {r['pooled_median_mm']:.1f} | {diff} | {count} | "
                     f"{r['runtime_s']:.3f} |")
    lines += ["", "| method | pooled median (mm) | " + " | ".join(
        f"{k} source(s)" for k in sorted({r["n_sources"] for r in res.records})) +
        " | count right (≥ 5 dB) | extent error (mm) | s/sample |", "|" + "---|" * 7]
    for o in overall:
        per = " | ".join(f"{o[k]:.1f}" for k in sorted(o) if k.startswith("pooled_median_mm_"))
        cnt = f"{100 * o['count_correct_ge5dB']:.0f} %" if "count_correct_ge5dB" in o else "—"
        ext = o.get("extent_error_mm", float("nan"))
        ext = f"{ext:.1f}" if np.isfinite(ext) else "—"
        lines.append(f"| {o['method']} | {o['pooled_median_mm']:.1f} | {per} | {cnt} | {ext} | "
                     f"{o['runtime_s']:.3f} |")
    placement_rows = _against(res, args.reference, [m for m in args.against if m in methods])
    if placement_rows:
        lines += ["", f"Two and three sources, both SNRs pooled: {args.reference} against the "
                  "best of " + ", ".join(r for r in args.against if r in methods) +
                  " (pooled median of every true source; paired difference of the per-sample "
                  "mean error, 95 % bootstrap interval)", "",
                  "| placement | " + " | ".join(placement_rows[0]["medians"]) +
                  " | best other | ratio | Δ vs best other [95 % CI] (mm) |",
                  "|" + "---|" * (len(placement_rows[0]["medians"]) + 4)]
        for r in placement_rows:
            meds = " | ".join(f"{v:.1f}" for v in r["medians"].values())
            lines.append(f"| {r['placement']} | {meds} | {r['best_other']} | {r['ratio']:.2f} | "
                         f"{r['diff']:+.1f} [{r['diff_lo']:+.1f}, {r['diff_hi']:+.1f}] |")
    text = "\n".join(lines)
    print(text)
    stem = Path(args.result).stem
    _plot(res, methods, RESULTS / f"{stem}-sets.png")
    (RESULTS / f"{stem}-sets.md").write_text(text + "\n")
    (RESULTS / f"{stem}-sets.json").write_text(json.dumps(
        {"source": str(args.result), "reference": args.reference, "rows": rows,
         "overall": overall, "against": placement_rows}, indent=1))


def _sample_mean(r: dict) -> float:
    errs = [e for e in r["source_error_mm"] if e is not None and np.isfinite(e)]
    return float(np.mean(errs)) if errs else float("nan")


def _against(res, reference: str, others: list[str], n_boot: int = 2000) -> list[dict]:
    """Per placement, 2-3 sources: each method's pooled median, the reference's ratio to the
    best other method, and the paired bootstrap interval of the per-sample difference."""
    out = []
    multi = [r for r in res.records if r["n_sources"] >= 2]
    for placement in sorted({r["placement"] for r in multi}):
        recs = [r for r in multi if r["placement"] == placement]
        meds = {m: _pooled([r for r in recs if r["method"] == m]) for m in [reference, *others]}
        if not others or not np.isfinite(meds[reference]):
            continue
        best = min(others, key=lambda m: meds[m])
        key = ("n_sources", "snr_db", "sample")
        a = {tuple(r[k] for k in key): _sample_mean(r) for r in recs if r["method"] == reference}
        b = {tuple(r[k] for k in key): _sample_mean(r) for r in recs if r["method"] == best}
        d = np.array([a[k] - b[k] for k in a if k in b and np.isfinite(a[k] - b[k])])
        rng = np.random.default_rng([0, len(d)])
        boot = np.median(d[rng.integers(len(d), size=(n_boot, len(d)))], axis=1)
        out.append({"placement": placement, "medians": meds, "best_other": best,
                    "ratio": meds[reference] / meds[best], "n_pairs": len(d),
                    "diff": float(np.median(d)), "diff_lo": float(np.percentile(boot, 2.5)),
                    "diff_hi": float(np.percentile(boot, 97.5))})
    return out


if __name__ == "__main__":
    main()
