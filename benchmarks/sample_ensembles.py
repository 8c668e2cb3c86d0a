"""Seed ensembles on the real auditory N100/N100m of the sample subject: do they move less?

Usage::

    for s in 0 1 2 3 4 5; do
        python examples/sample_auditory.py --data DATA -o out/sample --no-report --seed $s \\
            --methods dSPM --modalities MEG
    done
    python benchmarks/sample_ensembles.py --data DATA --out out/sample --modality MEG

Reads the example's nets of one modality for every seed given (``models/meg.pt``,
``models/meg-seed<k>.pt``; the same command with another ``--seed``), localizes the
90–110 ms window with each single net and with every ensemble of ``--size`` of them
(:func:`deepesi.training.combine_models`, rules 'mean' and 'geometric'), exactly as the example
does (:func:`deepesi.inverse.apply_network` with the recording's noise covariance and the
nominal forward), and scores each hemisphere's strongest peak of the window-mean map
(:func:`deepesi.references.score_map`: distance to the MNI auditory box; right peak to the xfit
dipole).

Stability is measured as **the distance between the peaks of two independent trainings**: for
single nets every pair of different seeds, for ensembles every pair of ensembles with no seed in
common (an ensemble of 3 from 6 seeds has one such partner per split: 10 pairs). The question a
user has — "if I train again, how far does my answer move?" — is answered by these distances
(median and largest). dSPM on the same data is the reference that does not move. Writes
``benchmarks/results/<name>.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
MODALITIES = {"EEG": ("eeg",), "MEG": ("mag", "grad"), "EEG+MEG": ("eeg", "mag", "grad")}


def _model_file(out: Path, modality: str, seed: int) -> Path:
    stem = modality.replace("+", "-").lower()
    return out / "models" / (f"{stem}.pt" if seed == 0 else f"{stem}-seed{seed}.pt")


def _pair_distances(rows: list[dict], key: str) -> list[float]:
    """Peak distances (mm) between every two rows with no seed in common."""
    out = []
    for a, b in itertools.combinations(rows, 2):
        if set(a["seeds"]) & set(b["seeds"]):
            continue
        pa, pb = a.get(key), b.get(key)
        if pa is None or pb is None:
            continue
        out.append(float(np.linalg.norm(np.subtract(pa, pb))))
    return out


def _stats(values: list[float]) -> dict:
    if not values:
        return {"n": 0, "median": None, "max": None}
    v = np.asarray(values)
    return {"n": int(v.size), "median": round(float(np.median(v)), 1),
            "max": round(float(v.max()), 1), "share_le_5mm": round(float(np.mean(v <= 5.0)), 2)}


def _set_line(score: dict) -> str:
    s = score.get("set")
    return "" if s is None else (f"; source set LH {s['aud_mni_lh_mm']}, RH {s['aud_mni_rh_mm']}"
                                 f", xfit {s['dist_dipole_mm']} mm")


def _median(rows: list[dict], key: str) -> float | None:
    v = [r[key] for r in rows if r.get(key) is not None]
    return None if not v else round(float(np.median(v)), 1)


def plot_peaks(rows: list[dict], dspm: dict, dipole_mni: np.ndarray, fname: Path,
               title: str) -> None:
    """Where the peaks land (MNI, mm): single nets, ensembles per rule, their source sets (when
    scored), dSPM, the xfit dipole and the auditory box, seen from above (x, y) and from
    behind (x, z)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    from deepesi.references import AUDITORY_MNI_BOX

    styles = {("single", None): dict(c="0.45", marker="o", s=36, label="single nets"),
              ("ensemble", "mean"): dict(c="tab:blue", marker="^", s=40, alpha=0.7,
                                         label="ensembles (mean)"),
              ("ensemble", "geometric"): dict(c="tab:orange", marker="v", s=40, alpha=0.7,
                                              label="ensembles (geometric)")}
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, (i, j), name in zip(axes, ((0, 1), (0, 2)), ("from above", "from behind"),
                                strict=True):
        for h, box in AUDITORY_MNI_BOX.items():
            ax.add_patch(Rectangle((box[i][0], box[j][0]), box[i][1] - box[i][0],
                                   box[j][1] - box[j][0], fill=False, ec="green", lw=1.5,
                                   label="auditory box" if h == "lh" else None))
        for key, st in styles.items():
            pts = [r[f"peak_{h}_mni_mm"] for r in rows if (r["kind"], r["rule"]) == key
                   for h in ("lh", "rh") if r.get(f"peak_{h}_mni_mm") is not None]
            if pts:
                pts = np.asarray(pts)
                ax.scatter(pts[:, i], pts[:, j], **st)
        sets = [r["set"][f"peak_{h}_mni_mm"] for r in rows if "set" in r
                for h in ("lh", "rh") if r["set"].get(f"peak_{h}_mni_mm") is not None]
        if sets:  # the source sets fitted from the same nets (single and ensembles)
            sets = np.asarray(sets)
            ax.scatter(sets[:, i], sets[:, j], facecolors="none", edgecolors="tab:purple",
                       marker="s", s=70, label="source sets (any net)")
        pts = np.asarray([dspm[f"peak_{h}_mni_mm"] for h in ("lh", "rh")
                          if dspm.get(f"peak_{h}_mni_mm") is not None])
        if len(pts):
            ax.scatter(pts[:, i], pts[:, j], c="k", marker="*", s=160, label="dSPM")
        ax.scatter([dipole_mni[i]], [dipole_mni[j]], c="red", marker="X", s=120,
                   label="xfit dipole")
        ax.set_xlabel("x (mm, MNI; right +)")
        ax.set_ylabel("y (mm, MNI; anterior +)" if j == 1 else "z (mm, MNI; up +)")
        ax.set_title(name)
        ax.set_aspect("equal")
        ax.grid(alpha=0.3)
        ax.set_xlim(-80, 80)
        ax.set_ylim(*((-75, 15) if j == 1 else (-35, 55)))
    axes[1].legend(loc="center left", bbox_to_anchor=(1.02, 0.5), fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(fname, dpi=110)
    plt.close(fig)


def main() -> None:
    import mne

    import deepesi
    from deepesi.datasets import mne_sample as ms
    from deepesi.inverse import apply_classical, apply_network
    from deepesi.references import read_xfit_dipole, score_map, score_sources
    from deepesi.training import combine_models, read_model

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help="MNE sample data folder")
    p.add_argument("--out", default="out/sample", help="output folder of sample_auditory.py")
    p.add_argument("--modality", default="MEG", choices=list(MODALITIES))
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4, 5])
    p.add_argument("--size", type=int, default=3, help="nets per ensemble (default 3)")
    p.add_argument("--rules", nargs="+", default=["mean", "geometric"])
    p.add_argument("--simulated", type=int, default=0, metavar="N",
                   help="also N simulated single sources (5 dB, nominal forward) per single net "
                   "and per disjoint ensemble of the first split: the simulation accuracy an "
                   "ensemble keeps (default 0: skip)")
    p.add_argument("--sources", action="store_true",
                   help="also score each net's source set (apply_network(sources=True): the "
                   "net's proposals fitted on the forward), as the example's 'deepesi-sources'")
    p.add_argument("--name", default=None, help="output stem (default sample_ensembles_<mod>)")
    args = p.parse_args()
    deepesi.set_log_level("WARNING")
    out = Path(args.out)
    name = args.name or f"sample_ensembles_{args.modality.replace('+', '').lower()}"
    paths = ms.data_paths(args.data)
    head = ms.build_head(paths, out, verbose=False)
    src = ms.build_sources(head, out)
    lf = ms.build_forward(head, src, paths, out, verbose=False)
    lf_m = lf.pick_types(list(MODALITIES[args.modality]))
    cov = mne.read_cov(paths["cov"], verbose=False)
    evoked = ms.load_auditory_evoked(paths["evoked"])
    dipole = read_xfit_dipole(paths["xfit_dipole"], paths["trans"])
    no_labels = {h: np.zeros((1, 3)) for h in ("lh", "rh")}  # scored: MNI box and xfit only
    seeds = [s for s in args.seeds if _model_file(out, args.modality, s).is_file()]
    missing = sorted(set(args.seeds) - set(seeds))
    if missing:
        print(f"no trained net for seeds {missing} (run the example with those seeds); "
              "left out")
    if len(seeds) < 2 * args.size:
        raise SystemExit(f"{len(seeds)} nets: two disjoint ensembles of {args.size} need "
                         f"{2 * args.size}.")
    nets = {s: read_model(_model_file(out, args.modality, s)) for s in seeds}

    def _keep(score: dict) -> dict:
        return {k: v for k, v in score.items() if not k.startswith("dist_") or k ==
                "dist_dipole_mm"}

    def localize(model) -> tuple[dict, dict]:
        res = apply_network(evoked, model, source_space=src, noise_cov=cov, forward=lf_m,
                            tmin=ms.WINDOW[0], tmax=ms.WINDOW[1], sources=args.sources)
        keep = _keep(score_map(res.amplitudes.mean(axis=1), src, no_labels, dipole))
        if args.sources:
            # the source set fitted from the same net: its strongest source per hemisphere
            keep["set"] = _keep(score_sources(res.sources, src, no_labels, dipole))
        return keep, res

    rows = []
    t0 = time.perf_counter()
    for s in seeds:
        score, res = localize(nets[s])
        rows.append({"kind": "single", "rule": None, "seeds": [s], **score,
                     "gof": res.fit.get("gof")})
        print(f"seed {s}: LH {score['aud_mni_lh_mm']} mm, RH {score['aud_mni_rh_mm']} mm "
              f"from the box, RH {score['dist_dipole_mm']} mm from xfit "
              f"({score['peak_rh_region']})" + _set_line(score))
    for rule in args.rules:
        for combo in itertools.combinations(seeds, args.size):
            ens = combine_models([nets[s] for s in combo], rule=rule)
            score, res = localize(ens)
            agree = res.meta["ensemble"]
            rows.append({"kind": "ensemble", "rule": rule, "seeds": list(combo), **score,
                         "gof": res.fit.get("gof"), "agreement": agree["agreement"],
                         "member_spread_mm": agree["peak_spread_mm"]})
            print(f"{rule} {combo}: LH {score['aud_mni_lh_mm']} mm, RH "
                  f"{score['aud_mni_rh_mm']} mm, xfit {score['dist_dipole_mm']} mm, "
                  f"agreement {agree['agreement']:.2f}" + _set_line(score))
    seconds = time.perf_counter() - t0
    simulated = {}
    if args.simulated:
        from deepesi.training import evaluate_single_sources

        first, second = seeds[:args.size], seeds[args.size:2 * args.size]
        cases = {f"seed {s}": nets[s] for s in seeds}
        cases.update({f"mean {tuple(c)}": combine_models([nets[s] for s in c])
                      for c in (first, second)})
        for label, model in cases.items():
            ev = evaluate_single_sources(model, lf_m, lf_m, args.simulated, seed=123,
                                         snr_db=5.0)
            simulated[label] = {k: ev[k] for k in ("subcortical", "cortical")}
            print(f"simulated, {label}: deep {ev['subcortical']['median_mm']:.1f} mm, "
                  f"cortical {ev['cortical']['median_mm']:.1f} mm")
    ev_m = evoked.copy().pick([c for c in evoked.ch_names if c in set(lf_m.ch_names)])
    dspm = apply_classical(ev_m, "dSPM", lf_m, cov, tmin=ms.WINDOW[0], tmax=ms.WINDOW[1])
    dspm_score = score_map(dspm.amplitudes.mean(axis=1), src, no_labels, dipole)

    dipoles_score = None
    if args.sources:  # the classical counterpart of a source set: sequential dipole fits
        dip = apply_classical(ev_m, "dipoles", lf_m, cov, tmin=ms.WINDOW[0], tmax=ms.WINDOW[1])
        dipoles_score = score_sources(dip.sources, src, no_labels, dipole)

    def summarize(sel: list[dict], label: str) -> dict:
        return {
            "kind": label,
            "n": len(sel),
            "lh_box_median_mm": _median(sel, "aud_mni_lh_mm"),
            "rh_box_median_mm": _median(sel, "aud_mni_rh_mm"),
            "rh_xfit_median_mm": _median(sel, "dist_dipole_mm"),
            "rh_box_le_10mm": round(float(np.mean([r["aud_mni_rh_mm"] is not None
                                                   and r["aud_mni_rh_mm"] <= 10 for r in sel])),
                                    2),
            "move_lh": _stats(_pair_distances(sel, "peak_lh_mri_mm")),
            "move_rh": _stats(_pair_distances(sel, "peak_rh_mri_mm")),
        }

    groups = [("single", None)] + [("ensemble", r) for r in args.rules]
    summary = []
    for what in ("map", "set") if args.sources else ("map",):
        for kind, rule in groups:
            sel = [r if what == "map" else {**r["set"], "seeds": r["seeds"]} for r in rows
                   if r["kind"] == kind and r["rule"] == rule]
            label = kind if rule is None else f"ensemble of {args.size} ({rule})"
            summary.append({**summarize(sel, label + (", source set" if what == "set"
                                                      else "")), "estimate": what})
    lines = [
        f"Sample auditory N100 ({args.modality}), 90-110 ms; seeds {seeds}. Map: the window-"
        "mean map's hemisphere peaks; source set: each hemisphere's strongest fitted source. "
        "'move' = distance (mm) between the peaks of two trainings with no seed in common.",
        "",
        "| nets | n | LH to box (median) | RH to box (median) | RH to xfit (median) | "
        "RH ≤ 10 mm from box | move LH median / max | move RH median / max | pairs |",
        "|---|---:|---:|---:|---:|---:|---|---|---:|",
    ]
    for r in summary:
        lines.append(
            f"| {r['kind']} | {r['n']} | {r['lh_box_median_mm']} | {r['rh_box_median_mm']} | "
            f"{r['rh_xfit_median_mm']} | {100 * r['rh_box_le_10mm']:.0f} % | "
            f"{r['move_lh']['median']} / {r['move_lh']['max']} | "
            f"{r['move_rh']['median']} / {r['move_rh']['max']} | {r['move_rh']['n']} |")
    for label, ref in (("dSPM (reference)", dspm_score),
                       ("sequential dipoles (reference)", dipoles_score)):
        if ref is not None:
            lines.append(f"| {label} | 1 | {ref['aud_mni_lh_mm']} | {ref['aud_mni_rh_mm']} | "
                         f"{ref['dist_dipole_mm']} | | 0 / 0 | 0 / 0 | |")
    if simulated:
        lines += ["", f"Simulated single sources, nominal forward, 5 dB, {args.simulated} "
                  "samples (median error, mm):", "",
                  "| nets | deep | cortical | deep ↔ cortical confusion |", "|---|---:|---:|---:|"]
        for label, ev in simulated.items():
            conf = np.mean([ev["subcortical"]["confusion"], ev["cortical"]["confusion"]])
            lines.append(f"| {label} | {ev['subcortical']['median_mm']:.1f} | "
                         f"{ev['cortical']['median_mm']:.1f} | {100 * conf:.1f} % |")
    table = "\n".join(lines) + "\n"
    print(table)
    RESULTS.mkdir(exist_ok=True)
    doc = {"modality": args.modality, "seeds": seeds, "size": args.size, "rules": args.rules,
           "summary": summary, "rows": rows, "dspm": dspm_score, "dipoles": dipoles_score,
           "simulated": simulated,
           "localization_seconds": round(seconds, 1),
           "training": {str(s): {"epochs_run": m.meta.get("epochs_run"),
                                 "best_val_loss": m.meta.get("best_val_loss"),
                                 "weights_hash": m.weights_hash()} for s, m in nets.items()}}
    mri_to_mni = src.mri_to_mni
    dip_mni = dipole["pos_mri_m"] * 1e3 @ mri_to_mni[:3, :3].T + mri_to_mni[:3, 3]
    doc["xfit_dipole_mni_mm"] = [round(float(v), 1) for v in dip_mni]
    (RESULTS / f"{name}.json").write_text(json.dumps(doc, indent=1) + "\n")
    (RESULTS / f"{name}.md").write_text(table)
    plot_peaks(rows, dspm_score, dip_mni, RESULTS / f"{name}.png",
               f"sample auditory N100, {args.modality}: hemisphere peaks of {len(seeds)} "
               f"single nets and of every ensemble of {args.size}")
    print(f"written: {RESULTS / name}.json, .md, .png")


if __name__ == "__main__":
    main()
