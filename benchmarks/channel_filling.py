"""What filling missing electrodes costs: the shipped template-eeg64 net on caps with fewer.

Usage::

    python benchmarks/channel_filling.py [--n 20]

For ``--n`` simulated demo recordings (the demo's three sources, 10 dB, one seed each) and
``k`` = 0, 4, 8, 16 electrodes removed at random (seeded), the net localizes the recording with
the missing electrodes interpolated (:func:`deepesi.inverse.channels.adapt_eeg_channels`); the
table gives the median and 90th percentile distance between the strongest peak and the one of
the full 64-channel recording, and the median distance of the strongest peak to the nearest true
source. Writes ``benchmarks/results/channel_filling.json``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import mne
import numpy as np

from deepesi.demo import simulate_demo_recording
from deepesi.inverse import apply_network
from deepesi.pretrained import load_pretrained

HERE = Path(__file__).resolve().parent


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=20)
    args = p.parse_args()
    mne.set_log_level("ERROR")
    model, lf = load_pretrained("template-eeg64")
    pos = lf.source_space.pos
    rows = {k: {"shift_mm": [], "truth_mm": []} for k in (0, 4, 8, 16)}
    for seed in range(args.n):
        evoked, cov, truth = simulate_demo_recording(lf, snr_db=10.0, seed=seed)
        true_pos = np.array([t["pos_m"] for t in truth])
        full = apply_network(evoked, model, noise_cov=cov)
        ref = pos[int(full.peaks(1)[0]["source"])]
        rng = np.random.default_rng(seed)
        for k in rows:
            ev = evoked.copy()
            if k:
                ev.drop_channels(list(rng.choice(ev.ch_names, size=k, replace=False)))
            res = apply_network(ev, model, noise_cov=cov)
            peak = pos[int(res.peaks(1)[0]["source"])]
            rows[k]["shift_mm"].append(float(np.linalg.norm(peak - ref) * 1e3))
            rows[k]["truth_mm"].append(float(np.min(np.linalg.norm(true_pos - peak, axis=1))
                                             * 1e3))
    lines = ["| electrodes filled (of 64) | peak shift, median (mm) | peak shift, 90th pct (mm) "
             "| strongest peak to nearest true source, median (mm) |", "|---|---|---|---|"]
    for k, r in rows.items():
        lines.append(f"| {k} | {np.median(r['shift_mm']):.1f} | "
                     f"{np.percentile(r['shift_mm'], 90):.1f} | {np.median(r['truth_mm']):.1f} |")
    table = "\n".join(lines)
    print(table)
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    (out / "channel_filling.json").write_text(json.dumps({"n": args.n, "rows": rows}, indent=1))
    print(f"wrote {out / 'channel_filling.json'}")


if __name__ == "__main__":
    main()
