"""Build the pretrained 4LCNN shipped in the package (template head + 64-channel 10-10 EEG).

Stages (each cached in the work folder, so the script can be rerun and resumed):

1. ``forward``: the training lead field, FEM on the template resampled to ``--train-voxel`` mm,
   over the template's 5 mm cortical + subcortical source space; and the *test* lead field, FEM on a
   finer mesh (``--test-voxel`` mm) with every tissue conductivity perturbed by up to ±20 % and
   sources moved off the training grid. Training never sees the test forward.
2. ``train``: the 4LCNN on data simulated with the training lead field.
3. ``evaluate``: held-out single sources simulated with the test lead field at 10 dB.
4. ``ship``: copy the model into ``src/deepesi/data/models/``.

Usage: ``python scripts/build_pretrained.py --stage forward`` (then train, evaluate, ship).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from deepesi.anatomy.template import load_template
from deepesi.forward.leadfield import LeadField
from deepesi.sensors import make_eeg_sensors
from deepesi.sources import SourceSpace, make_source_space

LAYOUT = "standard_1010_64"
SPACING = 5e-3


def perturbed_conductivities(head, rng: np.random.Generator, max_rel: float = 0.2) -> dict:
    """Every tissue's conductivity times a factor drawn uniformly in [1 - max_rel, 1 + max_rel]."""
    return {t.name: t.conductivity * rng.uniform(1 - max_rel, 1 + max_rel) for t in head.tissues}


def off_grid_sources(src: SourceSpace, head, rng: np.random.Generator) -> SourceSpace:
    """Move every source by up to half a grid step, keeping it in the same tissue and region."""
    lab = head.labels
    reg = head.regions
    new = src.pos.copy()
    ijk0 = np.round(head.mri_to_voxel(src.pos)).astype(int)
    for _ in range(20):
        trial = src.pos + rng.uniform(-0.5, 0.5, size=src.pos.shape) * src.spacing
        ijk = np.round(head.mri_to_voxel(trial)).astype(int)
        ijk = np.clip(ijk, 0, np.array(head.shape) - 1)
        ok = (lab[tuple(ijk.T)] == lab[tuple(ijk0.T)]) & (reg[tuple(ijk.T)] == reg[tuple(ijk0.T)])
        todo = np.all(new == src.pos, axis=1) & ok
        new[todo] = trial[todo]
    moved = float(np.mean(np.any(new != src.pos, axis=1)))
    return replace(src, pos=new, name=f"{src.name}-offgrid", meta={"moved_fraction": moved})


SOURCE_TISSUES = ("WM", "GM", "CSF")


def snap_into_tissue(head, pos: np.ndarray, tissues=SOURCE_TISSUES) -> tuple[np.ndarray, int]:
    """Move positions whose voxel (on ``head``'s grid) is not in ``tissues`` to the nearest voxel
    centre that is. A coarser FEM grid can put a thin-gyrus source in a neighbouring tissue."""
    from scipy.spatial import cKDTree

    allowed = head.tissue_mask(*tissues)
    idx = np.clip(np.floor(head.mri_to_voxel(pos) + 0.5).astype(int), 0, np.array(head.shape) - 1)
    bad = ~allowed[tuple(idx.T)]
    if not bad.any():
        return pos, 0
    centres = head.voxel_to_mri(np.argwhere(allowed))
    _, nearest = cKDTree(centres).query(pos[bad])
    out = pos.copy()
    out[bad] = centres[nearest]
    return out, int(bad.sum())


def fem_leadfield(head, sensors, src: SourceSpace, voxel_mm: float, progress: bool) -> tuple:
    """EEG lead field of ``src`` on ``head`` resampled to ``voxel_mm`` (FEM, average reference)."""
    from deepesi.forward.eeg import make_eeg_transfer

    fem_head = head.resample(voxel_mm) if voxel_mm != float(head.voxel_size[0]) else head
    pos, n_moved = snap_into_tissue(fem_head, src.pos)
    t0 = time.perf_counter()
    transfer = make_eeg_transfer(
        fem_head, sensors.eeg_pos_mri, ch_names=sensors.eeg_names, progress=progress,
        source_tissues=SOURCE_TISSUES, max_snap_mm=max(5.0, 3 * voxel_mm),
    )
    gain = transfer.leadfield(pos)
    print(f"{n_moved} source(s) moved into brain tissue on the {voxel_mm} mm FEM grid")
    return gain, time.perf_counter() - t0


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
        ("train", head, src, args.train_voxel),
        ("test", head.with_conductivities(test_cond), test_src, args.test_voxel),
    ]
    for name, h, s, vox in jobs:
        if args.only and name != args.only:
            continue
        out = work / f"{name}-gain.npy"
        if out.exists():
            print(f"{name}: exists, skipped")
            continue
        gain, secs = fem_leadfield(h, sensors, s, vox, progress=not args.quiet)
        np.save(out, gain.astype(np.float32))
        info = {
            "layout": args.layout, "voxel_mm": vox, "seconds": secs, "n_sources": s.n_sources,
            "conductivities": {t.name: t.conductivity for t in h.tissues},
            "ch_names": sensors.eeg_names,
        }
        (work / f"{name}-gain.json").write_text(json.dumps(info, indent=1))
        print(f"{name}: {gain.shape} in {secs:.0f} s at {vox} mm")


def load_leadfield(work: Path, name: str) -> LeadField:
    """A lead field written by the forward stage."""
    info = json.loads((work / f"{name}-gain.json").read_text())
    src = SourceSpace.load(work / f"{name}-src.npz")
    gain = np.load(work / f"{name}-gain.npy").astype(float)
    layout = info.get("layout", LAYOUT)
    sensors = make_eeg_sensors(load_template(), layout)
    if sensors.eeg_names != info["ch_names"]:
        raise ValueError(f"{name}-gain.json channels differ from {layout}; rerun the forward.")
    return LeadField(gain, info["ch_names"], ["eeg"] * len(info["ch_names"]), src,
                     info=sensors.info, trans=sensors.trans,
                     meta={"fem_voxel_mm": info["voxel_mm"]})


def stage_train(work: Path, args) -> None:
    from deepesi.simulate import SimulationConfig
    from deepesi.training import train_model

    lf = load_leadfield(work, "train")
    model = train_model(
        lf, SimulationConfig(n_times=args.n_times), work / model_file(args), net="4lcnn",
        epochs=args.epochs,
        net_kwargs={"hidden": args.hidden, "channels": args.channels}, loss="ce", lr=args.lr,
        schedule="cosine",
        batch_size=256, batches_per_epoch=args.batches_per_epoch, seed=0, patience=args.epochs,
        num_workers=args.workers, max_minutes=args.train_minutes, precision=args.precision,
        progress=not args.quiet, resume=True, overwrite=True,
    )
    print(model)


def evaluate_single_sources(model, train_lf: LeadField, test_lf: LeadField, n: int, seed: int,
                            snr_db: float = 10.0, n_times: int = 1) -> dict:
    """Median peak localization error of single focal sources simulated with ``test_lf``.

    Sources are drawn half in deep structures, half cortical; the true position is the test
    (off-grid) position, the estimate the training-grid point with the largest predicted value.
    ``n_times > 1``: each sample is an evoked-like window of that many samples at 250 Hz (SNR over
    the window) and the estimate is the model's map at the window's centre sample: a window net
    of that length sees exactly the window, a single-sample net the centre sample.
    """
    from deepesi.simulate import SimulationConfig, Simulator

    config = SimulationConfig(n_sources=(1, 1), extent_mm=(0.0, 0.0), snr_db=(snr_db, snr_db),
                              deep_fraction=0.5, n_times=n_times, waveforms=("evoked",))
    batch = Simulator(test_lf, config).simulate(n, seed=seed)
    # samples end to end in time: the window centred on a sample's centre is that sample
    data = batch.data.transpose(1, 0, 2).reshape(len(batch.ch_names), n * n_times)
    maps = model.predict(data, ch_names=batch.ch_names)[:, n_times // 2 :: n_times]  # (n_src, n)
    est = train_lf.source_space.pos[np.argmax(maps, axis=0)]
    true = test_lf.source_space.pos[batch.centres[:, 0]]
    err_mm = np.linalg.norm(est - true, axis=1) * 1e3
    deep = test_lf.source_space.is_subcortical[batch.centres[:, 0]]
    out = {"n": n, "snr_db": snr_db}
    for name, mask in (("subcortical", deep), ("cortical", ~deep), ("all", np.ones_like(deep))):
        e = err_mm[mask]
        out[name] = {"n": int(mask.sum()), "median_mm": float(np.median(e)),
                     "p25_mm": float(np.percentile(e, 25)), "p75_mm": float(np.percentile(e, 75)),
                     "within_10mm": float(np.mean(e <= 10))}
    return out


def stage_evaluate(work: Path, args) -> None:
    from deepesi.training import load_model

    train_lf = load_leadfield(work, "train")
    model = load_model(work / model_file(args), leadfield=train_lf)
    results = {}
    for name in ("train", "test"):
        if not (work / f"{name}-gain.npy").exists():
            continue
        lf = train_lf if name == "train" else load_leadfield(work, name)
        t0 = time.perf_counter()
        results[f"{name}_forward"] = evaluate_single_sources(
            model, train_lf, lf, args.n_eval, 1, n_times=model.net.n_times)
        results[f"{name}_forward"]["seconds"] = time.perf_counter() - t0
        if name == "test":  # every model on the same evoked 5-sample windows, for comparison
            results["test_forward_window5"] = evaluate_single_sources(
                model, train_lf, lf, args.n_eval, 1, n_times=5)
    x = np.random.default_rng(0).standard_normal((len(model.ch_names), 20000)) * 1e-6
    default = model.meta.get("precision", "float32")
    for precision in dict.fromkeys((default, "float32")):
        model.predict(x[:, :4096], precision=precision)  # warm-up (allocator, thread pool)
        rates = []
        for _ in range(3):
            t0 = time.perf_counter()
            model.predict(x, precision=precision)
            rates.append(20000 / (time.perf_counter() - t0))
        key = "inference_samples_per_s" if precision == default else (
            f"inference_{precision}_samples_per_s")
        results[key] = float(np.median(rates))
    results["inference_precision"] = default
    results["inference_note"] = ("predict() on 20,000 samples, median of 3 after a warm-up, in "
                                 "the training precision (the default) and in float32")
    results["train_minutes"] = model.meta.get("train_time_s", float("nan")) / 60
    results["train_batches"] = model.meta.get("epochs_run", 0) * model.meta.get(
        "batches_per_epoch", 0)
    (work / evaluation_file(args)).write_text(json.dumps(results, indent=1))
    print(json.dumps(results, indent=1))


def stage_ship(work: Path, args) -> None:
    import shutil

    from deepesi.pretrained import PRETRAINED, save_leadfield_npz
    from deepesi.training import load_model

    dest = Path(__file__).resolve().parents[1] / "src/deepesi/data/models"
    dest.mkdir(parents=True, exist_ok=True)
    if args.name not in PRETRAINED:
        raise SystemExit(f"register {args.name!r} in deepesi.pretrained.PRETRAINED first.")
    lf = load_leadfield(work, "train")
    load_model(work / model_file(args), leadfield=lf).save(dest / f"{args.name}.pt",
                                                          overwrite=True, int8=True)
    if "shares" not in PRETRAINED[args.name]:  # a variant reuses its base's source space/forward
        lf.source_space.save(dest / f"{args.name}-src.npz", overwrite=True)
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
    parser.add_argument("--only", choices=["train", "test"],
                        help="forward stage: compute only this lead field (run two in parallel)")
    parser.add_argument("--train-voxel", type=float, default=2.0)
    parser.add_argument("--test-voxel", type=float, default=1.5)
    parser.add_argument("--epochs", type=int, default=40,
                        help="epoch cap; the --train-minutes budget normally ends training first")
    parser.add_argument("--lr", type=float, default=3e-3, help="peak learning rate")
    parser.add_argument("--hidden", type=int, default=256,
                        help="width of the 4LCNN's dense layer (256 keeps the shipped file small)")
    parser.add_argument("--channels", type=int, nargs=2, default=[32, 64],
                        help="feature maps of the two convolutions (32 64: lower loss per batch "
                             "than 16 32 for ~6%% more training time; docs/network.md)")
    parser.add_argument("--batches-per-epoch", type=int, default=1000)
    parser.add_argument("--train-minutes", type=float, default=29.5,
                        help="training budget; the epoch that crosses it is the last")
    parser.add_argument("--precision", choices=["float32", "bfloat16"], default="bfloat16",
                        help="forward-pass arithmetic while training (bfloat16: ~1.7x faster "
                             "steps on AVX-512 BF16 CPUs, same accuracy per batch)")
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
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    stages = {"forward": stage_forward, "train": stage_train, "evaluate": stage_evaluate,
              "ship": stage_ship}
    stages[args.stage](work, args)


if __name__ == "__main__":
    main()
