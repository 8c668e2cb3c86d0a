"""The :class:`Sensors` container, and head → MRI transforms (:func:`check_trans`, ...).

Frames follow MNE: sensor positions in :attr:`Sensors.info` are in the *head* frame (defined by
the fiducials), :attr:`Sensors.trans` maps head → MRI, and :attr:`Sensors.eeg_pos_mri` holds the
electrode positions on the scalp in the MRI frame (m).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .._validation import check_file, check_option, validate_type

#: EEG references a lead field (and its Sensors) may have.
EEG_REFERENCES = ("average", "none")

__all__ = ["EEG_REFERENCES", "Sensors", "apply_transform", "check_trans", "read_trans"]


@dataclass(frozen=True, eq=False)
class Sensors:
    """EEG electrodes and/or MEG sensors registered to a head model.

    Parameters
    ----------
    ch_names : list of str
        Channel names, in lead-field row order.
    ch_types : list of str
        'eeg', 'mag' or 'grad' per channel.
    info : mne.Info
        Measurement info of the channels, positions in MNE's head frame (EEG positions are the
        scalp-projected ones). May also hold MEG reference channels (CTF compensation), which
        are not in :attr:`ch_names`.
    trans : mne.transforms.Transform
        Head → MRI (surface RAS) transform.
    eeg_pos_mri : ndarray, shape (n_eeg, 3)
        EEG electrode positions on the head model's scalp, MRI frame, metres, in the order of
        the EEG channels in :attr:`ch_names`.
    eeg_reference : str
        'average' (an average-reference projector is in ``info``; lead fields are
        average-referenced) or 'none'.
    meta : dict
        Provenance and registration quality (fiducial residuals, projection distances, scale).
    """

    ch_names: list[str]
    ch_types: list[str]
    info: object
    trans: object
    eeg_pos_mri: np.ndarray
    eeg_reference: str = "average"
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.ch_names) != len(self.ch_types):
            raise ValueError("ch_names and ch_types must have the same length.")
        if len(set(self.ch_names)) != len(self.ch_names):
            raise ValueError("channel names must be unique.")
        bad = sorted(set(self.ch_types) - {"eeg", "mag", "grad"})
        if bad:
            raise ValueError(f"unknown channel type(s) {bad}; expected 'eeg', 'mag' or 'grad'.")
        pos = np.asarray(self.eeg_pos_mri, float).reshape(-1, 3)
        if len(pos) != self.ch_types.count("eeg"):
            raise ValueError(
                f"eeg_pos_mri has {len(pos)} rows but there are {self.ch_types.count('eeg')} "
                "EEG channels."
            )
        check_option("eeg_reference", self.eeg_reference, EEG_REFERENCES)
        object.__setattr__(self, "eeg_pos_mri", pos)
        object.__setattr__(self, "ch_names", list(self.ch_names))
        object.__setattr__(self, "ch_types", list(self.ch_types))

    # ------------------------------------------------------------------ views
    @property
    def eeg_names(self) -> list[str]:
        """Names of the EEG channels."""
        return [n for n, t in zip(self.ch_names, self.ch_types, strict=True) if t == "eeg"]

    @property
    def meg_names(self) -> list[str]:
        """Names of the MEG channels (magnetometers and gradiometers)."""
        return [n for n, t in zip(self.ch_names, self.ch_types, strict=True) if t != "eeg"]

    @property
    def n_eeg(self) -> int:
        """Number of EEG channels."""
        return self.ch_types.count("eeg")

    @property
    def n_meg(self) -> int:
        """Number of MEG channels."""
        return len(self.ch_types) - self.n_eeg

    def __len__(self) -> int:
        return len(self.ch_names)

    def hash(self) -> str:
        """Content hash (sha256 hex) of channels, positions, coils, transforms and reference."""
        h = hashlib.sha256()
        h.update("|".join(self.ch_names).encode())
        h.update("|".join(self.ch_types).encode())
        h.update(np.round(self.eeg_pos_mri, 7).tobytes())
        h.update(np.round(np.asarray(self.trans["trans"], float), 7).tobytes())
        idx = {n: i for i, n in enumerate(self.info["ch_names"])}
        for name in self.meg_names:
            ch = self.info["chs"][idx[name]]
            h.update(f"{name}:{int(ch['coil_type'])}".encode())
            h.update(np.round(np.asarray(ch["loc"], float), 7).tobytes())
        if self.n_meg and self.info["dev_head_t"] is not None:
            h.update(np.round(np.asarray(self.info["dev_head_t"]["trans"], float), 7).tobytes())
        h.update(self.eeg_reference.encode())
        return h.hexdigest()

    def __repr__(self) -> str:
        kinds = {t: self.ch_types.count(t) for t in ("eeg", "mag", "grad") if t in self.ch_types}
        return f"<Sensors | {kinds} | EEG reference: {self.eeg_reference}>"


def check_trans(trans, what: str = "trans"):
    """Return a head → MRI :class:`mne.transforms.Transform` from a file name or a Transform.

    Parameters
    ----------
    trans : path-like | mne.transforms.Transform | ndarray, shape (4, 4)
        A ``-trans.fif`` file, a Transform between 'head' and 'mri' (either direction), or a
        4x4 head → MRI matrix in metres.
    what : str
        Name of the argument, for the messages.

    Returns
    -------
    mne.transforms.Transform
        Head → MRI (inverted if ``trans`` was MRI → head).
    """
    import mne
    from mne.io.constants import FIFF
    from mne.transforms import Transform, invert_transform

    if trans is None:
        raise ValueError(
            f"{what} is required: pass the head→MRI transform (-trans.fif) of this subject, "
            "made with mne coreg. Without it the sensors cannot be placed on the head."
        )
    if isinstance(trans, str | os.PathLike):
        if str(trans) == "fsaverage":
            raise ValueError("'fsaverage' is not a trans file; give the -trans.fif path.")
        trans = mne.read_trans(check_file(trans, "trans file"), verbose=False)
    if isinstance(trans, np.ndarray):
        trans = Transform("head", "mri", np.asarray(trans, float))
    validate_type(trans, Transform, what, "path-like, a 4x4 ndarray or mne.transforms.Transform")
    frames = {trans["from"], trans["to"]}
    if frames != {FIFF.FIFFV_COORD_HEAD, FIFF.FIFFV_COORD_MRI}:
        raise ValueError(f"{what} must map between the 'head' and 'mri' frames, got {trans}.")
    if trans["from"] == FIFF.FIFFV_COORD_MRI:
        trans = invert_transform(trans)
    t = np.asarray(trans["trans"], float)
    if np.abs(t[:3, 3]).max() > 1.0:
        raise ValueError(
            f"{what} translates by {np.abs(t[:3, 3]).max():.1f} m; it looks like it is in "
            "millimetres. MNE transforms are in metres."
        )
    return trans


def read_trans(fname: str | os.PathLike):
    """Read a head → MRI transform (``-trans.fif``): ``mne.read_trans`` with checks.

    Parameters
    ----------
    fname : path-like
        A ``-trans.fif`` file (from ``mne coreg``), in either direction between 'head' and
        'mri'.

    Returns
    -------
    mne.transforms.Transform
        Head → MRI.
    """
    return check_trans(Path(fname))


def apply_transform(t: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Apply the 4x4 affine ``t`` to points ``pts`` (n, 3)."""
    return np.asarray(pts, float) @ t[:3, :3].T + t[:3, 3]
