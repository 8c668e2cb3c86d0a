"""Classical inverse methods on deep (thalamus) vs cortical single dipoles, MNE sample subject.

A reference point for the network: MNE's 3-layer BEM forward for the 60 EEG channels of the
sample subject on a volume grid inside the inner skull; single dipoles (random orientation,
Gaussian time course) at grid points labelled thalamus or cerebral cortex in ``aseg.mgz``;
noise drawn from the sample noise covariance at a given sensor-space SNR; every method of
``deepesi.inverse.CLASSICAL_METHODS``; peak localization error and spatial dispersion around
the true position. ``--off-grid`` adds dipoles moved off the grid (simulated with their own BEM
gain), which removes the position part of the inverse crime.

SNR (dB) = 10 log10( mean signal² over channels and the samples where the time course is above
half its peak / mean noise variance over channels ), both average-referenced.

Usage::

    DEEPESI_SHARED_DATA=/work/shared/data python benchmarks/classical_sample.py \
        [--spacing 7] [--n-sources 25] [--snr-db 10] [--methods MNE dSPM ...] [--off-grid]
        [--overwrite]

Prints a table and writes ``benchmarks/results/classical_sample.json``.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import time
from pathlib import Path

import mne
import nibabel as nib
import numpy as np

from deepesi._io import atomic_path
from deepesi._progress import progress
from deepesi._validation import check_dir, check_random_state
from deepesi.inverse import CLASSICAL_METHODS, make_classical

GROUPS = {"thalamus": (10, 49), "cortex": (3, 42)}
SFREQ_TIMES = (0.0, 0.1)  # simulated window (s)
PEAK, WIDTH = 0.05, 0.01  # Gaussian time course: centre and sigma (s)


def build_forward(sample: Path, spacing_mm: float) -> tuple:
    """EEG-only forward (3-layer BEM) on a volume grid ≥ 5 mm inside the inner skull.

    Returns the forward, the EEG info, the noise covariance, the trans and the BEM solution.
    """
    subjects_dir = sample / "subjects"
    meg_dir = sample / "MEG" / "sample"
    info = mne.io.read_info(meg_dir / "sample_audvis-auditory-ave.fif", verbose=False)
    info = mne.pick_info(info, mne.pick_types(info, meg=False, eeg=True, exclude="bads"))
    trans = mne.read_trans(meg_dir / "sample_audvis_trunc-trans.fif")
    # 3-layer BEM at 1280 triangles per surface: the 320-triangle model is too coarse for sources
    # within ~1 cm of the inner skull (their gains are wrong and attract the inverse peaks)
    model = mne.read_bem_surfaces(
        subjects_dir / "sample" / "bem" / "sample-1280-1280-1280-bem.fif", verbose=False
    )
    bem = mne.make_bem_solution(model, verbose=False)
    src = mne.setup_volume_source_space(
        "sample",
        pos=spacing_mm,
        bem=bem,
        subjects_dir=subjects_dir,
        mindist=5.0,
        add_interpolator=False,
        verbose=False,
    )
    fwd = mne.make_forward_solution(info, trans, src, bem, meg=False, eeg=True, verbose=False)
    cov = mne.read_cov(meg_dir / "sample_audvis_trunc-cov.fif", verbose=False)
    cov = cov.pick_channels(info.ch_names, ordered=True, verbose=False)
    return fwd, info, cov, trans, bem


def off_grid_gains(
    info: mne.Info, trans, bem, pos_mri: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Gains (n_ch, n, 3) at arbitrary MRI positions, and which positions the BEM kept."""
    src = mne.setup_volume_source_space(
        pos={"rr": pos_mri, "nn": np.tile([0.0, 0.0, 1.0], (len(pos_mri), 1))}, verbose=False
    )
    fwd = mne.make_forward_solution(info, trans, src, bem, meg=False, eeg=True, verbose=False)
    kept = np.zeros(len(pos_mri), bool)
    kept[fwd["src"][0]["vertno"]] = True
    gains = fwd["sol"]["data"].reshape(len(info.ch_names), fwd["nsource"], 3)
    return gains, kept


@functools.cache
def _aseg(sample: Path) -> tuple[np.ndarray, np.ndarray]:
    img = nib.load(sample / "subjects" / "sample" / "mri" / "aseg.mgz")
    return np.asarray(img.dataobj), np.linalg.inv(img.header.get_vox2ras_tkr())


def aseg_labels(sample: Path, pos_mri: np.ndarray) -> np.ndarray:
    """aseg label at each position (MRI surface RAS, m)."""
    data, ras2vox = _aseg(sample)
    ijk = np.rint(pos_mri * 1000.0 @ ras2vox[:3, :3].T + ras2vox[:3, 3]).astype(int)
    ijk = np.clip(ijk, 0, np.array(data.shape) - 1)
    return data[ijk[:, 0], ijk[:, 1], ijk[:, 2]]


def simulate(
    gain: np.ndarray,
    info: mne.Info,
    cov: mne.Covariance,
    snr_db: float,
    rng: np.random.Generator,
) -> mne.EvokedArray:
    """Evoked of one dipole with ``gain`` (n_ch, 3) plus noise from ``cov`` at ``snr_db``."""
    n_ch = len(info.ch_names)
    times = np.arange(SFREQ_TIMES[0], SFREQ_TIMES[1], 1.0 / info["sfreq"])
    wave = np.exp(-0.5 * ((times - PEAK) / WIDTH) ** 2)
    q = rng.standard_normal(3)
    q /= np.linalg.norm(q)
    avg = np.eye(n_ch) - 1.0 / n_ch  # average reference
    signal = avg @ (gain @ q)[:, None] * wave[None]
    evals, evecs = np.linalg.eigh(cov.data)
    colour = evecs * np.sqrt(np.clip(evals, 0, None))
    noise = avg @ colour @ rng.standard_normal((n_ch, len(times)))
    noise_var = np.trace(avg @ cov.data @ avg) / n_ch
    half = wave >= 0.5
    signal *= np.sqrt(10 ** (snr_db / 10) * noise_var / np.mean(signal[:, half] ** 2))
    # info carries the sample data's average-reference projector: the data already satisfy it
    return mne.EvokedArray(signal + noise, info, tmin=times[0], nave=1, verbose=False)


def displace(
    pos: np.ndarray, ids: tuple[int, ...], spacing: float, sample: Path, rng: np.random.Generator
) -> np.ndarray:
    """Move each position by a random offset in a cube of ± spacing/2, within the same labels."""
    out = pos.copy()
    for k in range(len(pos)):
        for _ in range(50):
            cand = pos[k] + rng.uniform(-spacing / 2, spacing / 2, 3)
            if np.isin(aseg_labels(sample, cand[None]), ids)[0]:
                out[k] = cand
                break
    return out


def dispersion(est: np.ndarray, pos: np.ndarray, true_pos: np.ndarray) -> float:
    """Spatial dispersion (m) of ``est`` around one true position (docs/metrics.md)."""
    if est.max() <= 0:
        return float("nan")
    w = (est / est.max()) ** 2
    d2 = np.sum((pos - true_pos) ** 2, axis=1)
    return float(np.sqrt(np.sum(w * d2) / np.sum(w)))


def run(args: argparse.Namespace) -> dict:
    sample = check_dir(Path(args.data) / "mne-sample", "MNE sample folder")
    rng = check_random_state(args.seed)
    t0 = time.time()
    fwd, info, cov, trans, bem = build_forward(sample, args.spacing)
    head_mri = mne.transforms.invert_transform(fwd["mri_head_t"])
    pos = mne.transforms.apply_trans(head_mri, fwd["source_rr"])
    labels = aseg_labels(sample, pos)
    n_ch = len(info.ch_names)
    grid_gain = fwd["sol"]["data"].reshape(n_ch, fwd["nsource"], 3)
    print(f"forward: {fwd['nsource']} sources, {n_ch} EEG ({time.time() - t0:.1f} s)")
    jobs = []  # (condition, group, grid index, true position, gain)
    for group, ids in GROUPS.items():
        candidates = np.flatnonzero(np.isin(labels, ids))
        n = min(args.n_sources, len(candidates))
        chosen = rng.choice(candidates, size=n, replace=False)
        print(f"{group}: {len(candidates)} grid points, simulating {n}")
        for i in chosen:
            jobs.append(("on_grid", group, int(i), pos[i], grid_gain[:, i]))
        if args.off_grid:
            moved = displace(pos[chosen], ids, args.spacing / 1000.0, sample, rng)
            gains, kept = off_grid_gains(info, trans, bem, moved)
            for k, i in enumerate(np.asarray(chosen)[kept]):
                jobs.append(("off_grid", group, int(i), moved[kept][k], gains[:, k]))
    methods = [m for m in CLASSICAL_METHODS if m in args.methods]
    operators = {m: make_classical(m, info, fwd, cov) for m in methods}  # built once
    conditions = sorted({j[0] for j in jobs}, reverse=True)
    records = []
    for cond, group, index, true_pos, gain in progress(
        jobs, enabled=not args.quiet, desc="simulations"
    ):
        evoked = simulate(gain, info, cov, args.snr_db, rng)
        for method in methods:
            tic = time.time()
            res = operators[method].apply(evoked)
            est = res.map_at()
            records.append(
                {
                    "condition": cond,
                    "group": group,
                    "grid_index": index,
                    "true_pos_mm": [round(1000 * v, 2) for v in true_pos],
                    "method": method,
                    "ple_mm": 1000 * float(np.linalg.norm(res.peaks(1).positions()[0] - true_pos)),
                    "sd_mm": 1000 * dispersion(est, pos, true_pos),
                    "seconds": time.time() - tic,
                }
            )
    summary: dict = {}
    for cond in conditions:
        summary[cond] = {}
        for group in GROUPS:
            summary[cond][group] = {}
            for method in methods:
                rows = [
                    r
                    for r in records
                    if r["condition"] == cond and r["group"] == group and r["method"] == method
                ]
                ple = np.array([r["ple_mm"] for r in rows])
                sd = np.array([r["sd_mm"] for r in rows])
                summary[cond][group][method] = {
                    "n": len(rows),
                    "median_ple_mm": float(np.median(ple)),
                    "p25_ple_mm": float(np.percentile(ple, 25)),
                    "p75_ple_mm": float(np.percentile(ple, 75)),
                    "mean_ple_mm": float(np.mean(ple)),
                    "median_sd_mm": float(np.nanmedian(sd)),
                    "mean_seconds": float(np.mean([r["seconds"] for r in rows])),
                }
    return {
        "benchmark": "classical_sample",
        "settings": {
            "subject": "MNE sample",
            "forward": "MNE 3-layer BEM (sample-1280-1280-1280, linear collocation), EEG only",
            "n_channels": len(info.ch_names),
            "n_sources": int(fwd["nsource"]),
            "spacing_mm": args.spacing,
            "snr_db": args.snr_db,
            "snr_definition": "mean signal^2 over channels and samples above half peak / "
            "mean noise variance over channels (average reference)",
            "noise": "sample_audvis_trunc-cov (EEG part), nave=1",
            "time_course": f"Gaussian, peak {PEAK} s, sigma {WIDTH} s",
            "orientation": "random unit vector per dipole",
            "conditions": {
                "on_grid": "dipole on a grid point, simulated with the inversion forward",
                "off_grid": "dipole moved by U(±spacing/2) per axis within the same aseg "
                "labels, simulated with its own BEM gain (no position inverse crime)",
            },
            "seed": args.seed,
            "method_settings": "make_classical defaults (snr=3, loose='auto', depth=0.8; "
            "LCMV reg=0.05 max-power with data cov from the evoked; MxNE alpha=30 irMxNE; "
            "gamma_map alpha=0.5)",
            "mne_version": mne.__version__,
            "wall_seconds": time.time() - t0,
        },
        "summary": summary,
        "records": records,
    }


def print_table(result: dict) -> None:
    for cond, by_group in result["summary"].items():
        groups = list(by_group)
        print(f"\n{cond}: median peak localization error (IQR), mm")
        print(f"{'method':<12}" + "".join(f"{g:>24}" for g in groups))
        for method in by_group[groups[0]]:
            cells = []
            for g in groups:
                s = by_group[g][method]
                cell = f"{s['median_ple_mm']:.1f} ({s['p25_ple_mm']:.1f}-{s['p75_ple_mm']:.1f})"
                cells.append(cell.rjust(24))
            print(f"{method:<12}" + "".join(cells))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=os.environ.get("DEEPESI_SHARED_DATA", ""))
    parser.add_argument("--spacing", type=float, default=7.0, help="grid spacing (mm)")
    parser.add_argument("--n-sources", type=int, default=25, help="dipoles per group")
    parser.add_argument("--snr-db", type=float, default=10.0)
    parser.add_argument("--methods", nargs="+", default=list(CLASSICAL_METHODS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--out", default=str(Path(__file__).parent / "results" / "classical_sample.json")
    )
    parser.add_argument(
        "--off-grid", action="store_true", help="also simulate dipoles off the grid"
    )
    parser.add_argument("--overwrite", action="store_true")
    parser.add_argument("-q", "--quiet", action="store_true")
    args = parser.parse_args(argv)
    if not args.data:
        parser.error("set DEEPESI_SHARED_DATA or pass --data (the shared data folder)")
    unknown = sorted(set(args.methods) - set(CLASSICAL_METHODS))
    if unknown:
        parser.error(f"unknown method(s) {unknown}; choose from {list(CLASSICAL_METHODS)}")
    mne.set_log_level("ERROR")
    result = run(args)
    print_table(result)
    with atomic_path(args.out, overwrite=args.overwrite) as tmp:
        tmp.write_text(json.dumps(result, indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
