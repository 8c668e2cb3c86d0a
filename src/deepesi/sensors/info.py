"""The ``mne.Info`` of the sensors, and :func:`sensors_from_info` (the sensors of a recording).

:func:`eeg_info` builds the Info of EEG electrodes placed on a head (head frame, with the
fiducials); :func:`add_average_reference` appends MNE's average-reference projector, which MNE's
inverse methods require of average-referenced EEG; :func:`sensors_from_info` keeps the
digitized EEG electrodes (projected onto the scalp) and the MEG coils of a recording.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .._validation import check_option, first_line, validate_type
from .container import EEG_REFERENCES, Sensors, apply_transform, check_trans
from .scalp import check_positions, place_on_scalp

__all__ = ["add_average_reference", "eeg_info", "sensors_from_info"]


def eeg_info(ch_names: list[str], pos_head: np.ndarray, fid_head: dict, reference: str):
    """An ``mne.Info`` with EEG channels at ``pos_head`` (head frame, m) and the fiducials.

    Parameters
    ----------
    ch_names : list of str
        Channel names.
    pos_head : ndarray, shape (n, 3)
        Electrode positions, head frame, metres.
    fid_head : dict
        'nasion', 'lpa', 'rpa' in the head frame (metres).
    reference : 'average' | 'none'
        'average' adds an (inactive) average-reference projector.

    Returns
    -------
    mne.Info
    """
    import mne

    montage = mne.channels.make_dig_montage(
        ch_pos=dict(zip(ch_names, pos_head, strict=True)), nasion=fid_head["nasion"],
        lpa=fid_head["lpa"], rpa=fid_head["rpa"], coord_frame="head",
    )
    info = mne.create_info(list(ch_names), 1000.0, "eeg")
    info.set_montage(montage, verbose=False)
    if reference == "average":
        add_average_reference(info)
    return info


def add_average_reference(info) -> None:
    """Append an inactive average EEG reference projector (MNE's), as MNE's inverse requires.

    The projector spans every EEG channel of ``info``, bad ones included (the lead field is
    average-referenced over all of them; MNE's own default leaves ``info['bads']`` out), and is
    made whatever ``info['custom_ref_applied']`` says. Nothing is done when ``info`` has no EEG
    channel or already has an average-reference projector.

    Parameters
    ----------
    info : mne.Info
        Modified in place.
    """
    import mne
    from mne.io.constants import FIFF
    from mne.proj import make_eeg_average_ref_proj

    eeg = mne.pick_types(info, meg=False, eeg=True, exclude=())
    if not len(eeg) or any(p["kind"] == FIFF.FIFFV_PROJ_ITEM_EEG_AVREF for p in info["projs"]):
        return
    bads, custom_ref = list(info["bads"]), info["custom_ref_applied"]
    with info._unlock():
        info["bads"] = []
        info["custom_ref_applied"] = FIFF.FIFFV_MNE_CUSTOM_REF_OFF
        try:
            proj = make_eeg_average_ref_proj(info, activate=False, verbose=False)
        finally:
            info["bads"] = bads
            info["custom_ref_applied"] = custom_ref
        info["projs"].append(proj)


def _set_eeg_locs(info, names: list[str], pos_head: np.ndarray) -> None:
    idx = {n: i for i, n in enumerate(info["ch_names"])}
    for name, p in zip(names, pos_head, strict=True):
        loc = info["chs"][idx[name]]["loc"]
        loc[:3] = p
        loc[3:6] = 0.0  # reference position: none (we average-reference)


def read_measurement_info(path: str | os.PathLike):
    """The ``mne.Info`` of a recording: a FIF file, or anything :func:`mne.io.read_raw` reads
    (a CTF ``.ds`` folder, KIT ``.con``/``.sqd``, BTi, EEG formats), without loading its data."""
    import mne

    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"measurement file not found: {path}.")
    try:
        if path.is_file() and path.name.lower().endswith((".fif", ".fif.gz")):
            return mne.io.read_info(path, verbose=False)
        return mne.io.read_raw(path, preload=False, verbose=False).info
    except (KeyboardInterrupt, MemoryError):
        raise
    except Exception as err:
        detail = first_line(err)
        raise ValueError(f"cannot read the sensors of {path.name}: {detail}. Give a FIF file, a "
                         "CTF .ds folder or another recording mne.io.read_raw reads.") from err


def sensors_from_info(
    info,
    trans,
    head,
    *,
    picks=("eeg", "meg"),
    max_distance: float = 0.01,
    reference: str = "average",
) -> Sensors:
    """Sensors of a real recording: digitized EEG electrodes and MEG coils.

    Parameters
    ----------
    info : mne.Info | path-like
        Measurement info (or a FIF file to read it from) with EEG positions (head frame) and/or
        MEG channels (MEGIN/Neuromag, CTF, ...) and ``dev_head_t``.
    trans : path-like | mne.transforms.Transform
        Head → MRI transform of the subject (``-trans.fif`` from mne coreg). Required.
    head : HeadModel
        The subject's head model (MRI frame).
    picks : sequence of {'eeg', 'meg'}
        Which modalities to keep.
    max_distance : float
        Largest median distance (m) of the EEG electrodes to the scalp after the transform
        (see :func:`make_eeg_sensors`).
    reference : 'average' | 'none'
        EEG reference of the lead field.

    Returns
    -------
    Sensors
        EEG channels first (projected onto the scalp, ``info`` updated accordingly), then MEG
        channels in ``info`` order. Bad channels are kept (a forward covers all channels).
    """
    import mne

    if isinstance(info, str | os.PathLike):
        info = read_measurement_info(info)
    validate_type(info, mne.Info, "info", "mne.Info or path-like (a FIF file)")
    check_option("reference", reference, EEG_REFERENCES)
    picks = (picks,) if isinstance(picks, str) else tuple(picks)
    bad = sorted(set(picks) - {"eeg", "meg"})
    if bad or not picks:
        raise ValueError(f"picks must be a subset of ('eeg', 'meg'), got {picks}.")
    trans = check_trans(trans)
    eeg_idx = mne.pick_types(info, meg=False, eeg=True, exclude=()) if "eeg" in picks else []
    meg_idx = mne.pick_types(info, meg=True, ref_meg=False, exclude=()) if "meg" in picks else []
    ref_idx = mne.pick_types(info, meg=False, ref_meg=True, exclude=()) if len(meg_idx) else []
    if len(eeg_idx) + len(meg_idx) == 0:
        raise ValueError(f"info has no {' or '.join(picks)} channels.")
    if len(meg_idx) and info["dev_head_t"] is None:
        raise ValueError("info has MEG channels but no dev_head_t (device→head transform).")
    keep = list(eeg_idx) + list(meg_idx) + list(ref_idx)
    new = mne.pick_info(info, keep, verbose=False)
    eeg_names = [info["ch_names"][i] for i in eeg_idx]
    meg_names = [info["ch_names"][i] for i in meg_idx]
    meta: dict = {"source": "info"}
    el_mri = np.zeros((0, 3))
    if eeg_names:
        el_head = np.array([new["chs"][i]["loc"][:3] for i in range(len(eeg_names))], float)
        check_positions(eeg_names, el_head, "EEG")
        head_to_mri = np.asarray(trans["trans"])
        el_mri, dist, at_edge = place_on_scalp(head, apply_transform(head_to_mri, el_head),
                                               eeg_names, max_distance,
                                               "digitized EEG electrodes")
        meta["at_volume_edge"] = at_edge
        meta["projection_mm"] = {"median": float(np.median(dist) * 1000),
                                 "max": float(dist.max() * 1000)}
        with new._unlock():
            _set_eeg_locs(new, eeg_names, apply_transform(np.linalg.inv(head_to_mri), el_mri))
        if reference == "average":
            add_average_reference(new)
    if meg_names:
        coils = np.array([new["chs"][len(eeg_names) + i]["loc"][:3] for i in range(len(meg_names))])
        check_positions(meg_names, coils, "MEG")
    types = ["eeg"] * len(eeg_names) + [mne.channel_type(new, len(eeg_names) + i)
                                        for i in range(len(meg_names))]
    meta["n_ref_meg"] = len(ref_idx)
    return Sensors(eeg_names + meg_names, types, new, trans, el_mri, reference, meta)
