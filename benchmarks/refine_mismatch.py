"""Does a local dipole fit around the network's peak help when the forward is wrong?

Usage::

    python benchmarks/refine_mismatch.py --work out/pretrained [--model template-eeg64-w5]
        [--n 1000] [--snr 5 10]

The network's peak, the peak moved to the best-fitting grid point within one or two grid
diagonals (what ``apply_network(refine=True)`` does, :class:`deepesi.training.evaluate.
LocallyRefined`) and the exhaustive dipole scan, all on the model's nominal forward, scored on
single sources simulated with the realistic-mismatch test forward (skull ×0.6/×1.6, electrodes
moved 5 mm, 1.5 mm mesh, off-grid; ``scripts/build_pretrained.py --stage forward --realistic
--only test-realistic``). Writes ``benchmarks/results/refine_mismatch.json``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    from deepesi.pretrained import load_pretrained
    from deepesi.simulation import read_work_leadfield
    from deepesi.training.evaluate import (
        DipoleScanReference,
        LocallyRefined,
        single_source_errors,
        summarize_errors,
    )

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", default="out/pretrained")
    p.add_argument("--model", default="template-eeg64-w5")
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--snr", type=float, nargs="+", default=[5.0, 10.0])
    p.add_argument("--seed", type=int, default=11)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    model, lf = load_pretrained(args.model)
    test = read_work_leadfield(args.work, "test-realistic")
    scan = DipoleScanReference(lf, model.channel_scale)
    diag = np.sqrt(3.0) * float(lf.source_space.spacing) * 1.01
    methods = {"net": model,
               "net + refine (1 diagonal)": LocallyRefined(model, scan, lf.source_space.pos,
                                                           diag),
               "net + refine (2 diagonals)": LocallyRefined(model, scan, lf.source_space.pos,
                                                            2 * diag),
               "dipole scan": scan}
    rows = []
    for snr in args.snr:
        for name, m in methods.items():
            err, deep, est_deep = single_source_errors(m, lf, test, args.n,
                                                       args.seed + int(10 * snr), snr,
                                                       n_times=int(model.net.n_times))
            s = summarize_errors(err, deep, est_deep, snr_db=snr)
            rows.append({"snr_db": snr, "method": name, **s})
            print(f"{snr:4.0f} dB {name:>27} | deep {s['subcortical']['median_mm']:5.1f} mm, "
                  f"cortical {s['cortical']['median_mm']:5.1f} mm, within 10 mm "
                  f"{100 * s['all']['within_10mm']:3.0f} %", flush=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "refine_mismatch.json").write_text(json.dumps(
        {"model": args.model, "n": args.n, "seed": args.seed, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
