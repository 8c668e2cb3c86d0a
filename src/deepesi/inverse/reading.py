"""Reading a recording with MNE: raw, evoked, epochs, EEGLAB, CTF ``.ds``, with one line for a
file a reader cannot read.

:func:`read_recording` checks header fields before a reader allocates memory for them, turns
every reader failure into one :class:`ValueError` naming the file, passes MNE's warnings on
through deepesi's logger, and reads an epoched CTF ``.ds`` (trials end to end) as Epochs
(:func:`split_trials`).
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path

import mne
import numpy as np

from .._logging import logger
from .._validation import first_line, validate_type

__all__ = ["EPOCHS_SUFFIXES", "EVOKED_SUFFIXES", "MAX_CHANNELS", "Recording", "read_recording",
           "split_trials"]

EVOKED_SUFFIXES = ("-ave.fif", "_ave.fif", "-ave.fif.gz", "_ave.fif.gz")
EPOCHS_SUFFIXES = ("-epo.fif", "_epo.fif", "-epo.fif.gz", "_epo.fif.gz")

Recording = mne.io.BaseRaw | mne.BaseEpochs | mne.Evoked


def read_recording(path: str | os.PathLike, condition: str | None = None) -> Recording:
    """Read a raw, evoked or epochs recording with MNE.

    Parameters
    ----------
    path : path-like
        The file (or a CTF ``.ds`` folder): anything :func:`mne.io.read_raw` reads, an evoked
        (``-ave.fif``) or an epochs (``-epo.fif``) file; an EEGLAB ``.set`` file is read as
        epochs when it holds epochs.
    condition : str | None
        Evoked: the comment/condition to use (needed when the file holds several).
        Epochs: the event name (or MNE's ``/`` tags) to keep.

    Returns
    -------
    mne.io.Raw | mne.Evoked | mne.Epochs
    """
    validate_type(path, "path-like", "path")
    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"recording not found: {path}. Check the path and spelling.")
    if path.is_file() and path.stat().st_size == 0:
        raise ValueError(f"{path} is empty (0 bytes): an interrupted copy or download?")
    _check_header(path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            inst = _read(path, condition)
        except _UserError:
            raise
        except MemoryError as err:
            raise _UserError(
                f"cannot read {path.name}: it asks for more memory than this machine has "
                f"({err}). A damaged header (channel or sample count), or a recording too "
                "long to load at once: crop it with MNE first."
            ) from err
        except Exception as err:  # a reader's internal error on a damaged file
            raise _damaged(path, err) from err
    for w in caught:  # MNE's warnings about the file, as one line each, through our logger
        if issubclass(w.category, DeprecationWarning | FutureWarning):
            continue
        logger.warning("reading %s: %s", path.name, first_line(w.message))
    return inst


#: More channels than any EEG/MEG system has: a header claiming more is damaged.
MAX_CHANNELS = 4096


def _check_header(path: Path) -> None:
    """Refuse header fields no real recording has before a reader allocates memory for them
    (a BrainVision or EDF header claiming a billion channels makes MNE ask for gigabytes)."""
    suffix = path.suffix.lower()
    if suffix == ".vhdr":
        text = path.read_bytes()[:1_000_000].decode("latin-1")
        if "Brain Vision" not in text and "BrainVision" not in text:
            raise _UserError(f"{path.name} is not a BrainVision header (no 'Brain Vision' "
                              "line): damaged, or another format named .vhdr.")
        m = re.search(r"NumberOfChannels\s*=\s*(-?\d+)", text)
        n = int(m.group(1)) if m else -1
        if not 0 < n <= MAX_CHANNELS:
            raise _UserError(f"{path.name}: NumberOfChannels={m.group(1) if m else 'missing'}"
                              f" is not a channel count (1..{MAX_CHANNELS}): the header is "
                              "damaged.")
        fmt = re.search(r"BinaryFormat\s*=\s*(\w+)", text)
        width = {"INT_16": 2, "UINT_16": 2, "INT_32": 4, "IEEE_FLOAT_32": 4}.get(
            fmt.group(1).upper() if fmt else "", 0)
        data_file = re.search(r"DataFile\s*=\s*(.+)", text)
        binary = path.parent / data_file.group(1).strip() if data_file else None
        if width and binary is not None and binary.is_file():
            size = binary.stat().st_size
            if size % (n * width):
                logger.warning(
                    "%s ends in the middle of a sample (%d bytes, not a multiple of %d "
                    "channels x %d bytes): the file is truncated; only the complete samples "
                    "are read.", binary.name, size, n, width)
    elif suffix in (".edf", ".bdf"):
        head = path.read_bytes()[:256]
        try:
            n_bytes, n_sig = int(head[184:192]), int(head[252:256])
        except ValueError:
            raise _UserError(f"{path.name} is not an EDF/BDF file (its header's size fields "
                              "are not numbers): damaged, or another format.") from None
        if not 0 < n_sig <= MAX_CHANNELS or n_bytes != 256 * (n_sig + 1):
            raise _UserError(f"{path.name}: the EDF header claims {n_sig} signals in "
                              f"{n_bytes} header bytes (expected 256 x (signals + 1)): the "
                              "header is damaged.")
        if path.stat().st_size < n_bytes:
            raise _UserError(f"{path.name} is truncated: {path.stat().st_size} bytes, "
                              f"shorter than its own {n_bytes}-byte header.")


class _UserError(ValueError):
    """deepesi's own message about the recording: passed on unchanged, never re-wrapped."""


def _damaged(path: Path, err: BaseException) -> ValueError:
    """One line for a file a reader could not read."""
    return _UserError(
        f"cannot read {path.name}: {first_line(err)} ({type(err).__name__}). The file is damaged, "
        "truncated or not the format its name says; check that it opens with MNE "
        "(mne.io.read_raw / mne.read_evokeds / mne.read_epochs) and re-export or re-copy it."
    )


def _read(path: Path, condition: str | None) -> Recording:
    name = path.name.lower()
    if name.endswith(EVOKED_SUFFIXES):
        evokeds = mne.read_evokeds(path, verbose=False)
        names = [ev.comment for ev in evokeds]
        if condition is not None:
            if condition not in names:
                raise _UserError(
                    f"--condition {condition!r} is not in {path.name}; it holds {names}."
                )
            return evokeds[names.index(condition)]
        if len(evokeds) > 1:
            raise _UserError(
                f"{path.name} holds {len(evokeds)} conditions {names}; choose one with "
                "--condition NAME."
            )
        return evokeds[0]
    if name.endswith(EPOCHS_SUFFIXES):
        return _select_condition(mne.read_epochs(path, preload=True, verbose=False), condition,
                                 path)
    if name.endswith(".set"):  # EEGLAB: continuous or epoched, the file says which
        try:
            raw = mne.io.read_raw_eeglab(path, preload=True, verbose=False)
        except (TypeError, ValueError) as err:
            if "epoch" not in str(err).lower():
                raise
            return _select_condition(mne.read_epochs_eeglab(path, verbose=False), condition,
                                     path)
        if condition is not None:
            raise _UserError("--condition applies to epoched data; this EEGLAB file is "
                              "continuous.")
        return raw
    if condition is not None:
        raise _UserError("--condition applies to -ave.fif and -epo.fif files, not raw data.")
    raw = mne.io.read_raw(path, preload=True, verbose=False)
    return split_trials(raw, *_ctf_trials(raw, path)) if path.is_dir() else raw


def _ctf_trials(raw: mne.io.BaseRaw, path: Path) -> tuple[int, int]:
    """Samples per trial and pre-trigger samples of a CTF ``.ds`` recording (0, 0 for one
    continuous trial): MNE reads an epoched ``.ds`` as one Raw of its trials end to end."""
    extras = getattr(raw, "_raw_extras", None) or [{}]
    per_trial = int(extras[0].get("block_size", 0) or 0)
    if not per_trial or per_trial >= raw.n_times or raw.n_times % per_trial:
        return 0, 0
    try:
        from mne.io.ctf.res4 import _read_res4  # the .ds header, where the trigger offset is

        pre = int(_read_res4(str(path))["pre_trig_pts"])
    except Exception:  # a private MNE helper: its absence is not fatal
        pre = 0
        logger.warning("%s: the pre-trigger length of its trials is unknown; their times "
                       "start at 0 s", path.name)
    return per_trial, pre


def split_trials(raw: mne.io.BaseRaw, samples_per_trial: int, pre_trigger: int = 0
                 ) -> mne.io.BaseRaw | mne.BaseEpochs:
    """A Raw holding equal-length trials end to end as Epochs (one per trial, time 0 at
    sample ``pre_trigger`` of each); ``samples_per_trial`` 0 returns ``raw`` unchanged."""
    if not samples_per_trial:
        return raw
    if raw.n_times % samples_per_trial:
        raise ValueError(f"{raw.n_times} samples are not whole trials of {samples_per_trial}.")
    n = raw.n_times // samples_per_trial
    sfreq = raw.info["sfreq"]
    events = np.c_[np.arange(n) * samples_per_trial + pre_trigger + raw.first_samp,
                   np.zeros(n, int), np.ones(n, int)]
    epochs = mne.Epochs(raw, events, {"trial": 1}, tmin=-pre_trigger / sfreq,
                        tmax=(samples_per_trial - pre_trigger - 1) / sfreq, baseline=None,
                        preload=True, reject_by_annotation=False, verbose=False)
    logger.info("%d trials of %d samples read as epochs (t = 0 at sample %d of each)", n,
                samples_per_trial, pre_trigger)
    return epochs


def _select_condition(epochs: mne.BaseEpochs, condition: str | None, path: Path
                      ) -> mne.BaseEpochs:
    """The epochs of one event name (or MNE's ``/`` tags); all with ``condition`` None."""
    if condition is None:
        return epochs
    try:
        return epochs[condition]
    except KeyError as err:
        raise _UserError(
            f"--condition {condition!r} is not an event of {path.name}; events: "
            f"{sorted(epochs.event_id)}."
        ) from err
