"""Source space on the template head: points per region, build time, normal and graph checks.

Run:  .venv/bin/python benchmarks/sources_template.py [--spacing 5 [7 10 ...]] [--repeat 3]

Prints one table per spacing and writes benchmarks/results/sources_template.json.

Normal check: for every cortical point, the tissue 3 mm along +normal and 3 mm along -normal.
A normal that points from WM out toward the CSF finds (almost) never WM outside and never CSF
inside.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
from scipy.sparse import csgraph

from deepesi.anatomy.template import load_template
from deepesi.sources import make_source_space

RESULTS = Path(__file__).parent / "results" / "sources_template.json"


def _tissue_at(head, pos_m: np.ndarray) -> np.ndarray:
    ijk = np.rint(head.mri_to_voxel(pos_m)).astype(int)
    ijk = np.clip(ijk, 0, np.array(head.shape) - 1)
    return head.labels[tuple(ijk.T)]


def measure(head, spacing_mm: float, repeat: int) -> dict:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        src = make_source_space(head, spacing_mm / 1000.0)
        times.append(time.perf_counter() - t0)
    cortex = ~src.is_subcortical
    step = 3e-3
    outside = _tissue_at(head, src.pos[cortex] + step * src.normals[cortex])
    inside = _tissue_at(head, src.pos[cortex] - step * src.normals[cortex])
    wm, csf = head.tissues.label_of("WM"), head.tissues.label_of("CSF")
    degree = np.asarray(src.adjacency.sum(axis=1)).ravel()
    n_comp, comp = csgraph.connected_components(src.adjacency, directed=False)
    return {
        "spacing_mm": spacing_mm,
        "n_sources": src.n_sources,
        "n_cortical": int(cortex.sum()),
        "n_subcortical": int((~cortex).sum()),
        "counts_per_region": src.counts_per_region(),
        "added_points": src.meta["added_points"],
        "build_time_s_best": min(times),
        "build_time_s_all": times,
        "normal_check_3mm": {
            "outward_in_wm": float(np.mean(outside == wm)),
            "outward_in_csf": float(np.mean(outside == csf)),
            "inward_in_wm": float(np.mean(inside == wm)),
            "inward_in_csf": float(np.mean(inside == csf)),
        },
        "graph": {
            "edges": int(src.adjacency.nnz // 2),
            "mean_degree": float(degree.mean()),
            "isolated_points": int((degree == 0).sum()),
            "components": int(n_comp),
            "largest_component": int(np.bincount(comp).max()),
        },
        "hash": src.hash(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spacing", type=float, nargs="+", default=[5.0], help="mm")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    t0 = time.perf_counter()
    head = load_template()
    load_s = time.perf_counter() - t0
    print(f"{head!r}  (loaded in {load_s:.2f} s)")
    runs = []
    for spacing in args.spacing:
        r = measure(head, spacing, args.repeat)
        runs.append(r)
        print(f"\n== {spacing:g} mm: {r['n_sources']} points ({r['n_cortical']} cortical, "
              f"{r['n_subcortical']} subcortical), built in {r['build_time_s_best']:.2f} s "
              f"(best of {args.repeat})")
        print(f"{'region':<28}{'points':>7}")
        for name, n in sorted(r["counts_per_region"].items()):
            print(f"{name:<28}{n:>7}")
        nc = r["normal_check_3mm"]
        print(f"normals, tissue 3 mm outward: WM {nc['outward_in_wm']:.1%}, CSF "
              f"{nc['outward_in_csf']:.1%}; inward: WM {nc['inward_in_wm']:.1%}, CSF "
              f"{nc['inward_in_csf']:.1%}")
        g = r["graph"]
        print(f"graph: {g['edges']} edges, mean degree {g['mean_degree']:.1f}, "
              f"{g['isolated_points']} isolated points, {g['components']} components "
              f"(largest {g['largest_component']})")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({
        "head": head.name, "head_hash": head.hash(), "template_load_s": load_s,
        "machine": platform.platform(), "python": platform.python_version(), "runs": runs,
    }, indent=1))
    print(f"\nwrote {RESULTS}")


if __name__ == "__main__":
    main()
