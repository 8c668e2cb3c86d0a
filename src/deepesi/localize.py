"""Localize real recordings with a trained network: recording in, sources out.

:func:`prepare_data` turns an MNE ``Raw``/``Epochs``/``Evoked`` into the array a model expects
(channels matched by name, bad channels interpolated, EEG average-referenced, units and
signal checked). :func:`localize` runs the model and returns a :class:`LocalizationResult`
(an :class:`mne.VolSourceEstimate` over the discrete source space, the amplitude maps, a peak
table with region names and MRI/MNI coordinates), which :meth:`LocalizationResult.save` writes
atomically as ``-vl.stc``, a 4-D NIfTI volume and a TSV peak table.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mne
import nibabel as nib
import numpy as np
from scipy.spatial import cKDTree

from ._io import atomic_path
from .anatomy.regions import region_name
from .sources import SourceSpace

logger = logging.getLogger(__name__)

#: Median |amplitude| above which the data are almost surely not in SI units, per channel type.
UNIT_LIMITS: dict[str, tuple[float, str]] = {
    "eeg": (1e-2, "V (EEG in µV or mV stored as V?)"),
    "mag": (1e-8, "T (magnetometers in fT or pT stored as T?)"),
    "grad": (1e-6, "T/m (gradiometers in fT/cm stored as T/m?)"),
}

#: Largest n_sources x n_times a single call localizes: 0.4 GB of float64 amplitudes, and
#: about 1.2 GB for the 4-D NIfTI (the grid's bounding box holds ~6 voxels per source point).
MAX_VALUES = 50_000_000

#: Channel types a model can take.
DATA_TYPES = ("eeg", "mag", "grad")

#: Files written by :meth:`LocalizationResult.save` (``stc`` gets MNE's ``-vl.stc`` suffix).
STC_STEM = "sources"
NIFTI_NAME = "activity.nii.gz"
PEAKS_NAME = "peaks.tsv"
INFO_NAME = "localization.json"
SOURCE_SPACE_NAME = "source_space.npz"
REPORT_NAME = "report.html"


# ============================================================================ data preparation
def _as_evoked_or_raw(inst: Any) -> mne.io.BaseRaw | mne.Evoked:
    if isinstance(inst, mne.BaseEpochs):
        if len(inst) == 0:
            raise ValueError(
                "the Epochs object holds no epoch (all dropped?); check the rejection settings."
            )
        logger.info("averaging %d epochs before localization", len(inst))
        return inst.average(picks="all")
    if isinstance(inst, mne.io.BaseRaw | mne.Evoked):
        return inst.copy()
    raise TypeError(
        "inst must be an mne.io.Raw, mne.Epochs or mne.Evoked, got "
        f"{type(inst).__name__}. Read your recording with mne.io.read_raw / mne.read_epochs / "
        "mne.read_evokeds first."
    )


def _crop(inst: mne.io.BaseRaw | mne.Evoked, tmin: float | None, tmax: float | None) -> None:
    times = inst.times
    lo = times[0] if tmin is None else float(tmin)
    hi = times[-1] if tmax is None else float(tmax)
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise ValueError(f"tmin/tmax must be finite numbers in seconds, got {tmin}, {tmax}.")
    if hi < lo:
        raise ValueError(f"empty time window: tmax ({hi:g} s) is before tmin ({lo:g} s).")
    inside = (times >= lo - 0.5 / inst.info["sfreq"]) & (times <= hi + 0.5 / inst.info["sfreq"])
    if not inside.any():
        raise ValueError(
            f"empty time window: {lo:g}..{hi:g} s holds no sample; the recording spans "
            f"{times[0]:g}..{times[-1]:g} s. Choose tmin/tmax inside it."
        )
    if tmin is not None or tmax is not None:
        inst.crop(times[inside][0], times[inside][-1], include_tmax=True)


def _list(names: list[str], limit: int = 12) -> str:
    shown = ", ".join(names[:limit])
    return f"{shown}{f', ... ({len(names)} in all)' if len(names) > limit else ''}"


def _match_channels(info: mne.Info, ch_names: list[str], ch_types: list[str]) -> None:
    have = info["ch_names"]
    types = dict(zip(have, info.get_channel_types(), strict=True))
    missing = [n for n in ch_names if n not in types]
    if missing:
        extra = [
            n for n in have if n not in set(ch_names) and types[n] in DATA_TYPES
        ]
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


def _check_signal(data: np.ndarray, names: list[str], types: list[str]) -> None:
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
    if data.shape[1] > 1:
        spread = np.ptp(data, axis=1)
        flat_mask = np.zeros(len(data), bool)
        for kind in np.unique(t):  # relative to the channel type's largest range
            sel = t == kind
            scale = max(float(spread[sel].max()), np.finfo(float).tiny)
            flat_mask[sel] = spread[sel] <= 1e-10 * scale
        flat = np.flatnonzero(flat_mask)
        if flat.size:
            raise ValueError(
                f"flat channel(s) (constant over the time window): "
                f"{_list([names[i] for i in flat])}. A reference electrode recorded as zeros "
                "or a disconnected sensor: mark them as bad (inst.info['bads']) so they are "
                "interpolated."
            )


def prepare_data(
    inst: mne.io.BaseRaw | mne.BaseEpochs | mne.Evoked,
    ch_names: list[str],
    ch_types: list[str],
    *,
    tmin: float | None = None,
    tmax: float | None = None,
    eeg_reference: str | None = "average",
) -> tuple[np.ndarray, np.ndarray, mne.Info]:
    """The sensor data a model expects, from an MNE recording.

    Steps: Epochs are averaged; the time window is cropped; channels are matched to the model
    **by name** and put in the model's order (extra channels are dropped); bad channels the
    model needs are interpolated with MNE (spherical splines for EEG, field mapping for MEG);
    the signal is checked (NaN/Inf, flat channels, units); EEG is re-referenced to the average
    of the model's EEG channels.

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
    inst = _as_evoked_or_raw(inst)
    _match_channels(inst.info, ch_names, ch_types)
    _crop(inst, tmin, tmax)
    if isinstance(inst, mne.io.BaseRaw) and not inst.preload:
        inst.load_data(verbose=False)
    bads = [n for n in inst.info["bads"] if n in set(ch_names)]
    inst.pick(ch_names)  # drops every other channel, bads included, in the model's order
    inst.info["bads"] = bads
    if bads:
        _interpolate_bads(inst, bads)
    data = inst.get_data(picks=ch_names)
    _check_signal(data, ch_names, ch_types)
    eeg = np.asarray(ch_types) == "eeg"
    if eeg_reference == "average" and eeg.any():
        data[eeg] -= data[eeg].mean(axis=0, keepdims=True)
    return data, inst.times.copy(), inst.info


# ============================================================================ peaks
@dataclass(frozen=True)
class PeakTable:
    """Ranked activity peaks: one dict per peak.

    Keys: ``rank``, ``source``, ``region``, ``x_mri``, ``y_mri``, ``z_mri`` (mm), ``x_mni``,
    ``y_mni``, ``z_mni`` (mm; NaN when the source space has no MRI→MNI transform),
    ``amplitude``, ``time`` (s).
    """

    rows: list[dict]

    COLUMNS = (
        "rank", "source", "region", "x_mri", "y_mri", "z_mri", "x_mni", "y_mni", "z_mni",
        "amplitude", "time",
    )

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict:
        return self.rows[i]

    def __iter__(self):
        return iter(self.rows)

    def column(self, name: str) -> list:
        """The values of one column."""
        if name not in self.COLUMNS:
            raise KeyError(f"no column {name!r}; columns are {self.COLUMNS}.")
        return [r[name] for r in self.rows]

    def _cell(self, key: str, value: Any) -> str:
        if key in ("rank", "source") or isinstance(value, str):
            return str(value)
        if key == "amplitude":
            return f"{value:.6g}"
        if key == "time":
            return f"{value:.4f}"
        return "n/a" if not np.isfinite(value) else f"{value:.1f}"

    def to_tsv(self) -> str:
        """Tab-separated text with a header line."""
        lines = ["\t".join(self.COLUMNS)]
        lines += ["\t".join(self._cell(k, r[k]) for k in self.COLUMNS) for r in self.rows]
        return "\n".join(lines) + "\n"

    def to_html(self) -> str:
        """An HTML table (for reports)."""
        head = "".join(f"<th>{k}</th>" for k in self.COLUMNS)
        body = "".join(
            "<tr>" + "".join(f"<td>{self._cell(k, r[k])}</td>" for k in self.COLUMNS) + "</tr>"
            for r in self.rows
        )
        return f'<table class="table table-sm"><thead><tr>{head}</tr></thead>{body}</table>'

    def to_dataframe(self):
        """A :class:`pandas.DataFrame` (needs pandas)."""
        import pandas as pd

        return pd.DataFrame(self.rows, columns=list(self.COLUMNS))

    def __str__(self) -> str:
        cells = [list(self.COLUMNS)]
        cells += [[self._cell(k, r[k]) for k in self.COLUMNS] for r in self.rows]
        widths = [max(len(c[j]) for c in cells) for j in range(len(self.COLUMNS))]
        return "\n".join(
            "  ".join(c.ljust(w) if j == 2 else c.rjust(w) for j, (c, w) in
                      enumerate(zip(line, widths)))
            for line in cells
        )


def find_peaks(
    amplitude: np.ndarray, source_space: SourceSpace, n: int = 5
) -> np.ndarray:
    """Indices of the ``n`` largest local maxima of a map, strongest first.

    A point is a local maximum when its amplitude is positive and no neighbour's is larger (ties
    go to the lower index). Neighbours are the points of the source neighbour graph **and** all
    points within one grid diagonal (sqrt(3) x spacing) in space: the graph alone separates
    neighbouring structures (cortex / deep nuclei), so the spill-over of one blob into an
    adjacent structure would show up as a spurious peak.
    """
    amp = np.asarray(amplitude, float)
    if amp.shape != (source_space.n_sources,):
        raise ValueError(
            f"amplitude must have shape ({source_space.n_sources},), got {amp.shape}."
        )
    row, col = _neighbour_pairs(source_space)
    nb_max = np.full(len(amp), -np.inf)
    np.maximum.at(nb_max, row, amp[col])
    tie = np.zeros(len(amp), bool)
    eq = (amp[col] == amp[row]) & (col < row)
    tie[row[eq]] = True
    is_peak = (amp > 0) & (amp >= nb_max) & ~tie
    idx = np.flatnonzero(is_peak)
    idx = idx[np.lexsort((idx, -amp[idx]))]
    return idx[: int(n)]


def _neighbour_pairs(source_space: SourceSpace) -> tuple[np.ndarray, np.ndarray]:
    """Directed (row, col) neighbour pairs: graph edges ∪ spatial 26-neighbourhood."""
    adj = source_space.adjacency.tocoo()
    radius = np.sqrt(3.0) * source_space.spacing * (1 + 1e-6)
    pairs = cKDTree(source_space.pos).query_pairs(radius, output_type="ndarray")
    row = np.concatenate([adj.row, pairs[:, 0], pairs[:, 1]]).astype(np.int64)
    col = np.concatenate([adj.col, pairs[:, 1], pairs[:, 0]]).astype(np.int64)
    return row, col


# ============================================================================ result
@dataclass(eq=False)
class LocalizationResult:
    """Sources localized by a network (or any method) on a :class:`SourceSpace`.

    Attributes
    ----------
    stc : mne.VolSourceEstimate
        Amplitudes over the discrete source space (``vertices=[arange(n_sources)]``).
    amplitudes : ndarray, shape (n_sources, n_times)
        Non-negative amplitude per source point and time. For deepesi networks these are in
        relative units (the net predicts the shape of the map) unless the model was given the
        lead field.
    times : ndarray, shape (n_times,)
        Seconds.
    source_space : SourceSpace
        The source points (row ``i`` of ``amplitudes`` is point ``i``).
    method : str
        Name of the method ('deepesi' or a classical method).
    info : mne.Info | None
        Measurement info of the channels used.
    meta : dict
        Provenance (model, hashes, recording file, window).
    """

    stc: Any
    amplitudes: np.ndarray
    times: np.ndarray
    source_space: SourceSpace
    method: str = "deepesi"
    info: mne.Info | None = None
    meta: dict = field(default_factory=dict)

    @classmethod
    def from_amplitudes(
        cls,
        amplitudes: np.ndarray,
        times: np.ndarray,
        source_space: SourceSpace,
        *,
        method: str = "deepesi",
        info: mne.Info | None = None,
        meta: dict | None = None,
    ) -> LocalizationResult:
        """Wrap an amplitude array (n_sources, n_times), e.g. a classical method's output."""
        if not isinstance(source_space, SourceSpace):
            raise TypeError(
                f"source_space must be a SourceSpace, got {type(source_space).__name__}."
            )
        amp = np.asarray(amplitudes, dtype=float)
        times = np.atleast_1d(np.asarray(times, dtype=float))
        if amp.ndim == 1:
            amp = amp[:, None]
        if amp.shape != (source_space.n_sources, len(times)):
            raise ValueError(
                f"amplitudes must have shape (n_sources={source_space.n_sources}, "
                f"n_times={len(times)}), got {amp.shape}: the model/method output does not "
                "match this source space."
            )
        if not np.isfinite(amp).all():
            raise ValueError("amplitudes contain NaN/Inf; the model output is unusable.")
        if (amp < 0).any():
            raise ValueError("amplitudes must be non-negative (dipole-moment norms).")
        tstep = float(np.median(np.diff(times))) if len(times) > 1 else 1.0
        stc = mne.VolSourceEstimate(
            amp, vertices=[np.arange(source_space.n_sources)], tmin=float(times[0]),
            tstep=tstep, subject=None, verbose=False,
        )
        return cls(stc, amp, times, source_space, method, info, dict(meta or {}))

    @property
    def n_sources(self) -> int:
        """Number of source points."""
        return self.amplitudes.shape[0]

    def peak_time(self) -> float:
        """Time (s) of the largest amplitude anywhere."""
        return float(self.times[int(np.argmax(self.amplitudes.max(axis=0)))])

    def _sample(self, time: float | None) -> int:
        if time is None:
            return int(np.argmax(self.amplitudes.max(axis=0)))
        time = float(time)
        step = float(np.median(np.diff(self.times))) if len(self.times) > 1 else 0.0
        if not self.times[0] - step / 2 <= time <= self.times[-1] + step / 2:
            raise ValueError(
                f"time {time:g} s is outside the result's window "
                f"{self.times[0]:g}..{self.times[-1]:g} s."
            )
        return int(np.argmin(np.abs(self.times - time)))

    def map_at(self, time: float | None = None) -> np.ndarray:
        """Amplitude map (n_sources,) at the sample nearest ``time`` (default: the peak time)."""
        return self.amplitudes[:, self._sample(time)]

    def peaks(
        self, n: int = 5, time: float | None = None, *, min_rel: float = 0.01
    ) -> PeakTable:
        """The ``n`` strongest local maxima of the map at ``time``.

        Parameters
        ----------
        n : int
            Number of peaks (fewer if the map has fewer local maxima).
        time : float | None
            Seconds; None = the time of the largest amplitude.
        min_rel : float
            Leave out maxima below this fraction of the map's maximum (numerical tails).

        Returns
        -------
        PeakTable
            rank, source index, region name, MRI and MNI coordinates (mm), amplitude, time.
        """
        if int(n) < 1:
            raise ValueError(f"n must be >= 1, got {n}.")
        k = self._sample(time)
        amp = self.amplitudes[:, k]
        if not 0.0 <= float(min_rel) < 1.0:
            raise ValueError(f"min_rel must be in [0, 1), got {min_rel}.")
        idx = find_peaks(amp, self.source_space, int(n))
        idx = idx[amp[idx] >= float(min_rel) * amp.max()] if idx.size else idx
        src = self.source_space
        mri = src.pos[idx] * 1000.0
        mni = src.pos_mni()[idx] if src.mri_to_mni is not None else np.full((len(idx), 3), np.nan)
        rows = [
            {
                "rank": r + 1,
                "source": int(i),
                "region": region_name(int(src.region_ids[i])),
                "x_mri": float(mri[r, 0]), "y_mri": float(mri[r, 1]), "z_mri": float(mri[r, 2]),
                "x_mni": float(mni[r, 0]), "y_mni": float(mni[r, 1]), "z_mni": float(mni[r, 2]),
                "amplitude": float(amp[i]),
                "time": float(self.times[k]),
            }
            for r, i in enumerate(idx)
        ]
        return PeakTable(rows)

    def region_time_courses(self, reduce: str = "max") -> dict[str, np.ndarray]:
        """Per region name, the max (or mean) amplitude over its points at every time."""
        if reduce not in ("max", "mean"):
            raise ValueError(f"reduce must be 'max' or 'mean', got {reduce!r}.")
        out = {}
        for rid in np.unique(self.source_space.region_ids):
            sel = self.source_space.region_ids == rid
            rows = self.amplitudes[sel]
            out[region_name(int(rid))] = rows.max(axis=0) if reduce == "max" else rows.mean(0)
        return out

    def to_volume(self) -> nib.Nifti1Image:
        """The activity as a 4-D NIfTI image (x, y, z, time) in MRI coordinates.

        Source points are placed on a regular grid with the source spacing (each point in the
        nearest voxel; where two fall in one voxel the larger value is kept). The affine maps
        voxels to MRI (surface RAS) millimetres; the time step is in ``pixdim[4]`` (seconds).
        """
        vol, affine = activity_grid(self.source_space, self.amplitudes)
        img = nib.Nifti1Image(vol.astype(np.float32), affine)
        img.header.set_xyzt_units("mm", "sec")
        zooms = (*img.header.get_zooms()[:3], self.stc.tstep)
        img.header.set_zooms(zooms)
        img.header.set_qform(affine, code=1)
        img.header.set_sform(affine, code=1)
        img.header["descrip"] = f"deepesi {self.method} tmin={self.times[0]:.4f}s"[:79]
        return img

    def save(
        self,
        out_dir: str | os.PathLike,
        overwrite: bool = False,
        *,
        report: bool = False,
        head: Any = None,
        title: str | None = None,
    ) -> Path:
        """Write the result to a folder, atomically (everything or nothing).

        Files: ``sources-vl.stc`` (MNE), ``activity.nii.gz`` (4-D, MRI mm), ``peaks.tsv``,
        ``source_space.npz``, ``localization.json`` (provenance) and, with ``report=True``,
        ``report.html`` (see :func:`deepesi.report.make_report`).

        Parameters
        ----------
        out_dir : path-like
            Output folder; must not exist unless ``overwrite``. With ``overwrite``, only a
            folder written by this method (holding ``localization.json``) is replaced.
        overwrite : bool
            Replace an earlier result folder.
        report : bool
            Also write the HTML report.
        head : HeadModel | None
            Head drawn under the report's slices.
        title : str | None
            Report title.

        Returns
        -------
        Path
            ``out_dir``.
        """
        out = Path(out_dir)
        if out.exists() and overwrite:
            if not out.is_dir() or not (
                (out / INFO_NAME).is_file() or not any(out.iterdir())
            ):
                raise FileExistsError(
                    f"{out} exists and is not a deepesi localization folder; refusing to replace "
                    "it even with overwrite. Choose a new output folder."
                )
        if out.exists() and not overwrite and out.is_dir() and not any(out.iterdir()):
            out.rmdir()  # an empty folder (e.g. made by the user) is fine to use
        with atomic_path(out, overwrite=overwrite) as tmp:
            tmp.mkdir()
            self._write_files(tmp)
            if report:
                from .report import make_report

                make_report(
                    self, head, title=title or f"deepesi localization ({self.method})",
                    fname=tmp / REPORT_NAME,
                )
        return out

    def _write_files(self, folder: Path) -> None:
        self.stc.save(folder / STC_STEM, ftype="stc", overwrite=True, verbose=False)
        nib.save(self.to_volume(), folder / NIFTI_NAME)
        (folder / PEAKS_NAME).write_text(self.peaks(n=10).to_tsv(), encoding="utf-8")
        self.source_space.save(folder / SOURCE_SPACE_NAME, overwrite=True)
        info = {
            "method": self.method,
            "n_sources": self.n_sources,
            "n_times": len(self.times),
            "tmin_s": float(self.times[0]),
            "tstep_s": float(self.stc.tstep),
            "peak_time_s": self.peak_time(),
            "source_space_hash": self.source_space.hash(),
            "files": {
                "stc": f"{STC_STEM}-vl.stc",
                "volume": NIFTI_NAME,
                "peaks": PEAKS_NAME,
                "source_space": SOURCE_SPACE_NAME,
            },
            "meta": _jsonable(self.meta),
        }
        (folder / INFO_NAME).write_text(json.dumps(info, indent=2), encoding="utf-8")

    def __repr__(self) -> str:
        return (
            f"<LocalizationResult {self.method} | {self.n_sources} sources x "
            f"{len(self.times)} times ({self.times[0]:.3f}..{self.times[-1]:.3f} s)>"
        )


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, str | int | float | bool) or obj is None:
        return obj
    return str(obj)


def activity_grid(
    source_space: SourceSpace, amplitudes: np.ndarray, pad: int = 2
) -> tuple[np.ndarray, np.ndarray]:
    """Splat per-point values onto a regular grid with the source spacing (MRI frame).

    Parameters
    ----------
    source_space : SourceSpace
        Gives the point positions and the grid spacing.
    amplitudes : ndarray, shape (n_sources,) or (n_sources, n_times)
        Values per point.
    pad : int
        Empty voxels around the points.

    Returns
    -------
    volume : ndarray, shape (nx, ny, nz) or (nx, ny, nz, n_times)
        Zero outside the points; the maximum where several points share a voxel.
    affine : ndarray, shape (4, 4)
        Voxel → MRI millimetres.
    """
    amp = np.asarray(amplitudes, float)
    squeeze = amp.ndim == 1
    if squeeze:
        amp = amp[:, None]
    if amp.shape[0] != source_space.n_sources:
        raise ValueError(
            f"{amp.shape[0]} values for {source_space.n_sources} source points."
        )
    step = source_space.spacing * 1000.0
    pos = source_space.pos * 1000.0
    origin = pos.min(axis=0) - pad * step
    ijk = np.rint((pos - origin) / step).astype(int)
    shape = tuple(ijk.max(axis=0) + pad + 1)
    flat = np.ravel_multi_index(ijk.T, shape)
    vol = np.zeros((int(np.prod(shape)), amp.shape[1]), np.float32)
    np.maximum.at(vol, flat, amp.astype(np.float32))
    vol = vol.reshape(*shape, amp.shape[1])
    affine = np.diag([step, step, step, 1.0])
    affine[:3, 3] = origin
    return (vol[..., 0] if squeeze else vol), affine


# ============================================================================ localize
def check_model_source_space(model: Any, source_space: SourceSpace) -> None:
    """Raise ValueError unless ``model`` was trained for ``source_space`` (hash and size)."""
    if not isinstance(source_space, SourceSpace):
        raise TypeError(
            f"source_space must be a deepesi SourceSpace, got {type(source_space).__name__}; "
            "load one with SourceSpace.load('....npz')."
        )
    for attr in ("ch_names", "ch_types", "predict"):
        if not hasattr(model, attr):
            raise TypeError(
                f"model has no {attr!r}; load a trained model with deepesi.training.load_model."
            )
    n_model = getattr(model, "n_sources", None)
    if n_model is not None and int(n_model) != source_space.n_sources:
        raise ValueError(
            f"model/source-space mismatch: the model predicts {int(n_model)} source points, "
            f"the source space has {source_space.n_sources}. Use the source space the model "
            "was trained on."
        )
    expected = getattr(model, "source_space_hash", None)
    if expected and expected != source_space.hash():
        raise ValueError(
            "model/source-space mismatch: the model was trained on source space "
            f"{str(expected)[:12]}, this one is {source_space.hash()[:12]} "
            f"({source_space.n_sources} points). Use the source space the model was trained on."
        )


def warn_untrained_ssp(info: mne.Info, model: Any) -> bool:
    """Warn (and return True) when the recording carries SSP projectors on the model's channels
    that the model was not trained with (``SimulationConfig(projs=...)``).

    A projector that only re-references EEG to its average changes nothing here (every model is
    trained average-referenced) and does not count.
    """
    from .whitening import reference_projector, ssp_projector

    if (getattr(model, "sim_config", None) or {}).get("projs") == "given":
        return False
    names = list(model.ch_names)
    ref = reference_projector(list(model.ch_types))

    def removes_more(projs) -> bool:  # than the average reference already does
        p = ssp_projector(projs, names)
        return p is not None and not np.allclose(p @ ref, ref, atol=1e-6)

    extra = [q for q in info["projs"] if removes_more([q])]
    if not extra:
        return False
    logger.warning(
        "the recording has %d SSP projector(s) on the model's channels (%s) but the model was "
        "trained without them: the data lack field components the training data had, which "
        "biases the network. Retrain with the recording's projectors (SimulationConfig(projs="
        "info['projs']) or deepesi train --projs FILE.fif).", len(extra),
        ", ".join(q["desc"] for q in extra[:3]) + (", ..." if len(extra) > 3 else ""),
    )
    return True


def localize(
    inst: mne.io.BaseRaw | mne.BaseEpochs | mne.Evoked,
    model: Any,
    source_space: SourceSpace,
    *,
    tmin: float | None = None,
    tmax: float | None = None,
) -> LocalizationResult:
    """Localize the sources of a recording with a trained network.

    Parameters
    ----------
    inst : mne.io.Raw | mne.Epochs | mne.Evoked
        The recording (SI units). Epochs are averaged first.
    model : TrainedModel
        From :func:`deepesi.training.load_model` (anything with ``ch_names``, ``ch_types``,
        ``predict(data) -> (n_sources, n_times)`` and optionally ``n_sources`` and
        ``source_space_hash``).
    source_space : SourceSpace
        The source space the model was trained on (checked by hash and size).
    tmin, tmax : float | None
        Time window (s).

    Returns
    -------
    LocalizationResult
    """
    check_model_source_space(model, source_space)
    data, times, info = prepare_data(
        inst, list(model.ch_names), list(model.ch_types), tmin=tmin, tmax=tmax
    )
    warn_untrained_ssp(info, model)
    size = source_space.n_sources * data.shape[1]
    if size > MAX_VALUES:
        raise ValueError(
            f"{data.shape[1]} time samples x {source_space.n_sources} sources = {size:.3g} "
            f"values ({size * 8 / 1e9:.1f} GB), more than deepesi localizes at once "
            f"({MAX_VALUES:.0e}). Pass tmin/tmax (--tmin/--tmax), or epoch and average the "
            "recording (mne.Epochs(...).average()) first."
        )
    amp = np.asarray(model.predict(data), dtype=float)
    if amp.ndim != 2 or amp.shape != (source_space.n_sources, data.shape[1]):
        raise ValueError(
            f"the model returned maps of shape {amp.shape}, expected "
            f"({source_space.n_sources}, {data.shape[1]}); model and source space do not match."
        )
    meta = {
        "model": repr(model),
        "model_source_space_hash": getattr(model, "source_space_hash", None),
        "model_leadfield_hash": getattr(model, "leadfield_hash", None),
        "n_channels": len(model.ch_names),
        "tmin": tmin,
        "tmax": tmax,
        "eeg_reference": "average",
        "units": "relative (network output)",
    }
    fnames = getattr(inst, "filenames", None) or []
    if fnames and fnames[0] is not None:
        meta["recording"] = str(fnames[0])
    result = LocalizationResult.from_amplitudes(
        np.maximum(amp, 0.0), times, source_space, method="deepesi", info=info, meta=meta
    )
    return result


__all__ = [
    "LocalizationResult",
    "PeakTable",
    "activity_grid",
    "check_model_source_space",
    "find_peaks",
    "localize",
    "prepare_data",
    "warn_untrained_ssp",
]
