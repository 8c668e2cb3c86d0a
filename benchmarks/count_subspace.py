"""Does the signal subspace count sources better? ``subspace_price`` on the realistic grid.

Usage::

    python scripts/build_pretrained.py --stage forward --realistic --only test-realistic \\
        --work out/pretrained
    python benchmarks/count_subspace.py [--n 20] [--seed 1] [--prices 0.1 0.3 0.6]

The source-set method of the shipped window net (``deepesi-sources``, ``template-eeg64-w5``)
on 1-3 point sources (cortical, subcortical, mixed) at 5 and 10 dB, 20-sample windows,
simulated with the realistic-mismatch test forward, inverted with the shipped one: the share
of windows whose number of sources is right, per true number, and the pooled median
localization error, for the price alone (``subspace_price=None``) and for each share of the
price paid by the sources within the data's signal-subspace dimension. The benchmark seed is
not the one the rule was looked at on (0). Writes
``benchmarks/results/count_subspace.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    from deepesi.benchmark import BenchmarkConfig, run_benchmark
    from deepesi.pretrained import load_pretrained
    from deepesi.simulation import read_work_leadfield

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", default="out/pretrained")
    p.add_argument("--n", type=int, default=20, help="samples per cell and SNR")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--prices", type=float, nargs="+", default=[0.1, 0.3, 0.6])
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    model, lf = load_pretrained("template-eeg64-w5")
    model.leadfield_hash = lf.hash()  # the shipped float16 gain of its training forward
    test = read_work_leadfield(args.work, "test-realistic")
    rows, t0 = [], time.perf_counter()
    for price in [None, *args.prices]:
        cfg = BenchmarkConfig(n_samples=args.n, seed=args.seed, methods=("deepesi-sources",),
                              n_sources=(1, 2, 3), snr_db=(5.0, 10.0),
                              extents_mm=((0.0, 0.0),), emd_max_support=None,
                              source_set_options={"subspace_price": price})
        recs = run_benchmark(model, test, cfg, model_leadfields=lf, verbose=False).records
        k = np.array([r["n_sources"] for r in recs])
        est = np.array([r["n_estimated"] for r in recs])
        row = {"subspace_price": price, "windows": len(recs),
               "count_right": round(float(np.mean(est == k)), 3)}
        for kk in (1, 2, 3):
            row[f"count_right_{kk}"] = round(float(np.mean(est[k == kk] == kk)), 3)
            errs = [e for r in recs if r["n_sources"] == kk for e in r["source_error_mm"]
                    if e is not None]
            row[f"median_error_{kk}_mm"] = round(float(np.median(errs)), 2)
        rows.append(row)
        print(row, flush=True)
    lines = [f"deepesi-sources (template-eeg64-w5), realistic mismatch, 1-3 point sources, 5 "
             f"and 10 dB, {args.n} windows per cell and SNR (seed {args.seed}).", "",
             "| subspace_price | count right | 1 / 2 / 3 sources | pooled median error "
             "1 / 2 / 3 (mm) |", "|---|---:|---|---|"]
    for r in rows:
        lines.append(f"| {r['subspace_price']} | {100 * r['count_right']:.1f} % | "
                     + " / ".join(f"{100 * r[f'count_right_{k}']:.0f} %" for k in (1, 2, 3))
                     + " | " + " / ".join(f"{r[f'median_error_{k}_mm']:.1f}" for k in (1, 2, 3))
                     + " |")
    table = "\n".join(lines) + "\n"
    print(table)
    RESULTS.mkdir(exist_ok=True)
    doc = {"n": args.n, "seed": args.seed, "rows": rows,
           "seconds": round(time.perf_counter() - t0, 1),
           "command": f"python benchmarks/count_subspace.py --n {args.n} --seed {args.seed} "
                      "--prices " + " ".join(f"{v:g}" for v in args.prices)}
    (RESULTS / "count_subspace.json").write_text(json.dumps(doc, indent=1) + "\n")
    (RESULTS / "count_subspace.md").write_text(table)
    print("written: benchmarks/results/count_subspace.json, .md")


if __name__ == "__main__":
    main()
