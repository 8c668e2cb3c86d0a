"""The sample auditory MEG on the template, with no MRI and no training: the template MEG net
``template-meg306`` on the recording's 306 Neuromag channels.

The recording's own ``dev_head_t`` places the helmet around the template scaled to the
subject's fiducials and head shape (default; or rigidly by the fiducials); the forward there
serves the net's fit and the classical methods (dSPM, LCMV, Gamma-MAP, MxNE, sequential
dipoles), all on the same noise covariance and the same window (the N100m, 90-110 ms). The net
reads the data mapped to its nominal head position with the recording's SSP directions
restored (the defaults of ``bind_meg_recording`` and ``apply_network``); each of these is also
switched off once. Each hemisphere's peak is scored by its distance
to the MNI auditory box (the template's MRI frame is MNI), the right one also to the xfit
dipole, mapped onto the template by the template's 3-axis scaling to the subject's fiducials
and head shape (:func:`deepesi.sensors.scaling.fit_head_scaling`). Target (issue 15): both
peaks within 15 mm of the box.

``python benchmarks/sample_template_meg.py --data ../shared/data/mne-sample`` → table and
``benchmarks/results/sample_template_meg.json``.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import mne

from deepesi import set_log_level
from deepesi.anatomy.template import load_template
from deepesi.datasets.mne_sample import WINDOW, data_paths, load_auditory_evoked
from deepesi.inverse import apply_classical, apply_network
from deepesi.inverse.helmet import bind_meg_recording
from deepesi.pretrained import PRETRAINED, pretrained_files
from deepesi.references import score_auditory_peaks, source_set_peaks, template_map_peaks
from deepesi.sensors.scaling import fit_head_scaling
from deepesi.training import read_model

METHODS = ("dSPM", "LCMV", "gamma_map", "mxne", "dipoles")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", default="../shared/data/mne-sample")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/sample_template_meg.json"))
    p.add_argument("--model", default="template-meg306", help="a shipped name or a model file")
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args()
    set_log_level("WARNING" if args.quiet else "INFO")
    paths = data_paths(args.data)
    evoked_all = load_auditory_evoked(paths["evoked"])
    cov = mne.read_cov(paths["cov"], verbose=False)
    head = load_template()
    shipped = args.model in PRETRAINED
    model = read_model(pretrained_files(args.model)["model"] if shipped else args.model)
    rms = PRETRAINED.get(args.model, PRETRAINED["template-meg306"])["head_positions_rms"]
    src = model.source_space
    scaling = fit_head_scaling(head, evoked_all.info, mode="3-axis")
    xfit_t = None
    if "xfit_dipole" in paths:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            xfit = mne.read_dipole(str(paths["xfit_dipole"]), verbose=False).pos[0]  # head, m
        xfit_t = scaling.to_template(xfit[None])[0] * 1e3
    results: dict = {"window_s": list(WINDOW), "model": args.model, "variants": {}}
    print(f"{'variant':>22} {'method':>24} {'LH box':>7} {'RH box':>7} {'RH xfit':>8} {'s':>6}")
    evoked = evoked_all.copy().pick("meg")
    variants = {  # name: (scaling, map_to_nominal, restore_ssp, classical methods too)
        "default": ("auto", True, True, True),
        "ssp-not-restored": ("auto", True, False, False),
        "not-mapped": ("auto", False, True, False),
        "fiducial-placement": ("fiducials", True, True, True),
    }
    for name, (placement, mapped, restore, classical) in variants.items():
        bound, net, fwd, report = bind_meg_recording(evoked, model, trained_rms=rms,
                                                     scaling=placement, map_to_nominal=mapped)
        rows = []
        t0 = time.perf_counter()
        res = apply_network(bound, net, forward=fwd, noise_cov=cov, tmin=WINDOW[0],
                            tmax=WINDOW[1], sources=True, restore_ssp=restore)
        secs = time.perf_counter() - t0
        peaks = template_map_peaks(res.amplitudes, src)
        rows.append({"method": "template-meg306", **score_auditory_peaks(peaks, xfit_t),
                     "gof": res.fit.get("gof"), "best_dipole_gof": res.fit.get("best_dipole_gof"),
                     "seconds": round(secs, 2)})
        rows.append({"method": "template-meg306-sources",
                     **score_auditory_peaks(source_set_peaks(res.sources), xfit_t),
                     "n_sources": len(res.sources), "seconds": round(secs, 2)})
        for method in METHODS if classical else ():
            t0 = time.perf_counter()
            sr = apply_classical(bound, method, fwd, cov, tmin=WINDOW[0], tmax=WINDOW[1])
            pk = (source_set_peaks(sr.sources) if sr.sources
                  else template_map_peaks(sr.amplitudes, src))
            rows.append({"method": method, **score_auditory_peaks(pk, xfit_t),
                         "seconds": round(time.perf_counter() - t0, 2)})
        for r in rows:
            print(f"{name:>22} {r['method']:>24} {r['box_lh_mm']!s:>7} {r['box_rh_mm']!s:>7} "
                  f"{r.get('xfit_rh_mm')!s:>8} {r['seconds']:6.1f}")
        results["variants"][name] = {"scaling": placement, "mapped_to_nominal": mapped,
                                     "ssp_restored": bool(res.meta.get("ssp_restored")),
                                     "head_position": report, "rows": rows}
    results["xfit_mapping"] = "template 3-axis scaling to the fiducials + head shape"
    results["command"] = f"python benchmarks/sample_template_meg.py --data {args.data}"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1, default=float))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
