"""Train one arm of the time-course A/B: a 64-channel window net on window-relative or
physical-time evoked bumps, everything else equal.

Usage::

    python benchmarks/train_course_ab.py window   [--epochs 8] [--seed 0]   # the shipped recipe
    python benchmarks/train_course_ab.py physical [--epochs 8] [--seed 0]   # evoked_width_s
    python benchmarks/window_courses.py out/tcab/window.pt out/tcab/physical.pt --n 1000 \\
        --name window_courses_ab

The shipped template-eeg64 forward, the 4LCNN with hidden 512, 5-sample windows, the
simulation of ``template-eeg64-w5`` (``SimulationConfig(n_times=5)``) and for the 'physical'
arm ``evoked_width_s=(0.005, 0.05)``; ``epochs`` × 500 batches of 256, cosine schedule, one
PyTorch thread (the same net on any machine). Writes ``out/tcab/<arm>[-s<seed>].pt``.
"""

from __future__ import annotations

import argparse

import torch

PHYSICAL_WIDTH_S = (0.005, 0.05)


def main() -> None:
    from deepesi.pretrained import load_pretrained
    from deepesi.simulation import SimulationConfig
    from deepesi.training import train_model

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("arm", choices=["window", "physical"])
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="out/tcab")
    args = p.parse_args()
    torch.set_num_threads(1)
    _, lf = load_pretrained("template-eeg64")
    extra = {"evoked_width_s": PHYSICAL_WIDTH_S} if args.arm == "physical" else {}
    suffix = f"-s{args.seed}" if args.seed else ""
    model = train_model(lf, SimulationConfig(n_times=5, **extra),
                        f"{args.out}/{args.arm}{suffix}.pt", net="4lcnn", epochs=args.epochs,
                        net_kwargs={"hidden": 512}, loss="ce", lr=3e-3, schedule="cosine",
                        batch_size=256, batches_per_epoch=500, seed=args.seed,
                        patience=args.epochs, threads=1, resume=True, overwrite=True)
    print(model)


if __name__ == "__main__":
    main()
