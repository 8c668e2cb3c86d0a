"""Real data: the auditory N100/N100m of the MNE "sample" subject, localized with deepesi.

What it does, stage by stage (every expensive stage is cached in the output folder, so a rerun
resumes where the last one stopped):

1. **Head model** from the subject's FreeSurfer inputs (``aseg.mgz`` inside, BEM surfaces
   outside; :func:`deepesi.datasets.mne_sample.build_head`) → ``<out>/head-<voxel>mm/``.
2. **Source space** on a regular grid in the subject's grey matter and deep structures
   (:func:`deepesi.datasets.mne_sample.build_sources`) → ``<out>/sources-<spacing>mm.npz``.
3. **Forward**: FEM EEG lead field for the recording's own digitized electrodes and one-layer BEM
   MEG lead field for its Vectorview coils, placed with the recording's ``-trans.fif``
   (:func:`deepesi.datasets.mne_sample.build_forward`) → content-hashed cache in
   ``<out>/cache/``.
4. **Networks**: one subject-specific 4LCNN per modality (EEG alone, MEG alone, EEG+MEG), trained
   on data simulated with this forward and the recording's noise covariance
   (:func:`deepesi.training.train_model`, checkpointed) → ``<out>/models/<modality>.pt``.
5. **Data**: both auditory conditions of ``sample_audvis-auditory-ave.fif`` combined
   (``mne.combine_evoked(..., weights='nave')``, nave 3 + 6 = 9), baseline-corrected on the
   pre-stimulus interval, window 90–110 ms.
6. **Localization** of that window with deepesi (:func:`deepesi.inverse.apply_network`) and with
   every classical method (:func:`deepesi.inverse.apply_classical`) on the *same* forward: every
   result is a :class:`deepesi.inverse.SourceMap`.
7. **Scores**: for every modality × method, the strongest left- and right-hemisphere peak of the
   window-averaged map and its distance to the ``Aud-lh`` / ``Aud-rh`` labels
   (:func:`deepesi.references.label_distance_mm`), written as ``<out>/results.md`` and
   ``<out>/results.json``, and an ``mne.Report`` of the deepesi results
   (``<out>/report_<modality>.html``).

Run::

    python examples/sample_auditory.py --data /path/to/mne-sample -o out/sample
    python examples/sample_auditory.py --data /path/to/mne-sample -o out/sample-quick --quick

``--data`` is the folder with ``subjects/sample`` and ``MEG/sample`` (as in the MNE testing data).
``--quick`` uses tiny training settings (a smoke test: the numbers mean nothing).

Distance to a label (the score)
-------------------------------
The distance of a peak to a label is the distance to its nearest vertex, in mm, and 0 inside the
convex hull of its vertices (:mod:`deepesi.references`): a peak in the wrong hemisphere or far
from auditory cortex scores tens of mm; one on the label scores 0. Label positions come from
``subjects/sample/surf/<hemi>.white`` by vertex number when that file exists, else from the label
file, and are checked to lie on the subject's cerebral cortex
(:func:`deepesi.references.label_in_brain_fraction`): the ``Aud-*.label`` files saved by
``mne_analyze`` carry the coordinates of the surface they were drawn on (not always the white
surface), and a label that fails the check gets 'n/a' distances and a warning instead of
meaningless numbers.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import mne
import numpy as np

import deepesi
from deepesi._io import atomic_path
from deepesi.datasets.mne_sample import (
    TRAINING,
    WINDOW,
    build_forward,
    build_forward_ensemble,
    build_head,
    build_sources,
    data_paths,
    load_auditory_evoked,
)
from deepesi.references import (
    label_in_brain_fraction,
    label_positions,
    read_xfit_dipole,
    score_map,
    score_sources,
)

logger = logging.getLogger("sample_auditory")

#: Below this fraction of vertices in the brain a label is reported as unusable.
MIN_LABEL_IN_BRAIN = 0.8

#: Modalities: name → channel types of the lead field.
MODALITIES: dict[str, tuple[str, ...]] = {
    "EEG": ("eeg",),
    "MEG": ("mag", "grad"),
    "EEG+MEG": ("eeg", "mag", "grad"),
}

#: Extra options of the classical methods. Gamma-MAP costs ~2 s per iteration for 306 MEG
#: channels x 4467 points (13401 dipoles) on one CPU core; its default of up to 10000 iterations
#: would take hours, so it stops after 60 (a budget, not convergence; see docs/example-sample.md).
METHOD_OPTIONS: dict[str, dict] = {"gamma_map": {"maxit": 60}}


# ============================================================================ settings
@dataclass(frozen=True)
class Settings:
    """Settings of one run (the defaults are the documented full run).

    Attributes
    ----------
    voxel_size : float
        Head-model voxel edge, mm.
    spacing : float
        Source-grid spacing, m.
    train_minutes : float | None
        Optional wall-time cap **per network** (minutes). None (default): the budget is
        ``epochs × batches_per_epoch`` batches only, so the nets do not depend on the machine.
    epochs, batch_size, batches_per_epoch, n_val : int
        Training settings (see :func:`deepesi.training.train_model`).
    methods : tuple of str
        Classical methods to compare (names of :data:`deepesi.inverse.CLASSICAL_METHODS`).
    seed : int
        Seeds the networks' weights and the simulated training data.
    ensemble : int
        Lead fields the nets train on (the nominal one and ``ensemble - 1`` drawn under
        conductivity, electrode and head-position uncertainty; 1: the nominal forward alone).
    bank_noise_fraction, brain_noise_fraction : (float, float)
        Fractions of the training noise drawn from the recording's own pre-stimulus baseline
        and from background brain activity (:mod:`deepesi.simulation.noise`).
    quick : bool
        Tiny settings for a smoke test.
    modalities : tuple of str
        Which nets to train and score (keys of :data:`MODALITIES`; default all three).
    """

    voxel_size: float = 2.0
    spacing: float = 5e-3
    train_minutes: float | None = None
    epochs: int = TRAINING["epochs"]
    patience: int = TRAINING["patience"]
    batch_size: int = TRAINING["batch_size"]
    batches_per_epoch: int = TRAINING["batches_per_epoch"]
    n_val: int = TRAINING["n_val"]
    methods: tuple[str, ...] = ()
    seed: int = TRAINING["seed"]
    ensemble: int = 4
    bank_noise_fraction: tuple[float, float] = (0.25, 0.75)
    brain_noise_fraction: tuple[float, float] = (0.0, 0.5)
    quick: bool = False
    modalities: tuple[str, ...] = tuple(MODALITIES)

    def modality_items(self) -> list[tuple[str, tuple[str, ...]]]:
        """The chosen modalities and their channel types, in :data:`MODALITIES` order."""
        unknown = sorted(set(self.modalities) - set(MODALITIES))
        if unknown:
            raise ValueError(f"unknown modalities {unknown}; choose from {list(MODALITIES)}.")
        return [(k, v) for k, v in MODALITIES.items() if k in self.modalities]

    @classmethod
    def quick_settings(cls, **kw) -> Settings:
        """Tiny settings: 3 mm head, 8 mm sources, 2 epochs of 4 batches of 32 per network."""
        base = dict(voxel_size=3.0, spacing=8e-3, train_minutes=0.5, epochs=2, batch_size=32,
                    batches_per_epoch=4, n_val=64, quick=True, ensemble=1)
        base.update(kw)
        return cls(**base)


def seed_suffix(settings: Settings) -> str:
    """'' for seed 0, ``-seed<k>`` for another: one folder holds the files of several seeds."""
    return f"-seed{settings.seed}" if settings.seed else ""


def results_stem(settings: Settings) -> str:
    """``results`` for seed 0, ``results-seed<k>`` for another seed."""
    return "results" + seed_suffix(settings)


# ============================================================================ cached stages
def train_or_load(lf_m, config, fname: Path, settings: Settings, whiten: bool | None = None,
                  ensemble=None):
    """The net in ``fname`` if it exists, else one trained there on ``config`` with the example's
    settings (budget, batches, seed; ``whiten`` as :func:`deepesi.training.train_model`)."""
    from deepesi.training import train_or_load as _train_or_load

    return _train_or_load(
        lf_m, config, fname, epochs=settings.epochs, batch_size=settings.batch_size,
        batches_per_epoch=settings.batches_per_epoch, n_val=settings.n_val,
        seed=settings.seed, max_minutes=settings.train_minutes, whiten=whiten,
        patience=settings.patience, ensemble=ensemble,
    )


def train_networks(lf, cov, evoked, out: Path, settings: Settings, ensemble=None) -> dict:
    """Stage 4: one 4LCNN per modality (cached in ``<out>/models``; interrupted runs resume).

    The recording's SSP projectors are applied to the simulated data as to the real; part of
    the noise is the recording's own pre-stimulus baseline (a noise bank), part background brain
    activity; with ``ensemble`` every training sample goes through one of its lead fields."""
    from deepesi.simulation import SimulationConfig, make_noise_bank

    # one file per seed (seed 0 keeps the plain name): several seeds share one output folder,
    # its head, source space and forward caches
    suffix = ("-quick" if settings.quick else "") + seed_suffix(settings)
    # the net whitens its input with the recording's noise covariance (train_model's default
    # when there is one) and learns at whitened SNRs, as the classical methods see the data;
    # half to all of the noise from the covariance, the rest white (real noise is never exactly
    # the estimated covariance); signal and noise projected by the recording's SSP (3 PCA
    # vectors of the empty-room MEG), which the whitener then also removes
    bank = make_noise_bank(evoked, tmax=0.0)
    config = SimulationConfig(noise_cov=cov, snr_space="whitened",
                              colored_noise_fraction=(0.5, 1.0), projs=evoked.info["projs"],
                              sfreq=float(evoked.info["sfreq"]), noise_bank=bank,
                              bank_noise_fraction=settings.bank_noise_fraction,
                              brain_noise_fraction=settings.brain_noise_fraction)
    models = {}
    for name, types in settings.modality_items():
        fname = out / "models" / f"{name.replace('+', '-').lower()}{suffix}.pt"
        ens = None if ensemble is None else ensemble.pick_types(list(types))
        models[name] = train_or_load(lf.pick_types(list(types)), config, fname, settings,
                                     ensemble=ens)
    return models


# ============================================================================ the comparison
def _window_map(amplitudes: np.ndarray) -> np.ndarray:
    """Average of a (n_sources, n_times) amplitude array over the window's samples."""
    return np.asarray(amplitudes, dtype=float).mean(axis=1)


def run_methods(evoked, lf, models: dict, cov, labels: dict, settings: Settings,
                progress: bool, dipole: dict | None = None) -> tuple[list[dict], dict]:
    """Stage 6–7: localize the window with every modality × method and score the peaks.

    Returns
    -------
    rows : list of dict
        One per modality × method (see :func:`deepesi.references.score_map`), with ``seconds``.
    deepesi_results : dict
        Modality → the deepesi :class:`~deepesi.inverse.SourceMap`.
    """
    from deepesi.inverse import CLASSICAL_METHODS, apply_classical, apply_network

    src = lf.source_space
    methods = settings.methods or CLASSICAL_METHODS
    rows, results = [], {}
    for name, types in settings.modality_items():
        lf_m = lf.pick_types(list(types))
        ev_m = evoked.copy().pick([ch for ch in evoked.ch_names if ch in set(lf_m.ch_names)])
        t0 = time.perf_counter()
        res = apply_network(evoked, models[name], source_space=src, noise_cov=cov,
                            forward=lf_m, tmin=WINDOW[0], tmax=WINDOW[1], sources=True)
        results[name] = res
        seconds = round(time.perf_counter() - t0, 2)
        rows.append({"modality": name, "method": "deepesi",
                     **score_map(_window_map(res.amplitudes), src, labels, dipole),
                     "gof": res.fit.get("gof"),
                     "best_dipole_gof": res.fit.get("best_dipole_gof"),
                     "seconds": seconds})
        # the source set fitted from the same net (issue 14): its strongest source per
        # hemisphere at its own off-grid position
        rows.append({"modality": name, "method": "deepesi-sources",
                     **score_sources(res.sources, src, labels, dipole),
                     "gof": (res.fit.get("sources") or {}).get("gof"),
                     "best_dipole_gof": res.fit.get("best_dipole_gof"),
                     "noise": (res.fit.get("sources") or {}).get("noise"),
                     "seconds": seconds})
        for method in methods:
            t0 = time.perf_counter()
            try:
                sr = apply_classical(ev_m, method, lf_m, cov, tmin=WINDOW[0], tmax=WINDOW[1],
                                     options=METHOD_OPTIONS.get(method))
            except Exception as err:  # one failing method must not lose the others
                logger.warning("%s / %s failed: %s", name, method, err)
                rows.append({"modality": name, "method": method, "error": str(err)})
                continue
            # a method that fits sources ('dipoles') is scored at its own off-grid sources
            score = (score_sources(sr.sources, src, labels, dipole) if sr.sources
                     else score_map(_window_map(sr.amplitudes), src, labels, dipole))
            rows.append({"modality": name, "method": sr.method, **score,
                         "gof": (sr.fit.get("sources") or {}).get("gof") if sr.sources
                         else sr.fit.get("gof"),
                         "best_dipole_gof": sr.fit.get("best_dipole_gof"),
                         "seconds": round(time.perf_counter() - t0, 2)})
            if progress:
                logger.info("%s / %s: lh %s mm, rh %s mm", name, sr.method,
                            rows[-1]["dist_lh_mm"], rows[-1]["dist_rh_mm"])
    return rows, results


def _fmt(v) -> str:
    return "—" if v is None else f"{v:.1f}"


def markdown_table(rows: list[dict], label_info: dict | None = None) -> str:
    """The results as a markdown table (distances in mm; '—': no peak in that hemisphere).

    Columns: distance to each Aud label, distance of the peak's MNI position to
    :data:`AUDITORY_MNI_BOX`, the peaks' MNI positions and regions.

    ``label_info`` (per hemisphere ``usable`` and ``in_brain_fraction``): for a label whose
    vertices are not on the subject's cortex the distance column shows 'n/a' (the raw numbers
    stay in ``results.json``) and a warning line goes above the table.
    """
    unusable = {h for h, info in (label_info or {}).items() if not info.get("usable", True)}
    notes = [
        f"**Warning**: Aud-{h} is not usable as a reference: only "
        f"{100 * info['in_brain_fraction']:.0f}% of its vertices lie on the subject's cortex "
        f"of that hemisphere; "
        "its distances are left out ('n/a').\n"
        for h, info in (label_info or {}).items() if not info.get("usable", True)
    ]
    lines = [*notes,
        "| modality | method | Aud-lh dist (mm) | Aud-rh dist (mm) | LH to auditory box (mm) | "
        "RH to auditory box (mm) | RH to xfit dipole (mm) | GOF (%) | LH peak (MNI mm) | "
        "RH peak (MNI mm) | LH region | RH region |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|---|---|---|",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['modality']} | {r['method']} | failed: {r['error'][:60]} "
                         "| | | | | | | | | |")
            continue
        pk = {h: ("—" if r.get(f"peak_{h}_mni_mm") is None
                  else "(" + ", ".join(f"{v:.0f}" for v in r[f"peak_{h}_mni_mm"]) + ")")
              for h in ("lh", "rh")}
        dist = {h: "n/a" if h in unusable else _fmt(r[f"dist_{h}_mm"]) for h in ("lh", "rh")}
        box = {h: _fmt(r.get(f"aud_mni_{h}_mm")) for h in ("lh", "rh")}
        lines.append(
            f"| {r['modality']} | {r['method']} | {dist['lh']} | {dist['rh']} | "
            f"{box['lh']} | {box['rh']} | {_fmt(r.get('dist_dipole_mm'))} | "
            f"{_fmt(None if r.get('gof') is None else 100 * r['gof'])} | "
            f"{pk['lh']} | {pk['rh']} | {r['peak_lh_region'] or '—'} "
            f"| {r['peak_rh_region'] or '—'} |"
        )
    return "\n".join(lines) + "\n"


def _write_text(fname: Path, text: str) -> None:
    with atomic_path(fname, overwrite=True) as tmp:
        Path(tmp).write_text(text, encoding="utf-8")


# ============================================================================ main
def run(data_dir: str | Path, out: str | Path, settings: Settings, *, report: bool = True,
        progress: bool = True) -> dict:
    """Run the whole example; returns the JSON summary (also written to ``<out>/results.json``).

    Parameters
    ----------
    data_dir : path-like
        The MNE sample data folder (``subjects/sample``, ``MEG/sample``).
    out : path-like
        Output and cache folder.
    settings : Settings
        Run settings (:meth:`Settings.quick_settings` for a smoke test).
    report : bool
        Write the ``mne.Report`` of the deepesi result of each modality.
    progress : bool
        Progress bars and log lines.
    """
    from deepesi.viz import make_report

    paths = data_paths(data_dir)
    out = Path(out).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    head = build_head(paths, out, voxel_size=settings.voxel_size)
    sources = build_sources(head, out, spacing=settings.spacing)
    timings["head_and_sources_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    lf = build_forward(head, sources, paths, out)
    timings["forward_s"] = time.perf_counter() - t0
    cov = mne.read_cov(paths["cov"], verbose=False)
    evoked = load_auditory_evoked(paths["evoked"])
    ensemble = None
    t0 = time.perf_counter()
    if settings.ensemble > 1:
        ensemble = build_forward_ensemble(head, sources, paths, out,
                                          n_members=settings.ensemble, seed=settings.seed)
        timings["forward_ensemble_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    models = train_networks(lf, cov, evoked, out, settings, ensemble)
    timings["training_s"] = time.perf_counter() - t0
    labels, label_info = {}, {}
    for h in ("lh", "rh"):
        labels[h], where = label_positions(paths[f"label_{h}"], paths["subjects_dir"])
        frac = label_in_brain_fraction(labels[h], head, h)
        label_info[h] = {"positions_from": where, "in_brain_fraction": round(frac, 3),
                         "usable": frac >= MIN_LABEL_IN_BRAIN}
        if frac < MIN_LABEL_IN_BRAIN:
            logger.warning(
                "Aud-%s: only %.0f%% of the label's vertices lie on the head's cortex: its "
                "coordinates are not positions on this subject's cortex (label drawn on an "
                "inflated surface?). Add subjects/sample/surf/%s.white to use the white-surface "
                "positions of its vertices; distances below are not meaningful.", h,
                100 * frac, h)
    t0 = time.perf_counter()
    dipole = (read_xfit_dipole(paths["xfit_dipole"], paths["trans"])
              if "xfit_dipole" in paths else None)
    rows, results = run_methods(evoked, lf, models, cov, labels, settings, progress, dipole)
    timings["localization_s"] = time.perf_counter() - t0
    summary = {
        "window_s": list(WINDOW),
        "nave": int(evoked.nave),
        "settings": {k: (list(v) if isinstance(v, tuple) else v)
                     for k, v in settings.__dict__.items()},
        "head": repr(head),
        "sources": repr(sources),
        "forward": {"channels": lf.n_channels, "sources": lf.n_sources,
                    "from_cache": bool(lf.meta.get("from_cache")),
                    "eeg_seconds": lf.meta.get("eeg_seconds"),
                    "seconds": lf.meta.get("seconds")},
        "training": {name: {"epochs": m.meta.get("epochs_run"),
                            "best_val_loss": m.meta.get("best_val_loss"),
                            "train_time_s": m.meta.get("train_time_s")}
                     for name, m in models.items()},
        "timings_s": {k: round(v, 1) for k, v in timings.items()},
        "distance_definition": (
            "mm from the strongest hemisphere peak of the 90-110 ms mean map to the nearest "
            "Aud label vertex (MRI frame); 0 inside the convex hull of the label's vertices"
        ),
        "labels": label_info,
        "rows": rows,
    }
    stem = results_stem(settings)
    _write_text(out / f"{stem}.json", json.dumps(summary, indent=1) + "\n")
    _write_text(out / f"{stem}.md", markdown_table(rows, label_info))
    if report:
        for name, res in results.items():
            fname = out / f"report_{name.replace('+', '-').lower()}.html"
            make_report(res, head, title=f"sample auditory N100 — deepesi {name}", fname=fname,
                        overwrite=True)
    return summary


def main(argv: list[str] | None = None) -> int:
    """Command line entry point (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True, help="MNE sample data folder.")
    parser.add_argument("-o", "--out", required=True, help="output and cache folder.")
    parser.add_argument("--quick", action="store_true", help="tiny settings (smoke test).")
    parser.add_argument("--train-minutes", type=float, default=None,
                        help="optional wall-time cap per network, minutes (default: none, the "
                        "budget is a number of batches, so the nets do not depend on the "
                        "machine).")
    parser.add_argument("--methods", nargs="+", default=None,
                        help="classical methods to compare (default: all).")
    parser.add_argument("--epochs", type=int, default=None,
                        help=f"training epochs per network (default {TRAINING['epochs']}).")
    parser.add_argument("--ensemble", type=int, default=None,
                        help="lead fields to train on (default 4: the nominal one and 3 drawn "
                             "under head-model uncertainty; 1: the nominal one alone).")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--modalities", nargs="+", default=None, choices=list(MODALITIES),
                        help="nets to train and score (default: all three)")
    parser.add_argument("--no-report", action="store_true", help="skip the HTML reports.")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                        format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    deepesi.set_log_level("WARNING" if args.quiet else "INFO")  # messages and progress bars
    kw: dict = {"seed": args.seed}
    if args.train_minutes is not None:
        if not args.train_minutes > 0:
            parser.error("--train-minutes must be > 0.")
        kw["train_minutes"] = args.train_minutes
    if args.epochs is not None:
        kw["epochs"] = args.epochs
    if args.ensemble is not None:
        if args.ensemble < 1:
            parser.error("--ensemble must be >= 1.")
        kw["ensemble"] = args.ensemble
    if args.methods:
        kw["methods"] = tuple(args.methods)
    if args.modalities:
        kw["modalities"] = tuple(args.modalities)
    settings = Settings.quick_settings(**kw) if args.quick else Settings(**kw)
    try:
        summary = run(args.data, args.out, settings, report=not args.no_report,
                      progress=not args.quiet)
    except (ValueError, TypeError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(markdown_table(summary["rows"], summary["labels"]))
    stem = results_stem(settings)
    print(f"written: {Path(args.out) / stem}.md, {stem}.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
