"""Any cap, evoked windows: the montage-independent nets against a net for the layout alone.

Usage::

    python scripts/build_pretrained.py --stage forward --realistic --only test-realistic \\
        --work out/pretrained
    python scripts/build_pretrained.py --stage forward --realistic --only test-realistic \\
        --work out/pretrained128 --layout standard_1005_128
    python benchmarks/anycap_windows.py --anycap out/anycap/model-w5.pt [--n 1000]

Single point sources (half deep), simulated with the realistic-mismatch test forwards of the
64-channel 10-10 and 128-channel 10-05 layouts (skull ×0.6 / ×1.6, soft tissues shifted
8-20 %, every electrode moved 5 mm RMS on the scalp, 1.5 mm mesh, off-grid sources), and with
the 21-channel 10-20 subset of the 64-channel forward (re-referenced to its own average). Each
sample is a 5-sample evoked window at 10 and 5 dB (SNR over the window); a window net reads the
window, a single-sample net its centre sample. Every net is told the nominal electrode
positions. Compared on the same samples: the shipped any-cap net (``template-eeg``, single
samples), the any-cap net of ``--anycap`` (e.g. trained on windows by ``scripts/build_anycap.py
--n-times 5``), the shipped net for the 64-channel layout alone (``template-eeg64-w5``) and the
exhaustive dipole scan on the nominal (interpolated) forward. Writes
``benchmarks/results/<name>.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

RESULTS = Path(__file__).resolve().parent / "results"
#: The 10-20 subset (as scripts/build_anycap.py's 21-channel evaluation cap).
CAP_1020 = ["Fp1", "Fpz", "Fp2", "F7", "F3", "Fz", "F4", "F8", "T7", "C3", "Cz", "C4", "T8",
            "P7", "P3", "Pz", "P4", "P8", "O1", "Oz", "O2"]


def _caps(head, work64: str, work128: str) -> dict:
    """Cap name → (nominal sensors, realistic-mismatch test lead field)."""
    from deepesi.forward.leadfield import LeadField
    from deepesi.sensors import make_eeg_sensors
    from deepesi.simulation import read_work_leadfield

    caps = {}
    for layout, work in (("standard_1010_64", work64), ("standard_1005_128", work128)):
        if not (Path(work) / "test-realistic-gain.npy").exists():
            print(f"skipped {layout}: no {work}/test-realistic-gain.npy")
            continue
        test = read_work_leadfield(work, "test-realistic")
        nominal = make_eeg_sensors(head, layout)
        if list(test.ch_names) != list(nominal.eeg_names):
            raise SystemExit(f"{work}: the test forward's channels are not {layout}'s.")
        caps[layout] = (nominal, test)
        if layout == "standard_1010_64":
            missing = [c for c in CAP_1020 if c not in test.ch_names]
            if missing:
                raise SystemExit(f"the 64-channel layout lacks {missing}.")
            rows = [test.ch_names.index(c) for c in CAP_1020]
            g = test.gain[rows]
            sub = LeadField(g - g.mean(axis=0), CAP_1020, ["eeg"] * len(CAP_1020),
                            test.source_space)
            caps["standard_1020_21"] = (make_eeg_sensors(head, layout, ch_names=CAP_1020), sub)
    return caps


def main() -> None:
    from deepesi.anatomy.template import load_template
    from deepesi.inverse.anycap import CapBoundModel
    from deepesi.pretrained import load_pretrained
    from deepesi.training import evaluate_single_sources, read_model
    from deepesi.training.evaluate import DipoleScanReference

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--anycap", nargs="*", default=[], metavar="MODEL.pt",
                   help="any-cap nets to compare beside the shipped template-eeg")
    p.add_argument("--work64", default="out/pretrained")
    p.add_argument("--work128", default="out/pretrained128")
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--snr", type=float, nargs="+", default=[10.0, 5.0])
    p.add_argument("--n-times", type=int, default=5, help="samples per evoked window")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--name", default="anycap_windows")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    head = load_template()
    shipped, slf = load_pretrained("template-eeg")
    nets = {"template-eeg (shipped)": shipped}
    for f in args.anycap:
        nets[f"any-cap {Path(f).stem}"] = read_model(f)
    w5, _ = load_pretrained("template-eeg64-w5")
    rows, t0 = [], time.perf_counter()
    for cap, (nominal, test) in _caps(head, args.work64, args.work128).items():
        lf_nominal = slf.leadfield(nominal)
        cases = {label: CapBoundModel(m, nominal, slf.centre) for label, m in nets.items()}
        if cap == "standard_1010_64":
            cases["template-eeg64-w5 (this layout only)"] = w5
        cases["dipole scan (nominal forward)"] = DipoleScanReference(lf_nominal)
        for label, model in cases.items():
            for snr in args.snr:
                r = evaluate_single_sources(model, lf_nominal, test, args.n, args.seed,
                                            snr_db=snr, n_times=args.n_times)
                rows.append({"cap": cap, "method": label, "snr_db": snr,
                             "deep_median_mm": round(r["subcortical"]["median_mm"], 2),
                             "cortical_median_mm": round(r["cortical"]["median_mm"], 2),
                             "within_10mm": round(r["all"]["within_10mm"], 3),
                             "confusion_deep_to_cortex": round(r["subcortical"]["confusion"], 3),
                             "confusion_cortex_to_deep": round(r["cortical"]["confusion"], 3)})
                print(f"{cap:>18} {label:>38} {snr:4.0f} dB: {rows[-1]['deep_median_mm']:5.2f}"
                      f" / {rows[-1]['cortical_median_mm']:5.2f} mm, "
                      f"{100 * rows[-1]['within_10mm']:.0f} % <= 10 mm", flush=True)
    lines = [f"Single point sources as {args.n_times}-sample evoked windows, realistic mismatch, "
             f"{args.n} samples per cap and SNR (seed {args.seed}); median error (mm) deep / "
             "cortical, share within 10 mm, compartment confusion deep→cortex / cortex→deep.",
             "", "| cap | method | SNR (dB) | deep / cortical (mm) | within 10 mm | confusion |",
             "|---|---|---:|---|---:|---|"]
    for r in rows:
        lines.append(f"| {r['cap']} | {r['method']} | {r['snr_db']:.0f} | "
                     f"{r['deep_median_mm']:.2f} / {r['cortical_median_mm']:.2f} | "
                     f"{100 * r['within_10mm']:.1f} % | "
                     f"{100 * r['confusion_deep_to_cortex']:.1f} / "
                     f"{100 * r['confusion_cortex_to_deep']:.1f} % |")
    table = "\n".join(lines) + "\n"
    print(table)
    RESULTS.mkdir(exist_ok=True)
    doc = {"n": args.n, "seed": args.seed, "n_times": args.n_times, "rows": rows,
           "seconds": round(time.perf_counter() - t0, 1),
           "command": "python benchmarks/anycap_windows.py " + " ".join(
               ["--anycap", *args.anycap] if args.anycap else []) + f" --n {args.n}"}
    (RESULTS / f"{args.name}.json").write_text(json.dumps(doc, indent=1) + "\n")
    (RESULTS / f"{args.name}.md").write_text(table)
    print(f"written: benchmarks/results/{args.name}.json, .md")


if __name__ == "__main__":
    main()
