"""Short training comparisons on the template: precision, data workers, net width, target smoothing.

Usage::

    python benchmarks/training_variants.py [--work out/pretrained] [--batches 2000]
                                           [--variants base bf16 ...]

Every variant trains :func:`deepesi.training.train_model` on the template's training forward for
the same number of batches (4 epochs, lr 3e-3, cosine schedule, seed 0, so the data are identical)
and is scored on 1,000 single point sources at 10 dB simulated with the *test* forward (finer
mesh, perturbed conductivities, off-grid sources; ``scripts/build_pretrained.py --stage forward``).
Prints a table and writes ``benchmarks/results/training_variants.json``. Run it on an otherwise
idle machine: the time column is wall time.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent

BASE = {"precision": "float32", "num_workers": 0, "hidden": 256, "image_size": 16,
        "channels": [16, 32], "target_smoothing_mm": None}
VARIANTS = {
    "base": {},
    "bf16": {"precision": "bfloat16"},
    "bf16-1worker": {"precision": "bfloat16", "num_workers": 1},
    "bf16-dense512": {"precision": "bfloat16", "hidden": 512},
    "bf16-image24": {"precision": "bfloat16", "image_size": 24},
    "bf16-conv32-64": {"precision": "bfloat16", "channels": [32, 64]},
    "bf16-smooth3mm": {"precision": "bfloat16", "target_smoothing_mm": 3.0},
}


def main() -> None:
    from deepesi.simulation import SimulationConfig, read_work_leadfield
    from deepesi.training import evaluate_single_sources, train_model

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", default="out/pretrained", help="build_pretrained.py work folder")
    p.add_argument("--batches", type=int, default=2000)
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    work = Path(args.work)
    train_lf, test_lf = read_work_leadfield(work, "train"), read_work_leadfield(work, "test")
    rows = []
    for name in args.variants:
        v = {**BASE, **VARIANTS[name]}
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            model = train_model(
                train_lf, SimulationConfig(), Path(tmp) / "m.pt", epochs=4,
                batches_per_epoch=args.batches // 4, lr=3e-3, n_val=1024, patience=10,
                net_kwargs={k: v[k] for k in ("hidden", "image_size", "channels")},
                precision=v["precision"], num_workers=v["num_workers"],
                target_smoothing_mm=v["target_smoothing_mm"], verbose=False,
            )
            seconds = time.perf_counter() - t0
        ev = evaluate_single_sources(model, train_lf, test_lf, 1000, 1)
        rows.append({"variant": name, **v, "seconds": seconds,
                     "val_loss": model.history[-1]["val_loss"],
                     "deep_mm": ev["subcortical"]["median_mm"],
                     "cortical_mm": ev["cortical"]["median_mm"]})
        r = rows[-1]
        print(f"{name:>16} {seconds:6.0f} s  val {r['val_loss']:.4f}  deep {r['deep_mm']:5.1f} mm"
              f"  cortical {r['cortical_mm']:5.1f} mm", flush=True)
    out = HERE / "results" / "training_variants.json"
    out.write_text(json.dumps({"batches": args.batches, "rows": rows}, indent=1,
                              default=lambda o: o.tolist() if isinstance(o, np.ndarray) else o))
    print(f"written {out}")


if __name__ == "__main__":
    main()
