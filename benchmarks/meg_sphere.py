"""Accuracy of the MEG lead field (one-layer BEM on an extracted inner skull) on a sphere.

A 4-shell voxel sphere (2.5 mm voxels; inner skull at 78 mm) and 200 random sources 0.5-38 mm
below the inner skull; reference: MNE's analytic spherical model (Sarvas), exact for MEG in any
spherically symmetric conductor. Varies the BEM mesh (icosahedron grade) and the margin by which
the surface is pushed out to enclose the sources. Prints a table; writes
benchmarks/results/meg_sphere.json.

Run: OMP_NUM_THREADS=1 .venv/bin/python benchmarks/meg_sphere.py
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np


def main() -> list[dict]:
    import mne

    from deepesi.anatomy import HeadModel
    from deepesi.forward.meg import compute_meg_leadfield, discrete_source_space
    from deepesi.sensors import sensors_from_info
    from deepesi.simulation.sphere import helmet_info, make_sphere_labels

    vol, aff = make_sphere_labels(shape=64, voxel_mm=2.5, radii_mm=(90, 84, 78, 70))
    head = HeadModel(vol, aff, name="sphere-2.5mm")
    rng = np.random.default_rng(0)
    d = rng.normal(size=(200, 3))
    d[:, 2] = np.abs(d[:, 2])
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    r = rng.uniform(0.040, 0.0775, size=(200, 1))
    pos = d * r
    depth_mm = 78.0 - r[:, 0] * 1000
    info = helmet_info(np.eye(4), radius=0.125)
    sensors = sensors_from_info(info, np.eye(4), head, picks=("meg",))
    sphere = mne.make_sphere_model((0.0, 0.0, 0.0), None, verbose=False)
    fwd = mne.make_forward_solution(info, mne.transforms.Transform("head", "mri", np.eye(4)),
                                    discrete_source_space(pos), sphere, meg=True, eeg=False,
                                    verbose=False)
    ref = fwd["sol"]["data"].reshape(len(info["ch_names"]), len(pos), 3)
    rows = []
    print(f"{len(pos)} sources, {len(info['ch_names'])} MEG channels; relative error per source")
    print(f"{'grade':>5} {'margin mm':>9} {'time s':>7} {'corr min':>8} {'rel med':>8} "
          f"{'rel max':>8} {'max <5mm':>8} {'max 5-10':>8} {'max >10':>8}")
    for grade in (3, 4):
        for margin in (0.002, 0.005):
            t0 = time.perf_counter()
            gain, _, _, _ = compute_meg_leadfield(head, sensors, pos, grade=grade, margin=margin,
                                                  verbose=False)
            secs = time.perf_counter() - t0
            corr = np.array([np.corrcoef(gain[:, i].ravel(), ref[:, i].ravel())[0, 1]
                             for i in range(len(pos))])
            rel = np.linalg.norm(gain - ref, axis=(0, 2)) / np.linalg.norm(ref, axis=(0, 2))
            bands = [rel[depth_mm < 5], rel[(depth_mm >= 5) & (depth_mm < 10)],
                     rel[depth_mm >= 10]]
            row = {"grade": grade, "margin_mm": margin * 1000, "seconds": secs,
                   "corr_min": float(corr.min()), "rel_median": float(np.median(rel)),
                   "rel_max": float(rel.max()), "rel_max_depth_lt5mm": float(bands[0].max()),
                   "rel_max_depth_5_10mm": float(bands[1].max()),
                   "rel_max_depth_gt10mm": float(bands[2].max())}
            rows.append(row)
            print(f"{grade:>5} {margin * 1000:>9.0f} {secs:>7.1f} {corr.min():>8.4f} "
                  f"{np.median(rel):>8.3f} {rel.max():>8.3f} {bands[0].max():>8.3f} "
                  f"{bands[1].max():>8.3f} {bands[2].max():>8.3f}")
    out = Path(__file__).parent / "results" / "meg_sphere.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(rows, indent=1))
    return rows


if __name__ == "__main__":
    main()
