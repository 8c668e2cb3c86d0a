"""Ablation: 4LCNN (cross-entropy vs map loss, single sample vs window) vs ConvDip vs linear.

Usage::

    python benchmarks/ablation_nets.py [--forward sphere|template] [--spacing MM] [--minutes M]
                                       [--window N]

Each variant trains for the same wall-time budget on the default SimulationConfig (windows of
``--window`` samples for the window variant, single samples otherwise) and is tested on the same
single point sources at 10 dB simulated as ``--window``-sample evoked windows: window nets see the
whole window, single-sample nets its centre sample. Reports the median peak localization error
(cortical, deep).

``--forward sphere``: MNE 4-shell sphere at ``--spacing`` mm, tested on the same lead field
(``benchmarks/results/ablation_nets.json``). ``--forward template``: trained on the template's FEM
training lead field and tested on its *different* test forward (finer mesh, conductivities ±20 %,
off-grid sources), both from ``scripts/build_pretrained.py --stage forward``
(``benchmarks/results/ablation_nets_template.json``).
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


def main() -> None:
    from deepesi.simulation import SimulationConfig, read_work_leadfield, simulate_batch
    from deepesi.simulation.sphere import make_sphere_leadfield
    from deepesi.training import train_model

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--forward", choices=("sphere", "template"), default="sphere")
    p.add_argument("--work", default="out/pretrained", help="build_pretrained.py work folder")
    p.add_argument("--spacing", type=float, default=12.0)
    p.add_argument("--minutes", type=float, default=3.0)
    p.add_argument("--window", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--n-test", type=int, default=1000)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    if args.forward == "sphere":
        lf = lf_test = make_sphere_leadfield(spacing=args.spacing * 1e-3)
    else:
        lf = read_work_leadfield(args.work, "train")
        lf_test = read_work_leadfield(args.work, "test")
    w = args.window
    test = simulate_batch(
        lf_test,
        args.n_test,
        SimulationConfig(
            n_sources=(1, 1),
            extent_mm=(0, 0),
            snr_db=(10, 10),
            deep_fraction=0.5,
            n_times=w,
            waveforms=("evoked",),
        ),
        seed=777,
    )
    deep = lf_test.source_space.is_subcortical[test.centres[:, 0]]
    pos, true_pos = lf.source_space.pos, lf_test.source_space.pos[test.centres[:, 0]]
    variants = [("4lcnn", 1, "ce"), ("4lcnn", 1, "map"), ("4lcnn", w, "ce"), ("convdip", 1, "ce"),
                ("linear", 1, "ce")]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for net, n_t, loss in variants:
            cfg = SimulationConfig(n_times=n_t)
            t0 = time.perf_counter()
            model = train_model(
                lf,
                cfg,
                Path(tmp) / f"{net}{n_t}{loss}.pt",
                net=net,
                loss=loss,
                lr=3e-3,
                epochs=500,
                batches_per_epoch=50,
                batch_size=256,
                max_minutes=args.minutes,
                patience=100,
                verbose=False,
                num_workers=1,
            )
            dt = time.perf_counter() - t0
            if n_t == 1:
                pred = model.predict(test.data[:, :, w // 2].T)
            else:
                pred = np.stack(
                    [model.predict(test.data[i])[:, w // 2] for i in range(len(test))], 1
                )
            err = np.linalg.norm(pos[pred.argmax(0)] - true_pos, axis=1) * 1e3
            row = {
                "net": net,
                "n_times": n_t,
                "loss": loss,
                "batches": len(model.history) * 50,
                "train_s": dt,
                "epochs": model.meta["epochs_run"],
                "parameters": model.net.n_parameters(),
                "median_mm_cortical": float(np.median(err[~deep])),
                "median_mm_deep": float(np.median(err[deep])),
                "mean_mm_cortical": float(err[~deep].mean()),
                "mean_mm_deep": float(err[deep].mean()),
            }
            rows.append(row)
            print(
                f"{net:8s} n_t={n_t} {loss:3s}: cortical {row['median_mm_cortical']:5.1f} mm "
                f"(mean {row['mean_mm_cortical']:5.1f}), deep {row['median_mm_deep']:5.1f} mm "
                f"(mean {row['mean_mm_deep']:5.1f}); {row['epochs']} epochs in {dt:.0f} s",
                flush=True,
            )
    out = {
        "forward": args.forward,
        "spacing_mm": args.spacing if args.forward == "sphere" else lf.source_space.spacing * 1e3,
        "n_sources": lf.n_sources,
        "minutes_per_variant": args.minutes,
        "window": w,
        "load_avg_1min": os.getloadavg()[0],
        "results": rows,
    }
    name = "ablation_nets" if args.forward == "sphere" else "ablation_nets_template"
    path = HERE / "results" / f"{name}.json"
    path.write_text(json.dumps(out, indent=2))
    print(f"written {path}")


if __name__ == "__main__":
    main()
