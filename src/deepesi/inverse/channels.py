"""A recording's EEG channels fitted to a network's: names normalised, the reference and the
missing electrodes filled by interpolation, and a report of all that was done.

Real files rarely name their electrodes as a model's montage does: EDF exports write
``EEG Fp1-Ref``, older 10-20 caps call T7/T8/P7/P8 ``T3/T4/T5/T6``, cases differ; the reference
electrode is recorded as a flat channel (or not at all); a cap has a few electrodes fewer than
the model's layout. :func:`adapt_eeg_channels` fixes what can be fixed exactly enough and says
what it did:

1. **names**: a recording EEG channel takes the model's name when they agree after removing the
   ``EEG`` prefix and reference suffixes (``-Ref``, ``-REF``, ``-AVG``, ``-A1``, ...), ignoring
   case, and mapping the old 10-20 names (:data:`OLD_1020_NAMES`);
2. **reference / flat channels** among the model's electrodes are marked bad;
3. **missing** model electrodes (at most ``max_fill`` of them) are added with their positions
   from the model's sensor Info and marked bad;
4. bad channels are then interpolated by MNE (spherical splines) from the recording's own
   electrodes, which need positions: from its digitization, or else from its standard 10-05
   names.

How much filling costs is measured in ``docs/localize.md``.
"""

from __future__ import annotations

import copy
import re
from typing import Any

import mne
import numpy as np

from .._logging import logger

__all__ = ["OLD_1020_NAMES", "adapt_eeg_channels", "canonical_name"]

#: Old 10-20 names and their 10-10 equivalents (Acharya et al. 2016, ACNS guideline 2).
OLD_1020_NAMES = {"T3": "T7", "T4": "T8", "T5": "P7", "T6": "P8"}

_PREFIX = re.compile(r"^EEG[\s_-]*", re.IGNORECASE)
_SUFFIX = re.compile(r"[-_ ](REF|AVG|AV|AR|A1|A2|M1|M2|LE|CZ|REF1)$", re.IGNORECASE)


def canonical_name(name: str) -> str:
    """The comparison key of an electrode name: no ``EEG`` prefix or reference suffix, upper
    case, old 10-20 names mapped to 10-10 (``'EEG T3-Ref'`` → ``'T7'``)."""
    n = _PREFIX.sub("", str(name).strip())
    stripped = _SUFFIX.sub("", n)
    if stripped:  # never strip a whole name (a channel called 'A1' or 'Cz' stays itself)
        n = stripped
    n = n.strip().upper()
    return {k.upper(): v.upper() for k, v in OLD_1020_NAMES.items()}.get(n, n)


def _eeg_names(info: mne.Info) -> list[str]:
    return [info["ch_names"][k] for k in mne.pick_types(info, meg=False, eeg=True, exclude=[])]


def _has_positions(info: mne.Info, names: list[str]) -> bool:
    index = {ch["ch_name"]: ch for ch in info["chs"]}
    locs = np.array([index[n]["loc"][:3] for n in names], float).reshape(-1, 3)
    return bool(len(locs) and np.isfinite(locs).all() and (np.linalg.norm(locs, axis=1) > 0).all())


def adapt_eeg_channels(
    inst: mne.io.BaseRaw | mne.Evoked,
    ch_names: list[str],
    ch_types: list[str],
    *,
    model_info: mne.Info | None = None,
    max_fill: float = 0.25,
) -> tuple[mne.io.BaseRaw | mne.Evoked, dict]:
    """Fit a recording's EEG channels to a model's (in place on ``inst``, a copy of the user's).

    Parameters
    ----------
    inst : mne.io.Raw | mne.Evoked
        The recording (already a copy; Epochs averaged).
    ch_names, ch_types : list of str
        The model's channels.
    model_info : mne.Info | None
        The model's sensor Info (positions of its electrodes, head frame): needed to fill
        missing electrodes.
    max_fill : float
        Largest fraction of the model's EEG electrodes that may be filled (missing or flat).

    Returns
    -------
    inst : mne.io.Raw | mne.Evoked
        With renamed channels, added (bad) ones and bad flat ones; MEG untouched.
    report : dict
        ``renamed`` ({old: new}), ``flat`` (marked bad, to be interpolated), ``filled``
        (added and interpolated), ``dropped`` (recording EEG channels the model does not use),
        ``positions_from`` ('recording', 'standard names' or None).
    """
    model_eeg = [n for n, t in zip(ch_names, ch_types, strict=True) if t == "eeg"]
    report: dict[str, Any] = {"renamed": {}, "flat": [], "filled": [], "dropped": [],
                              "positions_from": None}
    if not model_eeg:
        return inst, report
    have = _eeg_names(inst.info)
    if not have:
        return inst, report  # nothing to adapt; the channel check says what is missing
    # 1. names
    want = {canonical_name(n): n for n in model_eeg}
    present = set(inst.ch_names)
    rename = {}
    for n in have:
        target = want.get(canonical_name(n))
        if target is not None and target != n and target not in present and \
                target not in rename.values():
            rename[n] = target
    if rename:
        inst.rename_channels(rename, verbose=False)
        report["renamed"] = rename
        logger.info("renamed %d EEG channel(s) to the model's names: %s", len(rename),
                    ", ".join(f"{a}→{b}" for a, b in list(rename.items())[:10]))
    have = _eeg_names(inst.info)
    report["dropped"] = [n for n in have if n not in set(model_eeg)]
    # 2. flat (reference) channels among the model's electrodes
    used = [n for n in model_eeg if n in set(have)]
    if used:
        data = inst.get_data(picks=used)
        spread = data.max(axis=1) - data.min(axis=1)
        scale = float(np.median(spread)) if np.median(spread) > 0 else 1.0
        flat = [n for n, s in zip(used, spread, strict=True) if s <= 1e-10 * scale]
        if flat and len(flat) < len(used):
            inst.info["bads"] = sorted(set(inst.info["bads"]) | set(flat))
            report["flat"] = flat
            if len(flat) == 1:  # one flat electrode: the recording reference, as expected
                logger.info("flat EEG channel %s (the reference?) marked bad and "
                            "interpolated", flat[0])
            else:  # more than a reference: disconnected electrodes or a damaged file
                logger.warning(
                    "%d EEG channels are flat (constant over the recording): %s. More than a "
                    "reference: disconnected electrodes or a damaged file? They are marked bad "
                    "and interpolated.", len(flat), ", ".join(flat[:12]))
    # 3. missing electrodes
    missing = [n for n in model_eeg if n not in set(inst.ch_names)]
    n_fill = len(missing) + len([n for n in report["flat"] if n in set(model_eeg)])
    if missing:
        if n_fill > max_fill * len(model_eeg):
            return inst, report  # too many: the channel check refuses with the lists
        if model_info is None or not _has_positions(model_info, missing):
            return inst, report
        _ensure_positions(inst, report)
        if report["positions_from"] is None:
            return inst, report
        _add_missing(inst, missing, model_info)
        report["filled"] = missing
        logger.info("filled %d missing EEG electrode(s) by interpolation: %s", len(missing),
                    ", ".join(missing[:12]))
    elif report["flat"]:
        _ensure_positions(inst, report)
    return inst, report


def _ensure_positions(inst: mne.io.BaseRaw | mne.Evoked, report: dict) -> None:
    """The recording's EEG positions: its own, or those of its standard 10-05 names."""
    eeg = [n for n in _eeg_names(inst.info) if n not in set(inst.info["bads"])]
    if _has_positions(inst.info, eeg):
        report["positions_from"] = "recording"
        return
    montage = mne.channels.make_standard_montage("standard_1005")
    known = {n.upper() for n in montage.ch_names}
    if all(n.upper() in known for n in eeg):
        inst.set_montage(montage, match_case=False, on_missing="ignore", verbose=False)
        report["positions_from"] = "standard names"
        logger.info("the recording has no EEG positions: using the standard 10-05 positions "
                    "of its channel names")


def _add_missing(inst: mne.io.BaseRaw | mne.Evoked, missing: list[str],
                 model_info: mne.Info) -> None:
    """Append the missing electrodes as bad, zero channels with the model's positions."""
    src = {ch["ch_name"]: ch for ch in model_info["chs"]}
    info = mne.create_info(missing, inst.info["sfreq"], "eeg")
    with info._unlock():
        for k, name in enumerate(missing):
            ch = copy.deepcopy(src[name])
            info["chs"][k]["loc"][:] = ch["loc"]
            info["chs"][k]["coord_frame"] = ch["coord_frame"]
        info["bads"] = list(missing)
    zeros = np.zeros((len(missing), len(inst.times)))
    if isinstance(inst, mne.Evoked):
        extra = mne.EvokedArray(zeros, info, tmin=inst.times[0], nave=inst.nave, verbose=False)
        inst.add_channels([extra], force_update_info=True)
    else:
        inst.add_channels([mne.io.RawArray(zeros, info, first_samp=inst.first_samp,
                                           verbose=False)], force_update_info=True)
    inst.info["bads"] = sorted(set(inst.info["bads"]) | set(missing))
