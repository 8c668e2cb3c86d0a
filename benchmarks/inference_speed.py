"""Inference speed of the 4LCNN (and baselines) on CPU, in samples (time points) per second.

Usage::

    python benchmarks/inference_speed.py [--forward FWD.fif] [--spacing MM] [--threads 1 2]

Times ``net(x)`` on batches of 4096 normalised samples and ``TrainedModel.predict`` on a
(n_ch, 4096) array (normalisation included), for the lead field's real source count and for
synthetic output sizes of 5,000 and 10,000 sources (a realistic 5 mm / 4 mm whole-brain grid).
Target: >= 10,000 samples/s. Writes ``benchmarks/results/inference_speed.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent


def best_rate(fn, n: int, repeats: int = 5) -> float:
    fn()
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return n / best


def main() -> None:
    from deepesi.forward.leadfield import LeadField
    from deepesi.nets import build_net, type_scales
    from deepesi.sources import SourceSpace
    from deepesi.training import TrainedModel

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--forward")
    p.add_argument("--spacing", type=float, default=6.0)
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--batch", type=int, default=4096)
    args = p.parse_args()
    if args.forward:
        from deepesi.forward.io import read_forward

        lf = read_forward(args.forward)
    else:
        from deepesi.simulation.sphere import make_sphere_leadfield

        lf = make_sphere_leadfield(spacing=args.spacing * 1e-3)
    positions = np.array([ch["loc"][:3] for ch in lf.info["chs"]])
    rows = []
    x = torch.randn(args.batch, lf.n_channels, 1)
    data = np.random.default_rng(0).standard_normal((lf.n_channels, args.batch)) * 1e-6
    for n_src in sorted({lf.n_sources, 5000, 10000}):
        # a stand-in lead field of the wanted size (only shapes and channels matter for timing)
        src = SourceSpace(
            np.random.default_rng(0).normal(size=(n_src, 3)),
            np.zeros(n_src),
            np.zeros((n_src, 3)),
            np.ones(n_src, bool),
            np.zeros((n_src, n_src)),
            0.005,
        )
        fake = LeadField(np.zeros((lf.n_channels, n_src, 3)), lf.ch_names, lf.ch_types, src)
        for name in ("4lcnn", "convdip", "linear"):
            torch.manual_seed(0)
            net = build_net(name, fake, positions=positions).eval()
            scales = type_scales(lf)
            model = TrainedModel(
                net,
                lf.ch_names,
                lf.ch_types,
                np.array([scales[t] for t in lf.ch_types]),
                "",
                "",
                {},
            )
            for threads in args.threads:
                torch.set_num_threads(threads)
                with torch.inference_mode():
                    r_net = best_rate(lambda net=net: net(x), args.batch)
                r_pred = best_rate(lambda model=model: model.predict(data), args.batch, 3)
                rows.append(
                    {
                        "net": name,
                        "n_sources": n_src,
                        "threads": threads,
                        "parameters": net.n_parameters(),
                        "net_samples_per_s": r_net,
                        "predict_samples_per_s": r_pred,
                    }
                )
                print(
                    f"{name:8s} n_src={n_src:6d} threads={threads}: net {r_net:9.0f}/s, "
                    f"predict {r_pred:9.0f}/s ({net.n_parameters():,} parameters)"
                )
    result = {
        "n_channels": lf.n_channels,
        "batch": args.batch,
        "cpu_count": os.cpu_count(),
        "load_avg_1min": os.getloadavg()[0],
        "platform": platform.platform(),
        "torch": torch.__version__,
        "target_samples_per_s": 10000,
        "results": rows,
    }
    out = HERE / "results" / "inference_speed.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"written {out}")


if __name__ == "__main__":
    main()
