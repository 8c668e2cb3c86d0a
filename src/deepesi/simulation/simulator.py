"""The simulator: simulated EEG/MEG of cortical and deep sources on a lead field.

A sample is one to ``K`` extended sources (patches grown along the source space's neighbour graph),
each with a physiologically scaled dipole moment, an orientation that follows the source model
(cortex along the local normal, deep structures a random direction), optionally a time course, and
sensor noise (white + spatially coloured) scaled to a requested SNR. Everything is seeded: the same
seed gives the same samples, and :class:`~deepesi.training.SimulatedDataset` gives every batch
its own independent random stream (derived from ``(seed, epoch, rank, batch index)``), so the data
do not depend on the number of DataLoader workers or processes.

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

import os
from pathlib import Path
from typing import Any

import numpy as np
from scipy import sparse
from scipy.sparse import csgraph

from .._deprecate import progress_to_verbose
from .._io import atomic_path
from .._logging import logger, verbose
from .._progress import progress
from .._validation import check_random_state, validate_type
from ..forward.leadfield import LeadField
from ..whitening import make_whitener, noise_cov_matrix, ssp_projector
from .batch import SimulatedBatch, _h5_append, _h5_init, _import_h5py
from .config import SimulationConfig
from .noise import brain_noise

__all__ = ["Simulator", "batch_seed", "simulate_batch", "simulate_to_hdf5"]


class Simulator:
    """Precomputed state for fast simulation on one lead field (graphs, references, noise factors).

    Parameters
    ----------
    leadfield : LeadField
        Lead field with its source space.
    config : SimulationConfig | None
        What to simulate (defaults if None).
    """

    def __init__(self, leadfield: LeadField, config: SimulationConfig | None = None, *,
                 ensemble: Any = None) -> None:
        validate_type(leadfield, LeadField, "leadfield", "a deepesi LeadField")
        config = SimulationConfig() if config is None else config
        validate_type(config, SimulationConfig, "config", "a SimulationConfig")
        self.leadfield = leadfield
        self.config = config
        src = leadfield.source_space
        self.ch_names = list(leadfield.ch_names)
        self.ch_types = list(leadfield.ch_types)
        types = np.asarray(self.ch_types)
        self.type_blocks = [np.flatnonzero(types == t) for t in dict.fromkeys(self.ch_types)]
        self.eeg = np.flatnonzero(types == "eeg")
        # the recording's SSP: signal through the projected gain, noise projected per batch
        self.projector = ssp_projector(config.projs, self.ch_names)
        # (3·n_src, n_ch): row 3p + k is point p's k-th dipole, for sparse moments @ gain
        self.gain_flat = self._flat_gain(leadfield)
        # a forward ensemble: every sample's signal through one member drawn at random
        self.member_gains = None
        if ensemble is not None:
            self.member_gains = [self._flat_gain(lf) for lf in _check_ensemble(ensemble,
                                                                                leadfield)]
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
        self.bank_rows = None
        if config.noise_bank is not None:
            self.bank_rows = config.noise_bank.rows_for(self.ch_names)
            if abs(config.noise_bank.sfreq - config.sfreq) > 1e-6 * config.sfreq:
                logger.warning(
                    "the noise bank is sampled at %g Hz, the simulation at %g Hz: its temporal "
                    "structure will be off; resample the recording or set sfreq.",
                    config.noise_bank.sfreq, config.sfreq,
                )
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
    def _flat_gain(self, lf: LeadField) -> np.ndarray:
        """(3·n_src, n_ch) gain of ``lf``, referenced and projected like the main one."""
        gain = lf.gain.astype(np.float64)
        if self.config.average_reference and len(self.eeg):
            gain[self.eeg] -= gain[self.eeg].mean(axis=0, keepdims=True)
        if self.projector is not None:
            gain = self.projector @ gain.reshape(len(gain), -1)
        return np.ascontiguousarray(gain.reshape(len(gain), -1).T)

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
        random sign; with ``evoked_width_s`` a width in seconds, centred within one width of
        the window); 'oscillatory' a 4-30 Hz sine under a Hann window; 'noise' white noise
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
        if len(sel) and cfg.evoked_width_s is not None:  # a physical time scale
            sd = rng.uniform(*cfg.evoked_width_s, size=(len(sel), 1))
            mu = rng.uniform(-1.0, 1.0, size=(len(sel), 1)) * sd + rng.uniform(
                0.0, 1.0, size=(len(sel), 1)) * dur
        elif len(sel):
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
        rng = check_random_state(seed)
        signal_all, fields = self.signal(n, rng, map_samples, sparse_maps=sparse_maps)
        # ---- bad channels, sensor noise, reference and SNR
        data, good, snr = self._add_noise(signal_all, rng)
        return SimulatedBatch(data=data.astype(np.float32), snr_db=snr, good=good,
                              ch_names=list(self.ch_names), ch_types=list(self.ch_types),
                              **fields)

    def signal(
        self,
        n: int,
        rng: np.random.Generator,
        map_samples=None,
        *,
        sparse_maps: bool = False,
    ) -> tuple[np.ndarray, dict]:
        """The noise-free sensor signal ``(n, n_ch, n_times)`` of ``n`` drawn source
        configurations and the batch's source fields (``sources``, ``centres``, ``regions``,
        ``amplitudes``, ``extent_mm``, ``n_active``); :meth:`simulate` adds the noise."""
        if not isinstance(n, int | np.integer) or n < 0:
            raise ValueError(f"n must be a non-negative integer, got {n!r}.")
        n = int(n)
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
        if self.member_gains is None:
            topo = np.asarray(dipoles @ self.gain_flat)  # (m, n_ch)
        else:  # one ensemble member per sample, drawn after the source configurations (those
            # stay as without an ensemble)
            drawn = rng.integers(len(self.member_gains), size=n)[sample_of]
            topo = np.zeros((m, n_ch))
            for k in np.unique(drawn):
                rows = np.flatnonzero(drawn == k)
                topo[rows] = np.asarray(dipoles[rows] @ self.member_gains[k])
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
        return signal_all, {"sources": sources, "centres": centres, "regions": regions,
                            "amplitudes": amplitudes, "extent_mm": extents,
                            "n_active": n_active}

    def _add_noise(
        self, signal_all: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Bad channels, sensor noise, EEG reference and SNR scaling of the noise-free signal
        ``(n, n_ch, T)``, vectorised over the batch; returns the data (bad channels zeroed), the
        good-channel mask and the SNR (dB) of every sample."""
        cfg = self.config
        n, n_ch, T = signal_all.shape
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
        if self.bank_rows is not None:  # real noise windows of the recording
            real = cfg.noise_bank.draw(n, T, self.bank_rows, rng)
            noise = self._mix(noise, real, rng.uniform(*cfg.bank_noise_fraction, size=n))
        if cfg.brain_noise_fraction[1] > 0:  # background activity through the lead field
            bg = brain_noise(self.gain_flat, n, T, n_sources=cfg.brain_noise_sources,
                             exponent=cfg.brain_noise_exponent, rng=rng)
            noise = self._mix(noise, bg, rng.uniform(*cfg.brain_noise_fraction, size=n))
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
        return (signal + noise) * good[:, :, None], good, snr

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


def _check_ensemble(ensemble: Any, leadfield: LeadField) -> list[LeadField]:
    """The members of a forward ensemble, checked against the simulator's lead field."""
    members = list(getattr(ensemble, "members", ensemble))
    if not members:
        raise ValueError("the forward ensemble is empty.")
    src_hash = leadfield.source_space.hash()
    for k, lf in enumerate(members):
        validate_type(lf, LeadField, f"ensemble member {k}", "a deepesi LeadField")
        if list(lf.ch_names) != list(leadfield.ch_names):
            raise ValueError(
                f"ensemble member {k} has other channels than the lead field; pick both alike "
                "(ForwardEnsemble.pick / pick_types)."
            )
        if lf.source_space.hash() != src_hash:
            raise ValueError(f"ensemble member {k} has another source space than the lead field.")
    return members


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
    """The independent random stream of one batch (same arguments → same stream).

    Parameters
    ----------
    seed, epoch, rank, index : int
        The run's seed, the epoch, the process rank (DistributedDataParallel) and the batch index.

    Returns
    -------
    numpy.random.Generator
        Seeded with ``SeedSequence([seed, epoch, rank, index])``.
    """
    return np.random.default_rng(
        np.random.SeedSequence([int(seed), int(epoch), int(rank), int(index)])
    )


@progress_to_verbose
@verbose
def simulate_to_hdf5(
    leadfield: LeadField,
    path: str | os.PathLike,
    n: int,
    config: SimulationConfig | None = None,
    seed: int = 0,
    *,
    chunk: int = 1024,
    overwrite: bool = False,
    verbose: bool | str | int | None = None,
) -> Path:
    """Simulate ``n`` samples in chunks and write them to an HDF5 file (atomically).

    Chunk ``b`` uses the stream :func:`batch_seed` ``(seed, 0, 0, b)``, so a file is reproducible.

    Parameters
    ----------
    leadfield : LeadField
        Forward model.
    path : path-like
        Destination ``.h5`` file (read it with :func:`~deepesi.simulation.read_simulation`).
    n : int
        Number of samples.
    config : SimulationConfig | None
        What to simulate (defaults if None).
    seed : int
        Random seed.
    chunk : int
        Samples simulated and written at a time.
    overwrite : bool
        Replace an existing file (otherwise FileExistsError).
    verbose : bool | str | int | None
        Log level for the call; the progress bar is shown at INFO.

    Returns
    -------
    Path
        The written file.
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
        for b in progress(range(n_chunks), desc="simulate", unit="chunk"):
            m = min(chunk, n - b * chunk)
            _h5_append(f, sim.simulate(m, batch_seed(seed, 0, 0, b)))
    return Path(path)
