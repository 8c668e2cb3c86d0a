"""Build the pretrained 4LCNN shipped in the package (template head + 64-channel 10-10 EEG).

Stages (each cached in the work folder, so the script can be rerun and resumed):

1. ``forward``: the training lead field, FEM on the template resampled to ``--train-voxel`` mm,
   over the template's 5 mm cortical + subcortical source space; and the *test* lead field, FEM on a
   finer mesh (``--test-voxel`` mm) with every tissue conductivity perturbed by up to ±20 % and
   sources moved off the training grid (:mod:`deepesi.simulation.mismatch`). Training never sees
   the test forward; :func:`deepesi.simulation.read_work_leadfield` reads either back.
2. ``train``: the 4LCNN on data simulated with the training lead field.
3. ``evaluate``: held-out single sources simulated with the test lead field at 10 dB
   (:func:`deepesi.training.evaluate_single_sources`).
4. ``ship``: copy the model (with its source space, sensor Info and head → MRI transform) and the
   float16 training gain into ``src/deepesi/data/models/``.

Usage: ``python scripts/build_pretrained.py --stage forward`` (then train, evaluate, ship).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from deepesi import set_log_level
from deepesi.anatomy.template import load_template
from deepesi.forward.ensemble import jitter_electrodes
from deepesi.sensors import make_eeg_sensors
from deepesi.simulation import (
    SimulationConfig,
    off_grid_sources,
    perturbed_conductivities,
    read_work_leadfield,
)
from deepesi.simulation.forwards import fem_eeg_gain, read_work_ensemble
from deepesi.simulation.mismatch import realistic_conductivities
from deepesi.sources import SourceSpace, make_source_space
from deepesi.training import evaluate_single_sources, read_model, train_model

LAYOUT = "standard_1010_64"
SPACING = 5e-3


def fem_leadfield(head, sensors, src: SourceSpace, voxel_mm: float) -> tuple:
    """EEG lead field of ``src`` on ``head`` resampled to ``voxel_mm`` (FEM, average reference)."""
    gain, secs, n_moved = fem_eeg_gain(head, sensors, src, voxel_mm)
    print(f"{n_moved} source(s) moved into brain tissue on the {voxel_mm} mm FEM grid")
    return gain, secs


def stage_forward(work: Path, args) -> None:
    head = load_template()
    src = make_source_space(head, SPACING)
    sensors = make_eeg_sensors(head, args.layout)
    src.save(work / "train-src.npz", overwrite=True)
    rng = np.random.default_rng(20241104)
    test_cond = perturbed_conductivities(head, rng)
    test_src = off_grid_sources(src, head, rng)
    test_src.save(work / "test-src.npz", overwrite=True)
    jobs = [
        ("train", head, src, args.train_voxel, sensors),
        ("test", head.with_conductivities(test_cond), test_src, args.test_voxel, sensors),
    ]
    if args.realistic:
        # the realistic mismatch: skull x0.6 / x1.6, soft tissues shifted 8-20 %, electrodes
        # moved 5 mm (RMS) on the scalp, the finer mesh, off-grid sources
        rng = np.random.default_rng(20241105)
        real_cond = realistic_conductivities(head, rng)
        real_src = off_grid_sources(src, head, rng)
        real_sensors, _ = jitter_electrodes(head, sensors, 5.0, rng)
        real_src.save(work / "test-realistic-src.npz", overwrite=True)
        jobs.append(("test-realistic", head.with_conductivities(real_cond), real_src,
                     args.test_voxel, real_sensors))
    for name, h, s, vox, sens in jobs:
        if args.only and name != args.only:
            continue
        out = work / f"{name}-gain.npy"
        if out.exists():
            print(f"{name}: exists, skipped")
            continue
        gain, secs = fem_leadfield(h, sens, s, vox)
        np.save(out, gain.astype(np.float32))
        info = {
            "layout": args.layout, "voxel_mm": vox, "seconds": secs, "n_sources": s.n_sources,
            "conductivities": {t.name: t.conductivity for t in h.tissues},
            "ch_names": sensors.eeg_names,
        }
        (work / f"{name}-gain.json").write_text(json.dumps(info, indent=1))
        print(f"{name}: {gain.shape} in {secs:.0f} s at {vox} mm")


def stage_train(work: Path, args) -> None:
    lf = read_work_leadfield(work, "train")
    ensemble = (read_work_ensemble(work, lf, args.ensemble, seed=args.ensemble_seed)
                if args.ensemble > 1 else None)
    config = SimulationConfig(n_times=args.n_times,
                              brain_noise_fraction=(0.0, args.brain_noise))
    model = train_model(
        lf, config, work / model_file(args), net="4lcnn", ensemble=ensemble,
        epochs=args.epochs,
        net_kwargs={"hidden": args.hidden, "channels": args.channels}, loss="ce", lr=args.lr,
        schedule="cosine",
        batch_size=256, batches_per_epoch=args.batches_per_epoch, seed=0, patience=args.epochs,
        num_workers=args.workers, max_minutes=args.train_minutes, precision=args.precision,
        resume=True, overwrite=True,
    )
    print(model)


def stage_evaluate(work: Path, args) -> None:
    train_lf = read_work_leadfield(work, "train")
    model = read_model(work / model_file(args), leadfield=train_lf)
    results = {}
    for name in ("train", "test", "test-realistic"):
        if not (work / f"{name}-gain.npy").exists():
            continue
        lf = train_lf if name == "train" else read_work_leadfield(work, name)
        t0 = time.perf_counter()
        results[f"{name}_forward"] = evaluate_single_sources(
            model, train_lf, lf, args.n_eval, 1, n_times=model.net.n_times)
        results[f"{name}_forward"]["seconds"] = time.perf_counter() - t0
        if name == "test-realistic":  # the cortical <-> deep confusion at a real-evoked SNR
            results[f"{name}_forward_5dB"] = evaluate_single_sources(
                model, train_lf, lf, args.n_eval, 1, n_times=model.net.n_times, snr_db=5.0)
        if name == "test":  # every model on the same evoked 5-sample windows, for comparison
            results["test_forward_window5"] = evaluate_single_sources(
                model, train_lf, lf, args.n_eval, 1, n_times=5)
    x = np.random.default_rng(0).standard_normal((len(model.ch_names), 20000)) * 1e-6
    for precision in ("float32", "bfloat16"):  # the default (float32), then the opt-in
        model.predict(x[:, :4096], precision=precision)  # warm-up (allocator, thread pool)
        rates = []
        for _ in range(3):
            t0 = time.perf_counter()
            model.predict(x, precision=precision)
            rates.append(20000 / (time.perf_counter() - t0))
        key = ("inference_samples_per_s" if precision == "float32"
               else f"inference_{precision}_samples_per_s")
        results[key] = float(np.median(rates))
    results["inference_precision"] = "float32"
    results["inference_note"] = ("predict() on 20,000 samples, median of 3 after a warm-up, in "
                                 "float32 (the default) and in bfloat16 (opt-in)")
    results["train_minutes"] = model.meta.get("train_time_s", float("nan")) / 60
    results["train_batches"] = model.meta.get("epochs_run", 0) * model.meta.get(
        "batches_per_epoch", 0)
    (work / evaluation_file(args)).write_text(json.dumps(results, indent=1))
    print(json.dumps(results, indent=1))


def stage_ship(work: Path, args) -> None:
    import shutil

    from deepesi.pretrained import PRETRAINED, save_leadfield_npz

    dest = Path(__file__).resolve().parents[1] / "src/deepesi/data/models"
    dest.mkdir(parents=True, exist_ok=True)
    if args.name not in PRETRAINED:
        raise SystemExit(f"register {args.name!r} in deepesi.pretrained.PRETRAINED first.")
    lf = read_work_leadfield(work, "train")
    model = read_model(work / model_file(args), leadfield=lf)
    # the model carries what it was trained for (models trained by deepesi before it stored
    # them get them from the training forward here)
    if model.source_space is None:
        model.source_space = lf.source_space
    if model.info is None or model.trans is None:
        model.info, model.trans = lf.info, lf.trans  # saved as a 4x4 head -> MRI matrix
    model.save(dest / f"{args.name}.pt", overwrite=True, int8=True)
    if "shares" not in PRETRAINED[args.name]:  # a variant reuses its base's forward
        save_leadfield_npz(lf, dest / f"{args.name}-fwd.npz")
    if (work / evaluation_file(args)).exists():
        shutil.copyfile(work / evaluation_file(args), dest / f"{args.name}-evaluation.json")
    print(f"shipped {args.name} to {dest}")


def model_file(args) -> str:
    """Work-folder model file: ``model.pt`` (single samples) or ``model-w<N>.pt`` (windows)."""
    return "model.pt" if args.n_times == 1 else f"model-w{args.n_times}.pt"


def evaluation_file(args) -> str:
    return model_file(args).replace("model", "evaluation").replace(".pt", ".json")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stage", choices=["forward", "train", "evaluate", "ship"], required=True)
    parser.add_argument("--work", default="out/pretrained", help="work folder (not shipped)")
    parser.add_argument("--layout", default=LAYOUT,
                        help="EEG layout (deepesi.sensors.EEG_LAYOUTS), e.g. standard_1005_128")
    parser.add_argument("--realistic", action="store_true",
                        help="forward stage: also the realistic-mismatch test forward "
                             "(test-realistic-gain.npy; docs/benchmarks.md)")
    parser.add_argument("--only", choices=["train", "test", "test-realistic"],
                        help="forward stage: compute only this lead field (run two in parallel)")
    parser.add_argument("--train-voxel", type=float, default=2.0)
    parser.add_argument("--test-voxel", type=float, default=1.5)
    parser.add_argument("--epochs", type=int, default=40,
                        help="training budget in epochs (of --batches-per-epoch batches)")
    parser.add_argument("--ensemble", type=int, default=1,
                        help="train stage: forward-ensemble members (the nominal lead field "
                             "and N-1 drawn ones, cached as ens<seed>-<k>-gain.npy; "
                             "1: the nominal lead field only)")
    parser.add_argument("--ensemble-seed", type=int, default=0)
    parser.add_argument("--brain-noise", type=float, default=0.0,
                        help="train stage: background brain activity, up to this fraction of "
                             "the noise power (drawn uniformly from 0)")
    parser.add_argument("--lr", type=float, default=3e-3, help="peak learning rate")
    parser.add_argument("--hidden", type=int, default=256,
                        help="width of the 4LCNN's dense layer (256 keeps the shipped file small)")
    parser.add_argument("--channels", type=int, nargs=2, default=[32, 64],
                        help="feature maps of the two convolutions (32 64: lower loss per batch "
                             "than 16 32 for ~6%% more training time; docs/network.md)")
    parser.add_argument("--batches-per-epoch", type=int, default=1000)
    parser.add_argument("--train-minutes", type=float, default=None,
                        help="optional wall-time cap (default none: the budget is --epochs x "
                             "--batches-per-epoch batches, the same net on any machine)")
    parser.add_argument("--precision", choices=["float32", "bfloat16"], default="float32",
                        help="forward-pass arithmetic while training (bfloat16: ~1.7x faster "
                             "steps on AVX-512 BF16 CPUs, same accuracy per batch, but ~7x "
                             "slower on AVX2-only CPUs, where PyTorch emulates it)")
    parser.add_argument("--workers", type=int, default=0,
                        help="DataLoader workers (0: simulate in the training process, the "
                             "fastest on 2 cores now that simulating a batch takes ~20 ms)")
    parser.add_argument("--n-eval", type=int, default=1000)
    parser.add_argument("--n-times", type=int, default=1,
                        help="input window of the net (1: single samples; 5: evoked windows)")
    parser.add_argument("--name", default="template-eeg64",
                        help="shipped name (a key of deepesi.pretrained.PRETRAINED)")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args()
    if args.quiet:  # no progress bars or info messages
        set_log_level("WARNING")
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    stages = {"forward": stage_forward, "train": stage_train, "evaluate": stage_evaluate,
              "ship": stage_ship}
    stages[args.stage](work, args)


if __name__ == "__main__":
    main()
