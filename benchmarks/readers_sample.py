"""Build the MNE 'sample' head with read_freesurfer_subject; print volumes, deep structures, skull.

Usage: DEEPESI_SHARED_DATA=/work/shared/data python benchmarks/readers_sample.py [voxel_mm ...]
Writes benchmarks/results/readers_sample.json.
"""

from __future__ import annotations

import json
import os
import sys
import time
import warnings
from pathlib import Path

from deepesi._io import atomic_path
from deepesi.anatomy.freesurfer import read_freesurfer_subject


def main(argv: list[str]) -> int:
    data = Path(os.environ.get("DEEPESI_SHARED_DATA", "/work/shared/data"))
    subjects_dir = data / "mne-sample" / "subjects"
    sizes = [float(a) for a in argv] or [1.0, 2.0, 3.0]
    results = []
    for vs in sizes:
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # the sample's ribbons do not match
            head = read_freesurfer_subject("sample", subjects_dir, voxel_size=vs, verbose=False)
        seconds = time.perf_counter() - t0
        vols = head.volumes_ml()
        bone = vols["Compact_bone"] + vols["Spongy_bone"]
        res = {
            "voxel_mm": vs,
            "shape": head.shape,
            "seconds": round(seconds, 2),
            "volumes_ml": {k: round(v, 1) for k, v in vols.items()},
            "deep_structure_voxels": head.subcortical_regions_present(),
            "compact_fraction": round(vols["Compact_bone"] / bone, 3),
            "spongy_fraction": round(vols["Spongy_bone"] / bone, 3),
            "cortex_method": head.meta["cortex_method"],
            "brain_voxels_outside_inner_skull_dropped":
                head.meta["brain_voxels_outside_inner_skull_dropped"],
        }
        results.append(res)
        print(f"\n== voxel {vs:g} mm, grid {head.shape}, {seconds:.1f} s, "
              f"cortex: {res['cortex_method']}")
        print(f"{'tissue':<14}{'mL':>10}")
        for k, v in vols.items():
            print(f"{k:<14}{v:>10.1f}")
        print(f"skull: compact {res['compact_fraction']:.1%}, spongy {res['spongy_fraction']:.1%}")
        print(f"{'deep structure':<22}{'voxels':>8}")
        for k, v in res["deep_structure_voxels"].items():
            print(f"{k:<22}{v:>8}")
    out = Path(__file__).parent / "results" / "readers_sample.json"
    with atomic_path(out, overwrite=True) as tmp:
        tmp.write_text(json.dumps(results, indent=1))
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
