"""Validation of the FEM EEG forward against the analytic 4-shell sphere.

Sphere: radii 92/86/80/78 mm, conductivities 0.43/0.01/1.79/0.33 S/m (scalp/skull/CSF/brain).
Dipoles at eccentricities 0.1 ... 0.98 of the 78 mm brain radius, in random directions (seeded),
radial and tangential, unit moment. Electrodes: a Fibonacci cap on the outer sphere (z > -0.2 R).
Metrics: RDM (topography, 0..2, reported in %) and MAG (amplitude ratio), both after average
reference, averaged over the directions of each eccentricity (max also stored).

Each invocation handles one voxel size and merges its rows into the JSON file, so the 1 mm run
(the memory-hungry one) can be made separately:

    python benchmarks/fem_sphere.py --voxel 2 --configs adapted-venant,regular-venant,adapted-pi
    python benchmarks/fem_sphere.py --voxel 1 --configs adapted-venant --n-electrodes 32
    python benchmarks/fem_sphere.py --plot-only
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

import numpy as np

from deepesi._io import atomic_path
from deepesi.forward.eeg import make_eeg_transfer
from deepesi.forward.sphere import (
    FOUR_SHELL_RADII_M,
    fibonacci_sphere_points,
    mag,
    make_sphere_head,
    rdm,
    sphere_potential,
)

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "fem_sphere.json"
PLOT = ROOT / "docs" / "images" / "fem_sphere.png"
ECCENTRICITIES = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.98]
CONFIGS = {
    "adapted-venant": dict(geometry_adapted=True, source_model="venant"),
    "regular-venant": dict(geometry_adapted=False, source_model="venant"),
    "adapted-pi": dict(geometry_adapted=True, source_model="partial_integration"),
}


def _peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def run_one(voxel_mm: float, config: str, n_el: int, n_dir: int, tol: float, shift: float) -> dict:
    head = make_sphere_head(voxel_mm)
    electrodes = fibonacci_sphere_points(n_el, FOUR_SHELL_RADII_M[0], upper_only=True)
    t0 = time.perf_counter()
    tm = make_eeg_transfer(head, electrodes, tol=tol, shift=shift, verbose=True, **CONFIGS[config])
    build_s = time.perf_counter() - t0
    rng = np.random.default_rng(0)
    dirs = rng.normal(size=(n_dir, 3))
    dirs /= np.linalg.norm(dirs, axis=1)[:, None]
    helper = np.where(np.abs(dirs[:, 2:3]) < 0.9, [[0, 0, 1.0]], [[1.0, 0, 0]])
    tang = np.cross(dirs, helper)
    tang /= np.linalg.norm(tang, axis=1)[:, None]
    gm = head.tissues.label_of("GM")
    rows = []
    t_lf = 0.0
    for ecc in ECCENTRICITIES:
        pos = dirs * ecc * FOUR_SHELL_RADII_M[-1]
        vox = np.floor(head.mri_to_voxel(pos) + 0.5).astype(int)
        inside = head.labels[vox[:, 0], vox[:, 1], vox[:, 2]] == gm
        pos_ok = pos[inside]
        t1 = time.perf_counter()
        gain = tm.leadfield(pos_ok)
        t_lf += time.perf_counter() - t1
        row = {"eccentricity": ecc, "n_dipoles": int(inside.sum())}
        for kind, ori in (("radial", dirs[inside]), ("tangential", tang[inside])):
            num = np.einsum("esd,sd->es", gain, ori)
            ana = sphere_potential(pos_ok, ori, tm.electrodes)
            r = rdm(num, ana)
            m = mag(num, ana)
            row[kind] = {
                "rdm_mean": float(r.mean()), "rdm_max": float(r.max()),
                "mag_mean": float(m.mean()), "mag_min": float(m.min()), "mag_max": float(m.max()),
            }
        rows.append(row)
        print(
            f"{voxel_mm:g} mm {config:15s} ecc {ecc:.2f} (n={row['n_dipoles']:2d}): "
            f"radial RDM {row['radial']['rdm_mean'] * 100:5.2f}% MAG "
            f"{row['radial']['mag_mean']:.3f} | tangential RDM "
            f"{row['tangential']['rdm_mean'] * 100:5.2f}% MAG {row['tangential']['mag_mean']:.3f}",
            flush=True,
        )
    meta = {k: v for k, v in tm.meta.items() if k not in ("cg_iterations", "head_hash")}
    return {
        "voxel_mm": voxel_mm,
        "config": config,
        "n_electrodes": n_el,
        "n_directions": n_dir,
        "tol": tol,
        "build_s": build_s,
        "leadfield_s": t_lf,
        "peak_rss_gb_process": _peak_rss_gb(),
        "snap_distance_mm_max": float(tm.snap_distance.max() * 1e3),
        "solver": meta,
        "rows": rows,
    }


def _load(path: Path = RESULTS) -> dict:
    if path.is_file():
        return json.loads(path.read_text())
    return {"description": __doc__.strip().splitlines()[0], "runs": {}}


def _save(data: dict, path: Path = RESULTS) -> None:
    """Merge ``data['runs']`` into the file (other invocations may have written meanwhile)."""
    merged = _load(path)
    merged["runs"].update(data["runs"])
    data["runs"] = merged["runs"]
    with atomic_path(path, overwrite=True) as tmp:
        tmp.write_text(json.dumps(merged, indent=1))


def plot(data: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(11, 8), sharex=True)
    for key, run in sorted(data["runs"].items()):
        ecc = [r["eccentricity"] for r in run["rows"]]
        for col, kind in enumerate(("radial", "tangential")):
            rdm_pct = [r[kind]["rdm_mean"] * 100 for r in run["rows"]]
            axes[0, col].plot(ecc, rdm_pct, "o-", label=key)
            axes[1, col].plot(ecc, [r[kind]["mag_mean"] for r in run["rows"]], "o-", label=key)
    for col, kind in enumerate(("radial", "tangential")):
        axes[0, col].axhline(2.0, color="k", ls="--", lw=0.8)
        axes[0, col].set_title(f"{kind} dipoles (off-scale points: see the JSON)")
        axes[0, col].set_ylim(0, 15)
        axes[1, col].set_ylim(0.95, 1.25)
        axes[0, col].set_ylabel("RDM (%)")
        axes[1, col].axhspan(0.97, 1.03, color="0.9")
        axes[1, col].set_ylabel("MAG")
        axes[1, col].set_xlabel("eccentricity (of 78 mm)")
    axes[0, 0].legend(fontsize=8)
    fig.suptitle("deepesi FEM vs analytic 4-shell sphere (mean over dipole directions)")
    fig.tight_layout()
    with atomic_path(PLOT, overwrite=True) as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--voxel", type=float, default=2.0, help="voxel size (mm)")
    parser.add_argument("--configs", default="adapted-venant,regular-venant,adapted-pi")
    parser.add_argument("--n-electrodes", type=int, default=48)
    parser.add_argument("--n-directions", type=int, default=20)
    parser.add_argument("--tol", type=float, default=1e-6)
    parser.add_argument("--shift", type=float, default=0.45)
    parser.add_argument("--plot-only", action="store_true")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results JSON (merged)")
    parser.add_argument("--merge", type=Path, nargs="*", default=[], help="JSON files to merge in")
    args = parser.parse_args()
    data = _load(args.out)
    for extra in args.merge:
        data["runs"].update(_load(extra)["runs"])
        _save(data, args.out)
    if not args.plot_only:
        for config in args.configs.split(","):
            res = run_one(
                args.voxel, config, args.n_electrodes, args.n_directions, args.tol, args.shift
            )
            data["runs"][f"{args.voxel:g}mm-{config}"] = res
            _save(data, args.out)
            print(
                f"== {args.voxel:g} mm {config}: build {res['build_s']:.0f} s, "
                f"{res['solver']['n_nodes']} nodes, CG iterations "
                f"{res['solver']['cg_iterations_mean']:.1f}, peak RSS "
                f"{res['peak_rss_gb_process']:.2f} GB",
                flush=True,
            )
    plot(data)


if __name__ == "__main__":
    main()
