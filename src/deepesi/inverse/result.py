"""SourceMap: the one result of every inverse method, network or classical.

A :class:`SourceMap` is a non-negative amplitude per source point and time over a deepesi
:class:`~deepesi.sources.SourceSpace`, with its unit, the method and its settings, and the time
it is read at by default (:attr:`SourceMap.peak_time`: the data's peak, the same for every method
on the same data, see :func:`deepesi.inverse.prepare.peak_sample`). It gives peaks
(:meth:`SourceMap.peaks`), an MNE source estimate (:meth:`SourceMap.to_stc`), a 4-D NIfTI volume
(:meth:`SourceMap.to_nifti`), and is written to a folder by :meth:`SourceMap.save` and read back
by :func:`read_source_map`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mne
import nibabel as nib
import numpy as np

from .._io import atomic_path, to_jsonable
from .._validation import check_dir, validate_type
from ..anatomy.regions import region_name
from ..sources import SourceSpace
from .peaks import PeakTable, _median_spacing, find_peaks, peak_centroids
from .source_set import sources_tsv

__all__ = ["SourceMap", "activity_grid", "read_source_map"]

#: Files written by :meth:`SourceMap.save` (``stc`` gets MNE's ``-vl.stc`` suffix).
STC_STEM = "sources"
NIFTI_NAME = "activity.nii.gz"
PEAKS_NAME = "peaks.tsv"
SOURCES_NAME = "sources.tsv"
INFO_NAME = "localization.json"
SOURCE_SPACE_NAME = "source_space.npz"
#: The files :meth:`SourceMap.save` itself writes (``extra_files`` are recorded per folder).
OWN_FILES = {f"{STC_STEM}-vl.stc", NIFTI_NAME, PEAKS_NAME, INFO_NAME, SOURCE_SPACE_NAME}
FORMAT = "deepesi-source-map"
FORMAT_VERSION = 1


@dataclass(eq=False)
class SourceMap:
    """Source amplitudes of one method over a :class:`~deepesi.sources.SourceSpace` and time.

    Make one with :meth:`from_amplitudes` (it checks the array); the inverse functions
    (:func:`~deepesi.inverse.apply_network`, :func:`~deepesi.inverse.apply_classical`) return one.

    Attributes
    ----------
    amplitudes : ndarray, shape (n_sources, n_times)
        Non-negative amplitude per source point and time (the norm over orientations); row ``i``
        is point ``i`` of ``source_space``. Unit: :attr:`units`.
    times : ndarray, shape (n_times,)
        Seconds.
    source_space : SourceSpace
        The source points.
    method : str
        'deepesi' or a classical method's name.
    units : str
        Unit of the amplitudes (e.g. 'A·m', 'dimensionless (noise-normalised F)', 'relative').
    peak_time : float
        Seconds: the time the map is read at by default (peaks, glass brain): the sample of the
        data's largest whitened global field power, the same for every method on the same data.
    params : dict
        Settings the method ran with.
    info : mne.Info | None
        Measurement info of the channels used.
    extras : dict
        Method-specific outputs (MNE's own source estimate ``'raw_stc'``, the dipole scan's
        ``'gof'`` map, ...); not saved.
    meta : dict
        Provenance (model, hashes, recording file).
    vertices : list of ndarray | None
        MNE source-space vertex numbers of the rows when the map came from an
        :class:`mne.Forward` (so :meth:`to_stc` gives the estimate on MNE's source spaces);
        None: one discrete space, ``vertices=[arange(n_sources)]``.
    stc_kind : {'vol', 'surface', 'mixed'}
        The :class:`mne.SourceEstimate` class :meth:`to_stc` makes.
    fit : dict
        How much of the data the map explains (:func:`deepesi.inverse.fit.map_fit`): ``gof``
        of the map's peaks refitted as dipoles on the whitened data at :attr:`peak_time`, next
        to ``best_dipole_gof``, the best single dipole on the grid; empty when the method ran
        without a forward. Saved.
    """

    amplitudes: np.ndarray
    times: np.ndarray
    source_space: SourceSpace
    method: str
    units: str
    peak_time: float
    params: dict = field(default_factory=dict)
    info: mne.Info | None = None
    extras: dict = field(default_factory=dict)
    meta: dict = field(default_factory=dict)
    vertices: list | None = None
    stc_kind: str = "vol"
    fit: dict = field(default_factory=dict)

    @classmethod
    def from_amplitudes(
        cls,
        amplitudes: np.ndarray,
        times: np.ndarray,
        source_space: SourceSpace,
        *,
        method: str = "deepesi",
        units: str = "relative",
        peak_time: float | None = None,
        params: Mapping | None = None,
        info: mne.Info | None = None,
        extras: Mapping | None = None,
        meta: Mapping | None = None,
        vertices: list | None = None,
        stc_kind: str = "vol",
        fit: Mapping | None = None,
    ) -> SourceMap:
        """A checked SourceMap from an amplitude array (n_sources, n_times).

        ``peak_time`` None takes the time of the largest amplitude (a map without its data).
        """
        validate_type(source_space, SourceSpace, "source_space", "a deepesi SourceSpace")
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
        if stc_kind not in ("vol", "surface", "mixed"):
            raise ValueError(f"stc_kind must be 'vol', 'surface' or 'mixed', got {stc_kind!r}.")
        if peak_time is None:
            peak_time = float(times[int(np.argmax(amp.max(axis=0)))]) if amp.size else 0.0
        return cls(amp, times, source_space, str(method), str(units), float(peak_time),
                   dict(params or {}), info, dict(extras or {}), dict(meta or {}), vertices,
                   stc_kind, dict(fit or {}))

    # ------------------------------------------------------------------ reading the map
    @property
    def goodness_of_fit(self) -> float | None:
        """Fraction (0–1) of the whitened data at :attr:`peak_time` that the map's peaks,
        refitted as dipoles, explain (None without a fit; see :attr:`fit`)."""
        gof = self.fit.get("gof")
        return None if gof is None else float(gof)

    @property
    def sources(self) -> list[dict]:
        """The fitted source set, one row per source (position in mm, MRI; amplitude nA·m;
        orientation; share of the fit; region), when the method ran with ``sources=True``;
        empty otherwise. See :func:`deepesi.inverse.fit_source_set`."""
        return list((self.fit.get("sources") or {}).get("sources", []))

    @property
    def n_sources(self) -> int:
        """Number of source points."""
        return self.amplitudes.shape[0]

    @property
    def n_times(self) -> int:
        """Number of time samples."""
        return self.amplitudes.shape[1]

    @property
    def tstep(self) -> float:
        """Sampling interval (s); 1 for a single sample."""
        return float(np.median(np.diff(self.times))) if len(self.times) > 1 else 1.0

    def sample(self, time: float | None = None) -> int:
        """Index of the sample nearest ``time`` (s; None: :attr:`peak_time`).

        Raises ValueError for a time outside the map's window (half a sample of tolerance).
        """
        time = self.peak_time if time is None else float(time)
        step = self.tstep if len(self.times) > 1 else 0.0
        if not self.times[0] - step / 2 - 1e-12 <= time <= self.times[-1] + step / 2 + 1e-12:
            raise ValueError(
                f"time {time:g} s is outside the result's window "
                f"{self.times[0]:g}..{self.times[-1]:g} s."
            )
        return int(np.argmin(np.abs(self.times - time)))

    def map_at(self, time: float | None = None) -> np.ndarray:
        """Amplitude map (n_sources,) at the sample nearest ``time`` (default: the peak time)."""
        return self.amplitudes[:, self.sample(time)]

    def peaks(self, n: int = 5, time: float | None = None, *, min_rel: float = 0.01,
              subgrid: bool = False) -> PeakTable:
        """The ``n`` strongest local maxima of the map at ``time``.

        Local maxima as :func:`deepesi.inverse.find_peaks` defines them over the source space
        (neighbour graph ∪ one grid diagonal).

        Parameters
        ----------
        n : int
            Number of peaks (fewer if the map has fewer local maxima).
        time : float | None
            Seconds; None = :attr:`peak_time`.
        min_rel : float
            Leave out maxima below this fraction of the map's maximum (numerical tails).
        subgrid : bool
            Give each peak's coordinates off the grid: the weighted mean position of its
            neighbourhood (:func:`deepesi.inverse.peak_centroids`, one grid diagonal, squared
            amplitudes); ``source`` and ``region`` stay the grid point's. For a network's map
            (a posterior over the grid) this is its posterior-mean position.

        Returns
        -------
        PeakTable
            rank, source index, region name, MRI and MNI coordinates (mm), amplitude, time.
        """
        if int(n) < 1:
            raise ValueError(f"n must be >= 1, got {n}.")
        if not 0.0 <= float(min_rel) < 1.0:
            raise ValueError(f"min_rel must be in [0, 1), got {min_rel}.")
        k = self.sample(time)
        amp = self.amplitudes[:, k]
        idx = find_peaks(amp, self.source_space, rel_threshold=float(min_rel), n_max=int(n))
        at = peak_centroids(amp, self.source_space, idx) if subgrid else None
        return PeakTable.from_map(amp, self.source_space, float(self.times[k]), idx, at)

    def region_time_courses(self, reduce: str = "max") -> dict[str, np.ndarray]:
        """Per region name, the max (or mean) amplitude over its points at every time."""
        if reduce not in ("max", "mean"):
            raise ValueError(f"reduce must be 'max' or 'mean', got {reduce!r}.")
        out = {}
        for rid in np.unique(self.source_space.region_ids):
            rows = self.amplitudes[self.source_space.region_ids == rid]
            out[region_name(int(rid))] = rows.max(axis=0) if reduce == "max" else rows.mean(0)
        return out

    # ------------------------------------------------------------------ conversions
    def to_stc(self, subject: str | None = None, *, discrete: bool = False
               ) -> mne.SourceEstimate:
        """The amplitudes as an MNE source estimate.

        ``mne.VolSourceEstimate`` over the discrete source space (``vertices=[arange(n)]``),
        or, for a map made on an :class:`mne.Forward` (unless ``discrete``), the estimate class
        of the forward's source spaces with their vertex numbers.
        """
        vertices, kind = self.vertices, self.stc_kind
        if discrete or vertices is None:
            vertices, kind = [np.arange(self.n_sources)], "vol"
        cls = {"vol": mne.VolSourceEstimate, "surface": mne.SourceEstimate,
               "mixed": mne.MixedSourceEstimate}[kind]
        return cls(self.amplitudes, vertices=[np.asarray(v) for v in vertices],
                   tmin=float(self.times[0]), tstep=self.tstep, subject=subject, verbose=False)

    def to_nifti(self) -> nib.Nifti1Image:
        """The activity as a 4-D NIfTI image (x, y, z, time) in MRI coordinates.

        Source points are placed on a regular grid with the source spacing (each point in the
        nearest voxel; where two fall in one voxel the larger value is kept). The affine maps
        voxels to MRI (surface RAS) millimetres; the time step is in ``pixdim[4]`` (seconds).
        """
        vol, affine = activity_grid(self.source_space, self.amplitudes)
        img = nib.Nifti1Image(vol.astype(np.float32), affine)
        img.header.set_xyzt_units("mm", "sec")
        img.header.set_zooms((*img.header.get_zooms()[:3], self.tstep))
        img.header.set_qform(affine, code=1)
        img.header.set_sform(affine, code=1)
        img.header["descrip"] = f"deepesi {self.method} tmin={self.times[0]:.4f}s"[:79]
        return img

    # ------------------------------------------------------------------ files
    def save(
        self,
        out_dir: str | os.PathLike,
        overwrite: bool = False,
        *,
        extra_files: Mapping[str, Callable[[Path], Any]] | None = None,
        n_peaks: int = 10,
    ) -> Path:
        """Write the map to a folder, atomically (everything or nothing).

        Files: ``sources-vl.stc`` (MNE), ``activity.nii.gz`` (4-D, MRI mm), ``peaks.tsv``,
        ``source_space.npz`` and ``localization.json`` (method, units, params, peak time,
        provenance); :func:`read_source_map` reads the folder back.

        Parameters
        ----------
        out_dir : path-like
            Output folder; must not exist (an empty folder is fine) unless ``overwrite``. With
            ``overwrite``, only a folder written by this method (holding ``localization.json``)
            is replaced.
        overwrite : bool
            Replace an earlier result folder.
        extra_files : dict of str to callable | None
            More files written into the same atomic folder: file name → ``writer(path)``, e.g.
            ``{'report.html': lambda p: make_report(smap, fname=p)}``.
        n_peaks : int
            Rows of ``peaks.tsv``.

        Returns
        -------
        Path
            ``out_dir``.
        """
        out = Path(out_dir)
        if out.exists() and overwrite:
            if not out.is_dir() or not ((out / INFO_NAME).is_file() or not any(out.iterdir())):
                raise FileExistsError(
                    f"{out} exists and is not a deepesi localization folder; refusing to replace "
                    "it even with overwrite. Choose a new output folder."
                )
        if out.exists() and out.is_dir() and not any(out.iterdir()):
            out.rmdir()  # an empty folder (e.g. made by the user) is fine to use
        if out.is_dir() and overwrite:
            self._replace_own_files(out, n_peaks, extra_files)
            return out
        with atomic_path(out, overwrite=overwrite) as tmp:
            tmp.mkdir()
            self._write_files(tmp, n_peaks)
            for name, writer in (extra_files or {}).items():
                writer(tmp / name)
            _record_written(tmp)
        return out

    def _replace_own_files(self, out: Path, n_peaks: int,
                           extra_files: Mapping[str, Callable[[Path], Any]] | None) -> None:
        """Overwrite an earlier result folder: only the files deepesi writes are replaced (each
        atomically, ``localization.json`` last) and stale ones of an earlier run removed; any
        other file in the folder (the user's notes, ...) stays as it is."""
        import shutil
        import tempfile

        tmp = Path(tempfile.mkdtemp(prefix=".deepesi-new.", dir=out.parent))
        try:
            self._write_files(tmp, n_peaks)
            for name, writer in (extra_files or {}).items():
                writer(tmp / name)
            new = _record_written(tmp)
            previous = set(json.loads((out / INFO_NAME).read_text(encoding="utf-8")).get(
                "written", [])) if (out / INFO_NAME).is_file() else set()
            for name in [n for n in new if n != INFO_NAME] + [INFO_NAME]:
                os.replace(tmp / name, out / name)
            for name in sorted((previous | OWN_FILES) - set(new)):
                stale = out / name
                if stale.is_file() and name in previous | OWN_FILES:
                    stale.unlink()  # written by an earlier deepesi run, not by the user
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def _write_files(self, folder: Path, n_peaks: int) -> None:
        stc = self.to_stc(discrete=True)
        stc.save(folder / STC_STEM, ftype="stc", overwrite=True, verbose=False)
        nib.save(self.to_nifti(), folder / NIFTI_NAME)
        (folder / PEAKS_NAME).write_text(self.peaks(n=n_peaks).to_tsv(), encoding="utf-8")
        if self.sources:
            (folder / SOURCES_NAME).write_text(sources_tsv(self.sources), encoding="utf-8")
        self.source_space.save(folder / SOURCE_SPACE_NAME, overwrite=True)
        doc = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "method": self.method,
            "units": self.units,
            "n_sources": self.n_sources,
            "n_times": self.n_times,
            "tmin_s": float(self.times[0]),
            "tstep_s": self.tstep,
            "peak_time_s": self.peak_time,
            "source_space_hash": self.source_space.hash(),
            "params": to_jsonable(self.params),
            "files": {
                "stc": f"{STC_STEM}-vl.stc",
                "volume": NIFTI_NAME,
                "peaks": PEAKS_NAME,
                "source_space": SOURCE_SPACE_NAME,
            },
            "meta": to_jsonable(self.meta),
            "fit": to_jsonable(self.fit),
        }
        (folder / INFO_NAME).write_text(json.dumps(doc, indent=2), encoding="utf-8")

    def __repr__(self) -> str:
        gof = "" if self.goodness_of_fit is None else f" | GOF {100 * self.goodness_of_fit:.0f} %"
        return (
            f"<SourceMap {self.method} | {self.n_sources} sources x {self.n_times} times "
            f"({self.times[0]:.3f}..{self.times[-1]:.3f} s) | peak time {self.peak_time:.3f} s | "
            f"{self.units}{gof}>"
        )


def _record_written(folder: Path) -> list[str]:
    """List the folder's files in its ``localization.json`` (``written``: what deepesi wrote,
    so that a later ``overwrite`` replaces exactly those) and return them."""
    names = sorted(p.name for p in folder.iterdir())
    doc = json.loads((folder / INFO_NAME).read_text(encoding="utf-8"))
    doc["written"] = names
    (folder / INFO_NAME).write_text(json.dumps(doc, indent=2), encoding="utf-8")
    return names


def read_source_map(folder: str | os.PathLike) -> SourceMap:
    """Read a folder written by :meth:`SourceMap.save`.

    The amplitudes come from the MNE ``.stc`` file (float32 precision); ``info`` and ``extras``
    are not stored and come back empty.
    """
    folder = check_dir(folder, "source-map folder")
    doc_file = folder / INFO_NAME
    if not doc_file.is_file():
        raise FileNotFoundError(
            f"{folder} holds no {INFO_NAME}: it is not a folder written by SourceMap.save "
            "(deepesi localize)."
        )
    doc = json.loads(doc_file.read_text(encoding="utf-8"))
    src = SourceSpace.load(folder / doc.get("files", {}).get("source_space", SOURCE_SPACE_NAME))
    stc = mne.read_source_estimate(folder / doc["files"]["stc"])
    if stc.data.shape[0] != src.n_sources:
        raise ValueError(f"{folder}: the .stc has {stc.data.shape[0]} rows for "
                         f"{src.n_sources} source points; the folder is damaged.")
    return SourceMap.from_amplitudes(
        np.asarray(stc.data, float), stc.times, src, method=doc.get("method", "unknown"),
        units=doc.get("units", "relative"), peak_time=doc.get("peak_time_s"),
        params=doc.get("params"), meta=doc.get("meta"), fit=doc.get("fit"),
    )


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
        raise ValueError(f"{amp.shape[0]} values for {source_space.n_sources} source points.")
    pos = source_space.pos * 1000.0
    step = float(source_space.spacing) * 1000.0 or _median_spacing(pos)
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
