"""The sample auditory EEG on the template, with no MRI and no training: the montage-independent
net ``template-eeg`` on the recording's own 60 digitized electrodes.

For each way of placing the electrodes on the template (fiducials + one scale; the template
scaled to the fiducials + head shape, uniformly or per axis) it reports the head-shape points'
distance to the template scalp, then localizes the N100 (90-110 ms) with the net (map and
source set) and with classical methods on the same interpolated template lead field, the same
noise covariance and the same window; each hemisphere's peak is scored by its distance to the
MNI auditory box (the template's MRI frame is MNI) and the right one also to the xfit dipole
(mapped onto the template by the same placement). Target (issue 15): both peaks within 15 mm
of the box.

``python benchmarks/sample_template_eeg.py --data ../shared/data/mne-sample`` → table and
``benchmarks/results/sample_template_eeg.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import mne
import numpy as np

from deepesi import set_log_level
from deepesi.anatomy.template import load_template
from deepesi.datasets.mne_sample import WINDOW, data_paths, load_auditory_evoked
from deepesi.inverse import apply_classical, apply_network
from deepesi.inverse.anycap import bind_recording
from deepesi.pretrained import load_pretrained
from deepesi.references import score_auditory_peaks, source_set_peaks, template_map_peaks
from deepesi.sensors.scaling import fit_head_scaling

METHODS = ("dSPM", "LCMV", "gamma_map", "dipoles")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", default="../shared/data/mne-sample")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/sample_template_eeg.json"))
    p.add_argument("--model", default="template-eeg",
                   help="a shipped name, or a model file (then give --scalp)")
    p.add_argument("--scalp", default=None, help="the dense scalp lead field (.npz) of a model "
                   "file")
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args()
    set_log_level("WARNING" if args.quiet else "INFO")
    paths = data_paths(args.data)
    evoked = load_auditory_evoked(paths["evoked"]).pick("eeg")
    cov = mne.read_cov(paths["cov"], verbose=False)
    head = load_template()
    if args.scalp:
        from deepesi.forward.scalp import read_scalp_leadfield
        from deepesi.training import read_model

        model = read_model(args.model)
        slf = read_scalp_leadfield(args.scalp, model.source_space)
    else:
        model, slf = load_pretrained(args.model)
    src = model.source_space
    xfit = None
    if "xfit_dipole" in paths:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            xfit = mne.read_dipole(str(paths["xfit_dipole"]), verbose=False).pos[0]  # head
    results = {"window_s": list(WINDOW), "placements": {}}
    print(f"{'placement':>10} {'method':>22} {'LH box':>7} {'RH box':>7} {'RH xfit':>8} "
          f"{'s':>5}")
    for placement in ("fiducials", "uniform", "3-axis"):
        bound, lf = bind_recording(model, evoked.info, slf, scaling=placement)
        entry: dict = {"electrodes": bound.meta["bound_to"]}
        if placement == "fiducials":
            fit = fit_head_scaling(head, evoked.info, mode="uniform")  # for the residuals only
            entry["head_shape_mm"] = {"fiducials_only": fit.residual_mm["before_fiducials_only"]}
            to_template = None
        else:
            fit = fit_head_scaling(head, evoked.info, mode=placement)
            entry["head_shape_mm"] = {"after": fit.residual_mm["after"]}
            to_template = fit
        x_t = (to_template.to_template(xfit[None])[0] * 1e3
               if (xfit is not None and to_template is not None) else None)
        if xfit is not None and to_template is None:  # the fiducial registration's map
            t = np.asarray(bound.sensors.trans["trans"])
            scale = float(bound.sensors.meta.get("scale", 1.0))
            x_t = (t[:3, :3] @ (xfit * scale) + t[:3, 3]) * 1e3
        rows = []
        t0 = time.perf_counter()
        res = apply_network(evoked, bound, forward=lf, noise_cov=cov, tmin=WINDOW[0],
                            tmax=WINDOW[1], sources=True)
        secs = time.perf_counter() - t0
        peaks = template_map_peaks(res.amplitudes, src)
        label = Path(args.model).stem if args.scalp else args.model
        rows.append({"method": label, **score_auditory_peaks(peaks, x_t),
                     "gof": res.fit.get("gof"), "seconds": round(secs, 2)})
        rows.append({"method": f"{label}-sources",
                     **score_auditory_peaks(source_set_peaks(res.sources), x_t),
                     "n_sources": len(res.sources), "seconds": round(secs, 2)})
        ev = evoked.copy().pick(bound.ch_names)
        for method in METHODS:
            t0 = time.perf_counter()
            sr = apply_classical(ev, method, lf, cov, tmin=WINDOW[0], tmax=WINDOW[1])
            pk = (source_set_peaks(sr.sources) if sr.sources
                  else template_map_peaks(sr.amplitudes, src))
            rows.append({"method": method, **score_auditory_peaks(pk, x_t),
                         "seconds": round(time.perf_counter() - t0, 2)})
        for r in rows:
            print(f"{placement:>10} {r['method']:>22} {r['box_lh_mm']!s:>7} "
                  f"{r['box_rh_mm']!s:>7} {r.get('xfit_rh_mm')!s:>8} {r['seconds']:5.1f}")
        entry["rows"] = rows
        results["placements"][placement] = entry
    results["model"] = args.model
    results["command"] = (f"python benchmarks/sample_template_eeg.py --data {args.data} "
                          f"--model {args.model} --out {args.out}"
                          + (f" --scalp {args.scalp}" if args.scalp else ""))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1, default=float))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
