"""LeadField: the gain matrix of a head model for a sensor layout and a source space."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .._validation import check_finite
from ..sources import SourceSpace
from .fiff import write_forward

#: Channel types a lead field may hold, and their physical units per unit dipole moment.
CHANNEL_UNITS = {"eeg": "V/(A·m)", "mag": "T/(A·m)", "grad": "T/m/(A·m)"}


@dataclass(frozen=True, eq=False)
class LeadField:
    """Gain of every sensor for unit dipoles along x, y, z (MRI frame) at every source point.

    Parameters
    ----------
    gain : ndarray, shape (n_channels, n_sources, 3)
        Sensor signal per unit dipole moment (SI: V/(A·m) for EEG, T/(A·m) for magnetometers,
        T/m/(A·m) for gradiometers). The three columns are dipoles along the MRI x, y, z axes.
    ch_names : list of str
        Channel names, in row order.
    ch_types : list of str
        'eeg', 'mag' or 'grad' per channel.
    source_space : SourceSpace
        The source points (columns).
    info : mne.Info | None
        Measurement info of the channels (positions in MNE's head frame), for MNE interchange.
    trans : mne.transforms.Transform | None
        Head → MRI transform used to place the sensors.
    eeg_reference : str
        'average' if EEG rows are average-referenced (the default), else 'none'.
    meta : dict
        Provenance: head hash, sensor hash, solver settings, timings.
    """

    gain: np.ndarray
    ch_names: list[str]
    ch_types: list[str]
    source_space: SourceSpace
    info: object | None = None
    trans: object | None = None
    eeg_reference: str = "average"
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        gain = check_finite(np.asarray(self.gain, dtype=float), "lead field")
        if gain.ndim != 3 or gain.shape[2] != 3:
            raise ValueError(f"gain must have shape (n_channels, n_sources, 3), got {gain.shape}.")
        if len(self.ch_names) != gain.shape[0] or len(self.ch_types) != gain.shape[0]:
            raise ValueError(
                f"gain has {gain.shape[0]} rows but {len(self.ch_names)} channel names and "
                f"{len(self.ch_types)} channel types."
            )
        if len(set(self.ch_names)) != len(self.ch_names):
            raise ValueError("channel names must be unique.")
        bad = sorted(set(self.ch_types) - set(CHANNEL_UNITS))
        if bad:
            raise ValueError(f"unknown channel type(s) {bad}; expected {sorted(CHANNEL_UNITS)}.")
        if gain.shape[1] != self.source_space.n_sources:
            raise ValueError(
                f"gain has {gain.shape[1]} sources but the source space has "
                f"{self.source_space.n_sources}."
            )
        object.__setattr__(self, "gain", gain)
        object.__setattr__(self, "ch_names", list(self.ch_names))
        object.__setattr__(self, "ch_types", list(self.ch_types))

    @property
    def n_channels(self) -> int:
        """Number of channels (rows)."""
        return self.gain.shape[0]

    @property
    def n_sources(self) -> int:
        """Number of source points."""
        return self.gain.shape[1]

    def pick(self, ch_names: list[str]) -> LeadField:
        """Rows for ``ch_names``, in that order; raises listing any channel the lead field lacks."""
        index = {n: i for i, n in enumerate(self.ch_names)}
        missing = [n for n in ch_names if n not in index]
        if missing:
            raise ValueError(
                f"{len(missing)} channel(s) are not in the lead field: {missing[:10]}"
                f"{' ...' if len(missing) > 10 else ''}. The lead field has {self.n_channels} "
                "channels; compute a forward for these sensors or drop them."
            )
        rows = [index[n] for n in ch_names]
        return LeadField(
            self.gain[rows], [self.ch_names[i] for i in rows], [self.ch_types[i] for i in rows],
            self.source_space, self.info, self.trans, self.eeg_reference, dict(self.meta),
        )

    def pick_types(self, types: str | list[str]) -> LeadField:
        """Only channels of the given type(s) ('eeg', 'mag', 'grad', or 'meg' for both)."""
        types = [types] if isinstance(types, str) else list(types)
        if "meg" in types:
            types = [t for t in types if t != "meg"] + ["mag", "grad"]
        pairs = zip(self.ch_names, self.ch_types, strict=True)
        return self.pick([n for n, t in pairs if t in types])

    def oriented(self) -> tuple[np.ndarray, np.ndarray]:
        """Gain with each fixed-orientation point projected on its normal.

        Returns
        -------
        gain : ndarray, shape (n_channels, n_dipoles)
            One column per fixed point (along its normal), three per free point (x, y, z).
        source_index : ndarray of int, shape (n_dipoles,)
            Source point of each column.
        """
        src = self.source_space
        n_cols = np.where(src.free_ori, 3, 1)
        index = np.repeat(np.arange(self.n_sources), n_cols)
        start = np.concatenate([[0], np.cumsum(n_cols)[:-1]])
        out = np.empty((self.n_channels, int(n_cols.sum())))
        fixed = ~src.free_ori
        out[:, start[fixed]] = np.einsum("csk,sk->cs", self.gain[:, fixed], src.normals[fixed])
        free = np.flatnonzero(src.free_ori)
        for k in range(3):
            out[:, start[free] + k] = self.gain[:, free, k]
        return out, index

    def hash(self) -> str:
        """Content hash (sha256 hex) of the gain, channels and source space."""
        h = hashlib.sha256()
        h.update(np.ascontiguousarray(self.gain.astype(np.float32)).tobytes())
        h.update("|".join(self.ch_names).encode())
        h.update("|".join(self.ch_types).encode())
        h.update(self.source_space.hash().encode())
        h.update(self.eeg_reference.encode())
        return h.hexdigest()

    def save(self, fname: str | os.PathLike, overwrite: bool = False) -> Path:
        """Write as an MNE ``-fwd.fif`` file plus its deepesi source-space sidecar (atomically).

        Same as :func:`deepesi.forward.write_forward`; :func:`deepesi.forward.read_forward`
        reads it back.

        Parameters
        ----------
        fname : path-like
            Must end with ``-fwd.fif`` or ``_fwd.fif`` (MNE's naming convention).
        overwrite : bool
            Replace existing files (otherwise FileExistsError).

        Returns
        -------
        Path
            ``fname``. The gain is stored in float32 (MNE's format): relative error ~1e-7.
        """
        return write_forward(self, fname, overwrite=overwrite)

    def __repr__(self) -> str:
        kinds = {t: self.ch_types.count(t) for t in sorted(set(self.ch_types))}
        return f"<LeadField | {kinds} channels x {self.n_sources} sources (x3)>"
