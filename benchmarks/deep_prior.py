"""The prior of deep sources, measured: cortical <-> deep confusion and error by SNR.

Usage::

    python scripts/build_pretrained.py --stage forward --realistic --only test-realistic \
        --work out/pretrained                                  # the test forward (~3 min)
    python benchmarks/deep_prior.py --work out/pretrained [--model template-eeg64-w5]
        [--n 1000] [--priors 0.4 0.25 0.11 0.05] [--snr 0 5 10]

A shipped net trained with a prior ``f`` of a deep first source (``deep_fraction``, 0.4) is read
under other priors ``p`` (``predict(deep_prior=p)``: Bayes' rule on its softmax posterior, no
retraining), its compartment read off the peak ("peak") or decided by the posterior mass in
deep structures ("mass", :func:`deepesi.inverse.compartments.gate_compartments`), on the same
single-source samples of the realistic-mismatch test forward (skull
×0.6/×1.6, electrodes moved 5 mm, 1.5 mm mesh, off-grid sources; half deep, half cortical,
:func:`deepesi.training.evaluate.single_source_errors`). Per SNR, rule and prior: median error
and share within 10 mm for deep and cortical sources, and both confusions — a cortical source whose
peak lands in a deep structure (**false deep**, the answer a clinician must be able to trust)
and a deep one whose peak lands in cortex (**missed deep**). The exhaustive dipole scan on the
same samples is the classical line. Writes ``benchmarks/results/deep_prior.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

RESULTS = Path(__file__).resolve().parent / "results"


class _Prior:
    """The model read under another deep prior (None: as trained); with ``mass`` its peak put
    in the compartment holding most of the posterior (:func:`gate_compartments`)."""

    def __init__(self, model, prior, mass):
        self.model, self.prior, self.mass, self.ch_names = model, prior, mass, model.ch_names
        self.deep = model.source_space.is_subcortical  # a bound model hands its base's on

    def predict(self, data, ch_names=None):
        from deepesi.inverse.compartments import gate_compartments

        maps = self.model.predict(data, ch_names=ch_names, deep_prior=self.prior)
        return gate_compartments(maps, self.deep)[0] if self.mass else maps


def main() -> None:
    from deepesi.pretrained import PRETRAINED, load_pretrained
    from deepesi.simulation import read_work_leadfield
    from deepesi.training.evaluate import (
        DipoleScanReference,
        single_source_errors,
        summarize_errors,
    )

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", default="out/pretrained", help="folder with test-realistic-gain")
    p.add_argument("--model", default="template-eeg64-w5",
                   help="shipped model (template-eeg: bound to the test forward's electrodes)")
    p.add_argument("--n", type=int, default=1000, help="samples per SNR")
    p.add_argument("--priors", type=float, nargs="+", default=[0.4, 0.25, 0.11],
                   help="priors for the peak rule")
    p.add_argument("--mass-priors", type=float, nargs="+", default=[0.4, 0.35, 0.3, 0.25],
                   help="priors for the mass rule")
    p.add_argument("--snr", type=float, nargs="+", default=[0.0, 5.0, 10.0])
    p.add_argument("--seed", type=int, default=11)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--name", default="deep_prior", help="output file stem")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    model, lf = load_pretrained(args.model)
    test = read_work_leadfield(args.work, "test-realistic")
    trained = model.trained_deep_fraction
    n_times = int(getattr(model.net, "n_times", 1))
    scan_scale = model.channel_scale
    if PRETRAINED[args.model].get("cap_free"):
        # the montage-independent net, bound to the test forward's 64 electrodes as
        # deepesi localize binds a recording (their lead field from the dense scalp one)
        from deepesi.anatomy.template import load_template
        from deepesi.inverse.anycap import CapBoundModel
        from deepesi.sensors import make_eeg_sensors

        nominal = make_eeg_sensors(load_template(), "colin27_1005", ch_names=list(test.ch_names))
        model, lf = CapBoundModel(model, nominal, lf.centre), lf.leadfield(nominal)
        scan_scale = None
    deep_share = float(np.mean(lf.source_space.is_subcortical))
    rows = []
    t0 = time.perf_counter()
    for snr in args.snr:
        seed = args.seed + int(10 * snr)
        candidates = [("net, peak", prior, _Prior(model, None if prior == trained else prior,
                                                  False)) for prior in args.priors]
        candidates += [("net, mass", prior, _Prior(model, None if prior == trained else prior,
                                                   True)) for prior in args.mass_priors]
        candidates.append(("dipole scan", None, DipoleScanReference(lf, scan_scale)))
        for method, prior, m in candidates:
            err, deep, est_deep = single_source_errors(m, lf, test, args.n, seed, snr,
                                                       n_times=n_times)
            s = summarize_errors(err, deep, est_deep, snr_db=snr)
            rows.append({"snr_db": snr, "method": method, "deep_prior": prior,
                         "deep_median_mm": s["subcortical"]["median_mm"],
                         "cortical_median_mm": s["cortical"]["median_mm"],
                         "deep_within_10mm": s["subcortical"]["within_10mm"],
                         "cortical_within_10mm": s["cortical"]["within_10mm"],
                         "false_deep": s["cortical"]["confusion"],
                         "missed_deep": s["subcortical"]["confusion"],
                         "n_deep": s["subcortical"]["n"], "n_cortical": s["cortical"]["n"]})
            r = rows[-1]
            print(f"{snr:4.0f} dB {method:>12} prior {prior if prior is not None else '-':>5}"
                  f" | deep {r['deep_median_mm']:5.1f} mm, cortical {r['cortical_median_mm']:5.1f}"
                  f" mm | false deep {100 * r['false_deep']:5.1f} %, missed deep "
                  f"{100 * r['missed_deep']:5.1f} %", flush=True)
    lines = [f"Model `{args.model}` (trained deep prior {trained}; deep points are "
             f"{100 * deep_share:.1f} % of the grid), realistic-mismatch test forward, "
             f"{args.n} single sources per SNR (half deep), same samples for every row.", "",
             "| SNR (dB) | method | deep prior | deep median (mm) | cortical median (mm) | "
             "deep ≤ 10 mm | cortical ≤ 10 mm | false deep (cortical → deep) | missed deep "
             "(deep → cortical) |", "|---|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        prior = "—" if r["deep_prior"] is None else f"{r['deep_prior']:g}"
        lines.append(f"| {r['snr_db']:g} | {r['method']} | {prior} | {r['deep_median_mm']:.1f} | "
                     f"{r['cortical_median_mm']:.1f} | {100 * r['deep_within_10mm']:.0f} % | "
                     f"{100 * r['cortical_within_10mm']:.0f} % | {100 * r['false_deep']:.1f} % | "
                     f"{100 * r['missed_deep']:.1f} % |")
    table = "\n".join(lines) + "\n"
    print(table)
    RESULTS.mkdir(exist_ok=True)
    doc = {"model": args.model, "trained_deep_prior": trained, "deep_share_of_grid": deep_share,
           "n": args.n, "seed": args.seed, "seconds": time.perf_counter() - t0, "rows": rows}
    (RESULTS / f"{args.name}.json").write_text(json.dumps(doc, indent=1) + "\n")
    (RESULTS / f"{args.name}.md").write_text(table)


if __name__ == "__main__":
    main()
