"""Sensors: EEG electrodes placed on a head model's scalp, and MEG coils from an ``mne.Info``.

Two constructors:

- :func:`make_eeg_sensors` (:mod:`.registration`) places a standard (or any) EEG montage
  (:mod:`.montages`) on a head: the montage is registered to the head by its fiducials (nasion,
  LPA, RPA), optionally scaled to the head's size, and each electrode is projected onto the
  scalp along the ray from the head centre (:mod:`.scalp`).
- :func:`sensors_from_info` (:mod:`.info`) takes the digitized EEG positions and MEG coils of
  a recording (``mne.Info``) and the subject's head→MRI transform, as MNE does.

Frames follow MNE: sensor positions in :attr:`Sensors.info` are in the *head* frame
(defined by the fiducials), :attr:`Sensors.trans` maps head → MRI, and
:attr:`Sensors.eeg_pos_mri` holds the electrode positions on the scalp in the MRI frame (m).
"""

from .container import EEG_REFERENCES, Sensors, check_trans, read_trans
from .info import add_average_reference, eeg_info, sensors_from_info
from .montages import (
    EEG_LAYOUTS,
    MONTAGE_ALIASES,
    TEN_FIVE_EXTRA_64,
    TEN_TEN_64,
    montage_channels,
    resolve_montage,
)
from .registration import MNI_FIDUCIALS, fiducial_frame, make_eeg_sensors, mri_fiducials_of
from .scalp import check_positions, place_on_scalp

__all__ = [
    "EEG_LAYOUTS",
    "EEG_REFERENCES",
    "MNI_FIDUCIALS",
    "MONTAGE_ALIASES",
    "TEN_FIVE_EXTRA_64",
    "TEN_TEN_64",
    "Sensors",
    "add_average_reference",
    "check_positions",
    "check_trans",
    "eeg_info",
    "fiducial_frame",
    "make_eeg_sensors",
    "montage_channels",
    "mri_fiducials_of",
    "place_on_scalp",
    "read_trans",
    "resolve_montage",
    "sensors_from_info",
]
