"""Build the template's dense scalp lead field (any EEG cap without a new FEM solve).

One FEM transfer solve per dense scalp position on the template resampled to ``--voxel`` mm,
for the shipped models' 5 mm source space; the validation caps' electrodes are solved directly
in the same run (same mesh, same reference), so that ``benchmarks/scalp_interpolation.py`` can
compare the interpolated lead field with the direct FEM. Writes, in ``--work``:

- ``dense-gain.npy`` (N, n_src, 3) float32 and ``dense-pos.npy``: the dense gain;
- ``direct-<cap>-gain.npy``: the validation caps' direct FEM gains (average reference);
- ``template-scalp-fwd.npz``: the compressed, shipped form (``--ship`` copies it into the
  package).

Deterministic: the positions follow from the template and ``--spacing`` (farthest-point
sampling), the FEM from the mesh. ``python scripts/build_scalp_leadfield.py --work out/scalp``
(about 10 min with 2 processes).
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import numpy as np

from deepesi import set_log_level
from deepesi.anatomy.masks import head_centre
from deepesi.anatomy.template import load_template
from deepesi.forward.eeg import make_eeg_transfer
from deepesi.forward.scalp import ScalpLeadField, dense_scalp_positions
from deepesi.pretrained import MODELS_DIR
from deepesi.sensors import make_eeg_sensors
from deepesi.simulation.mismatch import SOURCE_TISSUES, snap_into_tissue
from deepesi.sources import make_source_space

#: Caps whose direct FEM gain is computed with the dense one, to validate the interpolation.
VALIDATION_CAPS = {
    "biosemi32": ("biosemi32", None),
    "GSN-HydroCel-128": ("GSN-HydroCel-128", None),
    "standard_1020_21": ("standard_1020", ["Fp1", "Fpz", "Fp2", "F7", "F3", "Fz", "F4", "F8",
                                           "T7", "C3", "Cz", "C4", "T8", "P7", "P3", "Pz", "P4",
                                           "P8", "O1", "Oz", "O2"]),
    "standard_1010_64": ("standard_1010_64", None),
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--work", type=Path, default=Path("out/scalp"))
    p.add_argument("--spacing", type=float, default=8.0, help="dense spacing (mm)")
    p.add_argument("--voxel", type=float, default=2.0, help="FEM voxel size (mm)")
    p.add_argument("--rel-error", type=float, default=2e-3,
                   help="SVD truncation error of the shipped basis (relative, Frobenius)")
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--ship", action="store_true", help="copy the compressed file into the package")
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args()
    set_log_level("WARNING" if args.quiet else "INFO")
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    head = load_template()
    src = make_source_space(head, 5e-3)
    if not (work / "dense-gain.npy").exists():
        dense = dense_scalp_positions(head, args.spacing * 1e-3)
        print(f"{len(dense)} dense scalp positions ({args.spacing} mm)")
        caps = {name: make_eeg_sensors(head, m, ch_names=names)
                for name, (m, names) in VALIDATION_CAPS.items()}
        el = np.concatenate([dense] + [s.eeg_pos_mri for s in caps.values()])
        fem_head = head.resample(args.voxel)
        pos, n_moved = snap_into_tissue(fem_head, src.pos)
        t0 = time.perf_counter()
        transfer = make_eeg_transfer(fem_head, el, source_tissues=SOURCE_TISSUES,
                                     max_snap_mm=max(5.0, 3 * args.voxel), n_jobs=args.jobs)
        gain = transfer.leadfield(pos, reference=transfer.ch_names[0])
        secs = time.perf_counter() - t0
        n = len(dense)
        # the FEM's potentials are those of the scalp nodes the electrodes are attached to
        nodes = transfer.mesh.nodes[transfer.electrode_nodes]
        start = n
        for name, s in caps.items():
            g = gain[start:start + s.n_eeg]
            np.save(work / f"direct-{name}-gain.npy", (g - g.mean(0)).astype(np.float32))
            np.save(work / f"direct-{name}-pos.npy", s.eeg_pos_mri)
            np.save(work / f"direct-{name}-node-pos.npy", nodes[start:start + s.n_eeg])
            start += s.n_eeg
        np.save(work / "dense-pos.npy", dense)
        np.save(work / "dense-node-pos.npy", nodes[:n])
        np.save(work / "dense-gain.npy", gain[:n].astype(np.float32))
        (work / "dense.json").write_text(json.dumps({
            "n_positions": n, "spacing_mm": args.spacing, "fem_voxel_mm": args.voxel,
            "seconds": secs, "n_sources_moved": n_moved, "head_hash": head.hash(),
            "snap_mm": {"median": float(np.median(transfer.snap_distance) * 1e3),
                        "max": float(transfer.snap_distance.max() * 1e3)},
            "cg_iterations_mean": transfer.meta["cg_iterations_mean"],
        }, indent=1))
        print(f"FEM: {len(el)} electrodes in {secs:.0f} s")
    info = json.loads((work / "dense.json").read_text())
    gain = np.load(work / "dense-gain.npy")
    dense = np.load(work / "dense-node-pos.npy")
    slf = ScalpLeadField.from_gain(
        dense, gain, src, head_centre(head), rel_error=args.rel_error,
        meta={"head": "template", "head_hash": info["head_hash"],
              "fem_voxel_mm": info["fem_voxel_mm"], "spacing_mm": info["spacing_mm"],
              "built_by": "scripts/build_scalp_leadfield.py"},
    )
    files = slf.save(work / "template-scalp-fwd.npz", overwrite=True)
    print(slf, ", ".join(f"{f.name} {f.stat().st_size / 1e6:.1f} MB" for f in files), slf.meta)
    if args.ship:
        for f in files:
            shutil.copyfile(f, MODELS_DIR / f.name)
        print(f"shipped {len(files)} file(s) to {MODELS_DIR}")


if __name__ == "__main__":
    main()
