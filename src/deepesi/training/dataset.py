"""The training data pipeline: simulated batches streamed to a torch ``DataLoader``, and the
Gaussian smoothing of the target maps that the cross-entropy loss trains on."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from scipy import sparse
from torch.utils.data import IterableDataset, get_worker_info

from ..forward.leadfield import LeadField
from ..simulation import SimulatedBatch, SimulationConfig, Simulator, batch_seed

__all__ = ["SimulatedDataset", "smooth_target", "smoothing_kernel"]


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


class SimulatedDataset(IterableDataset):
    """On-the-fly training batches for a torch ``DataLoader`` (use ``batch_size=None``).

    Each item is a whole batch ``(data, target)`` of float32 tensors, ``data`` of shape
    ``(batch_size, n_ch, n_times)`` and ``target`` ``(batch_size, n_src, n_times)`` (A·m), or with
    ``target_sample`` set, only that sample's map ``(batch_size, n_src)``, smoothed by
    ``target_kernel`` when given (done in the worker, off the training process). Batch ``b`` of
    epoch ``e`` on process ``rank`` is drawn from :func:`~deepesi.simulation.batch_seed` ``(seed,
    e, rank, b)``, so the stream is reproducible and independent of the number of workers (worker
    ``w`` of ``W`` produces batches ``w, w + W, ...``; a DataLoader interleaves them back in
    order).

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
    ensemble : ForwardEnsemble | list of LeadField | None
        Lead fields of the same channels and source space; each sample's signal goes through
        one of them drawn at random (:class:`~deepesi.simulation.Simulator`).
    simulator : object | None
        A prepared simulator with ``simulate(n, seed, map_samples, sparse_maps=)`` and
        ``precompute_patches()`` to draw from instead (e.g. the random-cap
        :class:`~deepesi.simulation.caps.CapFreeSimulator`); None: a :class:`Simulator` of
        ``leadfield``, ``config`` and ``ensemble``.
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
        ensemble=None,
        simulator=None,
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
        self._sim = (Simulator(leadfield, self.config, ensemble=ensemble) if simulator is None
                     else simulator)
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

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        info = get_worker_info()
        wid, nw = (0, 1) if info is None else (info.id, info.num_workers)
        for b in range(wid, self.n_batches, nw):
            sb = self.batch(b)
            if self.target_sample is None:
                yield torch.from_numpy(sb.data), torch.from_numpy(sb.sources)
            else:
                y = smooth_target(sb.sources[0], self.target_kernel)
                yield torch.from_numpy(sb.data), torch.from_numpy(y)
