"""The full benchmark grid on a sphere-model EEG lead field: deepesi vs the classical methods.

Usage::

    python benchmarks/benchmark_sphere.py [--spacing MM] [--train-minutes M] [--model M.pt]
                                          [--n N] [--threads T]

Model forward: MNE 4-shell sphere, 64 EEG channels, grid source space (cortical shell with radial
fixed orientations, deep ball with free orientations; :mod:`deepesi.simulation.sphere`). A 4LCNN is
trained on it for ``--train-minutes`` (or loaded with ``--model``). Test forward: brain/scalp-to-
skull conductivity ratio changed by 20 % and every source moved off the grid (Gaussian jitter,
σ = 2 mm). Runs :func:`deepesi.benchmark.run_benchmark` over 1–3 sources × cortical/subcortical/
mixed × 0/5/10/20 dB × extents 0–20 mm and writes ``benchmarks/results/benchmark_sphere.json``
(records + summary), ``benchmark_sphere.md`` (tables) and the plots in
``benchmarks/results/benchmark_sphere/``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch


def main() -> None:
    from benchmark_output import write_and_print

    from deepesi.benchmark import BenchmarkConfig, run_benchmark
    from deepesi.simulation import SimulationConfig
    from deepesi.simulation.sphere import make_sphere_leadfield
    from deepesi.training import read_model, train_model

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--spacing", type=float, default=10.0, help="grid spacing in mm")
    p.add_argument("--train-minutes", type=float, default=4.0)
    p.add_argument("--model", help="a model trained on this lead field (skips training)")
    p.add_argument("--n", type=int, default=8, help="samples per scenario")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    lf = make_sphere_leadfield(spacing=args.spacing * 1e-3)
    lf_test = make_sphere_leadfield(spacing=args.spacing * 1e-3, conductivity_scale=1.2,
                                    jitter=0.002)
    t0 = time.perf_counter()
    if args.model:
        model = read_model(args.model, lf)
    else:
        out = Path(tempfile.gettempdir()) / f"deepesi_bench_sphere_{args.spacing:g}mm.pt"
        model = train_model(lf, SimulationConfig(), out, epochs=100, batch_size=256,
                            batches_per_epoch=100, seed=0, max_minutes=args.train_minutes,
                            patience=8, overwrite=True, verbose=False)
    train_s = time.perf_counter() - t0
    cfg = BenchmarkConfig(n_samples=args.n, seed=0)
    t0 = time.perf_counter()
    res = run_benchmark(model, lf_test, cfg, model_leadfields=lf, verbose=True)
    run_s = time.perf_counter() - t0
    res.meta.update(train_seconds=train_s, run_seconds=run_s, spacing_mm=args.spacing,
                    model_epochs=model.meta.get("epochs_run"),
                    model_val_loss=model.meta.get("best_val_loss"))
    write_and_print(res, "benchmark_sphere", run_s)
    print(f"train {train_s:.0f} s")

if __name__ == "__main__":
    main()
