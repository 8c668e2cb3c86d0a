"""Build the template MEG network of one system (default MEGIN/Neuromag 306, from the sample
recording's sensor geometry): trained over head positions in the helmet, evaluated on positions
it never saw.

Stages (each cached in the work folder; rerun to resume):

1. ``forward``: the system's helmet around the template head at ``--n-train`` head positions
   (the nominal one, the recording's ``dev_head_t``, and positions drawn around it:
   :func:`deepesi.sensors.helmet.draw_head_positions`, RMS ``--shift-mm`` / ``--rotation-deg``,
   no coil closer than ``--min-clearance-mm`` to the scalp), one-layer BEM on the inner skull
   (icosahedron grade 4), 5 mm cortical + subcortical grid; and the *test* forwards: ``--n-test``
   other positions (another seed), a finer BEM (grade 5) and sources moved off the grid.
2. ``train``: the 4LCNN on data simulated with one head position per sample (a forward
   ensemble); the budget is ``--epochs`` x ``--batches-per-epoch`` batches.
3. ``evaluate``: single sources at 10 and 5 dB on the test positions, beside the dipole scan on
   the nominal forward and on each sample's true forward (the same samples); and with the
   ``--info`` recording's SSP projectors on the data, read as they are and restored from the
   nominal forward (:mod:`deepesi.inverse.fieldmap`).
4. ``ship``: the network (it carries the source space, the system's Info at the nominal head
   position and the template's head → MRI transform) and its evaluation into the package; the
   lead field is not shipped: it is computed for the recording's own head position when the
   model is used (:func:`deepesi.pretrained.template_meg_forward`, cached).

Usage: ``python scripts/build_template_meg.py --stage forward --info RECORDING.fif`` (then
train, evaluate, ship).
"""

from __future__ import annotations

import argparse
import json
import time
from copy import deepcopy
from pathlib import Path

import numpy as np

from deepesi import set_log_level
from deepesi.anatomy.template import load_template
from deepesi.forward.ensemble import ForwardEnsemble
from deepesi.forward.leadfield import LeadField
from deepesi.forward.meg import compute_meg_leadfield, make_inner_skull_bem
from deepesi.inverse.fieldmap import (
    MappedInputModel,
    field_mapping_matrix,
    restoration_matrix,
)
from deepesi.sensors.helmet import (
    coil_clearance_mm,
    draw_head_positions,
    head_position_change,
    template_meg_sensors,
)
from deepesi.simulation import SimulationConfig, off_grid_sources
from deepesi.sources import SourceSpace, make_source_space
from deepesi.training import read_model, train_model
from deepesi.training.evaluate import (
    DipoleScanReference,
    LocallyRefined,
    single_source_errors,
    summarize_errors,
)

SPACING = 5e-3
#: Radius of the local refinement in the evaluation: two grid diagonals, as
#: ``apply_network(refine=True)`` searches.
REFINE_RADIUS = 2.0 * SPACING * np.sqrt(3.0)
DEFAULT_INFO = "../shared/data/mne-sample/MEG/sample/sample_audvis-auditory-ave.fif"


def system_info(path: str):
    """The MEG channels of a recording's Info (no EEG, no projectors, no subject)."""
    import mne

    from deepesi.sensors.info import read_measurement_info

    info = read_measurement_info(path)  # a FIF file, a CTF .ds folder, ...
    picks = mne.pick_types(info, meg=True, ref_meg=True, exclude=())
    info = mne.pick_info(info, picks, verbose=False)
    with info._unlock():
        info["bads"] = []
        info["projs"] = []
        info["subject_info"] = None
    return info


def _positions(work: Path, name: str) -> list[np.ndarray]:
    return [np.array(m) for m in json.loads((work / f"{name}-positions.json").read_text())]


def _gain_file(work: Path, name: str, k: int) -> Path:
    return work / f"{name}-{k:02d}-gain.npy"


def stage_forward(work: Path, args) -> None:
    head = load_template()
    import mne

    info = system_info(args.info)
    mne.io.write_info(work / "system-info.fif", info, overwrite=True)
    src = make_source_space(head, SPACING)
    src.save(work / "train-src.npz", overwrite=True)
    rng = np.random.default_rng(20261204)
    test_src = off_grid_sources(src, head, rng)
    test_src.save(work / "test-src.npz", overwrite=True)
    nominal = np.asarray(info["dev_head_t"]["trans"], float)
    drawn = draw_head_positions(
        head, info, args.n_train - 1, seed=args.seed, shift_mm=args.shift_mm,
        rotation_deg=args.rotation_deg, min_clearance_mm=args.min_clearance_mm)
    train_pos = [nominal, *drawn]
    test_pos = draw_head_positions(
        head, info, args.n_test, seed=args.seed + 1000, shift_mm=args.shift_mm,
        rotation_deg=args.rotation_deg, min_clearance_mm=args.min_clearance_mm)
    for name, positions, sources, grade in (("train", train_pos, src, 4),
                                            ("test", test_pos, test_src, 5)):
        (work / f"{name}-positions.json").write_text(json.dumps([p.tolist() for p in positions]))
        bem = None
        draws = []
        for k, dev_head in enumerate(positions):
            sensors = template_meg_sensors(head, info, dev_head)
            shift, angle = head_position_change(nominal, dev_head)
            clear = coil_clearance_mm(head, sensors)
            draws.append({"shift_mm": shift, "rotation_deg": angle,
                          "min_clearance_mm": float(clear.min()),
                          "median_clearance_mm": float(np.median(clear))})
            fname = _gain_file(work, name, k)
            if fname.exists():
                continue
            if bem is None:
                bem = make_inner_skull_bem(head, sources.pos, grade=grade)
            t0 = time.perf_counter()
            gain, _, _, _ = compute_meg_leadfield(head, sensors, sources.pos, bem=bem)
            np.save(fname, gain.astype(np.float32))
            print(f"{name} {k}: shift {shift:.1f} mm, rotation {angle:.1f} deg, clearance "
                  f"{clear.min():.1f} mm, {time.perf_counter() - t0:.0f} s", flush=True)
        (work / f"{name}-draws.json").write_text(json.dumps(draws, indent=1))


def _leadfield(work: Path, name: str, k: int, head, info, src: SourceSpace) -> LeadField:
    sensors = template_meg_sensors(head, info, _positions(work, name)[k])
    gain = np.load(_gain_file(work, name, k)).astype(float)
    return LeadField(gain, sensors.ch_names, sensors.ch_types, src, info=sensors.info,
                     trans=sensors.trans, meta={"head_position": name, "k": k})


def _read(work: Path):
    import mne

    head = load_template()
    info = mne.io.read_info(work / "system-info.fif", verbose=False)
    return head, info


def stage_train(work: Path, args) -> None:
    head, info = _read(work)
    src = SourceSpace.load(work / "train-src.npz")
    n = len(_positions(work, "train"))
    members = [_leadfield(work, "train", k, head, info, src) for k in range(n)]
    draws = json.loads((work / "train-draws.json").read_text())
    ensemble = ForwardEnsemble(members, draws, {"seed": args.seed, "n_members": n,
                                                "shift_mm": args.shift_mm,
                                                "rotation_deg": args.rotation_deg})
    config = SimulationConfig(n_times=1, brain_noise_fraction=(0.0, args.brain_noise))
    model = train_model(
        members[0], config, work / "model.pt", net="4lcnn", ensemble=ensemble,
        epochs=args.epochs, net_kwargs={"hidden": args.hidden, "channels": args.channels},
        loss="ce", lr=args.lr, schedule="cosine", batch_size=256,
        batches_per_epoch=args.batches_per_epoch, seed=0, patience=args.epochs,
        num_workers=0, resume=True, overwrite=True,
    )
    print(model)


def stage_evaluate(work: Path, args) -> None:
    head, info = _read(work)
    src = SourceSpace.load(work / "train-src.npz")
    test_src = SourceSpace.load(work / "test-src.npz")
    nominal = _leadfield(work, "train", 0, head, info, src)
    model = read_model(work / "model.pt")
    scale = np.asarray(model.channel_scale, float)
    n_test = len(_positions(work, "test"))
    per = max(args.n_eval // n_test, 1)
    results: dict = {"n": per * n_test, "n_positions": n_test,
                     "test_positions": json.loads((work / "test-draws.json").read_text())}
    projs = _recording_projs(args.info, nominal.ch_names)
    restored = None
    if projs:
        matrix = restoration_matrix(projs, nominal.gain, nominal.ch_names, scale)
        restored = MappedInputModel(model, matrix)
        results["ssp"] = [q["desc"] for q in projs]
    at_position = _forwards_at_test_positions(work, head, info, src)
    for snr in (10.0, 5.0):
        rows: dict = {}
        for k in range(n_test):
            test_lf = _leadfield(work, "test", k, head, info, test_src)
            here = at_position[k]  # what a user's forward at the recording's head position is
            mapping = field_mapping_matrix(here.gain, nominal.gain, scale, scale)
            runs = [
                ("template-meg306", model, None),
                ("template-meg306, mapped to the nominal position",
                 MappedInputModel(model, mapping), None),
                ("template-meg306, mapped + local refinement (recording's forward)",
                 LocallyRefined(MappedInputModel(model, mapping), DipoleScanReference(here, scale),
                                src.pos, REFINE_RADIUS), None),
                ("dipole scan (nominal position)", DipoleScanReference(nominal, scale), None),
                ("dipole scan (recording's position)", DipoleScanReference(here, scale), None),
            ]
            if restored is not None:  # the recording's SSP on the data: as read, and restored
                r_here = restoration_matrix(projs, here.gain, here.ch_names, scale)
                runs += [("template-meg306, SSP data as read", model, projs),
                         ("template-meg306, SSP restored (nominal forward)", restored, projs),
                         ("template-meg306, SSP restored + mapped",
                          MappedInputModel(model, mapping @ r_here), projs)]
            for label, net, p in runs:
                err, deep, est_deep = single_source_errors(net, nominal, test_lf, per, k,
                                                           snr_db=snr, projs=p)
                acc = rows.setdefault(label, ([], [], []))
                for a, b in zip(acc, (err, deep, est_deep), strict=True):
                    a.append(b)
        for label, (err, deep, est_deep) in rows.items():
            r = summarize_errors(np.concatenate(err), np.concatenate(deep),
                                 np.concatenate(est_deep), snr_db=snr)
            results.setdefault(label, {})[f"{snr:g}dB"] = r
            print(f"{snr:4.0f} dB {label:>34}: deep {r['subcortical']['median_mm']:5.1f} "
                  f"cortical {r['cortical']['median_mm']:5.1f} mm, "
                  f"{100 * r['all']['within_10mm']:.0f} % <=10 mm, confusion "
                  f"{100 * r['all']['confusion']:.1f} %", flush=True)
    results["train_batches"] = model.meta.get("epochs_run", 0) * model.meta.get(
        "batches_per_epoch", 0)
    results["train_minutes"] = model.meta.get("train_time_s", float("nan")) / 60
    results["command"] = f"python scripts/build_template_meg.py --stage evaluate --work {work}"
    (work / "evaluation.json").write_text(json.dumps(results, indent=1))


def _forwards_at_test_positions(work: Path, head, info, src: SourceSpace) -> list[LeadField]:
    """The forward a user gets at each test head position (the training BEM on the training
    grid, as :func:`deepesi.pretrained.template_meg_forward` computes it), cached."""
    out, bem = [], None
    for k, dev_head in enumerate(_positions(work, "test")):
        fname = work / f"test-{k:02d}-grid-gain.npy"
        sensors = template_meg_sensors(head, info, dev_head)
        if not fname.exists():
            if bem is None:
                bem = make_inner_skull_bem(head, src.pos, grade=4)
            gain, _, _, _ = compute_meg_leadfield(head, sensors, src.pos, bem=bem)
            np.save(fname, gain.astype(np.float32))
        out.append(LeadField(np.load(fname).astype(float), sensors.ch_names, sensors.ch_types,
                             src, info=sensors.info, trans=sensors.trans))
    return out


def _recording_projs(path: str, ch_names: list[str]) -> list:
    """The SSP projectors of the system's recording on these channels (none for an
    average-reference projector), for the SSP variants of the evaluation."""
    from deepesi.sensors.info import read_measurement_info

    projs = []
    for q in read_measurement_info(path)["projs"]:
        q = deepcopy(q)
        q["active"] = False
        if set(q["data"]["col_names"]) & set(ch_names):
            projs.append(q)
    return projs


def stage_ship(work: Path, args) -> None:
    from deepesi.pretrained import MODELS_DIR, PRETRAINED

    if args.name not in PRETRAINED:
        raise SystemExit(f"register {args.name!r} in deepesi._registry.PRETRAINED first.")
    head, info = _read(work)
    nominal = _leadfield(work, "train", 0, head, info, SourceSpace.load(work / "train-src.npz"))
    model = read_model(work / "model.pt", leadfield=nominal)
    model.source_space = nominal.source_space
    info = nominal.info.copy()
    with info._unlock():  # the system and its nominal position, not the recording's subject
        info["dig"] = None
        info["meas_date"] = None
    model.info, model.trans = info, nominal.trans
    model.save(MODELS_DIR / f"{args.name}.pt", overwrite=True, int8=True)
    ev = json.loads((work / "evaluation.json").read_text())
    summary = {"test_label": "head positions not seen in training, finer BEM, off-grid sources",
               "test_forward": ev["template-meg306, mapped to the nominal position"]["10dB"],
               "test_forward_5dB": ev["template-meg306, mapped to the nominal position"]["5dB"],
               "unmapped_test_forward": ev["template-meg306"]["10dB"],
               "refined_test_forward": ev["template-meg306, mapped + local refinement "
                                          "(recording's forward)"]["10dB"],
               "dipole_scan_nominal": ev["dipole scan (nominal position)"]["10dB"],
               "dipole_scan_recording_position": ev["dipole scan (recording's position)"]["10dB"],
               "test_positions": ev["test_positions"], "train_batches": ev["train_batches"],
               "note": ("single sources on head positions not seen in training, finer BEM, "
                        "off-grid sources (scripts/build_template_meg.py --stage evaluate)")}
    (MODELS_DIR / f"{args.name}-evaluation.json").write_text(json.dumps(summary, indent=1))
    print(f"shipped {args.name} to {MODELS_DIR}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--stage", choices=["forward", "train", "evaluate", "ship"], required=True)
    p.add_argument("--work", type=Path, default=Path("out/template-meg306"))
    p.add_argument("--info", default=DEFAULT_INFO,
                   help="forward stage: a recording of the system (its MEG channels and "
                        "dev_head_t: the nominal head position)")
    p.add_argument("--n-train", type=int, default=32, help="head positions trained on")
    p.add_argument("--n-test", type=int, default=8, help="unseen head positions tested on")
    p.add_argument("--shift-mm", type=float, default=8.0)
    p.add_argument("--rotation-deg", type=float, default=6.0)
    p.add_argument("--min-clearance-mm", type=float, default=10.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--batches-per-epoch", type=int, default=1000)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--channels", type=int, nargs=2, default=[32, 64])
    p.add_argument("--brain-noise", type=float, default=0.0)
    p.add_argument("--n-eval", type=int, default=1000)
    p.add_argument("--name", default="template-meg306")
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args()
    if args.quiet:
        set_log_level("WARNING")
    args.work.mkdir(parents=True, exist_ok=True)
    {"forward": stage_forward, "train": stage_train, "evaluate": stage_evaluate,
     "ship": stage_ship}[args.stage](args.work, args)


if __name__ == "__main__":
    main()
