"""Checks of the signal an inverse method is given: NaN/Inf, units, impossible values, flat
channels, constant runs (zeroed blocks of damaged files, dropouts, clipping), data that look
like white noise, and constant runs inside single epochs before averaging hides them."""

from __future__ import annotations

import mne
import numpy as np

from .._logging import logger

__all__ = ["MIN_RUN_S", "MIN_RUN_SAMPLES", "PHYSICAL_LIMITS", "UNIT_LIMITS", "check_epochs",
           "check_signal", "constant_runs"]

#: Median |amplitude| above which the data are almost surely not in SI units, per channel type.
UNIT_LIMITS: dict[str, tuple[float, str]] = {
    "eeg": (1e-2, "V (EEG in µV or mV stored as V?)"),
    "mag": (1e-8, "T (magnetometers in fT or pT stored as T?)"),
    "grad": (1e-6, "T/m (gradiometers in fT/cm stored as T/m?)"),
}

#: |amplitude| no sensor of the type can record (an EEG amplifier saturates well below 1 V): a
#: sample beyond it is a damaged value (flipped exponent bits, a wrong scale in the header).
PHYSICAL_LIMITS: dict[str, float] = {"eeg": 1.0, "mag": 1e-5, "grad": 1e-3}


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


def _min_run(sfreq: float | None) -> int:
    """Shortest constant run refused: MIN_RUN_S at ``sfreq``, at least MIN_RUN_SAMPLES."""
    return max(MIN_RUN_SAMPLES, int(np.ceil(MIN_RUN_S * sfreq)) if sfreq else 0)


def _runs_in_live_channels(data: np.ndarray, n_min: int) -> list[tuple[int, int, int]]:
    """:func:`constant_runs` of the channels that vary at all (flat ones are checked apart)."""
    varying = np.ptp(data, axis=1) > 0 if data.shape[1] > 1 else np.zeros(len(data), bool)
    return [r for r in constant_runs(data, n_min) if varying[r[0]]]


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
    # after the units check: a whole recording in µV is a unit error, single wild samples
    # are damage
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
    n_min = _min_run(sfreq)
    runs = _runs_in_live_channels(data, n_min)
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



def check_epochs(epochs: mne.BaseEpochs) -> None:
    """Constant runs inside single epochs (a zeroed block of a damaged file), which averaging
    with the other epochs would hide, are refused naming the epoch."""
    picks = mne.pick_types(epochs.info, meg=True, eeg=True, ref_meg=False, exclude="bads")
    if not len(picks):
        return
    data = epochs.get_data(picks=picks)
    sfreq = epochs.info["sfreq"]
    n_min = _min_run(sfreq)
    names = [epochs.ch_names[i] for i in picks]
    for k, ep in enumerate(data):
        runs = _runs_in_live_channels(ep, n_min)
        if runs:
            ch, start, stop = max(runs, key=lambda r: r[2] - r[1])
            t0 = epochs.times[0]
            raise ValueError(
                f"epoch {k} holds a constant run of {stop - start} samples in {len(runs)} "
                f"channel(s) (the longest: {names[ch]} at {t0 + start / sfreq:.3f}.."
                f"{t0 + (stop - 1) / sfreq:.3f} s): a zeroed block of a damaged file or a "
                f"dropout. Drop that epoch (epochs.drop([{k}])) or re-export the file."
            )
