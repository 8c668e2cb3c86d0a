"""From a recording to the data an inverse method takes: one preparation for every method.

:func:`read_recording` reads a file (raw, evoked, epochs). :func:`prepare_data` (networks) and
:func:`prepare_evoked` (classical methods) share the same steps: Epochs are averaged, the time
window is cut by :func:`crop_window` (the one cropper: inclusive, half a sample of tolerance,
an error for a window that holds no sample), channels are matched by name, EEG is referenced to
its average, and the signal is checked (NaN/Inf, flat channels, units). :func:`peak_sample` is
the one definition of the time a result is read at: the sample of the largest whitened global
field power of the data, the same for every method given the same data and noise covariance.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import mne
import numpy as np

from .._logging import logger
from .._validation import validate_type
from ..whitening import has_average_reference

__all__ = [
    "DATA_TYPES",
    "as_evoked_or_raw",
    "check_signal",
    "constant_runs",
    "crop_window",
    "peak_sample",
    "prepare_data",
    "prepare_evoked",
    "read_recording",
    "split_trials",
    "subtract_baseline",
]

#: Median |amplitude| above which the data are almost surely not in SI units, per channel type.
UNIT_LIMITS: dict[str, tuple[float, str]] = {
    "eeg": (1e-2, "V (EEG in µV or mV stored as V?)"),
    "mag": (1e-8, "T (magnetometers in fT or pT stored as T?)"),
    "grad": (1e-6, "T/m (gradiometers in fT/cm stored as T/m?)"),
}

#: |amplitude| no sensor of the type can record (an EEG amplifier saturates well below 1 V): a
#: sample beyond it is a damaged value (flipped exponent bits, a wrong scale in the header).
PHYSICAL_LIMITS: dict[str, float] = {"eeg": 1.0, "mag": 1e-5, "grad": 1e-3}

#: Channel types the inverse methods take.
DATA_TYPES = ("eeg", "mag", "grad")

EVOKED_SUFFIXES = ("-ave.fif", "_ave.fif", "-ave.fif.gz", "_ave.fif.gz")
EPOCHS_SUFFIXES = ("-epo.fif", "_epo.fif", "-epo.fif.gz", "_epo.fif.gz")

Recording = mne.io.BaseRaw | mne.BaseEpochs | mne.Evoked


# ============================================================================ reading
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
        except (ValueError, FileNotFoundError) as err:
            if getattr(err, "_deepesi", False):
                raise
            raise _damaged(path, err) from err
        except MemoryError as err:
            raise _user_error(
                f"cannot read {path.name}: it asks for more memory than this machine has "
                f"({err}). A damaged header (channel or sample count), or a recording too "
                "long to load at once: crop it with MNE first."
            ) from err
        except KeyboardInterrupt:
            raise
        except Exception as err:  # a reader's internal error on a damaged file
            raise _damaged(path, err) from err
    for w in caught:  # MNE's warnings about the file, as one line each, through our logger
        if issubclass(w.category, DeprecationWarning | FutureWarning):
            continue
        logger.warning("reading %s: %s", path.name, str(w.message).strip().splitlines()[0])
    return inst


#: More channels than any EEG/MEG system has: a header claiming more is damaged.
MAX_CHANNELS = 4096


def _check_header(path: Path) -> None:
    """Refuse header fields no real recording has before a reader allocates memory for them
    (a BrainVision or EDF header claiming a billion channels makes MNE ask for gigabytes)."""
    suffix = path.suffix.lower()
    if suffix == ".vhdr":
        import re

        text = path.read_bytes()[:1_000_000].decode("latin-1")
        if "Brain Vision" not in text and "BrainVision" not in text:
            raise _user_error(f"{path.name} is not a BrainVision header (no 'Brain Vision' "
                              "line): damaged, or another format named .vhdr.")
        m = re.search(r"NumberOfChannels\s*=\s*(-?\d+)", text)
        n = int(m.group(1)) if m else -1
        if not 0 < n <= MAX_CHANNELS:
            raise _user_error(f"{path.name}: NumberOfChannels={m.group(1) if m else 'missing'}"
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
            raise _user_error(f"{path.name} is not an EDF/BDF file (its header's size fields "
                              "are not numbers): damaged, or another format.") from None
        if not 0 < n_sig <= MAX_CHANNELS or n_bytes != 256 * (n_sig + 1):
            raise _user_error(f"{path.name}: the EDF header claims {n_sig} signals in "
                              f"{n_bytes} header bytes (expected 256 x (signals + 1)): the "
                              "header is damaged.")
        if path.stat().st_size < n_bytes:
            raise _user_error(f"{path.name} is truncated: {path.stat().st_size} bytes, "
                              f"shorter than its own {n_bytes}-byte header.")


def _user_error(msg: str) -> ValueError:
    err = ValueError(msg)
    err._deepesi = True  # type: ignore[attr-defined]  # our own message: passed on unchanged
    return err


def _damaged(path: Path, err: BaseException) -> ValueError:
    """One line for a file a reader could not read."""
    detail = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    if len(detail) > 200:
        detail = detail[:200] + "..."
    return _user_error(
        f"cannot read {path.name}: {detail} ({type(err).__name__}). The file is damaged, "
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
                raise _user_error(
                    f"--condition {condition!r} is not in {path.name}; it holds {names}."
                )
            return evokeds[names.index(condition)]
        if len(evokeds) > 1:
            raise _user_error(
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
            raise _user_error("--condition applies to epoched data; this EEGLAB file is "
                              "continuous.")
        return raw
    if condition is not None:
        raise _user_error("--condition applies to -ave.fif and -epo.fif files, not raw data.")
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
        raise _user_error(
            f"--condition {condition!r} is not an event of {path.name}; events: "
            f"{sorted(epochs.event_id)}."
        ) from err


# ============================================================================ shared steps
def as_evoked_or_raw(inst: Any) -> mne.io.BaseRaw | mne.Evoked:
    """A copy of ``inst`` as Raw or Evoked: Epochs are averaged (all channels kept)."""
    if isinstance(inst, mne.BaseEpochs):
        if len(inst) == 0:
            raise ValueError(
                "the Epochs object holds no epoch (all dropped?); check the rejection settings."
            )
        _check_epochs(inst)
        logger.info("averaging %d epochs before localization", len(inst))
        return inst.average(picks="all")
    if isinstance(inst, mne.io.BaseRaw | mne.Evoked):
        return inst.copy()
    raise TypeError(
        "inst must be an mne.io.Raw, mne.Epochs or mne.Evoked, got "
        f"{type(inst).__name__}. Read your recording with mne.io.read_raw / mne.read_epochs / "
        "mne.read_evokeds (or deepesi.inverse.read_recording) first."
    )


def _check_epochs(epochs: mne.BaseEpochs) -> None:
    """Constant runs inside single epochs (a zeroed block of a damaged file), which averaging
    with the other epochs would hide, are refused naming the epoch."""
    picks = mne.pick_types(epochs.info, meg=True, eeg=True, ref_meg=False, exclude="bads")
    if not len(picks):
        return
    data = epochs.get_data(picks=picks)
    sfreq = epochs.info["sfreq"]
    n_min = max(MIN_RUN_SAMPLES, int(np.ceil(MIN_RUN_S * sfreq)))
    names = [epochs.ch_names[i] for i in picks]
    for k, ep in enumerate(data):
        varying = np.ptp(ep, axis=1) > 0
        runs = [r for r in constant_runs(ep, n_min) if varying[r[0]]]
        if runs:
            ch, start, stop = max(runs, key=lambda r: r[2] - r[1])
            t0 = epochs.times[0]
            raise ValueError(
                f"epoch {k} holds a constant run of {stop - start} samples in {len(runs)} "
                f"channel(s) (the longest: {names[ch]} at {t0 + start / sfreq:.3f}.."
                f"{t0 + (stop - 1) / sfreq:.3f} s): a zeroed block of a damaged file or a "
                f"dropout. Drop that epoch (epochs.drop([{k}])) or re-export the file."
            )


def subtract_baseline(inst: Recording, window: tuple[float, float]) -> Recording:
    """``inst`` with each channel's mean over ``window`` (s, inclusive) subtracted: MNE's
    ``apply_baseline`` for Epochs/Evoked, the same per channel for Raw. A window outside the
    recording is an error that says its time range."""
    a, b = (float(v) for v in window)
    if not (np.isfinite(a) and np.isfinite(b)) or b < a:
        raise ValueError(f"baseline must be two times A <= B in seconds, got {window}.")
    times = inst.times  # the axis tmin/tmax use too
    half = 0.5 / inst.info["sfreq"]
    inside = (times >= a - half) & (times <= b + half)
    if not inside.any():
        raise ValueError(f"baseline {a:g}..{b:g} s holds no sample of the recording "
                         f"({times[0]:g}..{times[-1]:g} s).")
    if isinstance(inst, mne.io.BaseRaw):
        out = inst.copy().load_data(verbose=False)
        picks = mne.pick_types(out.info, meg=True, eeg=True, ref_meg=True, exclude=[])
        out._data[picks] -= out._data[picks][:, inside].mean(axis=1, keepdims=True)
        return out
    return inst.copy().apply_baseline((float(times[inside][0]), float(times[inside][-1])),
                                      verbose=False)


def crop_window(inst: mne.io.BaseRaw | mne.Evoked, tmin: float | None, tmax: float | None
                ) -> np.ndarray:
    """Crop ``inst`` in place to the samples within ``[tmin, tmax]`` (s, inclusive).

    Half a sample of tolerance on each side, so ``tmin == tmax`` picks the nearest sample. None
    keeps the start / end. A window that holds no sample is an error that says the recording's
    time range. Returns the kept samples' times on the recording's own time axis (a cropped
    Raw's ``times`` restart at 0; these do not).
    """
    times = inst.times
    lo = times[0] if tmin is None else float(tmin)
    hi = times[-1] if tmax is None else float(tmax)
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise ValueError(f"tmin/tmax must be finite numbers in seconds, got {tmin}, {tmax}.")
    if hi < lo:
        raise ValueError(f"empty time window: tmax ({hi:g} s) is before tmin ({lo:g} s).")
    half = 0.5 / inst.info["sfreq"]
    inside = (times >= lo - half) & (times <= hi + half)
    if not inside.any():
        raise ValueError(
            f"empty time window: {lo:g}..{hi:g} s holds no sample, it lies outside the "
            f"recording's time range {times[0]:g}..{times[-1]:g} s. Choose tmin/tmax inside it."
        )
    kept = times[inside].copy()
    if tmin is not None or tmax is not None:
        inst.crop(kept[0], kept[-1], include_tmax=True)
    return kept


def _list(names: list[str], limit: int = 12) -> str:
    shown = ", ".join(names[:limit])
    return f"{shown}{f', ... ({len(names)} in all)' if len(names) > limit else ''}"


#: Constant runs at least this long (s, and at least MIN_RUN_SAMPLES samples) in a channel that
#: otherwise varies are refused: no live sensor repeats a value that long, a zeroed block of a
#: damaged file, a dropout or a clipped amplifier does.
MIN_RUN_S = 0.02
MIN_RUN_SAMPLES = 5


def constant_runs(data: np.ndarray, min_samples: int) -> list[tuple[int, int, int]]:
    """Runs of ``>= min_samples`` identical consecutive samples, per channel.

    Parameters
    ----------
    data : ndarray, shape (n_channels, n_times)
    min_samples : int
        Shortest run reported (>= 2).

    Returns
    -------
    list of (channel, start, stop)
        Sample ``start`` (inclusive) to ``stop`` (exclusive); the longest run of each channel.
    """
    data = np.asarray(data)
    if data.ndim != 2 or data.shape[1] < min_samples:
        return []
    same = np.diff(data, axis=1) == 0  # (n_ch, n_times - 1): sample t+1 equals sample t
    out = []
    for ch in np.flatnonzero(same.sum(axis=1) >= min_samples - 1):
        edges = np.diff(np.r_[0, same[ch].astype(np.int8), 0])
        starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
        lengths = stops - starts + 1  # samples in the run
        k = int(np.argmax(lengths))
        if lengths[k] >= min_samples:
            out.append((int(ch), int(starts[k]), int(stops[k]) + 1))
    return out


#: Median lag-1 autocorrelation below which the data are flagged as white noise.
MIN_AUTOCORRELATION = 0.2


def _warn_if_white(data: np.ndarray, names: list[str]) -> None:
    """Warn when the channels look like white noise: recorded (low-pass filtered) EEG/MEG is
    strongly correlated from one sample to the next; bytes read with the wrong data type or
    byte order (a header that misstates them) are not."""
    if data.ndim != 2 or data.shape[1] < 20:
        return
    x = data - data.mean(axis=1, keepdims=True)
    den = np.sum(x * x, axis=1)
    live = den > 0
    if not live.any():
        return
    r = np.sum(x[live, 1:] * x[live, :-1], axis=1) / den[live]
    med = float(np.median(r))
    if med < MIN_AUTOCORRELATION:
        logger.warning(
            "the data look like white noise (median sample-to-sample correlation %.2f over %d "
            "channels; recorded EEG/MEG is > 0.5): samples read with the wrong data type or byte "
            "order (check the file's header), or unfiltered simulated noise; the map is "
            "unlikely to mean anything.", med, int(live.sum()))


def check_signal(data: np.ndarray, names: list[str], types: list[str], *, flat: bool = True,
                 sfreq: float | None = None, tmin: float = 0.0) -> None:
    """Refuse NaN/Inf, amplitudes that are not SI units, (with ``flat``) flat channels, and
    constant runs (zeroed blocks, dropouts, clipping: :data:`MIN_RUN_S`) in channels that
    otherwise vary; ``sfreq`` and ``tmin`` (s) give the times of the error message."""
    bad = ~np.isfinite(data)
    if bad.any():
        rows = np.flatnonzero(bad.any(axis=1))
        raise ValueError(
            f"the recording contains {int(bad.sum())} NaN/Inf value(s) in channel(s) "
            f"{_list([names[i] for i in rows])}. Mark these channels as bad "
            "(inst.info['bads']) so they are interpolated, or crop the affected time span."
        )
    t = np.asarray(types)
    for kind, limit in PHYSICAL_LIMITS.items():
        sel = np.flatnonzero(t == kind)
        if sel.size and np.abs(data[sel]).max() > limit:
            over = sel[np.abs(data[sel]).max(axis=1) > limit]
            raise ValueError(
                f"{kind} values no sensor records (|x| up to {np.abs(data[sel]).max():.3g}, "
                f"limit {limit:g} in SI units) in {len(over)} channel(s) "
                f"({_list([names[i] for i in over])}): damaged samples, or data not in SI "
                "units. Check the file (re-export or re-copy it) and its units."
            )
    for kind, (limit, hint) in UNIT_LIMITS.items():
        sel = t == kind
        if not sel.any():
            continue
        level = float(np.median(np.abs(data[sel])))
        if level > limit:
            raise ValueError(
                f"{kind} amplitudes look wrong for SI units: median |value| = {level:.3g}, "
                f"expected well below {limit:g} {hint}. Convert to SI "
                f"(e.g. inst.apply_function(lambda x: x * 1e-6, picks='{kind}') for µV)."
            )
    if flat and data.shape[1] > 1:
        spread = np.ptp(data, axis=1)
        flat_mask = np.zeros(len(data), bool)
        for kind in np.unique(t):  # relative to the channel type's largest range
            sel = t == kind
            scale = max(float(spread[sel].max()), np.finfo(float).tiny)
            flat_mask[sel] = spread[sel] <= 1e-10 * scale
        idx = np.flatnonzero(flat_mask)
        if idx.size:
            raise ValueError(
                f"flat channel(s) (constant over the time window): "
                f"{_list([names[i] for i in idx])}. A reference electrode recorded as zeros "
                "or a disconnected sensor: mark them as bad (inst.info['bads']) so they are "
                "interpolated."
            )
    _warn_if_white(data, names)
    n_min = max(MIN_RUN_SAMPLES, int(np.ceil(MIN_RUN_S * sfreq)) if sfreq else 0)
    varying = np.ptp(data, axis=1) > 0 if data.shape[1] > 1 else np.zeros(len(data), bool)
    runs = [r for r in constant_runs(data, n_min) if varying[r[0]]]
    if runs:
        ch, start, stop = max(runs, key=lambda r: r[2] - r[1])
        when = (f"{tmin + start / sfreq:.3f}..{tmin + (stop - 1) / sfreq:.3f} s" if sfreq
                else f"samples {start}..{stop - 1}")
        raise ValueError(
            f"{len(runs)} channel(s) hold a constant run of >= {n_min} samples (the longest: "
            f"{names[ch]}, {stop - start} samples at {when}): a zeroed block of a damaged file, "
            f"a dropout or a clipped amplifier ({_list([names[r[0]] for r in runs])}). Crop "
            "the window around it (tmin/tmax) or mark the channels as bad "
            "(inst.info['bads'])."
        )


def _match_channels(info: mne.Info, ch_names: list[str], ch_types: list[str]) -> None:
    have = info["ch_names"]
    types = dict(zip(have, info.get_channel_types(), strict=True))
    missing = [n for n in ch_names if n not in types]
    if missing:
        extra = [n for n in have if n not in set(ch_names) and types[n] in DATA_TYPES]
        raise ValueError(
            f"channel mismatch: the model expects {len(ch_names)} channels, "
            f"{len(missing)} of them are missing from the recording: {_list(missing)}. "
            f"Recording channels the model does not know: {_list(extra) or 'none'}. "
            "Fix: rename channels to the model's names (inst.rename_channels), add missing "
            "electrodes as bad channels with positions so they can be interpolated "
            "(mne.add_reference_channels / inst.info['bads'] + inst.set_montage), or use a "
            "model trained for this montage."
        )
    wrong = [
        f"{n} ({types[n]}, model: {t})"
        for n, t in zip(ch_names, ch_types, strict=True)
        if types[n] != t
    ]
    if wrong:
        raise ValueError(
            f"channel types differ from the model's: {_list(wrong)}. Fix them with "
            "inst.set_channel_types({...}) if the recording mislabels them."
        )


def _has_positions(info: mne.Info, names: list[str]) -> bool:
    index = {ch["ch_name"]: ch for ch in info["chs"]}
    locs = np.array([index[n]["loc"][:3] for n in names], float)
    return bool(np.isfinite(locs).all() and (np.linalg.norm(locs, axis=1) > 0).all())


def _interpolate_bads(inst: mne.io.BaseRaw | mne.Evoked, bads: list[str]) -> None:
    types = dict(zip(inst.ch_names, inst.get_channel_types(), strict=True))
    for kind in ("eeg", "meg"):
        sel = [n for n in bads if (types[n] == "eeg") == (kind == "eeg")]
        if not sel:
            continue
        same = [n for n in inst.ch_names if (types[n] == "eeg") == (kind == "eeg")]
        if not _has_positions(inst.info, same):
            raise ValueError(
                f"bad {kind.upper()} channel(s) {_list(sel)} must be interpolated (the model "
                "needs every one of its channels), but the recording has no sensor positions "
                "for them. Set a montage (inst.set_montage with your digitized positions or a "
                "template from mne.channels.get_builtin_montages()) so they can be "
                "interpolated, or repair the channels and remove them from inst.info['bads']."
            )
    logger.info("interpolating %d bad channel(s): %s", len(bads), ", ".join(bads))
    inst.interpolate_bads(reset_bads=True, verbose=False)


# ============================================================================ networks
def prepare_data(
    inst: Recording,
    ch_names: list[str],
    ch_types: list[str],
    *,
    tmin: float | None = None,
    tmax: float | None = None,
    eeg_reference: str | None = "average",
    model_info: mne.Info | None = None,
    adapt_channels: bool = True,
    channel_report: dict | None = None,
) -> tuple[np.ndarray, np.ndarray, mne.Info]:
    """The sensor data a network expects, from an MNE recording.

    Steps: Epochs are averaged; the time window is cropped (:func:`crop_window`); channels are
    matched to the model **by name** and put in the model's order (extra channels are dropped);
    bad channels the model needs are interpolated with MNE (spherical splines for EEG, field
    mapping for MEG); the signal is checked (NaN/Inf, flat channels, units); EEG is re-referenced
    to the average of the model's EEG channels.

    Parameters
    ----------
    inst : mne.io.Raw | mne.Epochs | mne.Evoked
        The recording, in SI units (V, T, T/m). It is not modified.
    ch_names, ch_types : list of str
        The model's channels, in order, and their types ('eeg', 'mag', 'grad').
    tmin, tmax : float | None
        Time window in seconds (inclusive); None = start/end of the recording.
    eeg_reference : 'average' | None
        Re-reference EEG to the average of the model's EEG channels (as the training data
        were), or leave it as it is (None).
    model_info : mne.Info | None
        The model's sensor Info: the positions of electrodes the recording lacks.
    adapt_channels : bool
        Fit the recording's EEG channels to the model's first
        (:func:`deepesi.inverse.channels.adapt_eeg_channels`: names normalised, flat reference
        channels and up to a quarter of missing electrodes interpolated).
    channel_report : dict | None
        Filled with what was done to the channels (renamed, flat, filled, dropped).

    Returns
    -------
    data : ndarray, shape (n_channels, n_times)
        In the model's channel order, SI units.
    times : ndarray, shape (n_times,)
        Seconds.
    info : mne.Info
        Measurement info of the returned channels.

    Raises
    ------
    ValueError
        Missing channels (with the lists of missing and extra channels), bad channels without
        positions, NaN/Inf, flat channels, non-SI units, an empty time window.
    """
    ch_names = [str(n) for n in ch_names]
    ch_types = [str(t) for t in ch_types]
    if len(ch_names) == 0 or len(ch_names) != len(ch_types):
        raise ValueError(
            f"ch_names ({len(ch_names)}) and ch_types ({len(ch_types)}) must be non-empty lists "
            "of the same length."
        )
    unknown = sorted(set(ch_types) - set(DATA_TYPES))
    if unknown:
        raise ValueError(f"unknown channel type(s) {unknown}; expected one of {DATA_TYPES}.")
    if eeg_reference not in ("average", None):
        raise ValueError(f"eeg_reference must be 'average' or None, got {eeg_reference!r}.")
    inst = as_evoked_or_raw(inst)
    if adapt_channels:
        from .channels import adapt_eeg_channels

        if isinstance(inst, mne.io.BaseRaw) and not inst.preload:
            inst.load_data(verbose=False)
        inst, report = adapt_eeg_channels(inst, ch_names, ch_types, model_info=model_info)
        if channel_report is not None:
            channel_report.update(report)
    _match_channels(inst.info, ch_names, ch_types)
    times = crop_window(inst, tmin, tmax)
    if isinstance(inst, mne.io.BaseRaw) and not inst.preload:
        inst.load_data(verbose=False)
    bads = [n for n in inst.info["bads"] if n in set(ch_names)]
    inst.pick(ch_names)  # drops every other channel, bads included, in the model's order
    inst.info["bads"] = bads
    if bads:
        _interpolate_bads(inst, bads)
    data = inst.get_data(picks=ch_names)
    check_signal(data, ch_names, ch_types, sfreq=inst.info["sfreq"], tmin=float(inst.times[0]))
    eeg = np.asarray(ch_types) == "eeg"
    if eeg_reference == "average" and eeg.any():
        data[eeg] -= data[eeg].mean(axis=0, keepdims=True)
    return data, times, inst.info


# ============================================================================ classical methods
def _good_data_channels(info: mne.Info) -> list[str]:
    # ref_meg=False: CTF/KIT/BTi reference sensors are in no forward (they compensate, MNE
    # applies their weights through info['comps'])
    picks = mne.pick_types(info, meg=True, eeg=True, ref_meg=False, exclude="bads")
    return [info["ch_names"][k] for k in picks]


def check_channels(names: list[str], forward_names: list[str], cov_names: list[str]) -> None:
    """Every good data channel must be in the forward and in the noise covariance."""
    if not names:
        raise ValueError("the recording has no good EEG or MEG channels; check info['bads'].")
    for what, have, fix in (
        ("forward", set(forward_names), "compute the forward for these sensors"),
        ("noise covariance", set(cov_names), "estimate the covariance with these channels"),
    ):
        missing = [n for n in names if n not in have]
        if missing:
            raise ValueError(
                f"{len(missing)} good channel(s) of the recording are not in the {what}: "
                f"{missing[:8]}{' ...' if len(missing) > 8 else ''}. Mark them bad "
                f"(info['bads']), drop them (inst.drop_channels), or {fix}."
            )


def add_average_reference(inst: mne.Evoked | mne.io.BaseRaw) -> None:
    """Add MNE's average EEG reference projector (what MNE's inverses require) unless the EEG
    already has one, or a custom reference, or there is no EEG."""
    if "eeg" not in inst.get_channel_types():
        return
    if inst.info["custom_ref_applied"] or has_average_reference(inst.info):
        return
    logger.info("adding an average EEG reference projector (required by the inverse)")
    inst.set_eeg_reference("average", projection=True, verbose=False)


def prepare_evoked(
    inst: Recording,
    forward_names: list[str],
    cov_names: list[str],
    *,
    tmin: float | None = None,
    tmax: float | None = None,
) -> mne.Evoked:
    """The evoked a classical method takes, from an MNE recording.

    Epochs are averaged and a Raw window becomes an Evoked (``nave`` 1); the good EEG/MEG
    channels are kept (each must be in the forward and the noise covariance); the window is
    cropped (:func:`crop_window`); the signal is checked (NaN/Inf, units); an average EEG
    reference projector is added when the EEG has none.
    """
    inst = as_evoked_or_raw(inst)
    names = _good_data_channels(inst.info)
    check_channels(names, forward_names, cov_names)
    inst.pick(names)
    times = crop_window(inst, tmin, tmax)
    if isinstance(inst, mne.io.BaseRaw):
        inst.load_data(verbose=False)
        inst = mne.EvokedArray(inst.get_data(), inst.info, tmin=float(times[0]), nave=1,
                               comment="raw window", verbose=False)
    check_signal(inst.data, names, inst.get_channel_types(), flat=False,
                 sfreq=inst.info["sfreq"], tmin=float(inst.times[0]))
    add_average_reference(inst)
    return inst


# ============================================================================ peak time
def peak_sample(data: np.ndarray, info: mne.Info | None = None, noise_cov: Any = None, *,
                transform: np.ndarray | None = None) -> int:
    """The sample of the largest whitened global field power, ``argmax_t ‖W x_t‖²``.

    With ``noise_cov``, ``W`` is MNE's whitener (:func:`mne.cov.compute_whitener`, ``pca=True``)
    of the data's ``info``, with an average EEG reference projector added when the EEG has none,
    as the classical methods whiten: every method given the same recording and covariance reads
    its map at the same sample. Without, ``transform`` stands in: an (n, n) whitener, or a vector
    of per-channel scales the data are divided by (a network's input scaling); with neither,
    the plain global field power.

    Parameters
    ----------
    data : ndarray, shape (n_channels, n_times)
        In the order of ``info['ch_names']``.
    info : mne.Info | None
        The channels of ``data`` (needed with ``noise_cov``).
    noise_cov : mne.Covariance | None
    transform : ndarray | None

    Returns
    -------
    int
    """
    x = np.asarray(data, dtype=float)
    if noise_cov is not None:
        if info is None:
            raise ValueError("peak_sample: the data's info is needed to whiten with noise_cov.")
        ev = mne.EvokedArray(x, info, verbose=False)
        add_average_reference(ev)
        w, names = mne.cov.compute_whitener(noise_cov, ev.info, pca=True, verbose=False)
        order = [ev.ch_names.index(n) for n in names]
        y = w @ x[order]
    elif transform is None:
        y = x
    else:
        t = np.asarray(transform, dtype=float)
        y = t @ x if t.ndim == 2 else x / t[:, None]
    return int(np.argmax(np.sum(y**2, axis=0)))
