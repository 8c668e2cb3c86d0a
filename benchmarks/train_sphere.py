"""Train the 4LCNN on a sphere-model EEG lead field and test it on a *different* forward.

Usage::

    python benchmarks/train_sphere.py [--spacing MM] [--minutes M] [--net 4lcnn] [--threads N]

Training: MNE 4-shell sphere, 64 EEG channels, grid source space at ``--spacing`` mm (cortical
shell with radial fixed orientations, deep ball with free orientations; see
:mod:`deepesi.simulation.sphere`), default :class:`~deepesi.simulation.SimulationConfig`.
Test: single point sources at 10 dB simulated on another forward: brain/scalp-to-skull
conductivity ratio changed by 20 % and every source moved off the grid (Gaussian jitter, σ = 2 mm).
Reports training time and the median peak localization error for cortical and deep sources
(distance from the predicted map's maximum to the true source), and writes
``benchmarks/results/train_sphere.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent


def peak_errors(model, lf_train, batch, pos_true):
    pred = model.predict(batch.data[:, :, 0].T)
    peak = lf_train.source_space.pos[pred.argmax(0)]
    return np.linalg.norm(peak - pos_true[batch.centres[:, 0]], axis=1) * 1e3


def main() -> None:
    from deepesi.simulation import SimulationConfig, simulate_batch
    from deepesi.simulation.sphere import make_sphere_leadfield
    from deepesi.training import train_model

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--spacing", type=float, default=8.0)
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--epochs", type=int, default=200)
    p.add_argument("--net", default="4lcnn")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--n-test", type=int, default=2000)
    p.add_argument("--out", default=str(Path(tempfile.gettempdir()) / "deepesi_sphere_model.pt"))
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    spacing = args.spacing * 1e-3
    lf = make_sphere_leadfield(spacing=spacing)
    lf_test = make_sphere_leadfield(spacing=spacing, conductivity_scale=1.2, jitter=0.002)
    t0 = time.perf_counter()
    model = train_model(
        lf,
        SimulationConfig(),
        args.out,
        net=args.net,
        epochs=args.epochs,
        batch_size=256,
        batches_per_epoch=100,
        seed=0,
        num_workers=args.workers,
        max_minutes=args.minutes,
        patience=8,
        overwrite=True,
    )
    train_s = time.perf_counter() - t0
    test_cfg = SimulationConfig(
        n_sources=(1, 1), extent_mm=(0, 0), snr_db=(10, 10), deep_fraction=0.5
    )
    res = {}
    for tag, flf in (("same_forward", lf), ("different_forward", lf_test)):
        batch = simulate_batch(flf, args.n_test, test_cfg, seed=12345)
        err = peak_errors(model, lf, batch, flf.source_space.pos)
        deep = flf.source_space.is_subcortical[batch.centres[:, 0]]
        res[tag] = {
            "median_mm_cortical": float(np.median(err[~deep])),
            "median_mm_deep": float(np.median(err[deep])),
            "mean_mm_cortical": float(err[~deep].mean()),
            "mean_mm_deep": float(err[deep].mean()),
            "n_cortical": int((~deep).sum()),
            "n_deep": int(deep.sum()),
        }
        print(
            f"{tag:18s} median peak error: cortical {res[tag]['median_mm_cortical']:5.1f} mm, "
            f"deep {res[tag]['median_mm_deep']:5.1f} mm"
        )
    out = {
        "spacing_mm": args.spacing,
        "n_sources": lf.n_sources,
        "n_channels": lf.n_channels,
        "net": args.net,
        "parameters": model.net.n_parameters(),
        "train_seconds": train_s,
        "epochs": model.meta["epochs_run"],
        "best_val_loss": model.meta["best_val_loss"],
        "threads": args.threads,
        "workers": args.workers,
        "load_avg_1min": os.getloadavg()[0],
        "history": model.history,
        "results": res,
    }
    path = HERE / "results" / "train_sphere.json"
    path.write_text(json.dumps(out, indent=2))
    print(f"trained {model.meta['epochs_run']} epochs in {train_s / 60:.1f} min; written {path}")


if __name__ == "__main__":
    main()
