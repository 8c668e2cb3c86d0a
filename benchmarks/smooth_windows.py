"""Smooth evoked windows at a high sampling rate: single-sample vs window nets as a real evoked
average shows them.

Usage::

    python benchmarks/smooth_windows.py [--n 500] [--snr 10 0]

The window nets were trained on 5-sample windows whose time courses change within the window
(bumps of 5-25 % of its length, 4-30 Hz oscillations, smoothed noise; 250 Hz). A real average
sampled at 600 Hz is nearly constant over 5 samples. Here single point sources (half deep)
under the realistic mismatch (``out/pretrained`` and ``out/pretrained128`` test forwards, as
``benchmarks/anycap_windows.py``) get a smooth N100-like course (Gaussian, sd 8 samples, over a
13-sample window: 90-110 ms at 600 Hz), white sensor noise at the SNR over the window; the same
topographies and noise for every net. Scored: the peak of the map at the window's centre sample,
and of the mean map over the window (as ``examples/sample_auditory.py`` reads a window).
Writes ``benchmarks/results/smooth_windows.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from course_windows import average_referenced_noise, noisy_windows, single_source_fields

RESULTS = Path(__file__).resolve().parent / "results"
N_WINDOW = 13


def main() -> None:
    from deepesi.anatomy.template import load_template
    from deepesi.inverse.anycap import CapBoundModel
    from deepesi.pretrained import load_pretrained
    from deepesi.sensors import make_eeg_sensors
    from deepesi.simulation import read_work_leadfield

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work64", default="out/pretrained")
    p.add_argument("--work128", default="out/pretrained128")
    p.add_argument("--n", type=int, default=500)
    p.add_argument("--snr", type=float, nargs="+", default=[10.0, 0.0])
    p.add_argument("--seed", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    head = load_template()
    single, slf = load_pretrained("template-eeg")
    window, _ = load_pretrained("template-eeg-w5")
    layout64, _ = load_pretrained("template-eeg64-w5")
    src = window.source_space
    course = np.exp(-0.5 * ((np.arange(N_WINDOW) - N_WINDOW // 2) / 8.0) ** 2)
    rows, t0 = [], time.perf_counter()
    for layout, work in (("standard_1010_64", args.work64), ("standard_1005_128", args.work128)):
        if not (Path(work) / "test-realistic-gain.npy").exists():
            print(f"skipped {layout}: no {work}/test-realistic-gain.npy")
            continue
        test = read_work_leadfield(work, "test-realistic")
        nominal = make_eeg_sensors(head, layout)
        nets = {"template-eeg": CapBoundModel(single, nominal, slf.centre),
                "template-eeg-w5": CapBoundModel(window, nominal, slf.centre)}
        if layout == "standard_1010_64":
            nets["template-eeg64-w5 (this layout only)"] = layout64
        topo, ch_names, true, _ = single_source_fields(test, args.n, args.seed)
        for snr in args.snr:
            noise = average_referenced_noise(np.random.default_rng(args.seed),
                                             (args.n, topo.shape[1], N_WINDOW))
            data = noisy_windows(topo, course, noise, snr)
            for label, net in nets.items():
                maps = np.asarray(net.predict(data, ch_names=ch_names))
                maps = maps.reshape(len(maps), args.n, N_WINDOW)
                for reading, m in (("centre sample", maps[:, :, N_WINDOW // 2]),
                                   ("mean map", maps.mean(axis=2))):
                    err = np.linalg.norm(src.pos[np.argmax(m, axis=0)] - true, axis=1) * 1e3
                    rows.append({"cap": layout, "snr_db": snr, "net": label, "reading": reading,
                                 "median_mm": round(float(np.median(err)), 2),
                                 "within_10mm": round(float(np.mean(err <= 10)), 3)})
                    print(f"{layout:>18} {snr:4.0f} dB {label:>36} {reading:>13}: "
                          f"{rows[-1]['median_mm']:5.2f} mm, "
                          f"{100 * rows[-1]['within_10mm']:.0f} % <= 10 mm", flush=True)
    lines = [f"Single point sources (half deep), realistic mismatch, a smooth course over "
             f"{N_WINDOW} samples (Gaussian, sd 8 samples), {args.n} per cap and SNR (seed "
             f"{args.seed}): median error (mm), share within 10 mm.", "",
             "| cap | SNR (dB) | net | centre sample | mean map |", "|---|---:|---|---|---|"]
    for i in range(0, len(rows), 2):
        a, b = rows[i], rows[i + 1]
        lines.append(f"| {a['cap']} | {a['snr_db']:.0f} | {a['net']} | {a['median_mm']:.2f} "
                     f"({100 * a['within_10mm']:.0f} %) | {b['median_mm']:.2f} "
                     f"({100 * b['within_10mm']:.0f} %) |")
    table = "\n".join(lines) + "\n"
    print(table)
    RESULTS.mkdir(exist_ok=True)
    doc = {"n": args.n, "seed": args.seed, "n_window": N_WINDOW, "rows": rows,
           "seconds": round(time.perf_counter() - t0, 1),
           "command": f"python benchmarks/smooth_windows.py --n {args.n} --snr "
                      + " ".join(f"{s:g}" for s in args.snr)}
    (RESULTS / "smooth_windows.json").write_text(json.dumps(doc, indent=1) + "\n")
    (RESULTS / "smooth_windows.md").write_text(table)
    print("written: benchmarks/results/smooth_windows.json, .md")


if __name__ == "__main__":
    main()
