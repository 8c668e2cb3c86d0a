"""Real data: the auditory N100/N100m of the MNE "sample" subject, localized with deepesi.

What it does, stage by stage (every expensive stage is cached in the output folder, so a rerun
resumes where the last one stopped):

1. **Head model** from the subject's FreeSurfer inputs (``aseg.mgz`` inside, BEM surfaces
   outside, :func:`deepesi.anatomy.freesurfer.read_freesurfer_subject`) →
   ``<out>/head-<voxel>mm/``.
2. **Source space** on a regular grid in the subject's grey matter and deep structures
   (:func:`deepesi.sources.make_source_space`) → ``<out>/sources-<spacing>mm.npz``.
3. **Forward**: FEM EEG lead field for the recording's own digitized electrodes and one-layer BEM
   MEG lead field for its Vectorview coils, placed with the recording's ``-trans.fif``
   (:func:`deepesi.sensors.sensors_from_info`, :func:`deepesi.forward.api.make_forward`) →
   content-hashed cache in ``<out>/cache/``.
4. **Networks**: one subject-specific 4LCNN per modality (EEG alone, MEG alone, EEG+MEG), trained
   on data simulated with this forward and the recording's noise covariance
   (:func:`deepesi.training.train_model`, checkpointed) → ``<out>/models/<modality>.pt``.
5. **Data**: both auditory conditions of ``sample_audvis-auditory-ave.fif`` combined
   (``mne.combine_evoked(..., weights='nave')``, nave 3 + 6 = 9), baseline-corrected on the
   pre-stimulus interval, window 90–110 ms.
6. **Localization** of that window with deepesi (:func:`deepesi.localize.localize`) and with every
   classical method (:func:`deepesi.baselines.apply_classical`) on the *same* forward.
7. **Scores**: for every modality × method, the strongest left- and right-hemisphere peak of the
   window-averaged map and its distance to the ``Aud-lh`` / ``Aud-rh`` labels
   (:func:`label_distance_mm`), written as ``<out>/results.md`` and ``<out>/results.json``, and
   an ``mne.Report`` of the deepesi results (``<out>/report_<modality>.html``).

Run::

    python examples/sample_auditory.py --data /path/to/mne-sample -o out/sample
    python examples/sample_auditory.py --data /path/to/mne-sample -o out/sample-quick --quick

``--data`` is the folder with ``subjects/sample`` and ``MEG/sample`` (as in the MNE testing data).
``--quick`` uses tiny training settings (a smoke test: the numbers mean nothing).

Distance to a label (the score)
-------------------------------
A FreeSurfer label is a patch of cortical-surface vertices (surface RAS = the MRI frame). The
distance of a peak position ``p`` to a label is the distance from ``p`` to the nearest label
vertex, in mm, and **0 when ``p`` lies inside the label's extent**, defined as the convex hull of
the label's vertices (the patch and the volume it folds around: grey matter between the banks of the
auditory cortex, which a 5 mm grid samples, lies inside it). A peak in the wrong hemisphere or far
from auditory cortex therefore scores tens of mm; one on the label scores 0.

Label positions come from ``subjects/sample/surf/<hemi>.white`` by vertex number when that file
exists, else from the label file, and are checked to lie on the subject's cerebral cortex
(:func:`label_in_brain_fraction`): the ``Aud-*.label`` files saved by ``mne_analyze`` carry the
coordinates of the surface they were drawn on (not always the white surface), and a label that
fails the check gets 'n/a' distances and a warning instead of meaningless numbers.
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
from scipy.spatial import Delaunay, QhullError, cKDTree

from deepesi._io import atomic_path
from deepesi.anatomy.regions import hemisphere

logger = logging.getLogger("sample_auditory")

#: Window of the N100 / N100m (s).
WINDOW = (0.090, 0.110)

#: Below this fraction of vertices in the brain a label is reported as unusable.
MIN_LABEL_IN_BRAIN = 0.8

#: Approximate MNI extent (mm) of the auditory cortex, Heschl's gyrus and planum temporale
#: (x = ±40…60, y = −35…−15, z = 0…15): the reference when the Aud labels are not usable. A
#: peak's distance to it is 0 inside, else to the box's nearest face, edge or corner.
AUDITORY_MNI_BOX: dict[str, tuple[tuple[float, float], ...]] = {
    "lh": ((-60.0, -40.0), (-35.0, -15.0), (0.0, 15.0)),
    "rh": ((40.0, 60.0), (-35.0, -15.0), (0.0, 15.0)),
}

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

SUBJECT = "sample"
EVOKED_FILE = "MEG/sample/sample_audvis-auditory-ave.fif"
TRANS_FILE = "MEG/sample/sample_audvis_trunc-trans.fif"
COV_FILE = "MEG/sample/sample_audvis_trunc-cov.fif"
LABEL_FILES = {"lh": "MEG/sample/labels/Aud-lh.label", "rh": "MEG/sample/labels/Aud-rh.label"}


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
    train_minutes : float
        Training wall-time budget **per network** (minutes).
    epochs, batch_size, batches_per_epoch, n_val : int
        Training settings (see :func:`deepesi.training.train_model`).
    methods : tuple of str
        Classical methods to compare (names of :data:`deepesi.baselines.CLASSICAL_METHODS`).
    seed : int
        Seeds the networks' weights and the simulated training data.
    quick : bool
        Tiny settings for a smoke test.
    """

    voxel_size: float = 2.0
    spacing: float = 5e-3
    train_minutes: float = 8.0
    epochs: int = 200
    batch_size: int = 256
    batches_per_epoch: int = 50
    n_val: int = 1024
    methods: tuple[str, ...] = ()
    seed: int = 0
    quick: bool = False

    @classmethod
    def quick_settings(cls, **kw) -> Settings:
        """Tiny settings: 3 mm head, 8 mm sources, 2 epochs of 4 batches of 32 per network."""
        base = dict(voxel_size=3.0, spacing=8e-3, train_minutes=0.5, epochs=2, batch_size=32,
                    batches_per_epoch=4, n_val=64, quick=True)
        base.update(kw)
        return cls(**base)


# ============================================================================ building blocks
def data_paths(data_dir: str | Path) -> dict[str, Path]:
    """The files of the MNE sample data set this example reads, checked to exist.

    Parameters
    ----------
    data_dir : path-like
        Folder holding ``subjects/sample`` and ``MEG/sample``.

    Returns
    -------
    dict
        ``subjects_dir``, ``evoked``, ``trans``, ``cov``, ``label_lh``, ``label_rh``.
    """
    root = Path(data_dir).expanduser()
    paths = {
        "subjects_dir": root / "subjects",
        "evoked": root / EVOKED_FILE,
        "trans": root / TRANS_FILE,
        "cov": root / COV_FILE,
        "label_lh": root / LABEL_FILES["lh"],
        "label_rh": root / LABEL_FILES["rh"],
    }
    missing = [str(p) for p in paths.values() if not p.exists()]
    if not (paths["subjects_dir"] / SUBJECT).is_dir():
        missing.append(str(paths["subjects_dir"] / SUBJECT))
    if missing:
        raise FileNotFoundError(
            f"{root} is not the MNE sample data folder; missing: {', '.join(missing)}. Pass "
            "--data pointing to the folder with subjects/sample and MEG/sample."
        )
    return paths


def load_auditory_evoked(fname: str | Path, window: tuple[float, float] | None = None
                         ) -> mne.Evoked:
    """Both auditory conditions combined by their number of averages, EEG and MEG channels only.

    Parameters
    ----------
    fname : path-like
        ``sample_audvis-auditory-ave.fif`` ('Left Auditory' and 'Right Auditory').
    window : (float, float) | None
        Crop to this window (s) after the baseline correction; None keeps the whole epoch.

    Returns
    -------
    mne.Evoked
        ``nave`` is the sum of both conditions' (9); SSP projectors applied as stored; baseline
        corrected on the pre-stimulus interval (the file is stored without baseline correction,
        and its EEG carries offsets of tens of µV that would swamp the ~3 µV N100).
    """
    evokeds = mne.read_evokeds(fname, verbose=False)
    conds = {ev.comment: ev for ev in evokeds}
    wanted = ("Left Auditory", "Right Auditory")
    if not set(wanted) <= set(conds):
        raise ValueError(
            f"{fname} must hold the conditions {wanted}, it has {sorted(conds)}."
        )
    ev = mne.combine_evoked([conds[c] for c in wanted], weights="nave")
    ev.comment = "Auditory (left + right)"
    ev.pick(["meg", "eeg"], exclude=())
    ev.apply_baseline((None, 0.0), verbose=False)
    if window is not None:
        tmin, tmax = map(float, window)
        if not ev.times[0] <= tmin < tmax <= ev.times[-1]:
            raise ValueError(
                f"window {window} s must be increasing and within the epoch "
                f"{ev.times[0]:.3f}..{ev.times[-1]:.3f} s."
            )
        ev.crop(tmin, tmax)
    return ev


def label_distance_mm(points: np.ndarray, label_pos: np.ndarray) -> np.ndarray:
    """Distance (mm) of points to a cortical label: 0 inside its extent, else to the nearest vertex.

    Parameters
    ----------
    points : ndarray, shape (n, 3) or (3,)
        Positions, metres, in the label's frame (MRI / surface RAS).
    label_pos : ndarray, shape (n_vertices, 3)
        The label's vertex positions, metres (``mne.Label.pos``).

    Returns
    -------
    ndarray, shape (n,) (or a float for one point)
        Millimetres. The label's extent is the convex hull of its vertices; a point inside it
        (or on its boundary) gets 0. NaN points give NaN.

    Notes
    -----
    With fewer than 4 affinely independent vertices there is no volume and only the distance to
    the nearest vertex is used.
    """
    pts = np.asarray(points, dtype=float)
    single = pts.ndim == 1
    pts = np.atleast_2d(pts)
    lab = np.asarray(label_pos, dtype=float)
    if pts.shape[-1] != 3 or lab.ndim != 2 or lab.shape[1] != 3 or len(lab) == 0:
        raise ValueError(
            f"points must be (n, 3) and label_pos (n_vertices>0, 3), got {pts.shape} and "
            f"{lab.shape}."
        )
    if np.abs(lab).max() > 1.0:
        raise ValueError("label_pos look like millimetres; pass metres (mne.Label.pos is in m).")
    dist = np.full(len(pts), np.nan)
    ok = np.isfinite(pts).all(axis=1)
    if ok.any():
        d, _ = cKDTree(lab).query(pts[ok])
        try:
            inside = Delaunay(lab).find_simplex(pts[ok]) >= 0
        except QhullError:  # flat or tiny label: no volume
            inside = np.zeros(int(ok.sum()), bool)
        dist[ok] = np.where(inside, 0.0, d * 1000.0)
    return float(dist[0]) if single else dist


def label_positions(label_file: str | Path, subjects_dir: str | Path | None = None
                    ) -> tuple[np.ndarray, str]:
    """Vertex positions (m, surface RAS) of a FreeSurfer label.

    A label file stores, for each vertex, the coordinates of the surface it was drawn on, which is
    not always the white surface: labels saved from ``mne_analyze`` (such as the sample data's
    ``Aud-lh.label``) may carry *inflated*-surface coordinates, which are not positions in the
    head. When ``<subjects_dir>/sample/surf/<hemi>.white`` exists the positions are therefore
    taken from the white surface by vertex number; otherwise the file's coordinates are used
    (check them with :func:`label_in_brain_fraction`).

    Returns
    -------
    pos : ndarray, shape (n_vertices, 3)
        Metres.
    source : str
        'white surface' or 'label file'.
    """
    label = mne.read_label(label_file, subject=SUBJECT)
    if subjects_dir is not None:
        white = Path(subjects_dir) / SUBJECT / "surf" / f"{label.hemi}.white"
        if white.is_file():
            rr = mne.read_surface(white, verbose=False)[0] / 1000.0
            if label.vertices.max() >= len(rr):
                raise ValueError(f"{label_file} has vertex numbers beyond {white} "
                                 f"({len(rr)} vertices): another subject's label?")
            return rr[label.vertices], "white surface"
    return np.asarray(label.pos, float), "label file"


def label_in_brain_fraction(label_pos: np.ndarray, head, hemi: str,
                            margin_mm: float = 3.0) -> float:
    """Fraction of a label's vertices within ``margin_mm`` of the head's cerebral cortex.

    Cerebral cortex of hemisphere ``hemi`` ('lh' or 'rh'): voxels whose region is one of that
    hemisphere's :data:`~deepesi.anatomy.regions.CORTICAL_REGIONS`. A label on the subject's
    white or pial surface scores close to 1; a label in another frame (another subject, scanner
    RAS, an inflated surface) scores far lower.
    """
    from scipy import ndimage

    from deepesi.anatomy.regions import CORTICAL_REGIONS

    if hemi not in ("lh", "rh"):
        raise ValueError(f"hemi must be 'lh' or 'rh', got {hemi!r}.")
    if head.regions is None:
        raise ValueError("the head model has no region volume; cannot check the label.")
    ids = [r for r in CORTICAL_REGIONS if hemisphere(r) == hemi]
    cortex = np.isin(head.regions, ids)
    vox = float(np.mean(np.abs(np.diag(head.affine)[:3])))
    cortex = ndimage.binary_dilation(cortex, iterations=max(1, round(margin_mm / vox)))
    ijk = np.rint(_apply_affine(np.linalg.inv(head.affine), np.asarray(label_pos) * 1000.0))
    ijk = ijk.astype(int)
    ok = ((ijk >= 0) & (ijk < np.array(cortex.shape))).all(axis=1)
    hits = np.zeros(len(ijk), bool)
    hits[ok] = cortex[tuple(ijk[ok].T)]
    return float(hits.mean())


def box_distance_mm(point_mm, box) -> float:
    """Distance (mm) of a point (mm) to an axis-aligned box ``((xlo, xhi), (ylo, yhi), (zlo,
    zhi))``: 0 inside or on it."""
    p = np.asarray(point_mm, dtype=float)
    lo, hi = np.array([b[0] for b in box], float), np.array([b[1] for b in box], float)
    if p.shape != (3,) or not (lo <= hi).all():
        raise ValueError(f"need a 3-vector and a box with lo <= hi, got {p.shape} and {box}.")
    return float(np.linalg.norm(np.maximum(lo - p, 0.0) + np.maximum(p - hi, 0.0)))


def _apply_affine(affine: np.ndarray, xyz: np.ndarray) -> np.ndarray:
    return xyz @ affine[:3, :3].T + affine[:3, 3]


def hemisphere_masks(source_space) -> dict[str, np.ndarray]:
    """Boolean masks of the left- and right-hemisphere source points (by their region).

    Points of midline regions (brainstem, unknown) belong to neither. Regions are the head
    model's (aseg for deep structures and cerebellum, atlas lobes for the cortex).
    """
    hemi = np.array([hemisphere(int(r)) for r in source_space.region_ids])
    return {"lh": hemi == "lh", "rh": hemi == "rh"}


def hemisphere_peaks(amp_map: np.ndarray, source_space) -> dict[str, int | None]:
    """Index of the strongest point of each hemisphere in a map (None if all zero there)."""
    amp = np.asarray(amp_map, dtype=float)
    if amp.shape != (source_space.n_sources,):
        raise ValueError(f"map has shape {amp.shape}, expected ({source_space.n_sources},).")
    out: dict[str, int | None] = {}
    for h, mask in hemisphere_masks(source_space).items():
        idx = np.flatnonzero(mask)
        if idx.size == 0 or not (amp[idx] > 0).any():
            out[h] = None
        else:
            out[h] = int(idx[np.argmax(amp[idx])])
    return out


def score_map(amp_map: np.ndarray, source_space, labels: dict[str, np.ndarray]) -> dict:
    """Hemisphere peaks of a map and their distances to the auditory labels.

    Parameters
    ----------
    amp_map : ndarray, shape (n_sources,)
        Non-negative amplitudes (e.g. averaged over the window).
    source_space : SourceSpace
        The map's points.
    labels : dict
        ``{'lh': pos, 'rh': pos}``, label vertex positions (m, MRI frame).

    Returns
    -------
    dict
        Per hemisphere: ``dist_<h>_mm``, ``peak_<h>_mri_mm`` and ``peak_<h>_mni_mm`` (x, y, z),
        ``aud_mni_<h>_mm`` (distance to :data:`AUDITORY_MNI_BOX`; None without an MNI
        transform), ``peak_<h>_region``, ``peak_<h>_rel`` (its amplitude relative to the map's
        maximum); None where the map is zero in that hemisphere.
    """
    from deepesi.anatomy.regions import region_name

    amp = np.asarray(amp_map, dtype=float)
    top = float(amp.max()) if amp.size else 0.0
    mni = source_space.pos_mni() if source_space.mri_to_mni is not None else None
    row: dict = {}
    for h, i in hemisphere_peaks(amp, source_space).items():
        if i is None:
            row.update({f"dist_{h}_mm": None, f"peak_{h}_mri_mm": None,
                        f"peak_{h}_mni_mm": None, f"aud_mni_{h}_mm": None,
                        f"peak_{h}_region": None, f"peak_{h}_rel": None})
            continue
        pos = source_space.pos[i]
        row[f"dist_{h}_mm"] = round(float(label_distance_mm(pos, labels[h])), 1)
        row[f"peak_{h}_mri_mm"] = [round(float(v), 1) for v in pos * 1000]
        row[f"peak_{h}_mni_mm"] = (None if mni is None
                                   else [round(float(v), 1) for v in mni[i]])
        row[f"aud_mni_{h}_mm"] = (None if mni is None else
                                  round(box_distance_mm(mni[i], AUDITORY_MNI_BOX[h]), 1))
        row[f"peak_{h}_region"] = region_name(int(source_space.region_ids[i]))
        row[f"peak_{h}_rel"] = round(float(amp[i] / top), 3) if top > 0 else None
    return row


# ============================================================================ cached stages
def build_head(paths: dict, out: Path, settings: Settings, progress: bool):
    """Stage 1: the head model (cached in ``<out>/head-<voxel>mm``)."""
    from deepesi.anatomy.freesurfer import read_freesurfer_subject
    from deepesi.anatomy.headmodel import HeadModel

    folder = out / f"head-{settings.voxel_size:g}mm"
    if (folder / "head.json").is_file():
        logger.info("head: loaded %s", folder)
        return HeadModel.load(folder)
    head = read_freesurfer_subject(SUBJECT, paths["subjects_dir"],
                                   voxel_size=settings.voxel_size, progress=progress)
    head.save(folder, overwrite=True)
    logger.info("head: built %s", head)
    return head


def build_sources(head, out: Path, settings: Settings):
    """Stage 2: the source space (cached in ``<out>/sources-<spacing>mm.npz``)."""
    from deepesi.sources import SourceSpace, make_source_space

    fname = out / f"sources-{settings.spacing * 1000:g}mm.npz"
    if fname.is_file():
        src = SourceSpace.load(fname)
        if src.head_hash == head.hash():
            logger.info("sources: loaded %s", fname)
            return src
    src = make_source_space(head, settings.spacing)
    src.save(fname, overwrite=True)
    logger.info("sources: built %s", src)
    return src


def build_forward(head, sources, paths: dict, out: Path, progress: bool):
    """Stage 3: EEG (FEM) + MEG (BEM) lead field of the recording's sensors (cached)."""
    from deepesi.forward.api import make_forward
    from deepesi.sensors import sensors_from_info

    sensors = sensors_from_info(paths["evoked"], paths["trans"], head)
    t0 = time.perf_counter()
    lf = make_forward(head, sensors, sources, cache_dir=out / "cache", progress=progress)
    logger.info("forward: %s (%.0f s, %s)", lf, time.perf_counter() - t0,
                "from cache" if lf.meta.get("from_cache") else "computed")
    return lf


def train_or_load(lf_m, config, fname: Path, settings: Settings, progress: bool,
                  whiten: bool | None = None):
    """The net in ``fname`` if it exists, else one trained there on ``config`` with the example's
    settings (budget, batches, seed; ``whiten`` as :func:`deepesi.training.train_model`)."""
    from deepesi.training import load_model, train_model

    if fname.is_file():
        logger.info("model: loaded %s", fname)
        return load_model(fname, lf_m)
    fname.parent.mkdir(parents=True, exist_ok=True)
    logger.info("model %s: training on %d channels, budget %.1f min", fname.name,
                lf_m.n_channels, settings.train_minutes)
    return train_model(
        lf_m, config, fname, epochs=settings.epochs, batch_size=settings.batch_size,
        batches_per_epoch=settings.batches_per_epoch, n_val=settings.n_val,
        seed=settings.seed, resume=True, progress=progress,
        max_minutes=settings.train_minutes, whiten=whiten,
    )


def train_networks(lf, cov, projs: list, out: Path, settings: Settings, progress: bool) -> dict:
    """Stage 4: one 4LCNN per modality (cached in ``<out>/models``; interrupted runs resume).

    ``projs``: the recording's SSP projectors, applied to the simulated data as to the real."""
    from deepesi.simulate import SimulationConfig

    suffix = "-quick" if settings.quick else ""
    # the net whitens its input with the recording's noise covariance (train_model's default
    # when there is one) and learns at whitened SNRs, as the classical methods see the data;
    # half to all of the noise from the covariance, the rest white (real noise is never exactly
    # the estimated covariance); signal and noise projected by the recording's SSP (3 PCA
    # vectors of the empty-room MEG), which the whitener then also removes
    config = SimulationConfig(noise_cov=cov, snr_space="whitened",
                              colored_noise_fraction=(0.5, 1.0), projs=projs)
    models = {}
    for name, types in MODALITIES.items():
        fname = out / "models" / f"{name.replace('+', '-').lower()}{suffix}.pt"
        models[name] = train_or_load(lf.pick_types(list(types)), config, fname, settings,
                                     progress)
    return models


# ============================================================================ the comparison
def _window_map(amplitudes: np.ndarray) -> np.ndarray:
    """Average of a (n_sources, n_times) amplitude array over the window's samples."""
    return np.asarray(amplitudes, dtype=float).mean(axis=1)


def run_methods(evoked, lf, models: dict, cov, labels: dict, settings: Settings,
                progress: bool) -> tuple[list[dict], dict]:
    """Stage 6–7: localize the window with every modality × method and score the peaks.

    Returns
    -------
    rows : list of dict
        One per modality × method (see :func:`score_map`), with ``seconds``.
    deepesi_results : dict
        Modality → the deepesi :class:`~deepesi.localize.LocalizationResult`.
    """
    from deepesi.baselines import CLASSICAL_METHODS, apply_classical
    from deepesi.forward.io import leadfield_to_forward
    from deepesi.localize import localize

    src = lf.source_space
    methods = settings.methods or CLASSICAL_METHODS
    rows, results = [], {}
    for name, types in MODALITIES.items():
        lf_m = lf.pick_types(list(types))
        t0 = time.perf_counter()
        res = localize(evoked, models[name], src, tmin=WINDOW[0], tmax=WINDOW[1])
        results[name] = res
        rows.append({"modality": name, "method": "deepesi",
                     **score_map(_window_map(res.amplitudes), src, labels),
                     "seconds": round(time.perf_counter() - t0, 2)})
        fwd = leadfield_to_forward(lf_m)
        ev_m = evoked.copy().pick([ch for ch in evoked.ch_names if ch in set(lf_m.ch_names)])
        for method in methods:
            t0 = time.perf_counter()
            try:
                sr = apply_classical(method, ev_m, fwd, cov, tmin=WINDOW[0], tmax=WINDOW[1],
                                     options=METHOD_OPTIONS.get(method))
            except Exception as err:  # one failing method must not lose the others
                logger.warning("%s / %s failed: %s", name, method, err)
                rows.append({"modality": name, "method": method, "error": str(err)})
                continue
            if sr.amplitude.shape[0] != src.n_sources:
                raise RuntimeError(f"{method} returned {sr.amplitude.shape[0]} sources, "
                                   f"expected {src.n_sources}.")
            rows.append({"modality": name, "method": sr.method,
                         **score_map(_window_map(sr.amplitude), src, labels),
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
        "RH to auditory box (mm) | LH peak (MNI mm) | RH peak (MNI mm) | LH region | "
        "RH region |",
        "|---|---|---:|---:|---:|---:|---|---|---|---|",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['modality']} | {r['method']} | failed: {r['error'][:60]} "
                         "| | | | | | | |")
            continue
        pk = {h: ("—" if r.get(f"peak_{h}_mni_mm") is None
                  else "(" + ", ".join(f"{v:.0f}" for v in r[f"peak_{h}_mni_mm"]) + ")")
              for h in ("lh", "rh")}
        dist = {h: "n/a" if h in unusable else _fmt(r[f"dist_{h}_mm"]) for h in ("lh", "rh")}
        box = {h: _fmt(r.get(f"aud_mni_{h}_mm")) for h in ("lh", "rh")}
        lines.append(
            f"| {r['modality']} | {r['method']} | {dist['lh']} | {dist['rh']} | "
            f"{box['lh']} | {box['rh']} | "
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
    from deepesi.report import make_report

    paths = data_paths(data_dir)
    out = Path(out).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    head = build_head(paths, out, settings, progress)
    sources = build_sources(head, out, settings)
    timings["head_and_sources_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    lf = build_forward(head, sources, paths, out, progress)
    timings["forward_s"] = time.perf_counter() - t0
    cov = mne.read_cov(paths["cov"], verbose=False)
    evoked = load_auditory_evoked(paths["evoked"])
    t0 = time.perf_counter()
    models = train_networks(lf, cov, evoked.info["projs"], out, settings, progress)
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
    rows, results = run_methods(evoked, lf, models, cov, labels, settings, progress)
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
    _write_text(out / "results.json", json.dumps(summary, indent=1) + "\n")
    _write_text(out / "results.md", markdown_table(rows, label_info))
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
                        help="training budget per network, minutes (default 8; quick 0.5).")
    parser.add_argument("--methods", nargs="+", default=None,
                        help="classical methods to compare (default: all).")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-report", action="store_true", help="skip the HTML reports.")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                        format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    kw: dict = {"seed": args.seed}
    if args.train_minutes is not None:
        if not args.train_minutes > 0:
            parser.error("--train-minutes must be > 0.")
        kw["train_minutes"] = args.train_minutes
    if args.methods:
        kw["methods"] = tuple(args.methods)
    settings = Settings.quick_settings(**kw) if args.quick else Settings(**kw)
    try:
        summary = run(args.data, args.out, settings, report=not args.no_report,
                      progress=not args.quiet)
    except (ValueError, TypeError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(markdown_table(summary["rows"], summary["labels"]))
    print(f"written: {Path(args.out) / 'results.md'}, results.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
