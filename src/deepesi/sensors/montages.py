"""The EEG montage catalogue: named channel layouts, MNE's built-in montages and their aliases.

:func:`resolve_montage` turns a name (a layout of :data:`EEG_LAYOUTS`, an MNE montage name or
one of its old aliases) or a :class:`mne.channels.DigMontage` into a montage;
:func:`montage_channels` picks the electrodes to use from it.
"""

from __future__ import annotations

import numpy as np

from .._validation import validate_type

__all__ = [
    "EEG_LAYOUTS",
    "MONTAGE_ALIASES",
    "TEN_FIVE_EXTRA_64",
    "TEN_TEN_64",
    "montage_channels",
    "resolve_montage",
]

#: Old MNE montage names and their current equivalents (identical positions).
MONTAGE_ALIASES = {
    "standard_1020": "colin27_1020",
    "standard_1005": "colin27_1005",
    "standard_alphabetic": "colin27_alphabetic",
    "standard_postfixed": "colin27_postfixed",
    "standard_prefixed": "colin27_prefixed",
    "standard_primed": "colin27_primed",
}

#: The 64 channels of the 10-10 system used by 64-channel caps (BioSemi/ActiCap layouts), by
#: their 10-10 names; positions are taken from MNE's 'standard_1005' (whose fiducials are real).
TEN_TEN_64 = (
    "Fp1", "AF7", "AF3", "F1", "F3", "F5", "F7", "FT7", "FC5", "FC3", "FC1", "C1", "C3", "C5",
    "T7", "TP7", "CP5", "CP3", "CP1", "P1", "P3", "P5", "P7", "P9", "PO7", "PO3", "O1", "Iz",
    "Oz", "POz", "Pz", "CPz", "Fpz", "Fp2", "AF8", "AF4", "AFz", "Fz", "F2", "F4", "F6", "F8",
    "FT8", "FC6", "FC4", "FC2", "FCz", "Cz", "C2", "C4", "C6", "T8", "TP8", "CP6", "CP4", "CP2",
    "P2", "P4", "P6", "P8", "P10", "PO8", "PO4", "O2",
)

#: 64 positions of the 10-05 system halfway between 10-10 positions (left/right pairs), added to
#: :data:`TEN_TEN_64` for a 128-channel cap in the style of 10-05 128-channel layouts: the six
#: "h" rows (AFF, FFC, FCC, CCP, CPP, PPO 1h-6h), the temporal rows (FFT, FTT, TTP, TPP 7h-10h),
#: AFp3h/4h, AFp9h/10h, PPO9h/10h, POO1/2, POO9/10 and OI1h/2h. None lies below the lowest
#: 10-10 electrode of the 64-channel set.
TEN_FIVE_EXTRA_64 = (
    *(f"{row}{k}h" for row in ("AFF", "FFC", "FCC", "CCP", "CPP", "PPO") for k in range(1, 7)),
    *(f"{row}{k}h" for row in ("FFT", "FTT", "TTP", "TPP") for k in (7, 8, 9, 10)),
    "AFp3h", "AFp4h", "AFp9h", "AFp10h", "PPO9h", "PPO10h", "POO1", "POO2", "POO9", "POO10",
    "OI1h", "OI2h",
)

#: Named channel layouts: name → (MNE montage, channel subset).
EEG_LAYOUTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "standard_1010_64": ("standard_1005", TEN_TEN_64),
    "standard_1005_128": ("standard_1005", TEN_TEN_64 + TEN_FIVE_EXTRA_64),
}


def resolve_montage(montage):
    """A montage and its name, from an MNE montage name (or alias) or a DigMontage.

    Parameters
    ----------
    montage : str | mne.channels.DigMontage
        A built-in MNE montage name (see ``mne.channels.get_builtin_montages()``), one of the
        :data:`MONTAGE_ALIASES`, or a montage (named 'custom').

    Returns
    -------
    montage : mne.channels.DigMontage
    name : str
        The MNE name of the montage ('custom' for a DigMontage).
    """
    import mne

    if isinstance(montage, mne.channels.DigMontage):
        return montage, "custom"
    validate_type(montage, str, "montage", "str (a montage name) or mne.channels.DigMontage")
    name = MONTAGE_ALIASES.get(montage, montage)
    available = mne.channels.get_builtin_montages()
    if name not in available:
        raise ValueError(
            f"unknown montage {montage!r}. Available: {', '.join(available)} "
            f"(and the aliases {', '.join(MONTAGE_ALIASES)}), or pass an "
            "mne.channels.DigMontage (e.g. from mne.channels.read_custom_montage)."
        )
    return mne.channels.make_standard_montage(name), name


def montage_channels(
    montage, ch_names: list[str] | None = None
) -> tuple[list[str], np.ndarray, dict, str, str]:
    """The electrodes of a montage or named layout to place on a head.

    Parameters
    ----------
    montage : str | mne.channels.DigMontage
        A named layout (:data:`EEG_LAYOUTS`), or what :func:`resolve_montage` accepts.
    ch_names : list of str | None
        Subset of the montage's channels, in this order; default all (or the layout's).

    Returns
    -------
    names : list of str
        The channels.
    positions : ndarray, shape (n, 3)
        Their positions in the montage's frame (metres).
    fiducials : dict
        'nasion', 'lpa', 'rpa' of the montage (None where missing).
    coord_frame : str
        The montage's coordinate frame ('head', 'unknown', ...).
    name : str
        The montage's name.
    """
    if isinstance(montage, str) and montage in EEG_LAYOUTS:
        montage, layout = EEG_LAYOUTS[montage]
        ch_names = list(layout) if ch_names is None else ch_names
    montage, montage_name = resolve_montage(montage)
    pos = montage.get_positions()
    all_names = list(pos["ch_pos"])
    if ch_names is None:
        names = all_names
    else:
        names = list(ch_names)
        unknown = [n for n in names if n not in pos["ch_pos"]]
        if unknown:
            raise ValueError(
                f"channel(s) {unknown} are not in montage {montage_name!r}. "
                f"Available ({len(all_names)}): {', '.join(all_names)}."
            )
        if len(set(names)) != len(names):
            raise ValueError("ch_names has duplicates.")
    if not names:
        raise ValueError(f"montage {montage_name!r} has no EEG channels.")
    el = np.array([pos["ch_pos"][n] for n in names], float)
    fids = {k: pos[k] for k in ("nasion", "lpa", "rpa")}
    return names, el, fids, pos["coord_frame"], montage_name
