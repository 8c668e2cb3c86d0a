"""Would another price per source count the sources better? A replay of a grid's order criterion.

Usage::

    python benchmarks/count_threshold.py benchmarks/results/proposal_4.json \\
        [--method deepesi-sources] [--scales 0.6 0.7 0.8 0.9 1.0]

The source-set methods record, for each window, every order's drop of the whitened residual
energy in units of the price a source must pay (``order_gain``; a source is kept while > 1).
Scaling the price by ``s`` keeps the sources up to the first order whose gain is ≤ s. The fit
stops at its first rejection, so for s < 1 the orders past it were never tried: they are
counted as rejected, which favours the lower prices slightly. Prints the share of windows whose
count is right, overall and per true number of sources, and where the real and the spurious
sources' gains lie.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict

import numpy as np


def replay(records: list[dict], scale: float) -> tuple[float, dict[int, float]]:
    """Share of windows counted right with the price scaled by ``scale``, overall and per
    true number of sources."""
    right: dict[int, list[bool]] = defaultdict(list)
    for r in records:
        n = 0
        for order, gain in enumerate(r["order_gain"], start=1):
            if gain <= scale:
                break
            n = order
        right[r["n_sources"]].append(n == r["n_sources"])
    every = [v for vals in right.values() for v in vals]
    return float(np.mean(every)), {k: float(np.mean(v)) for k, v in sorted(right.items())}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("result", help="benchmark result JSON with a source-set method")
    p.add_argument("--method", default="deepesi-sources")
    p.add_argument("--scales", type=float, nargs="+", default=[0.6, 0.7, 0.8, 0.9, 1.0])
    args = p.parse_args()
    doc = json.loads(open(args.result).read())
    records = [r for r in doc["records"] if r["method"] == args.method and "order_gain" in r
               and r["snr_db"] >= 5]
    if not records:
        raise SystemExit(f"no {args.method} records with 'order_gain' at >= 5 dB in "
                         f"{args.result} (rerun the benchmark with this version).")
    print(f"{len(records)} windows of {args.method} at >= 5 dB")
    print("| price × | count right | 1 source | 2 sources | 3 sources |")
    print("|---:|---:|---:|---:|---:|")
    for s in args.scales:
        total, per_k = replay(records, s)
        cells = " | ".join(f"{100 * per_k.get(k, float('nan')):.0f} %" for k in (1, 2, 3))
        print(f"| {s:.2f} | {100 * total:.1f} % | {cells} |")
    real, spurious = [], []
    for r in records:
        for order, gain in enumerate(r["order_gain"], start=1):
            (real if order <= r["n_sources"] else spurious).append(gain)
    real, spurious = np.asarray(real), np.asarray(spurious)
    print(f"real sources' gain / price: below 1 in {100 * np.mean(real <= 1):.0f} % "
          f"(10th percentile {np.percentile(real, 10):.2f}); spurious: 90th percentile "
          f"{np.percentile(spurious, 90):.2f}, largest {spurious.max():.2f}")


if __name__ == "__main__":
    main()
