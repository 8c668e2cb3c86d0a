"""Training data for the 4LCNN: simulated EEG/MEG of cortical and deep sources on a lead field.

A sample is one to ``K`` extended sources (patches grown along the source space's neighbour graph),
each with a physiologically scaled dipole moment, an orientation that follows the source model
(cortex along the local normal, deep structures a random direction), optionally a time course, and
sensor noise (white + spatially coloured) scaled to a requested SNR. Everything is seeded: the same
seed gives the same samples, and :class:`SimulatedDataset` gives every batch its own independent
random stream (derived from ``(seed, epoch, rank, batch index)``), so the data do not depend on the
number of DataLoader workers or processes.

Amplitude model (SI, documented in ``docs/network.md``)
--------------------------------------------------------
Cortical (and cerebellar) points are surface sources: a point of a volumetric grid with spacing
``s`` stands for ``s**3 / cortical_thickness`` of cortical area, and carries ``density * area``
with ``density`` drawn from ``cortical_density`` (A·m/m²; default 0.25–1 nA·m/mm², the range of
maximal current-dipole-moment densities reported across species and structures by Murakami &
Okada, J Physiol 2015). Deep structures (thalamus, basal ganglia, hippocampus, amygdala, brainstem)
are volume sources with ``deep_density`` (A·m/m³; default 0.025–0.1 nA·m/mm³, i.e. 1/8 to 1/2 of the
cortical volume density at 2.5 mm thickness): their partly closed-field cytoarchitecture lowers the
effective moment (the "deep brain activity" idea of Attal & Schwartz, PLoS One 2013). The deep
factor is our assumption; change it in :class:`SimulationConfig`.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import sparse
from scipy.sparse import csgraph

from ._io import atomic_path
from ._progress import progress as _progress
from ._validation import check_file, check_random_state
from .anatomy.regions import REGION_NAMES
from .forward.leadfield import LeadField
from .whitening import DEFAULT_REG, make_whitener, noise_cov_matrix, ssp_projector

WAVEFORMS = ("evoked", "oscillatory", "noise")
FORMAT_VERSION = 1


def _range(value, name: str, lo: float = -np.inf, hi: float = np.inf) -> tuple[float, float]:
    """Validate a (min, max) pair (a scalar means a fixed value)."""
    if np.isscalar(value):
        value = (value, value)
    try:
        a, b = (float(v) for v in value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a number or a (min, max) pair, got {value!r}.") from None
    if not (lo <= a <= b <= hi) or not np.isfinite([a, b]).all():
        raise ValueError(f"{name} must satisfy {lo} <= min <= max <= {hi}, got ({a}, {b}).")
    return a, b


@dataclass
class SimulationConfig:
    """What to simulate. All ranges are (min, max), drawn uniformly per sample or per source.

    Parameters
    ----------
    n_sources : (int, int)
        Number of simultaneously active sources per sample (default 1..3).
    deep_fraction : float
        Probability that a sample contains at least one deep-structure source (its first source is
        then placed in a deep structure chosen uniformly among the structures present, so that small
        nuclei are as frequent as large ones). Further sources are placed uniformly over all points,
        so the realised fraction is at least ``deep_fraction``. Default 0.4.
    extent_mm : (float, float)
        Patch radius in mm, measured along the neighbour graph (edge length = Euclidean distance).
        0 gives a single point. Patches do not cross from cortex into a deep structure or between
        deep structures.
    cortical_density : (float, float)
        Cortical current-dipole-moment density, A·m/m² (1 nA·m/mm² = 1e-3 A·m/m²).
    cortical_thickness : float
        Cortical thickness in metres used to convert a grid point's volume to cortical area.
    deep_density : (float, float)
        Deep-structure moment density, A·m/m³ (1 nA·m/mm³ = 1 A·m/m³).
    loose : float | None
        Loose-orientation weight for cortical points (0 = strictly along the normal); None uses the
        source space's own ``loose``.
    n_times : int
        Samples per simulated window (1 = a single time sample, the 4LCNN default).
    sfreq : float
        Sampling frequency (Hz) of the window.
    waveforms : tuple of str
        Time-course families drawn per source when ``n_times > 1``: 'evoked' (Gaussian bump),
        'oscillatory' (4–30 Hz sinusoid under a Hann envelope), 'noise' (band-limited noise).
    snr_db : (float, float)
        Signal-to-noise ratio in dB (power summed over channels and time; see ``snr_space``).
    snr_space : {'sensor', 'whitened'}
        Where the SNR is measured. 'sensor': per sensor type, on the data in its own units (each
        type gets the drawn SNR). 'whitened': over all channels together after whitening with
        ``noise_cov`` (:mod:`deepesi.whitening`), the definition of the benchmark and of MNE's
        whitened data; needs ``noise_cov``. Use it for nets that whiten their input.
    colored_noise_fraction : (float, float)
        Fraction of the noise power drawn from ``noise_cov`` (rest is white); ignored without one.
    noise_cov : mne.Covariance | ndarray | None
        Sensor noise covariance (channels matched by name for an mne.Covariance; an array must
        follow the lead field's channel order).
    noise_reg : float
        Diagonal loading of ``noise_cov`` per sensor type, as a fraction of that type's mean
        variance, for whitening (the 'whitened' SNR, and nets trained with ``whiten``); 0 for a
        covariance that is already regularised. The noise itself is drawn from ``noise_cov``.
    average_reference : bool
        Re-reference EEG to the average of the good EEG channels (default True).
    projs : list of mne.Projection | ndarray | None
        The recording's SSP projectors (``info['projs']``, e.g. the Neuromag PCA vectors of the
        MNE sample data), or an (n_ch, n_ch) projector in the lead field's channel order. Signal
        and noise are projected like the recording, and the whitener removes the same
        directions (:func:`deepesi.whitening.ssp_projector`), so a net never learns from field
        components the real data cannot have. None (default): no projection.
    bad_channel_prob : float
        Probability that a sample has bad/missing channels.
    bad_channel_fraction : (float, float)
        Fraction of channels marked bad in such a sample; bad channels are zeroed and reported in
        the mask.
    """

    n_sources: tuple[int, int] = (1, 3)
    deep_fraction: float = 0.4
    extent_mm: tuple[float, float] = (0.0, 30.0)
    cortical_density: tuple[float, float] = (0.25e-3, 1.0e-3)
    cortical_thickness: float = 2.5e-3
    deep_density: tuple[float, float] = (0.025, 0.1)
    loose: float | None = None
    n_times: int = 1
    sfreq: float = 250.0
    waveforms: tuple[str, ...] = WAVEFORMS
    snr_db: tuple[float, float] = (0.0, 20.0)
    snr_space: str = "sensor"
    colored_noise_fraction: tuple[float, float] = (0.0, 0.5)
    noise_cov: object | None = field(default=None, repr=False)
    noise_reg: float = DEFAULT_REG
    average_reference: bool = True
    projs: object | None = field(default=None, repr=False)
    bad_channel_prob: float = 0.0
    bad_channel_fraction: tuple[float, float] = (0.0, 0.1)

    def __post_init__(self) -> None:
        lo, hi = _range(self.n_sources, "n_sources", 1, 100)
        if lo != int(lo) or hi != int(hi):
            raise ValueError(f"n_sources must be integers, got {self.n_sources}.")
        self.n_sources = (int(lo), int(hi))
        if not 0.0 <= float(self.deep_fraction) <= 1.0:
            raise ValueError(f"deep_fraction must be in [0, 1], got {self.deep_fraction}.")
        self.deep_fraction = float(self.deep_fraction)
        self.extent_mm = _range(self.extent_mm, "extent_mm", 0.0, 200.0)
        self.cortical_density = _range(self.cortical_density, "cortical_density", 0.0)
        self.deep_density = _range(self.deep_density, "deep_density", 0.0)
        if not float(self.cortical_thickness) > 0:
            raise ValueError(f"cortical_thickness must be > 0 m, got {self.cortical_thickness}.")
        if self.loose is not None and not 0.0 <= float(self.loose) <= 1.0:
            raise ValueError(f"loose must be None or in [0, 1], got {self.loose}.")
        if int(self.n_times) < 1:
            raise ValueError(f"n_times must be >= 1, got {self.n_times}.")
        self.n_times = int(self.n_times)
        if not float(self.sfreq) > 0:
            raise ValueError(f"sfreq must be > 0 Hz, got {self.sfreq}.")
        self.waveforms = tuple(self.waveforms)
        bad = sorted(set(self.waveforms) - set(WAVEFORMS))
        if bad or not self.waveforms:
            raise ValueError(f"waveforms must be a non-empty subset of {WAVEFORMS}, got {bad}.")
        self.snr_db = _range(self.snr_db, "snr_db", -40.0, 100.0)
        if not (np.isfinite(self.noise_reg) and self.noise_reg >= 0):
            raise ValueError(f"noise_reg must be >= 0, got {self.noise_reg!r}.")
        self.noise_reg = float(self.noise_reg)
        if self.snr_space not in ("sensor", "whitened"):
            raise ValueError(f"snr_space must be 'sensor' or 'whitened', got {self.snr_space!r}.")
        self.colored_noise_fraction = _range(
            self.colored_noise_fraction, "colored_noise_fraction", 0.0, 1.0
        )
        if not 0.0 <= float(self.bad_channel_prob) <= 1.0:
            raise ValueError(f"bad_channel_prob must be in [0, 1], got {self.bad_channel_prob}.")
        self.bad_channel_fraction = _range(
            self.bad_channel_fraction, "bad_channel_fraction", 0, 0.9
        )

    def to_dict(self) -> dict:
        """Plain-Python description (for model files and HDF5 attributes; ``noise_cov`` omitted)."""
        out = {}
        for f in dataclasses.fields(self):
            if f.name in ("noise_cov", "projs"):
                out[f.name] = None if getattr(self, f.name) is None else "given"
                continue
            val = getattr(self, f.name)
            out[f.name] = list(val) if isinstance(val, tuple) else val
        return out

    @classmethod
    def from_dict(cls, d: dict) -> SimulationConfig:
        """Inverse of :meth:`to_dict` (``noise_cov`` and ``projs`` are not restored)."""
        names = {f.name for f in dataclasses.fields(cls)} - {"noise_cov", "projs"}
        unknown = sorted(set(d) - names - {"noise_cov", "projs"})
        if unknown:
            raise ValueError(f"unknown SimulationConfig field(s): {unknown}.")
        return cls(
            **{k: tuple(v) if isinstance(v, list) else v for k, v in d.items() if k in names}
        )


@dataclass
class SimulatedBatch:
    """A batch of simulated samples.

    Attributes
    ----------
    data : ndarray, float32, shape (n, n_channels, n_times)
        Sensor data in SI units (V, T, T/m), EEG average-referenced, bad channels zeroed.
    sources : ndarray, float32, shape (n, n_sources_total, n_times)
        True source map: dipole-moment norm (A·m) of every source point.
    centres : ndarray of int, shape (n, K)
        Source point index of each source's centre (-1 where the sample has fewer sources).
    regions : ndarray of int, shape (n, K)
        Region id of each centre (0 where absent).
    amplitudes : ndarray, shape (n, K)
        Total dipole moment (A·m) of each source (sum over its patch).
    extent_mm : ndarray, shape (n, K)
        Patch radius along the graph.
    n_active : ndarray of int, shape (n,)
        Number of sources per sample.
    snr_db : ndarray, shape (n,)
        Requested (and achieved) SNR in dB.
    good : ndarray of bool, shape (n, n_channels)
        False for bad/missing channels.
    ch_names, ch_types : list of str
        Channels, in row order.
    """

    data: np.ndarray
    sources: np.ndarray
    centres: np.ndarray
    regions: np.ndarray
    amplitudes: np.ndarray
    extent_mm: np.ndarray
    n_active: np.ndarray
    snr_db: np.ndarray
    good: np.ndarray
    ch_names: list[str]
    ch_types: list[str]

    def __len__(self) -> int:
        return len(self.data)

    @property
    def has_deep(self) -> np.ndarray:
        """True for samples with at least one deep-structure source."""
        from .anatomy.regions import SUBCORTICAL_REGIONS

        return np.isin(self.regions, list(SUBCORTICAL_REGIONS)).any(axis=1)

    def region_names(self, i: int) -> list[str]:
        """Region names of the sources of sample ``i``."""
        return [REGION_NAMES.get(int(r), "unknown") for r in self.regions[i, : self.n_active[i]]]

    def save(self, path: str | os.PathLike, overwrite: bool = False, config=None) -> Path:
        """Write to HDF5 (needs ``h5py``), atomically."""
        h5py = _import_h5py()
        with atomic_path(path, overwrite=overwrite) as tmp, h5py.File(tmp, "w") as f:
            _h5_init(
                f,
                self.data.shape[1:],
                self.sources.shape[1:],
                self.centres.shape[1],
                self.ch_names,
                self.ch_types,
                config,
            )
            _h5_append(f, self)
        return Path(path)


_ARRAYS = (
    "data",
    "sources",
    "centres",
    "regions",
    "amplitudes",
    "extent_mm",
    "n_active",
    "snr_db",
    "good",
)


def _import_h5py():
    try:
        import h5py
    except ImportError as err:  # pragma: no cover - optional dependency
        raise ImportError("HDF5 export needs h5py: pip install 'deepesi[hdf5]'.") from err
    return h5py


def _h5_init(f, data_shape, src_shape, k, ch_names, ch_types, config) -> None:
    import json

    f.attrs["format"] = "deepesi-simulation"
    f.attrs["format_version"] = FORMAT_VERSION
    f.attrs["ch_names"] = json.dumps(list(ch_names))
    f.attrs["ch_types"] = json.dumps(list(ch_types))
    f.attrs["config"] = json.dumps(config.to_dict() if config is not None else None)
    shapes = {
        "data": data_shape,
        "sources": src_shape,
        "centres": (k,),
        "regions": (k,),
        "amplitudes": (k,),
        "extent_mm": (k,),
        "n_active": (),
        "snr_db": (),
        "good": (len(ch_names),),
    }
    dtypes = {
        "data": "f4",
        "sources": "f4",
        "centres": "i4",
        "regions": "i4",
        "amplitudes": "f8",
        "extent_mm": "f4",
        "n_active": "i4",
        "snr_db": "f4",
        "good": "?",
    }
    for name in _ARRAYS:
        shape = tuple(shapes[name])
        f.create_dataset(
            name,
            shape=(0, *shape),
            maxshape=(None, *shape),
            dtype=dtypes[name],
            chunks=(64, *shape),
            compression="gzip",
            compression_opts=4,
        )


def _h5_append(f, batch: SimulatedBatch) -> None:
    for name in _ARRAYS:
        ds = f[name]
        n0 = ds.shape[0]
        arr = getattr(batch, name)
        ds.resize(n0 + len(arr), axis=0)
        ds[n0:] = arr


def load_simulation(path: str | os.PathLike) -> tuple[SimulatedBatch, SimulationConfig | None]:
    """Read an HDF5 file written by :meth:`SimulatedBatch.save` or :func:`simulate_to_hdf5`."""
    import json

    h5py = _import_h5py()
    path = check_file(path, "simulation file")
    with h5py.File(path, "r") as f:
        if f.attrs.get("format") != "deepesi-simulation":
            raise ValueError(f"{path} is not a deepesi simulation file (HDF5 'format' attribute).")
        arrays = {name: f[name][()] for name in _ARRAYS}
        cfg = json.loads(f.attrs["config"])
        batch = SimulatedBatch(
            **arrays,
            ch_names=json.loads(f.attrs["ch_names"]),
            ch_types=json.loads(f.attrs["ch_types"]),
        )
    return batch, (SimulationConfig.from_dict(cfg) if cfg else None)


# ---------------------------------------------------------------------------- the simulator
class Simulator:
    """Precomputed state for fast simulation on one lead field (graphs, references, noise factors).

    Parameters
    ----------
    leadfield : LeadField
        Lead field with its source space.
    config : SimulationConfig | None
        What to simulate (defaults if None).
    """

    def __init__(self, leadfield: LeadField, config: SimulationConfig | None = None) -> None:
        if not isinstance(leadfield, LeadField):
            raise TypeError(
                f"leadfield must be a deepesi LeadField, got {type(leadfield).__name__}."
            )
        config = SimulationConfig() if config is None else config
        if not isinstance(config, SimulationConfig):
            raise TypeError(f"config must be a SimulationConfig, got {type(config).__name__}.")
        self.leadfield = leadfield
        self.config = config
        src = leadfield.source_space
        self.ch_names = list(leadfield.ch_names)
        self.ch_types = list(leadfield.ch_types)
        types = np.asarray(self.ch_types)
        self.type_blocks = [np.flatnonzero(types == t) for t in dict.fromkeys(self.ch_types)]
        self.eeg = np.flatnonzero(types == "eeg")
        gain = leadfield.gain.astype(np.float64)
        if config.average_reference and len(self.eeg):
            gain[self.eeg] -= gain[self.eeg].mean(axis=0, keepdims=True)
        # the recording's SSP: signal through the projected gain, noise projected per batch
        self.projector = ssp_projector(config.projs, self.ch_names)
        if self.projector is not None:
            gain = self.projector @ gain.reshape(len(gain), -1)
        # (3·n_src, n_ch): row 3p + k is point p's k-th dipole, for sparse moments @ gain
        self.gain_flat = np.ascontiguousarray(gain.reshape(len(gain), -1).T)
        self.deep = src.is_subcortical
        self.free = src.free_ori
        self.normals = src.normals
        self.loose = src.loose if config.loose is None else float(config.loose)
        self.region_ids = src.region_ids
        # centre draws: cortical points, and the deep points grouped by structure
        self.cortical_points = np.flatnonzero(~self.deep)
        deep_regions = self.region_ids[self.deep]
        order = np.argsort(deep_regions, kind="stable")
        self.deep_points = np.flatnonzero(self.deep)[order]
        _, self.deep_offsets, self.deep_sizes = np.unique(
            deep_regions[order], return_index=True, return_counts=True
        )
        self.n_src = src.n_sources
        # weighted graph whose edges stay within one compartment (cortex; each deep structure)
        comp = np.where(self.deep, self.region_ids, -1)
        adj = sparse.triu(src.adjacency, k=1).tocoo()
        keep = comp[adj.row] == comp[adj.col]
        rows, cols = adj.row[keep], adj.col[keep]
        w = np.linalg.norm(src.pos[rows] - src.pos[cols], axis=1)
        g = sparse.coo_matrix((w, (rows, cols)), shape=(self.n_src, self.n_src))
        self.graph = (g + g.T).tocsr()
        self._patch_cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        s3 = src.spacing**3
        self.unit_cortical = s3 / config.cortical_thickness  # m² of cortex per point
        self.unit_deep = s3  # m³ per point
        self.noise_factor = self._noise_factor(config.noise_cov)
        # SNR measured on whitened data (like the classical methods and the benchmark) or per type
        self.snr_whitener = None
        if config.snr_space == "whitened":
            if config.noise_cov is None:
                raise ValueError(
                    "snr_space='whitened' needs a noise_cov (the SNR is measured after whitening "
                    "with it); give one, or use snr_space='sensor'."
                )
            self.snr_whitener = make_whitener(
                config.noise_cov, self.ch_names, self.ch_types,
                average_reference=config.average_reference, reg=config.noise_reg,
                projector=self.projector,
            )

    # ------------------------------------------------------------------ helpers
    def _noise_factor(self, cov) -> np.ndarray | None:
        """Square root (n_ch, n_ch) of the noise covariance on the lead field's channels."""
        if cov is None:
            return None
        evals, evecs = np.linalg.eigh(noise_cov_matrix(cov, self.ch_names))
        return evecs * np.sqrt(np.clip(evals, 0, None))

    def patch(self, centre: int, radius: float) -> np.ndarray:
        """Source points within ``radius`` (m) of ``centre`` along the compartment graph."""
        max_r = self.config.extent_mm[1] * 1e-3
        if centre not in self._patch_cache:
            self._store_patch(
                centre, csgraph.dijkstra(self.graph, indices=centre, limit=max_r + 1e-9)
            )
        idx, dist = self._patch_cache[centre]  # sorted by distance: the patch is a prefix
        return idx[: int(np.searchsorted(dist, radius + 1e-6, side="right"))]

    def precompute_patches(self, chunk: int = 256) -> None:
        """Fill the patch cache for every source point at once (graph distances up to the
        largest extent), so that simulating never waits on a shortest-path search; worth it
        before a long training (DataLoader workers inherit the cache)."""
        max_r = self.config.extent_mm[1] * 1e-3
        todo = [c for c in range(self.n_src) if c not in self._patch_cache]
        for s in range(0, len(todo), chunk):
            ids = todo[s : s + chunk]
            dist = np.atleast_2d(csgraph.dijkstra(self.graph, indices=ids, limit=max_r + 1e-9))
            for c, row in zip(ids, dist, strict=True):
                self._store_patch(c, row)

    def _store_patch(self, centre: int, dist: np.ndarray) -> None:
        """Cache the points reached from ``centre`` (graph distances ``dist``), nearest first."""
        idx = np.flatnonzero(np.isfinite(dist))
        idx = idx[np.argsort(dist[idx], kind="stable")]
        self._patch_cache[centre] = (idx.astype(np.int32), dist[idx].astype(np.float32))

    def _waveforms(self, m: int, rng: np.random.Generator) -> np.ndarray:
        """Unit-peak time courses (m, n_times), one family per source drawn from ``waveforms``:
        'evoked' a Gaussian bump (centre in the middle half of the window, width 5-25 % of it,
        random sign); 'oscillatory' a 4-30 Hz sine under a Hann window; 'noise' white noise
        smoothed by a 7-point Hann kernel."""
        cfg = self.config
        n = cfg.n_times
        if n == 1 or m == 0:
            return np.ones((m, n))
        t = np.arange(n) / cfg.sfreq
        dur = t[-1]
        kind = np.asarray(cfg.waveforms)[rng.integers(len(cfg.waveforms), size=m)]
        w = np.zeros((m, n))
        sel = np.flatnonzero(kind == "evoked")
        if len(sel):
            mu = rng.uniform(0.25, 0.75, size=(len(sel), 1)) * dur
            sd = rng.uniform(0.05, 0.25, size=(len(sel), 1)) * dur + 1e-3
            sign = rng.choice([-1.0, 1.0], size=(len(sel), 1))
            w[sel] = np.exp(-0.5 * ((t - mu) / sd) ** 2) * sign
        sel = np.flatnonzero(kind == "oscillatory")
        if len(sel):
            f = rng.uniform(4.0, min(30.0, 0.4 * cfg.sfreq), size=(len(sel), 1))
            phase = rng.uniform(0, 2 * np.pi, size=(len(sel), 1))
            w[sel] = np.sin(2 * np.pi * f * t + phase) * np.hanning(n + 2)[1:-1]
        sel = np.flatnonzero(kind == "noise")
        if len(sel):
            k = np.hanning(7)
            x = rng.standard_normal((len(sel), n + 8))
            full = np.lib.stride_tricks.sliding_window_view(np.pad(x, ((0, 0), (3, 3))), 7, axis=1)
            w[sel] = (full @ (k / k.sum()))[:, 4:-4]  # 'same' convolution, edges dropped
        peak = np.abs(w).max(axis=1, keepdims=True)
        return np.where(peak > 0, w / np.where(peak > 0, peak, 1.0), 1.0)

    def _orientations(
        self,
        idx: np.ndarray,
        patch_of: np.ndarray,
        starts: np.ndarray,
        deep: np.ndarray,
        rng: np.random.Generator,
    ) -> np.ndarray:
        """Unit moment direction (n_points, 3) of every point of the concatenated patches.

        ``idx`` are the points of all patches end to end, ``patch_of`` the patch of each point,
        ``starts`` where each patch begins in ``idx`` and ``deep`` whether each patch is deep.
        A deep patch, or one whose points are all free, takes one random direction; a cortical
        patch takes the surface normals (free points: the patch's random direction), tilted at
        random by the loose factor.
        """
        m = len(starts)
        v = rng.standard_normal((m, 3))
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        ori = self.normals[idx].astype(float)
        free = self.free[idx] | (np.linalg.norm(ori, axis=1) < 0.5)
        all_free = np.minimum.reduceat(free.astype(np.int8), starts).astype(bool)
        single = (deep | all_free)[patch_of]
        use_random = single | free
        ori[use_random] = v[patch_of[use_random]]
        if self.loose > 0:
            tilt = ~single
            if tilt.any():
                o = ori[tilt]
                jit = rng.standard_normal(o.shape) * self.loose
                jit -= (jit * o).sum(1, keepdims=True) * o
                o = o + jit
                ori[tilt] = o / np.linalg.norm(o, axis=1, keepdims=True)
        return ori

    def _centres(self, sample_of: np.ndarray, first: np.ndarray, rng: np.random.Generator):
        """Centre point of each source: for a sample's first source a deep point when the
        sample is forced deep, else a cortical one; other sources anywhere."""
        m = len(sample_of)
        n = int(sample_of.max()) + 1 if m else 0
        centre = rng.integers(self.n_src, size=m)
        force_deep = rng.random(n) < self.config.deep_fraction
        if len(self.deep_points):
            cortical = self.cortical_points
            if len(cortical):
                pick = cortical[rng.integers(len(cortical), size=m)]
                centre = np.where(first, pick, centre)
            sizes = self.deep_sizes
            which = rng.integers(len(sizes), size=m)  # structure first, uniformly
            within = np.minimum((rng.random(m) * sizes[which]).astype(int), sizes[which] - 1)
            deep_pick = self.deep_points[self.deep_offsets[which] + within]
            centre = np.where(first & force_deep[sample_of], deep_pick, centre)
        return centre.astype(np.int64)

    # ------------------------------------------------------------------ main
    def simulate(
        self,
        n: int,
        seed: int | np.random.Generator | None = None,
        map_samples=None,
        *,
        sparse_maps: bool = False,
    ) -> SimulatedBatch:
        """Simulate ``n`` samples (see :func:`simulate_batch`).

        ``map_samples`` (sequence of time indices, default all): build the true source maps
        only at these samples, ``sources`` then has shape ``(n, n_src, len(map_samples))``. A
        trainer that needs one sample's map skips the rest, which for windows is most of the
        batch's memory (256 × 8,092 × 5 float32 is 41 MB). The sensor data and every other field
        are the same whatever ``map_samples`` is (same random stream). ``sparse_maps=True``:
        ``sources`` is instead a list of ``(n, n_src)`` scipy CSR matrices, one per map sample
        (the maps hold a few patches each; the training data pipeline smooths them sparse).
        """
        if not isinstance(n, int | np.integer) or n < 0:
            raise ValueError(f"n must be a non-negative integer, got {n!r}.")
        n = int(n)
        rng = check_random_state(seed)
        cfg = self.config
        n_ch, T, K = len(self.ch_names), cfg.n_times, cfg.n_sources[1]
        if map_samples is None:
            map_samples = np.arange(T)
        map_samples = np.atleast_1d(np.asarray(map_samples))
        if (
            map_samples.ndim != 1
            or not np.issubdtype(map_samples.dtype, np.integer)
            or np.any((map_samples < 0) | (map_samples >= T))
        ):
            raise ValueError(
                f"map_samples must be time indices in [0, {T}), got {map_samples.tolist()!r}."
            )
        # ---- source configurations, all sources of the batch at once
        n_active = rng.integers(cfg.n_sources[0], cfg.n_sources[1] + 1, size=n).astype(np.int32)
        sample_of, slot = np.nonzero(np.arange(K)[None, :] < n_active[:, None])
        m = len(sample_of)
        centre = self._centres(sample_of, slot == 0, rng)
        radius = rng.uniform(*cfg.extent_mm, size=m) * 1e-3
        deep = self.deep[centre].astype(bool)
        moment = np.where(
            deep,
            rng.uniform(*cfg.deep_density, size=m) * self.unit_deep,
            rng.uniform(*cfg.cortical_density, size=m) * self.unit_cortical,
        )
        patches = [self.patch(int(c), float(r)) for c, r in zip(centre, radius, strict=True)]
        sizes = np.array([len(p) for p in patches], dtype=np.int64)
        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        idx = np.concatenate(patches).astype(np.int64) if m else np.zeros(0, np.int64)
        patch_of = np.repeat(np.arange(m), sizes)
        ori = self._orientations(idx, patch_of, starts, deep, rng) if m else np.zeros((0, 3))
        # ---- sensor signal: a sparse (source × xyz-dipole) matrix times the flat gain
        dipoles = sparse.csr_matrix(
            (
                (ori * moment[patch_of, None]).ravel(),
                (np.repeat(patch_of, 3), (3 * idx[:, None] + np.arange(3)).ravel()),
            ),
            shape=(m, 3 * self.n_src),
        )
        topo = np.asarray(dipoles @ self.gain_flat)  # (m, n_ch)
        wave = self._waveforms(m, rng)
        member = sparse.csr_matrix((np.ones(m), (sample_of, np.arange(m))), shape=(n, m))
        signal_all = np.asarray(member @ (topo[:, :, None] * wave[:, None, :]).reshape(m, -1))
        signal_all = signal_all.reshape(n, n_ch, T)
        # ---- true source maps (moment per point, |waveform| over time)
        amp = (moment[:, None] * np.abs(wave[:, map_samples])).astype(np.float32)  # (m, T')
        if sparse_maps:  # one (n, n_src) CSR matrix per map sample; overlaps add up
            sources = [
                sparse.csr_matrix(
                    (amp[patch_of, j], (sample_of[patch_of], idx)), shape=(n, self.n_src)
                )
                for j in range(len(map_samples))
            ]
        else:
            sources = np.zeros((n, self.n_src, len(map_samples)), np.float32)
            np.add.at(sources, (sample_of[patch_of], idx), amp[patch_of])  # overlaps add up
        centres = np.full((n, K), -1, np.int32)
        regions = np.zeros((n, K), np.int32)
        amplitudes = np.zeros((n, K))
        extents = np.zeros((n, K), np.float32)
        centres[sample_of, slot] = centre
        regions[sample_of, slot] = self.region_ids[centre]
        amplitudes[sample_of, slot] = moment * sizes
        extents[sample_of, slot] = radius * 1e3
        # ---- bad channels
        good = np.ones((n, n_ch), bool)
        if cfg.bad_channel_prob > 0:
            for i in np.flatnonzero(rng.random(n) < cfg.bad_channel_prob):
                n_bad = round(rng.uniform(*cfg.bad_channel_fraction) * n_ch)
                if n_bad:
                    good[i, rng.choice(n_ch, size=min(n_bad, n_ch - 1), replace=False)] = False
        snr = np.zeros(n, np.float32)
        # sensor noise, reference and SNR, vectorised over the batch
        noise = rng.standard_normal((n, n_ch, T))
        if self.noise_factor is not None:
            colored = np.einsum("cd,ndt->nct", self.noise_factor, rng.standard_normal((n, n_ch, T)))
            frac = rng.uniform(*cfg.colored_noise_fraction, size=n)
            noise = self._mix(noise, colored, frac)
        if self.projector is not None:
            noise = np.einsum("cd,ndt->nct", self.projector, noise)
        signal = self._reference(signal_all, good)
        noise = self._reference(noise, good)
        snr[:] = rng.uniform(*cfg.snr_db, size=n)
        if self.snr_whitener is not None:  # one ratio over all channels, on whitened data
            blocks, w = [slice(None)], self.snr_whitener
        else:  # one ratio per sensor type, on the data in its units
            blocks, w = self.type_blocks, None
        for block in blocks:
            g = good[:, block, None]
            s_b, n_b = signal[:, block] * g, noise[:, block] * g
            if w is not None:
                s_b, n_b = np.matmul(w, s_b), np.matmul(w, n_b)
            ps = np.sum(s_b**2, axis=(1, 2))
            pn = np.sum(n_b**2, axis=(1, 2))
            with np.errstate(divide="ignore", invalid="ignore"):
                scale = np.where(pn > 0, np.sqrt(ps / pn / 10 ** (snr.astype(float) / 10)), 0.0)
            noise[:, block] *= scale[:, None, None]
        data = (signal + noise) * good[:, :, None]
        return SimulatedBatch(
            data=data.astype(np.float32),
            sources=sources,
            centres=centres,
            regions=regions,
            amplitudes=amplitudes,
            extent_mm=extents,
            n_active=n_active,
            snr_db=snr,
            good=good,
            ch_names=list(self.ch_names),
            ch_types=list(self.ch_types),
        )

    def _mix(self, white: np.ndarray, colored: np.ndarray, frac: np.ndarray) -> np.ndarray:
        """White and coloured noise (n, n_ch, T) mixed per sample and sensor type: a fraction
        ``frac[i]`` of sample i's power is coloured; the white part takes the coloured part's
        power, in that type's units."""
        out = np.empty_like(white)
        fr = np.asarray(frac, float)[:, None, None]
        for block in self.type_blocks:
            pc = np.sum(colored[:, block] ** 2, axis=(1, 2))[:, None, None]
            pw = np.sum(white[:, block] ** 2, axis=(1, 2))[:, None, None]
            with np.errstate(divide="ignore", invalid="ignore"):
                w = white[:, block] * np.sqrt(np.where(pw > 0, pc / pw, 0.0))
            mixed = np.sqrt(1 - fr) * w + np.sqrt(fr) * colored[:, block]
            out[:, block] = np.where(pc > 0, mixed, white[:, block])
        return out

    def _reference(self, x: np.ndarray, good: np.ndarray) -> np.ndarray:
        """Average reference over each sample's good EEG channels; ``x`` (n, n_ch, T)."""
        if not (self.config.average_reference and len(self.eeg)):
            return x
        g = good[:, self.eeg, None].astype(x.dtype)  # (n, n_eeg, 1)
        n_good = np.maximum(g.sum(axis=1, keepdims=True), 1)
        mean = (x[:, self.eeg] * g).sum(axis=1, keepdims=True) / n_good
        x = x.copy()
        x[:, self.eeg] -= mean * g  # bad channels are zeroed afterwards anyway
        return x


def simulate_batch(
    leadfield: LeadField,
    n: int,
    config: SimulationConfig | None = None,
    seed: int | np.random.Generator | None = None,
) -> SimulatedBatch:
    """Simulate ``n`` samples of sensor data and their true source maps.

    Parameters
    ----------
    leadfield : LeadField
        Forward model (gain per source point and xyz dipole, channels, source space).
    n : int
        Number of samples.
    config : SimulationConfig | None
        What to simulate; defaults of :class:`SimulationConfig` if None.
    seed : int | numpy.random.Generator | None
        Random seed; the same seed gives the same batch.

    Returns
    -------
    SimulatedBatch
        Sensor data ``(n, n_ch, n_times)``, source maps ``(n, n_src, n_times)`` (A·m) and metadata.
    """
    return Simulator(leadfield, config).simulate(n, seed)


def batch_seed(seed: int, epoch: int, rank: int, index: int) -> np.random.Generator:
    """The independent random stream of one batch (same arguments → same stream)."""
    return np.random.default_rng(
        np.random.SeedSequence([int(seed), int(epoch), int(rank), int(index)])
    )


def simulate_to_hdf5(
    leadfield: LeadField,
    path: str | os.PathLike,
    n: int,
    config: SimulationConfig | None = None,
    seed: int = 0,
    *,
    chunk: int = 1024,
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """Simulate ``n`` samples in chunks and write them to an HDF5 file (atomically).

    Chunk ``b`` uses the stream :func:`batch_seed` ``(seed, 0, 0, b)``, so a file is reproducible.
    """
    h5py = _import_h5py()
    sim = Simulator(leadfield, config)
    n_chunks = -(-int(n) // int(chunk))
    with atomic_path(path, overwrite=overwrite) as tmp, h5py.File(tmp, "w") as f:
        _h5_init(
            f,
            (len(sim.ch_names), sim.config.n_times),
            (sim.n_src, sim.config.n_times),
            sim.config.n_sources[1],
            sim.ch_names,
            sim.ch_types,
            sim.config,
        )
        f.attrs["leadfield_hash"] = leadfield.hash()
        f.attrs["seed"] = int(seed)
        for b in _progress(range(n_chunks), enabled=progress, desc="simulate", unit="chunk"):
            m = min(chunk, n - b * chunk)
            _h5_append(f, sim.simulate(m, batch_seed(seed, 0, 0, b)))
    return Path(path)


# ---------------------------------------------------------------------------- torch dataset
def _torch_iterable_base():
    from torch.utils.data import IterableDataset

    return IterableDataset


def smoothing_kernel(pos: np.ndarray, sigma: float) -> sparse.csr_matrix | None:
    """Sparse symmetric Gaussian kernel (n_src, n_src) over source positions (σ = ``sigma`` m,
    cut at 2.5 σ; 1 on the diagonal), float32.

    Applied to a target map before the cross-entropy (``target @ K``), it turns a focal source
    into a small Gaussian blob: neighbouring points share the gradient, so the net learns the
    smooth geometry of the source space instead of 10⁴ unrelated classes (faster convergence,
    smaller errors; docs/network.md). Returns None for ``sigma <= 0``.
    """
    if not sigma > 0:
        return None
    from scipy.spatial import cKDTree

    pos = np.asarray(pos, float)
    n = len(pos)
    pairs = cKDTree(pos).query_pairs(r=2.5 * sigma, output_type="ndarray")
    d = np.linalg.norm(pos[pairs[:, 0]] - pos[pairs[:, 1]], axis=1)
    w = np.exp(-0.5 * (d / sigma) ** 2)
    rows = np.concatenate([pairs[:, 0], pairs[:, 1], np.arange(n)])
    cols = np.concatenate([pairs[:, 1], pairs[:, 0], np.arange(n)])
    vals = np.concatenate([w, w, np.ones(n)]).astype(np.float32)
    return sparse.csr_matrix((vals, (rows, cols)), shape=(n, n))


def smooth_target(target, kernel: sparse.csr_matrix | None) -> np.ndarray:
    """(batch, n_src) target maps, dense or scipy sparse, smoothed by :func:`smoothing_kernel`;
    dense float32 out (only densified if ``kernel`` is None). The maps are sparse (a few
    patches), so this costs little, least when they come sparse."""
    if kernel is None:
        out = target.toarray() if sparse.issparse(target) else target
        return np.asarray(out, dtype=np.float32)
    return np.asarray((sparse.csr_matrix(target) @ kernel).toarray(), dtype=np.float32)


class SimulatedDataset(_torch_iterable_base()):
    """On-the-fly training batches for a torch ``DataLoader`` (use ``batch_size=None``).

    Each item is a whole batch ``(data, target)`` of float32 tensors, ``data`` of shape
    ``(batch_size, n_ch, n_times)`` and ``target`` ``(batch_size, n_src, n_times)`` (A·m), or with
    ``target_sample`` set, only that sample's map ``(batch_size, n_src)``, smoothed by
    ``target_kernel`` when given (done in the worker, off the training process). Batch
    ``b`` of epoch ``e`` on process ``rank`` is drawn from :func:`batch_seed` ``(seed, e, rank,
    b)``, so the stream is reproducible and independent of the number of workers (worker ``w`` of
    ``W`` produces batches ``w, w + W, ...``; a DataLoader interleaves them back in order).

    Parameters
    ----------
    leadfield : LeadField
    config : SimulationConfig | None
    n_batches : int
        Batches per epoch (per process).
    batch_size : int
    seed : int
    rank : int
        Process rank under DistributedDataParallel (each rank gets its own stream).
    target_sample : int | None
        Yield only this time sample's source map as the target (None: the whole map).
    target_kernel : scipy.sparse matrix | None
        Smoothing kernel (:func:`smoothing_kernel`) applied to that target map.
    """

    def __init__(
        self,
        leadfield: LeadField,
        config: SimulationConfig | None,
        n_batches: int,
        batch_size: int,
        seed: int = 0,
        rank: int = 0,
        *,
        target_sample: int | None = None,
        target_kernel: sparse.spmatrix | sparse.sparray | None = None,
    ) -> None:
        super().__init__()
        if n_batches < 1 or batch_size < 1:
            raise ValueError(
                f"n_batches and batch_size must be >= 1, got {n_batches}, {batch_size}."
            )
        self.leadfield = leadfield
        self.config = SimulationConfig() if config is None else config
        self.n_batches, self.batch_size = int(n_batches), int(batch_size)
        self.seed, self.rank, self.epoch = int(seed), int(rank), 0
        if target_sample is not None and not 0 <= int(target_sample) < self.config.n_times:
            raise ValueError(
                f"target_sample must be in [0, {self.config.n_times}), got {target_sample!r}."
            )
        if target_kernel is not None and target_sample is None:
            raise ValueError("target_kernel needs target_sample (the map to smooth).")
        self.target_sample = None if target_sample is None else int(target_sample)
        self.target_kernel = None if target_kernel is None else sparse.csr_matrix(target_kernel)
        # built here, patches included, so that forked DataLoader workers inherit it warm
        self._sim = Simulator(leadfield, self.config)
        self._sim.precompute_patches()

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch (a different, reproducible stream per epoch)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.n_batches

    def batch(self, index: int) -> SimulatedBatch:
        """Batch ``index`` of the current epoch, as a :class:`SimulatedBatch` (with
        ``target_sample`` set, its ``sources`` is ``[csr (batch, n_src)]``, that sample's map)."""
        return self._sim.simulate(
            self.batch_size,
            batch_seed(self.seed, self.epoch, self.rank, index),
            map_samples=None if self.target_sample is None else [self.target_sample],
            sparse_maps=self.target_sample is not None,
        )

    def __iter__(self) -> Iterator:
        import torch
        from torch.utils.data import get_worker_info

        info = get_worker_info()
        wid, nw = (0, 1) if info is None else (info.id, info.num_workers)
        for b in range(wid, self.n_batches, nw):
            sb = self.batch(b)
            if self.target_sample is None:
                yield torch.from_numpy(sb.data), torch.from_numpy(sb.sources)
            else:
                y = smooth_target(sb.sources[0], self.target_kernel)
                yield torch.from_numpy(sb.data), torch.from_numpy(y)
