"""From a recording to the data an inverse method takes: one preparation for every method.

:func:`read_recording` (:mod:`.reading`) reads a file (raw, evoked, epochs); the signal checks
are in :mod:`.checks`. :func:`prepare_data` (networks) and
:func:`prepare_evoked` (classical methods) share the same steps: Epochs are averaged, the time
window is cut by :func:`crop_window` (the one cropper: inclusive, half a sample of tolerance,
an error for a window that holds no sample), channels are matched by name, EEG is referenced to
its average, and the signal is checked (NaN/Inf, flat channels, units). :func:`peak_sample` is
the one definition of the time a result is read at: the sample of the largest whitened global
field power of the data, the same for every method given the same data and noise covariance.
"""

from __future__ import annotations

from typing import Any

import mne
import numpy as np

from .._logging import logger
from ..whitening import has_average_reference
from .checks import _list, check_epochs, check_signal, constant_runs
from .reading import Recording, read_recording, split_trials

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


#: Channel types the inverse methods take.
DATA_TYPES = ("eeg", "mag", "grad")


# ============================================================================ shared steps
def as_evoked_or_raw(inst: Any) -> mne.io.BaseRaw | mne.Evoked:
    """A copy of ``inst`` as Raw or Evoked: Epochs are averaged (all channels kept)."""
    if isinstance(inst, mne.BaseEpochs):
        if len(inst) == 0:
            raise ValueError(
                "the Epochs object holds no epoch (all dropped?); check the rejection settings."
            )
        check_epochs(inst)
        logger.info("averaging %d epochs before localization", len(inst))
        return inst.average(picks="all")
    if isinstance(inst, mne.io.BaseRaw | mne.Evoked):
        return inst.copy()
    raise TypeError(
        "inst must be an mne.io.Raw, mne.Epochs or mne.Evoked, got "
        f"{type(inst).__name__}. Read your recording with mne.io.read_raw / mne.read_epochs / "
        "mne.read_evokeds (or deepesi.inverse.read_recording) first."
    )


def recording_nave(inst: Any) -> int:
    """Trials averaged in a recording: an Evoked's ``nave``, the number of Epochs (averaged
    before localization), 1 for Raw. The noise of an average is the noise covariance / nave."""
    if isinstance(inst, mne.Evoked):
        return max(int(inst.nave), 1)
    if isinstance(inst, mne.BaseEpochs):
        return max(len(inst), 1)
    return 1


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
        return out.apply_function(lambda x: x - x[inside].mean(), picks=picks,
                                  verbose=False)
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
