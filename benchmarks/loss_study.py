"""Loss study on the template: peak error vs training batches for one 4LCNN training variant.

Usage::

    python benchmarks/loss_study.py --loss ce|map [--smoothing MM] [--lr LR] [--batches N]
                                    [--hidden H] [--every K] [--work out/pretrained]

Trains the 4LCNN on the template's training lead field (``scripts/build_pretrained.py --stage
forward``) with the default simulation config, batch 256, Adam with warm-up + cosine decay over
``--batches``, and every ``--every`` batches reports the median peak localization error (deep /
cortical) of 1,000 single point sources at 10 dB simulated with the *test* forward (finer mesh,
conductivities ±20 %, off-grid sources). Appends a row to ``benchmarks/results/loss_study.json``.
This is the experiment behind the loss table in ``docs/network.md``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent


def main() -> None:
    from deepesi.nets import build_net, type_scales
    from deepesi.simulation import SimulationConfig, Simulator, read_work_leadfield
    from deepesi.training import LOSSES, SimulatedDataset, normalise_input, normalise_target
    from deepesi.training.dataset import smoothing_kernel
    from deepesi.training.losses import _lr_factor

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--loss", choices=sorted(LOSSES), default="ce")
    p.add_argument("--smoothing", type=float, default=0.0, help="target smoothing σ (mm)")
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--batches", type=int, default=2000)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--every", type=int, default=500)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--work", default="out/pretrained")
    args = p.parse_args()
    torch.manual_seed(0)
    lf = read_work_leadfield(args.work, "train")
    lf_test = read_work_leadfield(args.work, "test")
    net = build_net("4lcnn", lf, hidden=args.hidden)
    scales = type_scales(lf)
    ch_scale = torch.tensor([scales[t] for t in lf.ch_types], dtype=torch.float32)
    loss_fn = LOSSES[args.loss][0]
    kernel = smoothing_kernel(lf.source_space.pos, args.smoothing * 1e-3)
    data = SimulatedDataset(lf, SimulationConfig(), args.batches, 256, seed=0, target_sample=0,
                            target_kernel=kernel)
    loader = torch.utils.data.DataLoader(data, batch_size=None, num_workers=args.workers)
    opt = torch.optim.Adam(net.parameters(), lr=args.lr)

    test_cfg = SimulationConfig(n_sources=(1, 1), extent_mm=(0, 0), snr_db=(10, 10),
                                deep_fraction=0.5)
    test = Simulator(lf_test, test_cfg).simulate(1000, seed=1)
    x_test = normalise_input(torch.from_numpy(test.data[:, :, :1]), ch_scale)
    true = lf_test.source_space.pos[test.centres[:, 0]]
    deep = lf_test.source_space.is_subcortical[test.centres[:, 0]]

    def errors() -> dict:
        net.eval()
        with torch.no_grad():
            peak = net(x_test, rectify=False).argmax(1).numpy()
        net.train()
        err = np.linalg.norm(lf.source_space.pos[peak] - true, axis=1) * 1e3
        return {"deep_mm": float(np.median(err[deep])), "cortical_mm": float(np.median(err[~deep]))}

    curve, t0 = [], time.perf_counter()
    for step, (xb, yb) in enumerate(loader):
        for group in opt.param_groups:
            group["lr"] = args.lr * _lr_factor(step / args.batches)
        xb = normalise_input(xb, ch_scale)
        yb = normalise_target(yb)  # smoothed in the dataset
        opt.zero_grad()
        loss_fn(net(xb, rectify=False), yb).backward()
        opt.step()
        if (step + 1) % args.every == 0 or step + 1 == args.batches:
            row = {"batches": step + 1, "seconds": time.perf_counter() - t0, **errors()}
            curve.append(row)
            print(f"{row['batches']:6d} batches {row['seconds']:6.0f} s: deep "
                  f"{row['deep_mm']:5.1f} mm, cortical {row['cortical_mm']:5.1f} mm", flush=True)
    path = HERE / "results" / "loss_study.json"
    rows = json.loads(path.read_text()) if path.exists() else []
    rows.append({"args": vars(args), "curve": curve})
    path.write_text(json.dumps(rows, indent=1))
    print(f"written {path}")


if __name__ == "__main__":
    main()
