"""Does training under uncertainty help under a realistic model mismatch? An A/B at equal budget.

Usage::

    python benchmarks/training_recipe.py [--work out/pretrained] [--epochs 30] [--batches 100]
                                         [--members 4] [--n-eval 1000] [--threads 2]

Two single-sample 4LCNNs on the template 64-channel EEG, the same seed, architecture and number
of batches (the budget is batches, so the comparison does not depend on the machine):

- ``nominal``: trained on the nominal 2 mm FEM lead field with the default noise model;
- ``recipe``: trained on a forward ensemble (the nominal lead field and ``--members - 1`` drawn
  by :func:`deepesi.forward.ensemble.draw_member`: conductivities log-uniform, the skull ×0.5–2,
  electrodes moved 5 mm RMS on the scalp; solved on the same 2 mm grid) plus background brain
  activity (0–50 % of the noise power).

Both are evaluated (:func:`deepesi.training.evaluate_single_sources`, single focal sources, half
deep, off-grid) on the ±20 % test forward and on the realistic mismatch (skull ×0.6 / ×1.6, soft
tissues 8–20 %, electrodes moved 5 mm, 1.5 mm mesh), at 0, 5 and 10 dB: median error and the
cortical ↔ deep confusion. Needs the work folder of ``scripts/build_pretrained.py --stage
forward --realistic``. Writes ``benchmarks/results/training_recipe.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from deepesi.simulation import SimulationConfig, read_work_leadfield
from deepesi.simulation.forwards import read_work_ensemble
from deepesi.training import evaluate_single_sources, train_model

HERE = Path(__file__).resolve().parent


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", default="out/pretrained")
    p.add_argument("--out", default="out/recipe", help="folder of the two model files")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--batches", type=int, default=100, help="batches per epoch")
    p.add_argument("--members", type=int, default=4)
    p.add_argument("--n-eval", type=int, default=1000)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--brain-noise", type=float, default=0.5,
                   help="recipe: background brain activity up to this fraction of the noise")
    p.add_argument("--runs", nargs="+", default=["nominal", "recipe"],
                   choices=["nominal", "recipe"], help="which nets to train and evaluate")
    p.add_argument("--name", default="training_recipe", help="results file stem")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    work, out = Path(args.work), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    lf = read_work_leadfield(work, "train")
    tests = {name: read_work_leadfield(work, name) for name in ("test", "test-realistic")
             if (work / f"{name}-gain.npy").exists()}
    t0 = time.perf_counter()
    ens = read_work_ensemble(work, lf, args.members, seed=args.seed)
    ens_s = time.perf_counter() - t0
    spread = ens.spread()
    print(f"ensemble: {len(ens)} members in {ens_s:.0f} s; gain differs from the nominal by "
          f"{100 * spread['median_rel_diff']:.1f} % (median), {100 * spread['max_rel_diff']:.1f} %"
          " (max)")
    runs = {
        "nominal": (SimulationConfig(), None),
        "recipe": (SimulationConfig(brain_noise_fraction=(0.0, args.brain_noise)), ens),
    }
    runs = {k: v for k, v in runs.items() if k in args.runs}
    common = dict(epochs=args.epochs, batches_per_epoch=args.batches, batch_size=256,
                  n_val=1024, seed=args.seed, patience=args.epochs, lr=3e-3,
                  net_kwargs={"hidden": 256, "channels": (32, 64)}, resume=True, overwrite=True)
    results: dict = {"settings": {**vars(args), "ensemble_spread": spread,
                                  "ensemble_seconds": ens_s}, "runs": {}}
    for name, (cfg, ensemble) in runs.items():
        t0 = time.perf_counter()
        model = train_model(lf, cfg, out / f"{args.name}-{name}.pt", ensemble=ensemble,
                            **common)
        train_s = time.perf_counter() - t0
        row = {"train_s": train_s, "epochs_run": model.meta["epochs_run"],
               "weights_hash": model.weights_hash(), "eval": {}}
        for test_name, test_lf in tests.items():
            for snr in (0.0, 5.0, 10.0):
                ev = evaluate_single_sources(model, lf, test_lf, args.n_eval, 1, snr_db=snr)
                row["eval"][f"{test_name}@{snr:g}dB"] = ev
        results["runs"][name] = row
    lines = ["| net | test forward | SNR (dB) | deep median (mm) | cortical median (mm) | "
             "within 10 mm | cortical→deep | deep→cortical |", "|---|---|---|---|---|---|---|---|"]
    for name, row in results["runs"].items():
        for key, ev in row["eval"].items():
            test_name, snr = key.split("@")
            lines.append(
                f"| {name} | {test_name} | {snr[:-2]} | {ev['subcortical']['median_mm']:.1f} | "
                f"{ev['cortical']['median_mm']:.1f} | {100 * ev['all']['within_10mm']:.0f} % | "
                f"{100 * ev['cortical']['confusion']:.1f} % | "
                f"{100 * ev['subcortical']['confusion']:.1f} % |"
            )
    table = "\n".join(lines)
    print(table)
    res_dir = HERE / "results"
    res_dir.mkdir(exist_ok=True)
    (res_dir / f"{args.name}.json").write_text(json.dumps(results, indent=1))
    (res_dir / f"{args.name}.md").write_text(table + "\n")
    print(f"wrote {res_dir / f'{args.name}.json'}")


if __name__ == "__main__":
    main()
