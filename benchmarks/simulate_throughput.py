"""Throughput of the training-data simulator (samples/s) with 0, 1 and 2 DataLoader workers.

Usage::

    python benchmarks/simulate_throughput.py [--forward FWD.fif] [--spacing MM] [--batches N]

Without ``--forward`` it uses an MNE 4-shell sphere EEG lead field (64 channels) on a grid source
space (cortical shell + deep ball) at ``--spacing`` mm. Prints a table and writes
``benchmarks/results/simulate_throughput.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent


def get_leadfield(args):
    if args.forward:
        from deepesi.forward.io import read_forward

        return read_forward(args.forward)
    from deepesi.simulation.sphere import make_sphere_leadfield

    return make_sphere_leadfield(spacing=args.spacing * 1e-3)


def main() -> None:
    from deepesi.simulation import SimulationConfig
    from deepesi.training import SimulatedDataset

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--forward")
    p.add_argument("--spacing", type=float, default=6.0)
    p.add_argument("--batches", type=int, default=24)
    p.add_argument("--batch-size", type=int, default=256)
    args = p.parse_args()
    torch.set_num_threads(1)
    lf = get_leadfield(args)
    cfg = SimulationConfig()
    rows = []
    for workers in (0, 1, 2):
        ds = SimulatedDataset(lf, cfg, args.batches, args.batch_size, seed=0)
        loader = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=workers)
        it = iter(loader)
        next(it)  # start-up (worker spawn, patch caches) not timed
        t0 = time.perf_counter()
        n = sum(len(x) for x, _ in it)
        dt = time.perf_counter() - t0
        rows.append({"workers": workers, "samples": n, "seconds": dt, "samples_per_s": n / dt})
        print(f"workers={workers}: {n / dt:9.0f} samples/s ({n} samples in {dt:.1f} s)")
    result = {
        "leadfield": repr(lf),
        "n_channels": lf.n_channels,
        "n_sources": lf.n_sources,
        "batch_size": args.batch_size,
        "config": cfg.to_dict(),
        "cpu_count": os.cpu_count(),
        "load_avg_1min": os.getloadavg()[0],
        "platform": platform.platform(),
        "torch": torch.__version__,
        "results": rows,
    }
    out = HERE / "results" / "simulate_throughput.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"written {out}")


if __name__ == "__main__":
    main()
