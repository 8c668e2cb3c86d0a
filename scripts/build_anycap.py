"""Build the montage-independent EEG net of the template (``template-eeg``) and its baselines.

Stages (cached in ``--work``; rerun to resume):

1. ``train``: the 4LCNN on random caps read through the virtual layout
   (:mod:`deepesi.simulation.caps`), signal from the dense scalp lead field
   (``scripts/build_scalp_leadfield.py``). With ``--layout L`` instead: a net for that one
   layout alone, trained on its interpolated lead field with the same recipe and budget (the
   comparison the issue asks for).
2. ``forward-test``: the realistic-mismatch test forwards of the evaluation caps, direct FEM on
   the 1.5 mm mesh (skull x0.6 / x1.6, soft tissues shifted 8-20 %, off-grid sources, each
   cap's electrodes moved 5 mm RMS on the scalp; the nets are told the nominal positions).
3. ``evaluate``: single focal sources at 10 dB (and 5 dB) on every evaluation cap: the
   montage-independent net, the layout nets where there is one, and the shipped
   ``template-eeg64`` on its own layout. Writes ``evaluation-anycap.json``.
4. ``ship``: the net and its evaluation into the package (``--name``, default ``template-eeg``;
   a window net's evaluation from ``benchmarks/anycap_windows.py`` with ``--evaluation``).

``--n-times 5`` trains (and evaluates) a net on 5-sample evoked windows (``model-w5.pt``), as
``template-eeg64-w5`` is to ``template-eeg64``.

``python scripts/build_anycap.py --stage train --work out/anycap --scalp out/scalp`` etc.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import numpy as np

from deepesi import set_log_level
from deepesi.anatomy.template import load_template
from deepesi.forward.leadfield import LeadField
from deepesi.forward.scalp import read_scalp_leadfield
from deepesi.inverse.anycap import CapBoundModel
from deepesi.pretrained import MODELS_DIR
from deepesi.sensors import make_eeg_sensors
from deepesi.simulation import SimulationConfig
from deepesi.simulation.caps import make_cap_pool, virtual_leadfield
from deepesi.sources import make_source_space
from deepesi.training import evaluate_single_sources, read_model, train_model
from deepesi.training.evaluate import DipoleScanReference

#: Evaluation caps: name → (montage or layout, channel subset).
EVAL_CAPS = {
    "standard_1020_21": ("standard_1020", ["Fp1", "Fpz", "Fp2", "F7", "F3", "Fz", "F4", "F8",
                                           "T7", "C3", "Cz", "C4", "T8", "P7", "P3", "Pz", "P4",
                                           "P8", "O1", "Oz", "O2"]),
    "biosemi32": ("biosemi32", None),
    "standard_1010_64": ("standard_1010_64", None),
    "standard_1005_128": ("standard_1005_128", None),
    "GSN-HydroCel-128": ("GSN-HydroCel-128", None),
    "GSN-HydroCel-256": ("GSN-HydroCel-256", None),
}

def sim_config(n_times: int = 1) -> SimulationConfig:
    """The training-data distribution of the shipped template-eeg64 (white sensor noise only:
    the random-cap simulator adds it on each cap's electrodes); ``n_times`` > 1: windows of
    that many samples (evoked bumps, oscillations, band-limited noise), as template-eeg64-w5."""
    return SimulationConfig(n_sources=(1, 3), deep_fraction=0.4, extent_mm=(0.0, 30.0),
                            snr_db=(0.0, 20.0), n_times=n_times)


def model_file(args) -> str:
    """Work-folder file of the any-cap net: ``model.pt`` (single samples) or ``model-w<N>.pt``
    (windows of N samples)."""
    return "model.pt" if args.n_times == 1 else f"model-w{args.n_times}.pt"


def _sources(head):
    return make_source_space(head, 5e-3)


def stage_train(work: Path, args) -> None:
    head = load_template()
    src = _sources(head)
    slf = read_scalp_leadfield(Path(args.scalp) / "template-scalp-fwd.npz", src)
    net_kwargs = {"hidden": args.hidden, "channels": args.channels,
                  "image_size": args.image_size}
    common = dict(net="4lcnn", epochs=args.epochs, net_kwargs=net_kwargs, loss="ce", lr=args.lr,
                  schedule="cosine", batch_size=256, batches_per_epoch=args.batches_per_epoch,
                  seed=args.seed, patience=args.epochs, num_workers=args.workers, resume=True,
                  overwrite=True)
    if args.layout:
        sensors = make_eeg_sensors(head, args.layout)
        lf = slf.leadfield(sensors)
        model = train_model(lf, sim_config(args.n_times), work / f"layout-{args.layout}.pt",
                            **common)
    else:
        vlf = virtual_leadfield(slf, head, args.virtual_spacing * 1e-3)
        t0 = time.perf_counter()
        pool = make_cap_pool(slf, head, vlf, n_random=args.n_random, n_montage=args.n_montage,
                             seed=args.seed)
        print(f"{len(vlf.ch_names)} virtual channels, {len(pool.caps)} training caps "
              f"({time.perf_counter() - t0:.0f} s)")
        model = train_model(vlf, sim_config(args.n_times), work / model_file(args), caps=pool,
                            **common)
    print(model)


def stage_forward_test(work: Path, args) -> None:
    from deepesi.forward.ensemble import jitter_electrodes
    from deepesi.simulation import off_grid_sources
    from deepesi.simulation.forwards import fem_eeg_gain
    from deepesi.simulation.mismatch import realistic_conductivities

    head = load_template()
    src = _sources(head)
    rng = np.random.default_rng(20261203)
    cond = realistic_conductivities(head, rng)
    test_src = off_grid_sources(src, head, rng)
    test_src.save(work / "test-realistic-src.npz", overwrite=True)
    nominal, true = {}, {}
    for name, (montage, names) in EVAL_CAPS.items():
        nominal[name] = make_eeg_sensors(head, montage, ch_names=names)
        true[name], _ = jitter_electrodes(head, nominal[name], 5.0, rng)
    # one FEM run for every cap's electrodes (same mesh and conductivities)
    from dataclasses import replace

    allpos = np.concatenate([true[n].eeg_pos_mri for n in EVAL_CAPS])
    allnames = [f"{n}:{c}" for n in EVAL_CAPS for c in true[n].eeg_names]
    joint = replace(true["standard_1010_64"], ch_names=allnames, ch_types=["eeg"] * len(allnames),
                    eeg_pos_mri=allpos)
    gain, secs, moved = fem_eeg_gain(head.with_conductivities(cond), joint, test_src,
                                     args.test_voxel)
    print(f"test FEM: {len(allnames)} electrodes in {secs:.0f} s ({moved} sources moved)")
    start = 0
    for name in EVAL_CAPS:
        n = nominal[name].n_eeg
        g = gain[start:start + n]
        start += n
        np.save(work / f"test-{name}-gain.npy", (g - g.mean(0)).astype(np.float32))
    (work / "test-realistic.json").write_text(json.dumps(
        {"conductivities": cond, "voxel_mm": args.test_voxel, "seconds": secs,
         "jitter_mm": 5.0, "caps": {n: nominal[n].n_eeg for n in EVAL_CAPS}}, indent=1))


def _test_lf(work: Path, name: str, nominal, test_src) -> LeadField:
    gain = np.load(work / f"test-{name}-gain.npy").astype(float)
    return LeadField(gain, nominal.eeg_names, ["eeg"] * nominal.n_eeg, test_src,
                     info=nominal.info, trans=nominal.trans)


def stage_evaluate(work: Path, args) -> None:
    from deepesi.pretrained import load_pretrained
    from deepesi.sources import read_source_space

    head = load_template()
    src = _sources(head)
    slf = read_scalp_leadfield(Path(args.scalp) / "template-scalp-fwd.npz", src)
    test_src = read_source_space(work / "test-realistic-src.npz")
    anycap = read_model(work / model_file(args))
    n_times = int(anycap.net.n_times)  # a window net: evoked windows of its length
    shipped64, _ = load_pretrained("template-eeg64")
    results: dict = {"n": args.n_eval, "caps": {}}
    for name, (montage, names) in EVAL_CAPS.items():
        nominal = make_eeg_sensors(head, montage, ch_names=names)
        lf_nominal = slf.leadfield(nominal)
        test_lf = _test_lf(work, name, nominal, test_src)
        nets = {"template-eeg": CapBoundModel(anycap, nominal, slf.centre)}
        layout_file = work / f"layout-{montage}.pt"
        if names is None and layout_file.exists():
            nets[f"layout-{montage}"] = read_model(layout_file)
        if montage == "standard_1010_64":
            nets["template-eeg64 (shipped)"] = shipped64
        nets["dipole scan (nominal forward)"] = DipoleScanReference(lf_nominal)
        row = {}
        for label, net in nets.items():
            row[label] = {f"{snr:g}dB": evaluate_single_sources(net, lf_nominal, test_lf,
                                                                args.n_eval, 1, snr_db=snr,
                                                                n_times=n_times)
                          for snr in (10.0, 5.0)}
            r = row[label]["10dB"]
            print(f"{name:>18} {label:>28}: 10 dB deep {r['subcortical']['median_mm']:5.1f} "
                  f"cortical {r['cortical']['median_mm']:5.1f} mm, "
                  f"{100 * r['all']['within_10mm']:.0f} % ≤10 mm")
        results["caps"][name] = row
    results["train_batches"] = anycap.meta.get("epochs_run", 0) * anycap.meta.get(
        "batches_per_epoch", 0)
    results["train_minutes"] = anycap.meta.get("train_time_s", float("nan")) / 60
    results["command"] = ("python scripts/build_anycap.py --stage evaluate --work "
                          f"{work} --scalp {args.scalp}")
    (work / "evaluation-anycap.json").write_text(json.dumps(results, indent=1))


def _window_evaluation(fname: str, labels: list[str]) -> dict:
    """The 10 dB rows of one net in ``benchmarks/anycap_windows.py``'s result, per cap, in the
    shape ``deepesi models`` prints: the first of ``labels`` the result has."""
    ev = json.loads(Path(fname).read_text())
    present = {r["method"] for r in ev["rows"]}
    label = next((lab for lab in labels if lab in present), labels[0])
    caps = {}
    for r in ev["rows"]:
        if r["method"] == label and r["snr_db"] == 10.0:
            caps[r["cap"]] = {"n": ev["n"], "snr_db": 10.0, "n_times": ev["n_times"],
                              "subcortical": {"median_mm": r["deep_median_mm"]},
                              "cortical": {"median_mm": r["cortical_median_mm"]},
                              "all": {"within_10mm": r["within_10mm"]}}
    if not caps:
        raise SystemExit(f"{fname} has no 10 dB rows of {' or '.join(map(repr, labels))}.")
    return {"caps": caps, "note": f"realistic mismatch, {ev['n_times']}-sample evoked windows "
                                  f"({ev['command']})"}


def stage_ship(work: Path, args) -> None:
    model = read_model(work / model_file(args))
    model.save(MODELS_DIR / f"{args.name}.pt", overwrite=True, int8=True)
    if args.evaluation:  # benchmarks/anycap_windows.py's result: of the shipped (int8) file
        # when it was run with --anycap <name>, else of the work folder's float32 net
        labels = [f"any-cap {args.name}", f"any-cap {Path(model_file(args)).stem}"]
        summary = _window_evaluation(args.evaluation, labels)
    else:
        ev = json.loads((work / "evaluation-anycap.json").read_text())
        summary = {"caps": {name: row["template-eeg"]["10dB"]
                            for name, row in ev["caps"].items()},
                   "note": "realistic mismatch (scripts/build_anycap.py --stage evaluate)"}
    summary["train_batches"] = model.meta.get("epochs_run", 0) * model.meta.get(
        "batches_per_epoch", 0)
    (MODELS_DIR / f"{args.name}-evaluation.json").write_text(json.dumps(summary, indent=1))
    for part in sorted(Path(args.scalp).glob("template-scalp-fwd*.npz")):  # + its part files
        if not (MODELS_DIR / part.name).exists():
            shutil.copyfile(part, MODELS_DIR / part.name)
    print(f"shipped {args.name} to {MODELS_DIR}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--stage", choices=["train", "forward-test", "evaluate", "ship"],
                   required=True)
    p.add_argument("--work", type=Path, default=Path("out/anycap"))
    p.add_argument("--scalp", default="out/scalp", help="build_scalp_leadfield.py's work folder")
    p.add_argument("--layout", default=None,
                   help="train stage: a net for this one layout instead (the baseline)")
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--batches-per-epoch", type=int, default=1000)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--channels", type=int, nargs=2, default=[32, 64])
    p.add_argument("--image-size", type=int, default=20)
    p.add_argument("--virtual-spacing", type=float, default=12.0, help="mm")
    p.add_argument("--n-random", type=int, default=400)
    p.add_argument("--n-montage", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n-times", type=int, default=1,
                   help="train stage: the net's input window (1: single samples, the shipped "
                        "template-eeg; 5: evoked windows)")
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--test-voxel", type=float, default=1.5)
    p.add_argument("--n-eval", type=int, default=1000)
    p.add_argument("--name", default="template-eeg",
                   help="ship stage: the shipped name (a key of deepesi.pretrained.PRETRAINED)")
    p.add_argument("--evaluation", default=None,
                   help="ship stage: benchmarks/anycap_windows.py's JSON result instead of the "
                        "evaluate stage's (for a window net)")
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args()
    if args.quiet:
        set_log_level("WARNING")
    args.work.mkdir(parents=True, exist_ok=True)
    {"train": stage_train, "forward-test": stage_forward_test, "evaluate": stage_evaluate,
     "ship": stage_ship}[args.stage](args.work, args)


if __name__ == "__main__":
    main()
