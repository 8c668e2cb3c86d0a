"""Window nets against the time courses real averages show them: bumps, plateaus, flanks.

Usage::

    python benchmarks/window_courses.py MODEL.pt [MODEL.pt ...] [--n 1000] [--snr 10 5]

Each net is a window net (5 samples) for the shipped 64-channel 10-10 layout (e.g. trained with
``SimulationConfig(evoked_width_s=...)`` or without). Single point sources (half deep) under
the realistic mismatch (``out/pretrained`` test forward: skull ×0.6 / ×1.6, soft tissues
shifted, electrodes moved 5 mm, 1.5 mm mesh, off-grid), the same topographies and white
noise for every net and course, SNR over the window; the peak of the map at the centre
sample. Courses: 'bump' (the window-relative Gaussian bumps the shipped window nets were
trained on), 'plateau' (constant: a 5-sample window of a 600 Hz average near its peak),
'flank' (a linear rise from 0.2 to 1: the window on a component's flank). Writes
``benchmarks/results/window_courses.{json,md}``.
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
N_TIMES = 5


def _courses(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """(n, N_TIMES) unit-peak time courses of each family."""
    t = np.arange(N_TIMES) / 250.0
    dur = t[-1]
    mu = rng.uniform(0.25, 0.75, size=(n, 1)) * dur
    sd = rng.uniform(0.05, 0.25, size=(n, 1)) * dur + 1e-3
    bump = np.exp(-0.5 * ((t - mu) / sd) ** 2)
    return {"bump": bump / bump.max(axis=1, keepdims=True),
            "plateau": np.ones((n, N_TIMES)),
            "flank": np.tile(np.linspace(0.2, 1.0, N_TIMES), (n, 1))}


def main() -> None:
    from deepesi.pretrained import load_pretrained
    from deepesi.simulation import read_work_leadfield
    from deepesi.training import read_model

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("models", nargs="+", help="window net files (or shipped names)")
    p.add_argument("--work", default="out/pretrained")
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--snr", type=float, nargs="+", default=[10.0, 5.0])
    p.add_argument("--seed", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--name", default="window_courses")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    _, lf = load_pretrained("template-eeg64")
    src = lf.source_space
    test = read_work_leadfield(args.work, "test-realistic")
    topo, ch_names, true, deep = single_source_fields(test, args.n, args.seed)
    rng = np.random.default_rng(args.seed)
    courses = _courses(rng, args.n)
    noise = average_referenced_noise(rng, (args.n, topo.shape[1], N_TIMES))
    nets = {Path(m).stem: read_model(m) for m in args.models}
    rows, t0 = [], time.perf_counter()
    for snr in args.snr:
        for course, c in courses.items():
            data = noisy_windows(topo, c, noise, snr)
            for label, net in nets.items():
                maps = np.asarray(net.predict(data, ch_names=ch_names))
                est = src.pos[np.argmax(maps[:, N_TIMES // 2 :: N_TIMES], axis=0)]
                err = np.linalg.norm(est - true, axis=1) * 1e3
                rows.append({"snr_db": snr, "course": course, "net": label,
                             "deep_median_mm": round(float(np.median(err[deep])), 2),
                             "cortical_median_mm": round(float(np.median(err[~deep])), 2),
                             "within_10mm": round(float(np.mean(err <= 10)), 3)})
                r = rows[-1]
                print(f"{snr:4.0f} dB {course:>8} {label:>24}: {r['deep_median_mm']:5.2f} / "
                      f"{r['cortical_median_mm']:5.2f} mm, {100 * r['within_10mm']:.0f} % "
                      "<= 10 mm", flush=True)
    lines = [f"Single point sources, realistic mismatch, {N_TIMES}-sample windows, {args.n} per "
             f"course and SNR (seed {args.seed}): median error deep / cortical (mm), share "
             "within 10 mm.", "", "| SNR (dB) | course | net | deep / cortical | ≤ 10 mm |",
             "|---:|---|---|---|---:|"]
    lines += [f"| {r['snr_db']:.0f} | {r['course']} | {r['net']} | {r['deep_median_mm']:.2f} / "
              f"{r['cortical_median_mm']:.2f} | {100 * r['within_10mm']:.1f} % |" for r in rows]
    table = "\n".join(lines) + "\n"
    print(table)
    RESULTS.mkdir(exist_ok=True)
    doc = {"n": args.n, "seed": args.seed, "models": args.models, "rows": rows,
           "seconds": round(time.perf_counter() - t0, 1),
           "command": "python benchmarks/window_courses.py " + " ".join(args.models)
                      + f" --n {args.n}"}
    (RESULTS / f"{args.name}.json").write_text(json.dumps(doc, indent=1) + "\n")
    (RESULTS / f"{args.name}.md").write_text(table)
    print(f"written: benchmarks/results/{args.name}.json, .md")


if __name__ == "__main__":
    main()
