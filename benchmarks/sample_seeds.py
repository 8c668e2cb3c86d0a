"""How far the sample example's answers move with the training seed.

Usage::

    python examples/sample_auditory.py --data DATA -o out/sample            # seed 0
    python examples/sample_auditory.py --data DATA -o out/sample --seed 1 --methods dSPM
    python examples/sample_auditory.py --data DATA -o out/sample --seed 2 --methods dSPM
    python benchmarks/sample_seeds.py out/sample

Reads ``results.json`` and ``results-seed<k>.json`` of one output folder (the nets of each seed
train on the same head, sources and nominal forward; the forward ensemble is drawn with the
seed too) and prints, per modality and method, each seed's distances (mm) of the left /
right peak to the MNI auditory box and of the right peak to the xfit dipole, and the
**spread**: the largest distance between two seeds' peak positions in each hemisphere (the
criterion of issue 13: ≤ 5 mm). A classical method (dSPM) does not depend on the seed and
is there as the check that the data and the forward are the same in every run. Writes
``benchmarks/results/sample_seeds.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import re
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
METHODS = ("deepesi", "deepesi-sources", "dSPM")


def _runs(folder: Path) -> dict[int, dict]:
    runs = {}
    for f in sorted(folder.glob("results*.json")):
        m = re.fullmatch(r"results(?:-seed(\d+))?\.json", f.name)
        if m:
            runs[int(m.group(1) or 0)] = json.loads(f.read_text())
    if not runs:
        raise SystemExit(f"no results*.json in {folder}: run examples/sample_auditory.py first.")
    return runs


def _spread(points: list) -> float | None:
    pts = [np.asarray(p, float) for p in points if p is not None]
    if len(pts) < 2:
        return None
    return float(max(np.linalg.norm(a - b) for a, b in itertools.combinations(pts, 2)))


def summarize(runs: dict[int, dict]) -> list[dict]:
    """One row per modality × method: per-seed distances and the spread of the peaks."""
    rows = []
    modalities = list(dict.fromkeys(r["modality"] for run in runs.values() for r in run["rows"]))
    for modality, method in itertools.product(modalities, METHODS):
        per_seed = {}
        for seed, run in sorted(runs.items()):
            hit = [r for r in run["rows"] if r["modality"] == modality and r["method"] == method
                   and "error" not in r]
            if hit:
                per_seed[seed] = hit[0]
        if not per_seed:
            continue
        row = {"modality": modality, "method": method, "seeds": sorted(per_seed)}
        for key in ("aud_mni_lh_mm", "aud_mni_rh_mm", "dist_dipole_mm"):
            row[key] = [per_seed[s].get(key) for s in row["seeds"]]
        for h in ("lh", "rh"):
            row[f"spread_{h}_mm"] = _spread([per_seed[s].get(f"peak_{h}_mri_mm")
                                             for s in row["seeds"]])
        rows.append(row)
    return rows


def _fmt(values) -> str:
    if isinstance(values, list):
        return " / ".join("—" if v is None else f"{v:.1f}" for v in values)
    return "—" if values is None else f"{values:.1f}"


def markdown(rows: list[dict]) -> str:
    lines = ["| modality | method | seeds | LH to box (mm) | RH to box (mm) | RH to xfit (mm) | "
             "spread LH (mm) | spread RH (mm) |", "|---|---|---|---|---|---|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['modality']} | {r['method']} | {', '.join(map(str, r['seeds']))} | "
                     f"{_fmt(r['aud_mni_lh_mm'])} | {_fmt(r['aud_mni_rh_mm'])} | "
                     f"{_fmt(r['dist_dipole_mm'])} | {_fmt(r['spread_lh_mm'])} | "
                     f"{_fmt(r['spread_rh_mm'])} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folder", help="the example's output folder (-o)")
    p.add_argument("--name", default="sample_seeds", help="output file stem")
    args = p.parse_args()
    runs = _runs(Path(args.folder))
    rows = summarize(runs)
    table = markdown(rows)
    print(table)
    RESULTS.mkdir(exist_ok=True)
    doc = {"folder": str(args.folder), "seeds": sorted(runs), "rows": rows,
           "training": {str(s): run.get("training") for s, run in runs.items()},
           "settings": {str(s): run.get("settings") for s, run in runs.items()}}
    (RESULTS / f"{args.name}.json").write_text(json.dumps(doc, indent=1) + "\n")
    (RESULTS / f"{args.name}.md").write_text(table)


if __name__ == "__main__":
    main()
