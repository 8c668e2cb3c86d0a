"""The MNE "sample" data set as deepesi uses it: files, the auditory evoked, the cached pipeline.

The folder is the one of the MNE testing/sample data (``subjects/sample`` and ``MEG/sample``);
deepesi never downloads it. :func:`data_paths` checks the files; :func:`load_auditory_evoked`
combines both auditory conditions; :func:`build_head` → :func:`build_sources` →
:func:`build_forward` make the subject's 10-tissue head (FreeSurfer inputs), its cortical +
subcortical source space and the EEG (FEM) + MEG (BEM) lead field of the recording's own sensors,
each cached in a work folder so that a rerun resumes where the last one stopped. Used by
``examples/sample_auditory.py`` and the sample-subject benchmarks.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import mne

from .._logging import logger, verbose

__all__ = [
    "COV_FILE",
    "EVOKED_FILE",
    "LABEL_FILES",
    "SUBJECT",
    "TRAINING",
    "TRANS_FILE",
    "WINDOW",
    "build_forward",
    "build_forward_ensemble",
    "build_head",
    "build_sources",
    "data_paths",
    "load_auditory_evoked",
]

SUBJECT = "sample"
EVOKED_FILE = "MEG/sample/sample_audvis-auditory-ave.fif"
TRANS_FILE = "MEG/sample/sample_audvis_trunc-trans.fif"
COV_FILE = "MEG/sample/sample_audvis_trunc-cov.fif"
LABEL_FILES = {"lh": "MEG/sample/labels/Aud-lh.label", "rh": "MEG/sample/labels/Aud-rh.label"}
XFIT_DIPOLE_FILE = "MEG/sample/sample_audvis-ave_xfit.dip"

#: Window of the N100 / N100m (s).
WINDOW = (0.090, 0.110)

#: Training settings of the sample subject's networks (``examples/sample_auditory.py`` and the
#: sample benchmarks): keyword arguments of :func:`deepesi.training.train_model`. The budget is a
#: number of batches (100 epochs × 50 batches × 256 samples, early stopping after 10 epochs
#: without improvement), not wall-clock time, so the same seed gives the same nets on any
#: machine (about 8 min per net on the 2-core reference machine).
TRAINING: dict = {"epochs": 100, "batch_size": 256, "batches_per_epoch": 50, "n_val": 1024,
                  "seed": 0, "patience": 10}


def data_paths(data_dir: str | os.PathLike) -> dict[str, Path]:
    """The files of the MNE sample data set deepesi reads, checked to exist.

    Parameters
    ----------
    data_dir : path-like
        Folder holding ``subjects/sample`` and ``MEG/sample``.

    Returns
    -------
    dict
        ``subjects_dir``, ``evoked``, ``trans``, ``cov``, ``label_lh``, ``label_rh``, and
        ``xfit_dipole`` when the file is there.
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
    if (root / XFIT_DIPOLE_FILE).is_file():
        paths["xfit_dipole"] = root / XFIT_DIPOLE_FILE
    return paths


def load_auditory_evoked(fname: str | os.PathLike, window: tuple[float, float] | None = None
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
        raise ValueError(f"{fname} must hold the conditions {wanted}, it has {sorted(conds)}.")
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


@verbose
def build_head(paths: dict, out: str | os.PathLike, *, voxel_size: float = 2.0,
               verbose: bool | str | int | None = None):
    """The subject's 10-tissue head model (cached in ``<out>/head-<voxel>mm``)."""
    from ..anatomy.freesurfer import read_freesurfer_subject
    from ..anatomy.headmodel import HeadModel

    folder = Path(out) / f"head-{voxel_size:g}mm"
    if (folder / "head.json").is_file():
        logger.info("head: loaded %s", folder)
        return HeadModel.load(folder)
    head = read_freesurfer_subject(SUBJECT, paths["subjects_dir"], voxel_size=voxel_size)
    head.save(folder, overwrite=True)
    logger.info("head: built %s", head)
    return head


def build_sources(head, out: str | os.PathLike, *, spacing: float = 5e-3):
    """The source space (cached in ``<out>/sources-<spacing>mm.npz``; spacing in metres)."""
    from ..sources import SourceSpace, make_source_space

    fname = Path(out) / f"sources-{spacing * 1000:g}mm.npz"
    if fname.is_file():
        src = SourceSpace.load(fname)
        if src.head_hash == head.hash():
            logger.info("sources: loaded %s", fname)
            return src
    src = make_source_space(head, spacing)
    src.save(fname, overwrite=True)
    logger.info("sources: built %s", src)
    return src


@verbose
def build_forward(head, sources, paths: dict, out: str | os.PathLike, *,
                  verbose: bool | str | int | None = None):
    """EEG (FEM) + MEG (BEM) lead field of the recording's sensors (cached in ``<out>/cache``)."""
    from ..forward.api import make_forward
    from ..sensors import sensors_from_info

    sensors = sensors_from_info(paths["evoked"], paths["trans"], head)
    t0 = time.perf_counter()
    lf = make_forward(head, sensors, sources, cache_dir=Path(out) / "cache")
    logger.info("forward: %s (%.0f s, %s)", lf, time.perf_counter() - t0,
                "from cache" if lf.meta.get("from_cache") else "computed")
    return lf


def build_forward_ensemble(head, sources, paths: dict, out: str | os.PathLike, *,
                           n_members: int = 4, seed: int = 0,
                           verbose: bool | str | int | None = None):
    """A forward ensemble of the recording's sensors (:func:`deepesi.forward.ensemble.
    make_forward_ensemble`, member 0 the nominal forward of :func:`build_forward`; every
    member cached in ``<out>/cache``)."""
    from ..forward.ensemble import make_forward_ensemble
    from ..sensors import sensors_from_info

    sensors = sensors_from_info(paths["evoked"], paths["trans"], head)
    t0 = time.perf_counter()
    ens = make_forward_ensemble(head, sensors, sources, n_members, seed=seed,
                                cache_dir=Path(out) / "cache")
    logger.info("forward ensemble: %s (%.0f s)", ens, time.perf_counter() - t0)
    return ens
