"""Time and memory of the FEM EEG transfer matrix on the realistic template head, with MNE's BEM.

For each voxel size the script builds the mesh, assembles the stiffness matrix and the AMG
hierarchy (once), then runs ``--solves`` reciprocity solves and measures the time per
electrode. The time for 64/128/256 electrodes is ``setup + n x time per solve``: measured
setup, measured mean per-solve time, *extrapolated* count (stated as such in the JSON) unless
``--full`` solves every electrode. Peak memory is the process's max RSS after each size (one
process per size: run the sizes in separate invocations for clean peaks; the JSON is merged),
plus the size of the stored transfer matrix for n electrodes.

MNE: ``mne.make_forward_solution`` with the 3-layer 1280-triangle BEM of the MNE 'sample'
subject (BEM solution computed in the same run and timed), for the same montages projected on
its scalp, and a volume source space of about the same number of points. Timing comparison only.

    python benchmarks/forward_speed.py --voxel 2 1.5 --solves 6
    python benchmarks/forward_speed.py --voxel 1 --solves 3 --no-mne
    python benchmarks/forward_speed.py --voxel 1.5 --solves 8 --no-mne --n-jobs 2

``--compare`` times the two solvers of ``make_eeg_transfer`` on the same matrix and AMG hierarchy,
interleaved (single solves, one block, single solves again) so that the load of a shared machine
hits both alike; the JSON gets per-right-hand-side times, their ratio, iterations and memory:

    python benchmarks/forward_speed.py --voxel 2 1.5 --compare --block-size 32 --no-mne
    python benchmarks/forward_speed.py --voxel 1.5 --full --solver block --no-mne
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time
from pathlib import Path

import numpy as np

from deepesi._io import atomic_path
from deepesi.anatomy.template import load_template
from deepesi.forward.blocksolve import BlockVCycle, as_solver_csr, block_cg
from deepesi.forward.eeg import make_eeg_transfer
from deepesi.forward.fem import (
    AMGSolver,
    apply_reference,
    assemble_stiffness,
    element_conductivity,
)
from deepesi.forward.mesh import make_hex_mesh

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "forward_speed.json"
MONTAGES = {64: "biosemi64", 128: "GSN-HydroCel-128", 256: "GSN-HydroCel-256"}


def _rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def solver_comparison(
    voxel_mm: float, block_size: int, n_single: int, tol: float = 1e-8,
    fast_tol: float | None = None,
) -> dict:
    """Per-right-hand-side time of the single (pyamg GS V-cycle) and block solvers, interleaved.

    With ``fast_tol`` the block is solved once more at that tolerance and the largest relative
    change of a transfer column on the source (brain) nodes is reported: the lead field of any
    source is a combination of those values, so this bounds the effect of the looser tolerance.
    """
    from scipy.spatial import cKDTree

    from deepesi.sensors import make_eeg_sensors

    head = load_template(voxel_mm).crop(2)
    el = make_eeg_sensors(head, MONTAGES[128]).eeg_pos_mri
    mesh = make_hex_mesh(head)
    surf = np.flatnonzero(mesh.surface)
    nodes = surf[cKDTree(mesh.nodes[surf]).query(el)[1]]
    mat = assemble_stiffness(mesh, element_conductivity(mesh, head.tissues.conductivity_lut()))
    apply_reference(mat, int(nodes[0]))
    rss_setup0 = _rss_gb()
    t0 = time.perf_counter()
    amg = AMGSolver(mat, tol=tol)
    t_amg = time.perf_counter() - t0
    t0 = time.perf_counter()
    vcycle = BlockVCycle(amg.ml)
    mat_solve = as_solver_csr(mat)
    t_block_setup = time.perf_counter() - t0
    todo = [int(n) for n in dict.fromkeys(nodes[1:].tolist())][:block_size]
    n = mat.shape[0]

    def single(node: int) -> float:
        rhs = np.zeros(n)
        rhs[node] = 1.0
        t = time.perf_counter()
        x = amg.solve(rhs)
        dt = time.perf_counter() - t
        xs[node] = x
        return dt

    xs: dict[int, np.ndarray] = {}
    half = max(1, n_single // 2)
    t_single = [single(node) for node in todo[:half]]
    def rhs_block() -> np.ndarray:
        rhs = np.zeros((n, len(todo)))
        rhs[todo, np.arange(len(todo))] = 1.0
        return rhs

    t0 = time.perf_counter()
    xb, its = block_cg(mat_solve, rhs_block(), vcycle, tol=tol)
    t_block = time.perf_counter() - t0
    t_single += [single(node) for node in todo[half : half + n_single - half]]
    err = max(
        float(np.linalg.norm(xb[:, todo.index(node)] - x) / np.linalg.norm(x))
        for node, x in xs.items()
    )
    per_single = float(np.mean(t_single))
    per_block = t_block / len(todo)
    fast: dict = {}
    if fast_tol is not None:
        brain = [head.tissues.label_of(t) for t in ("WM", "GM") if head.has_tissue(t)]
        src = np.unique(mesh.elements[np.isin(mesh.labels, brain)])
        ref = xb[src]
        del xb
        t0 = time.perf_counter()
        xf, its_f = block_cg(mat_solve, rhs_block(), vcycle, tol=fast_tol)
        t_fast = time.perf_counter() - t0
        dev = np.linalg.norm(xf[src] - ref, axis=0) / np.linalg.norm(ref, axis=0)
        fast = {
            "fast_tol": fast_tol,
            "fast_block_per_rhs_s": t_fast / len(todo),
            "fast_block_iterations": [int(v) for v in its_f],
            "fast_speedup_per_rhs_vs_single": per_single / (t_fast / len(todo)),
            "fast_max_rel_transfer_change_on_source_nodes": float(dev.max()),
        }
    return {
        "voxel_mm": voxel_mm,
        "n_nodes": int(n),
        "tol": tol,
        "amg_setup_s": t_amg,
        "block_setup_s": t_block_setup,
        "single_per_rhs_s": per_single,
        "single_times_s": t_single,
        "single_iterations": amg.stats.iterations,
        "block_size": len(todo),
        "block_per_rhs_s": per_block,
        "block_iterations": [int(v) for v in its],
        "speedup_per_rhs": per_single / per_block,
        "max_rel_diff_block_vs_single": err,
        "rss_gb_before_amg": rss_setup0,
        "peak_rss_gb_process": _rss_gb(),
        "block_vcycle_levels": vcycle.n_levels,
        **fast,
    }


def fem_timing(
    voxel_mm: float, n_solves: int, full: bool, n_jobs: int = 1, solver: str = "single",
    block_size: int = 32, tol: float = 1e-8,
) -> dict:
    from deepesi.sensors import make_eeg_sensors

    head = load_template(voxel_mm).crop(2)
    t0 = time.perf_counter()
    sensors = {n: make_eeg_sensors(head, m) for n, m in MONTAGES.items()}
    t_sensors = time.perf_counter() - t0
    el128 = sensors[128].eeg_pos_mri
    n_run = len(el128) if full else n_solves + 1  # electrode 0 is the reference: no solve
    t0 = time.perf_counter()
    tm = make_eeg_transfer(
        head, el128[:n_run], verbose=False, tol=tol, n_jobs=n_jobs, solver=solver,
        block_size=block_size,
    )
    total = time.perf_counter() - t0
    tim = tm.meta["timings"]
    setup = tim["mesh_s"] + tim["assembly_s"] + tim["amg_setup_s"]
    per_solve = tim["solve_s"] / max(1, n_run - 1)
    n_src_nodes = int((tm._node_column >= 0).sum())
    out = {
        "voxel_mm": voxel_mm,
        "n_jobs": n_jobs,
        "solver": solver,
        "block_size": block_size if solver == "block" else 1,
        "head_shape": list(head.shape),
        "n_nodes": tm.meta["n_nodes"],
        "n_elements": tm.meta["n_elements"],
        "nnz": tm.meta["nnz"],
        "amg_levels": tm.meta["amg_levels"],
        "amg_operator_complexity": tm.meta["amg_operator_complexity"],
        "cg_iterations_mean": tm.meta["cg_iterations_mean"],
        "tol": tol,
        "timings_s": tim,
        "setup_s": setup,
        "measured_solves": n_run - 1,
        "per_solve_s": per_solve,
        "build_s_measured": total,
        "sensor_placement_s": t_sensors,
        "peak_rss_gb_process": _rss_gb(),
        "per_montage": {},
    }
    pos = np.argwhere(np.isin(head.labels, [1, 2]))[::997]
    pos_m = head.voxel_to_mri(pos)
    t0 = time.perf_counter()
    tm.leadfield(pos_m)
    lf_s = (time.perf_counter() - t0) / len(pos_m)
    out["leadfield_s_per_1000_sources_per_electrode"] = lf_s * 1000 / n_run
    for n in MONTAGES:
        est = setup + per_solve * (n - 1)
        out["per_montage"][str(n)] = {
            "montage": MONTAGES[n],
            "n_electrodes": len(sensors[n].eeg_pos_mri),
            "time_s": est,
            "time_is": "measured" if (full and n == 128) else "setup + measured per-solve x n",
            "transfer_matrix_gb": n_src_nodes * n * 8 / 1024**3,
        }
    return out


def mne_timing() -> dict:
    import mne

    data = Path(os.environ.get("DEEPESI_SHARED_DATA", "/work/shared/data")) / "mne-sample"
    subjects_dir = data / "subjects"
    bem_dir = subjects_dir / "sample" / "bem"
    trans = data / "MEG" / "sample" / "sample_audvis_trunc-trans.fif"
    t0 = time.perf_counter()
    model = mne.read_bem_surfaces(bem_dir / "sample-1280-1280-1280-bem.fif", verbose=False)
    bem = mne.make_bem_solution(model, verbose=False)
    t_bem = time.perf_counter() - t0
    spacing = 5.0  # mm: about as many points as a typical deepesi source space
    src = mne.setup_volume_source_space(
        "sample", pos=spacing, bem=bem, subjects_dir=subjects_dir, verbose=False
    )
    out = {"bem": "sample-1280-1280-1280 (3 layers)", "bem_solution_s": t_bem,
           "n_sources": int(src[0]["nuse"]), "per_montage": {}}
    for n, name in MONTAGES.items():
        montage = mne.channels.make_standard_montage(name)
        info = mne.create_info(montage.ch_names, 1000.0, "eeg")
        info.set_montage(montage)
        t0 = time.perf_counter()
        mne.make_forward_solution(info, trans, src, bem, eeg=True, meg=False, verbose=False)
        out["per_montage"][str(n)] = {"time_s": time.perf_counter() - t0}
        print(f"MNE BEM {name}: {out['per_montage'][str(n)]['time_s']:.1f} s", flush=True)
    out["peak_rss_gb_process"] = _rss_gb()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--voxel", type=float, nargs="+", default=[2.0, 1.5])
    parser.add_argument("--solves", type=int, default=6)
    parser.add_argument("--full", action="store_true", help="solve all 128 electrodes")
    parser.add_argument("--no-mne", action="store_true")
    parser.add_argument("--n-jobs", type=int, default=1, help="worker processes for the solves")
    parser.add_argument("--mne-only", action="store_true")
    parser.add_argument("--solver", choices=("single", "block"), default="single")
    parser.add_argument("--block-size", type=int, default=32)
    parser.add_argument("--compare", action="store_true", help="single vs block, interleaved")
    parser.add_argument("--single-solves", type=int, default=4)
    parser.add_argument("--fast-tol", type=float, default=None, help="--compare: also this tol")
    parser.add_argument("--tol", type=float, default=1e-8)
    args = parser.parse_args()
    if args.mne_only:
        args.voxel = []
    data = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {"fem": {}, "mne": None}
    data["machine"] = {"cpus": os.cpu_count(), "note": "shared 2-core machine, other jobs running"}
    if args.compare:
        data.setdefault("solver_comparison", {})
        for vox in args.voxel:
            res = solver_comparison(
                vox, args.block_size, args.single_solves, args.tol, args.fast_tol
            )
            data["solver_comparison"][f"{vox:g}mm-k{res['block_size']}"] = res
            print(
                f"{vox:g} mm ({res['n_nodes']} nodes): single {res['single_per_rhs_s']:.2f} s/RHS "
                f"({np.mean(res['single_iterations']):.1f} it), block k={res['block_size']} "
                f"{res['block_per_rhs_s']:.2f} s/RHS ({np.mean(res['block_iterations']):.1f} it), "
                f"speed-up {res['speedup_per_rhs']:.2f}x, max rel diff "
                f"{res['max_rel_diff_block_vs_single']:.1e}, peak RSS "
                f"{res['peak_rss_gb_process']:.2f} GB",
                flush=True,
            )
            if "fast_tol" in res:
                print(
                    f"  block at tol {res['fast_tol']:g}: {res['fast_block_per_rhs_s']:.2f} s/RHS "
                    f"({np.mean(res['fast_block_iterations']):.1f} it), "
                    f"{res['fast_speedup_per_rhs_vs_single']:.2f}x the single solver at tol "
                    f"{res['tol']:g}; max relative change of a transfer column on brain nodes "
                    f"{res['fast_max_rel_transfer_change_on_source_nodes']:.1e}",
                    flush=True,
                )
            with atomic_path(RESULTS, overwrite=True) as tmp:
                tmp.write_text(json.dumps(data, indent=1))
        return
    for vox in args.voxel:
        res = fem_timing(
            vox, args.solves, args.full, args.n_jobs, args.solver, args.block_size, args.tol
        )
        key = (
            f"{vox:g}mm"
            + (f"-{args.n_jobs}jobs" if args.n_jobs > 1 else "")
            + (f"-block{args.block_size}" if args.solver == "block" else "")
            + ("-full" if args.full else "")
            + (f"-tol{args.tol:g}" if args.tol != 1e-8 else "")
        )
        data["fem"][key] = res
        print(
            f"FEM {key}: {res['n_nodes']} nodes, setup {res['setup_s']:.1f} s, "
            f"{res['per_solve_s']:.2f} s/solve ({res['cg_iterations_mean']:.1f} CG it), "
            + ", ".join(f"{k} el ~{v['time_s']:.0f} s" for k, v in res["per_montage"].items())
            + f", peak RSS {res['peak_rss_gb_process']:.2f} GB",
            flush=True,
        )
        with atomic_path(RESULTS, overwrite=True) as tmp:
            tmp.write_text(json.dumps(data, indent=1))
    if not args.no_mne:
        data["mne"] = mne_timing()
        with atomic_path(RESULTS, overwrite=True) as tmp:
            tmp.write_text(json.dumps(data, indent=1))


if __name__ == "__main__":
    main()
