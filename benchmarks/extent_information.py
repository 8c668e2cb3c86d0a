"""How much do the data say about a source's extent? Patch fits against the moment's size.

Usage::

    python scripts/build_pretrained.py --stage forward --realistic --only test-realistic \\
        --work out/pretrained
    python benchmarks/extent_information.py --work out/pretrained [--n 300] [--snr 10 20]

Single extended sources (patch radius 5-20 mm along the source graph, as the simulator grows
them; half deep), simulated as 5-sample evoked windows with the realistic-mismatch test forward
of the 64-channel template EEG. Each sample's source is found by the single-dipole scan on the
nominal forward (:func:`deepesi.inverse.fit_source_set`, ``seeds='scan'``), then its radius is
estimated four ways, all on the nominal forward:

- **patch fit, one direction**: the patch of radius r (0-30 mm) around the found grid point,
  one free moment shared by its points; r with the least whitened residual;
- **patch fit, along normals** (cortical sources): the patch's points oriented by the cortical
  normals, one amplitude;
- **moment at a typical density** (:func:`deepesi.inverse.equivalent_extent_mm`, what source
  tables report): the disc (cortex) or ball (deep) whose area / volume at the simulator's
  geometric-mean moment density (0.5 nA·m/mm², 0.05 nA·m/mm³) gives the fitted moment;
- **a constant**: the middle of the tested range (12.5 mm).

The first two use the topography only; the third uses the amplitude and a density prior (the
simulator draws densities from that prior's range, so on these data it is optimistic).
Writes ``benchmarks/results/<name>.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
RADII_MM = (0.0, 2.5, 5.0, 7.5, 10.0, 12.5, 15.0, 20.0, 25.0, 30.0)


def _patch_fit(gw: np.ndarray, xw: np.ndarray, patches: list[np.ndarray],
               normals: np.ndarray | None) -> float:
    """Radius (mm) of the patch with the least residual: one shared free moment, or one
    amplitude along the normals (``normals`` given)."""
    rss = []
    for p in patches:
        g = (gw[:, p, :].sum(axis=1) if normals is None
             else np.einsum("wpo,po->w", gw[:, p, :], normals[p])[:, None])
        q, *_ = np.linalg.lstsq(g, xw, rcond=None)
        rss.append(float(np.sum((xw - g @ q) ** 2)))
    return RADII_MM[int(np.argmin(rss))]


def main() -> None:
    from deepesi.inverse.source_set import SourceSetFitter, equivalent_extent_mm
    from deepesi.pretrained import load_pretrained
    from deepesi.simulation import SimulationConfig, read_work_leadfield
    from deepesi.simulation.simulator import Simulator

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", default="out/pretrained")
    p.add_argument("--n", type=int, default=300)
    p.add_argument("--snr", type=float, nargs="+", default=[10.0, 20.0])
    p.add_argument("--seed", type=int, default=3)
    p.add_argument("--name", default="extent_information")
    args = p.parse_args()
    _, lf = load_pretrained("template-eeg64")
    test = read_work_leadfield(args.work, "test-realistic")
    ss = lf.source_space
    normals = np.asarray(ss.normals, float)
    n_ch = len(lf.ch_names)
    u, _, _ = np.linalg.svd(np.eye(n_ch) - 1.0 / n_ch)
    basis = u[:, :n_ch - 1].T  # the average reference's complement
    grid = Simulator(lf, SimulationConfig(extent_mm=(0.0, max(RADII_MM))))
    rows, t0 = [], time.perf_counter()
    for snr in args.snr:
        cfg = SimulationConfig(n_sources=(1, 1), extent_mm=(5.0, 20.0), n_times=5,
                               snr_db=(snr, snr), colored_noise_fraction=(0.0, 0.0))
        batch = Simulator(test, cfg).simulate(args.n, np.random.default_rng(args.seed))
        for i in range(args.n):
            x = basis @ batch.data[i].astype(float)
            # white noise of known SNR: its variance per whitened channel and sample
            sigma = np.sqrt(np.sum(x**2) / (1.0 + 10 ** (snr / 10.0)) / x.size)
            xw = x / sigma
            gw = np.einsum("wc,cso->wso", basis, lf.gain) / sigma
            found = SourceSetFitter(gw, ss).fit(xw, seeds="scan", max_sources=1)
            src = found.sources[0]
            c = src.grid_index
            deep = bool(ss.is_subcortical[c])
            patches = [grid.patch(c, r * 1e-3) for r in RADII_MM]
            true_pos = test.source_space.pos[batch.centres[i, 0]]
            rows.append({
                "snr_db": snr, "true_mm": float(batch.extent_mm[i, 0]), "deep": deep,
                "position_error_mm": float(np.linalg.norm(src.position - true_pos) * 1e3),
                "patch_one_direction": _patch_fit(gw, xw, patches, None),
                "patch_normals": (np.nan if deep else _patch_fit(gw, xw, patches, normals)),
                "moment_density": equivalent_extent_mm(src.amplitude, deep),
                "constant": 12.5,
            })
        print(f"{snr:g} dB done ({time.perf_counter() - t0:.0f} s)", flush=True)
    table = _summarise(rows)
    print(table)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.name}.json").write_text(json.dumps(
        {"n": args.n, "seed": args.seed, "rows": rows, "command":
         f"python benchmarks/extent_information.py --work {args.work} --n {args.n} --snr "
         + " ".join(f"{s:g}" for s in args.snr)}, indent=1) + "\n")
    (RESULTS / f"{args.name}.md").write_text(table)
    print(f"written: benchmarks/results/{args.name}.json, .md")


def _summarise(rows: list[dict]) -> str:
    """Median absolute radius error and the correlation with the true radius, per estimator,
    SNR and compartment."""
    lines = ["Patch radius 5-20 mm, single sources, realistic mismatch: median |error| (mm) "
             "and correlation with the true radius.", "",
             "| SNR (dB) | compartment | estimator | median error (mm) | correlation | n |",
             "|---:|---|---|---:|---:|---:|"]
    for snr in sorted({r["snr_db"] for r in rows}):
        for deep in (False, True):
            sel = [r for r in rows if r["snr_db"] == snr and r["deep"] == deep]
            truth = np.array([r["true_mm"] for r in sel])
            for key in ("patch_one_direction", "patch_normals", "moment_density", "constant"):
                est = np.array([r[key] for r in sel], float)
                ok = np.isfinite(est)
                if not ok.any():
                    continue
                err = np.median(np.abs(est[ok] - truth[ok]))
                corr = (np.corrcoef(est[ok], truth[ok])[0, 1] if np.std(est[ok]) > 0
                        else float("nan"))
                lines.append(f"| {snr:g} | {'deep' if deep else 'cortical'} | {key} | "
                             f"{err:.1f} | {corr:.2f} | {int(ok.sum())} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
