"""FEM EEG lead field vs MNE's 3-layer BEM on a 3-tissue head built from the same surfaces.

Subject: MNE 'sample'. Volume conductor: the three surfaces of ``sample-1280-1280-1280-bem.fif``
(inner skull, outer skull, scalp; 1280 triangles each; 0.3 / 0.006 / 0.3 S/m). The BEM solves
on them directly; the FEM on the same surfaces voxelised
(:func:`deepesi.forward.validation.three_layer_head_from_surfaces`), same conductivities.

Electrodes: the 60 digitised EEG positions of ``sample_audvis-auditory-ave.fif``, head → MRI
by ``sample_audvis_trunc-trans.fif``, projected onto the BEM scalp surface (as MNE does); the
FEM gets these projected positions (and snaps them to its nearest scalp node).
Sources: a regular grid (``--spacing`` mm) inside the inner skull, at least ``--mindist`` mm from
it; MNE gets them as a discrete source space. Everything is computed in the MRI frame (MNE with
an identity trans); a check recomputes part of MNE's forward with the real head frame and trans
and rotates its orientations back to MRI (agrees to 2e-4: MNE projects the electrodes itself).

Per source: CC, RDM, MAG over the 60 electrodes (average reference), for the x/y/z dipoles and
their concatenation, overall and by distance to the inner skull.

    python benchmarks/fem_vs_bem.py --voxel 2
    python benchmarks/fem_vs_bem.py --voxel 1.5      # merges into the same JSON
    python benchmarks/fem_vs_bem.py --bem-sphere-check   # MNE's BEM vs the analytic sphere
    python benchmarks/fem_vs_bem.py --plot-only
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import time
from pathlib import Path

import numpy as np

from deepesi._io import atomic_path
from deepesi.anatomy.voxelize import voxelize_surface
from deepesi.forward.eeg import make_eeg_transfer
from deepesi.forward.sphere import fibonacci_sphere_points, sphere_potential
from deepesi.forward.surfaces import icosphere
from deepesi.forward.validation import (
    closest_points_on_surface,
    compare_leadfields,
    mne_bem_eeg_leadfield,
    three_layer_head_from_surfaces,
)

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "fem_vs_bem.json"
PLOT = ROOT / "docs" / "images" / "fem_vs_bem.png"
DIST_BINS_MM = [5, 10, 15, 20, 30, 40, 80]


def _data_dir() -> Path:
    root = Path(os.environ.get("DEEPESI_SHARED_DATA", "/work/shared/data"))
    path = root / "mne-sample"
    if not path.is_dir():
        raise SystemExit(f"no MNE sample data at {path}; set DEEPESI_SHARED_DATA.")
    return path


def _peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def setup(spacing_mm: float, mindist_mm: float):
    """BEM surfaces and solution, projected electrodes, source grid (all MRI frame, metres)."""
    import mne

    data = _data_dir()
    bem_dir = data / "subjects" / "sample" / "bem"
    surfs = mne.read_bem_surfaces(bem_dir / "sample-1280-1280-1280-bem.fif", verbose=False)
    by_id = {s["id"]: s for s in surfs}
    inner, outer, skin = (by_id[k] for k in (1, 3, 4))  # FIFF brain, skull, head
    t0 = time.perf_counter()
    sol = mne.make_bem_solution(surfs, verbose=False)
    bem_s = time.perf_counter() - t0

    info = mne.io.read_info(data / "MEG" / "sample" / "sample_audvis-auditory-ave.fif",
                            verbose=False)
    trans = mne.read_trans(data / "MEG" / "sample" / "sample_audvis_trunc-trans.fif")
    picks = mne.pick_types(info, meg=False, eeg=True, exclude=())
    names = [info["ch_names"][i] for i in picks]
    el_head = np.array([info["chs"][i]["loc"][:3] for i in picks])
    el_mri = mne.transforms.apply_trans(trans, el_head)
    el_proj, proj_d = closest_points_on_surface(el_mri, skin["rr"], skin["tris"])

    # source grid inside the inner skull, >= mindist from it
    lo, hi = inner["rr"].min(0), inner["rr"].max(0)
    step = spacing_mm / 1000.0
    axes = [np.arange(a, b + step, step) for a, b in zip(lo, hi, strict=True)]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)
    # inside test: voxelise the inner skull on the grid itself
    aff = np.diag([step * 1e3] * 3 + [1.0])
    aff[:3, 3] = lo * 1e3
    inside = voxelize_surface(inner["rr"] * 1e3, inner["tris"], tuple(len(a) for a in axes), aff,
                              name="inner_skull").reshape(-1)
    grid = grid[inside]
    _, dist = closest_points_on_surface(grid, inner["rr"], inner["tris"])
    keep = dist >= mindist_mm / 1000.0
    return dict(surfs=(inner, outer, skin), sol=sol, bem_s=bem_s, info=info, trans=trans,
                names=names, el_head=el_head, el=el_proj, proj_mm=proj_d * 1e3,
                src=grid[keep], dist_mm=dist[keep] * 1e3)


def frame_check(s: dict, n_src: int = 40) -> float:
    """Max relative difference between MNE's MRI-frame forward and its head-frame forward rotated.

    The head-frame forward uses the digitised electrodes (head frame) and the real trans, as
    ``mne.make_forward_solution`` would for the recording; its x/y/z orientation axes are the
    head frame's and are rotated to MRI: ``G_mri = G_head @ R`` with ``R`` the MRI → head rotation.
    """
    import mne

    src = s["src"][:: max(1, len(s["src"]) // n_src)]
    g_mri = mne_bem_eeg_leadfield(s["sol"], s["el"], src, ch_names=s["names"])
    info = mne.pick_info(s["info"], mne.pick_types(s["info"], meg=False, eeg=True, exclude=()))
    info["bads"] = []
    vsrc = mne.setup_volume_source_space(
        pos=dict(rr=src, nn=np.tile([0.0, 0.0, 1.0], (len(src), 1))), verbose=False)
    fwd = mne.make_forward_solution(info, s["trans"], vsrc, s["sol"], meg=False, eeg=True,
                                    mindist=0.0, verbose=False)
    g_head = fwd["sol"]["data"].reshape(len(s["names"]), len(src), 3)
    rot = mne.transforms.invert_transform(s["trans"])["trans"][:3, :3]  # MRI → head
    g_rot = g_head @ rot
    # compare average-referenced: the recording's EEG carries a reference electrode position
    # (loc[3:6]), with which MNE's forward is referenced to it; the average reference removes it
    g_rot = g_rot - g_rot.mean(axis=0)
    g_mri = g_mri - g_mri.mean(axis=0)
    ref = np.linalg.norm(g_mri, axis=(0, 2))
    return float((np.linalg.norm(g_rot - g_mri, axis=(0, 2)) / ref).max())


def run(voxel_mm: float, spacing_mm: float, mindist_mm: float, tol: float) -> dict:
    s = setup(spacing_mm, mindist_mm)
    inner, outer, skin = s["surfs"]
    print(f"{len(s['names'])} electrodes (projection onto the BEM scalp: median "
          f"{np.median(s['proj_mm']):.1f} mm, max {s['proj_mm'].max():.1f} mm), "
          f"{len(s['src'])} sources; BEM solution {s['bem_s']:.1f} s")

    t0 = time.perf_counter()
    g_bem = mne_bem_eeg_leadfield(s["sol"], s["el"], s["src"], ch_names=s["names"])
    mne_fwd_s = time.perf_counter() - t0
    frame_err = frame_check(s)
    print(f"MNE forward {mne_fwd_s:.1f} s; head-frame vs MRI-frame MNE forward after rotation: "
          f"max rel. diff {frame_err:.2e}")

    t0 = time.perf_counter()
    head = three_layer_head_from_surfaces(*((x["rr"] * 1e3, x["tris"]) for x in (inner, outer,
                                                                                 skin)),
                                          voxel_size=voxel_mm, name="sample-3layer")
    head_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    tm = make_eeg_transfer(head, s["el"], ch_names=s["names"], tol=tol, verbose=True)
    fem_s = time.perf_counter() - t0
    g_fem = tm.leadfield(s["src"])
    res = compare_leadfields(g_fem, g_bem)

    dist = s["dist_mm"]
    bins = []
    for lo, hi in itertools.pairwise(DIST_BINS_MM):
        sel = (dist >= lo) & (dist < hi)
        if not sel.any():
            continue
        row = {"range_mm": [lo, hi], "n": int(sel.sum())}
        for key in ("x", "y", "z", "all"):
            ps = res["per_source"][key]
            row[key] = {m: {"median": float(np.median(ps[m][sel])),
                            "p5": float(np.percentile(ps[m][sel], 5)),
                            "p95": float(np.percentile(ps[m][sel], 95))} for m in ps}
        bins.append(row)
    out = {
        "voxel_mm": voxel_mm,
        "n_electrodes": len(s["names"]),
        "n_sources": len(s["src"]),
        "spacing_mm": spacing_mm,
        "mindist_mm": mindist_mm,
        "tol": tol,
        "electrode_projection_mm": {"median": float(np.median(s["proj_mm"])),
                                    "max": float(s["proj_mm"].max())},
        "fem_electrode_snap_mm": {"median": float(np.median(tm.snap_distance) * 1e3),
                                  "max": float(np.max(tm.snap_distance) * 1e3)},
        "fem_nodes": int(tm.meta["n_nodes"]),
        "head_voxels_relabelled": head.meta["voxels_relabelled_for_min_thickness"],
        "seconds": {"bem_solution": s["bem_s"], "mne_forward": mne_fwd_s, "head": head_s,
                    "fem_transfer": fem_s},
        "peak_rss_gb": _peak_rss_gb(),
        "mne_frame_check_max_rel_diff": frame_err,
        "summary": res["summary"],
        "by_distance": bins,
        "per_source": {"distance_mm": dist.round(3).tolist(),
                       **{f"{k}_{m}": v.round(5).tolist()
                          for k, d in res["per_source"].items() for m, v in d.items()}},
    }
    return out


def bem_sphere_check(n_sub: int = 3, n_src: int = 60, n_el: int = 60, seed: int = 0) -> dict:
    """Accuracy of MNE's BEM itself: 3 concentric icospheres vs the analytic 3-shell sphere.

    Radii 80/86/92 mm, 0.3/0.006/0.3 S/m, ``n_sub=3``: 1280 triangles per surface as in the
    sample BEM. Sources uniform in the ball of radius 72 mm (>= 8 mm from the inner skull).
    """
    import tempfile

    import mne

    radii = (80.0, 86.0, 92.0)
    sigma = (0.3, 0.006, 0.3)
    verts, faces = icosphere(n_sub)
    with tempfile.TemporaryDirectory() as tmp:
        bem_dir = Path(tmp) / "sph" / "bem"
        bem_dir.mkdir(parents=True)
        for r, name in zip(radii, ("inner_skull", "outer_skull", "outer_skin"), strict=True):
            mne.write_surface(bem_dir / f"{name}.surf", verts * r, faces)
        model = mne.make_bem_model("sph", ico=None, conductivity=sigma, subjects_dir=tmp,
                                   verbose=False)
    sol = mne.make_bem_solution(model, verbose=False)
    el, _ = closest_points_on_surface(fibonacci_sphere_points(n_el, radii[2], upper_only=True),
                                      verts * radii[2], faces)
    el = el / 1000.0
    rng = np.random.default_rng(seed)
    src = rng.normal(size=(n_src, 3))
    src *= (rng.uniform(0, 1, size=(n_src, 1)) ** (1 / 3) * 0.072
            / np.linalg.norm(src, axis=1, keepdims=True))
    g_bem = mne_bem_eeg_leadfield(sol, el, src)
    g_ana = np.stack([sphere_potential(src, np.tile(e, (n_src, 1)), el,
                                       radii=[r / 1000 for r in radii[::-1]], sigmas=sigma)
                      for e in np.eye(3)], axis=-1)
    res = compare_leadfields(g_bem, g_ana)
    out = {"n_triangles": len(faces), "n_sources": n_src, "n_electrodes": n_el,
           "radii_mm": radii, "conductivities": sigma, "summary_all": res["summary"]["all"]}
    sm = out["summary_all"]
    print(f"MNE BEM ({len(faces)} triangles/surface) vs analytic 3-shell sphere: CC p50 "
          f"{sm['cc']['p50']:.4f}, RDM p50 {sm['rdm']['p50']:.3f}, MAG p5/p50/p95 "
          f"{sm['mag']['p5']:.3f}/{sm['mag']['p50']:.3f}/{sm['mag']['p95']:.3f}")
    return out


def _table(rows: dict) -> None:
    for key, r in rows.items():
        print(f"\n== {key}: {r['n_sources']} sources, {r['n_electrodes']} electrodes; FEM "
              f"{r['seconds']['fem_transfer']:.0f} s, MNE {r['seconds']['mne_forward']:.0f} s")
        print(f"{'dipole':>6} | {'CC p5':>6} {'CC p50':>6} | {'RDM p50':>7} {'RDM p95':>7} | "
              f"{'MAG p5':>6} {'MAG p50':>7} {'MAG p95':>7}")
        for ax in ("x", "y", "z", "all"):
            sm = r["summary"][ax]
            print(f"{ax:>6} | {sm['cc']['p5']:6.3f} {sm['cc']['p50']:6.3f} | "
                  f"{sm['rdm']['p50']:7.3f} {sm['rdm']['p95']:7.3f} | {sm['mag']['p5']:6.3f} "
                  f"{sm['mag']['p50']:7.3f} {sm['mag']['p95']:7.3f}")
        print(f"{'distance (mm)':>14} {'n':>5} {'CC p50':>7} {'CC p5':>6} {'RDM p50':>8} "
              f"{'MAG p50':>8}")
        for b in r["by_distance"]:
            a = b["all"]
            print(f"{b['range_mm'][0]:>6}-{b['range_mm'][1]:<7} {b['n']:>5} "
                  f"{a['cc']['median']:7.3f} {a['cc']['p5']:6.3f} {a['rdm']['median']:8.3f} "
                  f"{a['mag']['median']:8.3f}")


def plot(rows: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axs = plt.subplots(1, 3, figsize=(13, 4))
    for i, (key, r) in enumerate(rows.items()):
        ps = r["per_source"]
        d = np.asarray(ps["distance_mm"])
        colour = f"C{i}"
        for ax, m, lab in zip(axs, ("cc", "rdm", "mag"), ("CC", "RDM", "MAG"), strict=True):
            val = np.asarray(ps[f"all_{m}"])
            ax.scatter(d, val, s=3, alpha=0.25, color=colour, label=f"{key} voxels")
            centres, medians = [], []
            for lo, hi in itertools.pairwise(DIST_BINS_MM):
                sel = (d >= lo) & (d < hi)
                if sel.any():
                    centres.append(np.median(d[sel]))
                    medians.append(np.median(val[sel]))
            ax.plot(centres, medians, "-o", lw=2, color=colour, mec="k", zorder=3)
            ax.set_xlabel("distance to inner skull (mm)")
            ax.set_ylabel(f"{lab} (FEM vs BEM, x/y/z together)")
    axs[0].legend(markerscale=4)
    axs[2].axhline(1.0, color="k", lw=0.8)
    fig.suptitle("deepesi FEM vs MNE 3-layer BEM (sample, 60 EEG, same surfaces and "
                 "conductivities)")
    fig.tight_layout()
    with atomic_path(PLOT, overwrite=True) as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--voxel", type=float, default=2.0, help="FEM voxel size (mm)")
    parser.add_argument("--spacing", type=float, default=8.0, help="source grid spacing (mm)")
    parser.add_argument("--mindist", type=float, default=5.0,
                        help="minimum source distance to the inner skull (mm)")
    parser.add_argument("--tol", type=float, default=1e-8, help="CG relative residual")
    parser.add_argument("--plot-only", action="store_true")
    parser.add_argument("--bem-sphere-check", action="store_true",
                        help="only measure MNE's BEM against the analytic sphere")
    args = parser.parse_args()
    saved = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    rows = saved.get("runs", {})
    if args.bem_sphere_check:
        saved["bem_vs_analytic_sphere"] = bem_sphere_check()
    elif not args.plot_only:
        rows[f"{args.voxel:g}mm"] = run(args.voxel, args.spacing, args.mindist, args.tol)
    if not args.plot_only:
        saved["runs"] = rows
        with atomic_path(RESULTS, overwrite=True) as tmp:
            tmp.write_text(json.dumps(saved, indent=1))
    _table(rows)
    plot(rows)


if __name__ == "__main__":
    main()
