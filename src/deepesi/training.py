"""Training of the source-imaging nets on simulated data: progress, validation, checkpoints, DDP.

:func:`train_model` trains a network (default the 4LCNN) on batches that
:class:`~deepesi.simulate.SimulatedDataset` generates on the fly, validates on a fixed simulated set
every epoch, keeps the best weights, stops early, writes an atomic checkpoint after every epoch
(``<out>.ckpt``) from which ``resume=True`` continues bit-for-bit, and finally saves the model
(weights + everything needed to use it safely) to ``out_path``. Under ``torchrun`` (environment
``WORLD_SIZE`` > 1) it trains data-parallel with DistributedDataParallel: every rank draws its own
reproducible sample stream, gradients are averaged, rank 0 writes the files.

Normalisation (shared by training and :meth:`TrainedModel.predict`)
-------------------------------------------------------------------
Input: each channel is divided by the RMS gain of its sensor type (EEG, mag, grad become
commensurate), then each sample (window) by its maximum absolute value. Target: the true map
(moment norm per source point, at the window's centre sample) divided by its maximum. The net
therefore predicts the *shape* of the map; :meth:`TrainedModel.predict` restores A·m with a small
least-squares fit on the predicted support when given the lead field.
"""

from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from ._io import atomic_path, check_overwrite
from ._progress import progress as _progress
from ._validation import check_file
from .forward.leadfield import LeadField
from .nets import SourceNet, build_net, net_from_spec, type_scales
from .simulate import (
    SimulatedDataset,
    SimulationConfig,
    Simulator,
    batch_seed,
    smooth_target,
    smoothing_kernel,
)
from .whitening import make_whitener, ssp_projector

logger = logging.getLogger(__name__)

MODEL_FORMAT = "deepesi-model"
MODEL_VERSION = 1
_VAL_EPOCH = 1_000_000  # epoch index of the validation stream (never a training epoch)


# ---------------------------------------------------------------------------- normalisation
def normalise_input(x: torch.Tensor, transform: torch.Tensor) -> torch.Tensor:
    """(batch, n_ch, n_times) SI data → the net's input: per-type scaled (``transform`` a vector
    of channel scales) or whitened (``transform`` an (n_ch, n_ch) whitener), then divided by each
    sample's max |value|."""
    x = x / transform[None, :, None] if transform.ndim == 1 else torch.matmul(transform, x)
    peak = x.abs().amax(dim=(1, 2), keepdim=True)
    return x / torch.clamp(peak, min=torch.finfo(x.dtype).tiny)


def normalise_target(y: torch.Tensor) -> torch.Tensor:
    """(batch, n_src) moment norms → divided by each sample's maximum (0..1)."""
    peak = y.amax(dim=1, keepdim=True)
    return y / torch.clamp(peak, min=torch.finfo(y.dtype).tiny)


def map_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    active_weight: float = 10.0,
    cosine_weight: float = 0.1,
) -> torch.Tensor:
    """Weighted MSE (active points weighted ``1 + active_weight * target``) + cosine distance.

    Both terms are on normalised maps (0..1). The weighting counters the sparsity of the maps (most
    points are inactive); the cosine term rewards the right *pattern* regardless of scale.
    """
    w = 1.0 + active_weight * target
    mse = (w * (pred - target) ** 2).mean()
    cos = F.cosine_similarity(pred, target, dim=1, eps=1e-8)
    return mse + cosine_weight * (1.0 - cos).mean()


def cross_entropy_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy between the softmax over the sources and the target map as a distribution.

    ``target`` (batch, n_src) ≥ 0 is normalised to sum to one per sample, so a focal source is a
    one-hot class and an extended or multi-source map a soft label (moment-weighted). Unlike the
    map loss, this rewards ranking the true source above every other point, which is what peak
    localization needs; it trains several times faster to the same error (docs/network.md).
    """
    p = target / torch.clamp(target.sum(dim=1, keepdim=True), min=torch.finfo(target.dtype).tiny)
    return -(p * F.log_softmax(logits, dim=1)).sum(dim=1).mean()


#: Training losses by name, and the output activation each implies at inference.
LOSSES = {"ce": (cross_entropy_loss, "softmax"), "map": (map_loss, "relu")}


def _lr_factor(progress: float, warmup: float = 0.03) -> float:
    """Learning-rate multiplier: linear warm-up, then cosine decay to 2 % at ``progress`` = 1."""
    progress = min(max(progress, 0.0), 1.0)
    if progress < warmup:
        return 0.1 + 0.9 * progress / warmup
    x = (progress - warmup) / (1 - warmup)
    return 0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * x))


# ---------------------------------------------------------------------------- the model object
@dataclass
class TrainedModel:
    """A trained network with what it takes to use it safely.

    Attributes
    ----------
    net : SourceNet
        The network (eval mode).
    ch_names, ch_types : list of str
        Channels the net expects, in order.
    channel_scale : ndarray, shape (n_ch,)
        Per-channel input scale (RMS gain of the channel's type).
    whitener : ndarray, shape (n_ch, n_ch) | None
        Noise whitener applied to the input instead of ``channel_scale`` (nets trained with
        ``whiten``; :mod:`deepesi.whitening`). None: the input is scaled per type.
    leadfield_hash, source_space_hash : str
        Hashes of the lead field and source space the net was trained for.
    sim_config : dict
        The :class:`~deepesi.simulate.SimulationConfig` used (as a dict).
    history : list of dict
        Per-epoch training/validation loss.
    meta : dict
        Training settings and timings.
    """

    net: SourceNet
    ch_names: list[str]
    ch_types: list[str]
    channel_scale: np.ndarray
    leadfield_hash: str
    source_space_hash: str
    sim_config: dict
    history: list = field(default_factory=list)
    meta: dict = field(default_factory=dict)
    whitener: np.ndarray | None = None

    @property
    def n_sources(self) -> int:
        """Number of source points the net predicts."""
        return self.net.n_sources

    def check_leadfield(self, leadfield: LeadField) -> None:
        """Raise ValueError unless ``leadfield`` is the one the model was trained for."""
        if not isinstance(leadfield, LeadField):
            raise TypeError(f"expected a LeadField, got {type(leadfield).__name__}.")
        if leadfield.source_space.hash() != self.source_space_hash:
            raise ValueError(
                "this model was trained for another source space (hash "
                f"{self.source_space_hash[:12]} vs {leadfield.source_space.hash()[:12]}, "
                f"{self.n_sources} vs {leadfield.n_sources} points); train a model for this "
                "source space (deepesi train) or use the matching forward."
            )
        if list(leadfield.ch_names) != self.ch_names:
            self._channel_error(list(leadfield.ch_names))
        if leadfield.hash() != self.leadfield_hash:
            raise ValueError(
                "this model was trained on a different lead field (same channels and sources, "
                f"different gain: hash {self.leadfield_hash[:12]} vs {leadfield.hash()[:12]}); "
                "retrain for this head model/conductivities."
            )

    def _channel_error(self, names: list[str]) -> None:
        missing = [n for n in self.ch_names if n not in names]
        extra = [n for n in names if n not in self.ch_names]
        raise ValueError(
            f"channel mismatch: the model expects {len(self.ch_names)} channels "
            f"({', '.join(self.ch_names[:5])}{' ...' if len(self.ch_names) > 5 else ''}); "
            f"missing {missing[:10]}{' ...' if len(missing) > 10 else ''}, "
            f"not in the model {extra[:10]}{' ...' if len(extra) > 10 else ''}. Pick/reorder the "
            "data channels to the model's ch_names (bad channels: pass them as zeros), or train a "
            "model for this montage."
        )

    def predict(
        self,
        data: np.ndarray,
        *,
        ch_names: list[str] | None = None,
        leadfield: LeadField | None = None,
        batch_size: int = 4096,
        precision: str | None = None,
    ) -> np.ndarray:
        """Source maps for sensor data.

        Parameters
        ----------
        data : ndarray, shape (n_channels, n_times) or (n_channels,)
            Sensor data in SI units (V, T, T/m), EEG average-referenced.
        ch_names : list of str | None
            Names of the rows of ``data``; they are reordered to the model's channels (extra rows
            are dropped; a missing model channel is an error). None means the model's order.
        leadfield : LeadField | None
            The training lead field. If given (its hash is checked), each time sample's map is
            scaled to A·m by a least-squares fit of the data on the predicted support; otherwise
            each sample's map (maximum ≈ 1) is multiplied by the sample's max |data / RMS gain of
            the channel type|, a rough A·m scale that keeps relative amplitudes over time.
        batch_size : int
            Time samples per forward pass.
        precision : {'float32', 'bfloat16'} | None
            Arithmetic of the forward pass; None (default): the precision the net was trained in
            (``meta['precision']``), so a net trained under bfloat16 autocast runs as it learned,
            about 1.3–1.5× faster on CPUs with AVX-512 BF16. The maps are float32 either way.

        Returns
        -------
        ndarray, shape (n_sources, n_times)
            Non-negative dipole-moment norm per source point.
        """
        x = np.asarray(data, dtype=np.float64)
        squeeze = x.ndim == 1
        if squeeze:
            x = x[:, None]
        if x.ndim != 2:
            raise ValueError(f"data must have shape (n_channels, n_times), got {x.shape}.")
        if ch_names is not None:
            ch_names = list(ch_names)
            if len(ch_names) != len(x):
                raise ValueError(f"{len(ch_names)} ch_names for {len(x)} data rows.")
            index = {n: i for i, n in enumerate(ch_names)}
            if any(n not in index for n in self.ch_names):
                self._channel_error(ch_names)
            x = x[[index[n] for n in self.ch_names]]
        elif len(x) != len(self.ch_names):
            raise ValueError(
                f"data has {len(x)} channels but the model expects {len(self.ch_names)}; pass "
                "ch_names=... to match rows by name."
            )
        if not np.isfinite(x).all():
            raise ValueError("data contains NaN/Inf; interpolate or zero bad channels first.")
        if leadfield is not None:
            self.check_leadfield(leadfield)
        if precision is None:
            precision = self.meta.get("precision", "float32")
        if precision not in ("float32", "bfloat16"):
            raise ValueError(f"precision must be 'float32' or 'bfloat16', got {precision!r}.")
        device = next(self.net.parameters()).device
        w = self.net.n_times
        n_t = x.shape[1]
        xs = (x / self.channel_scale[:, None]).astype(np.float32)  # per-type scaling, once
        windows = _windows(xs, w)  # (n_t, ch, w), a view
        # the net's input: the same windows, or whitened ones (amplitude still from xs)
        net_windows = windows if self.whitener is None else _windows(
            (self.whitener @ x).astype(np.float32), w
        )
        out_t = np.empty((n_t, self.n_sources), np.float32)  # filled row-wise, returned as .T
        out_view = torch.from_numpy(out_t)
        tiny = torch.finfo(torch.float32).tiny
        self.net.eval()
        with torch.inference_mode(), torch.autocast(
            device.type, dtype=torch.bfloat16, enabled=precision == "bfloat16"
        ):
            for start in range(0, n_t, batch_size):
                xb = torch.from_numpy(np.ascontiguousarray(windows[start : start + batch_size]))
                peak = xb.abs().amax(dim=(1, 2))
                if self.whitener is not None:
                    xb = torch.from_numpy(
                        np.ascontiguousarray(net_windows[start : start + batch_size])
                    )
                scale = xb.abs().amax(dim=(1, 2)) if self.whitener is not None else peak
                maps = self.net(xb / torch.clamp(scale, min=tiny)[:, None, None])
                dest = out_view[start : start + len(xb)]
                if leadfield is None:
                    torch.mul(maps, peak[:, None], out=dest)
                else:
                    dest.copy_(maps)
        out = out_t.T
        if leadfield is not None:
            out = _scale_to_moment(out, x, leadfield)
        return out[:, 0] if squeeze else out

    def save(
        self,
        path: str | os.PathLike,
        overwrite: bool = False,
        *,
        half: bool = False,
        int8: bool = False,
    ) -> Path:
        """Write the model file (torch format, atomic).

        ``half=True`` stores the large weight matrices (≥ 10,000 values) in float16, half the
        file size; ``int8=True`` stores the large 2-D ones as int8 with one float32 scale per row
        (max |row| / 127), a quarter of the size, e.g. for models shipped in the package. Both
        are cast back to float32 when loaded.
        """
        d = self._to_dict()
        large = {k for k, v in d["state_dict"].items()
                 if v.is_floating_point() and v.numel() >= 10_000}
        if int8:
            scales = {}
            for k in sorted(large):
                v = d["state_dict"][k]
                if v.ndim == 2:
                    scale = torch.clamp(v.abs().amax(dim=1), min=1e-30) / 127.0
                    d["state_dict"][k] = torch.round(v / scale[:, None]).to(torch.int8)
                    scales[k] = scale.float()
            d["int8_scales"] = scales
            large -= set(scales)
        if half or int8:
            for k in large:
                d["state_dict"][k] = d["state_dict"][k].half()
        with atomic_path(path, overwrite=overwrite) as tmp:
            torch.save(d, tmp)
        return Path(path)

    def _to_dict(self) -> dict:
        return {
            "format": MODEL_FORMAT,
            "format_version": MODEL_VERSION,
            "net_name": self.net.name,
            "n_channels": self.net.n_channels,
            "n_sources": self.net.n_sources,
            "init_kwargs": self.net.init_kwargs,
            "output": self.net.output,
            "state_dict": {k: v.detach().cpu() for k, v in self.net.state_dict().items()},
            "ch_names": list(self.ch_names),
            "ch_types": list(self.ch_types),
            "channel_scale": [float(s) for s in self.channel_scale],
            "leadfield_hash": self.leadfield_hash,
            "source_space_hash": self.source_space_hash,
            "sim_config": self.sim_config,
            "history": self.history,
            "meta": self.meta,
            "whitener": None if self.whitener is None else torch.from_numpy(
                np.asarray(self.whitener, np.float64)
            ),
        }

    @classmethod
    def _from_dict(cls, d: dict) -> TrainedModel:
        net = net_from_spec(d["net_name"], d["n_channels"], d["n_sources"], d["init_kwargs"])
        state = dict(d["state_dict"])
        for k, scale in d.get("int8_scales", {}).items():  # files saved with int8=True
            state[k] = state[k].float() * scale[:, None]
        net.load_state_dict(state)
        output = d.get("output", "relu")  # files written before the 'ce' loss existed
        if output not in net.OUTPUTS:
            raise ValueError(f"model file has an unknown output activation {output!r}.")
        net.output = output
        net.eval()
        return cls(
            net,
            list(d["ch_names"]),
            list(d["ch_types"]),
            np.asarray(d["channel_scale"], float),
            d["leadfield_hash"],
            d["source_space_hash"],
            d["sim_config"],
            list(d["history"]),
            dict(d["meta"]),
            None if d.get("whitener") is None else np.asarray(d["whitener"], float),
        )

    def __repr__(self) -> str:
        white = " | whitened input" if self.whitener is not None else ""
        return (
            f"<TrainedModel {self.net.name} | {len(self.ch_names)} channels → {self.n_sources} "
            f"sources | {self.net.n_parameters():,} parameters{white}>"
        )


def _windows(x: np.ndarray, w: int) -> np.ndarray:
    """(n_ch, n_t) → (n_t, n_ch, w) view: the window of ``w`` samples centred on every sample
    (edges reflected; ``w = 1``: the samples themselves)."""
    if w == 1:
        return x.T[:, :, None]
    n_t, half = x.shape[1], w // 2
    xp = np.pad(x, ((0, 0), (half, w - 1 - half)), mode="reflect" if n_t > w else "edge")
    return np.transpose(np.lib.stride_tricks.sliding_window_view(xp, w, axis=1), (1, 0, 2))


def load_model(path: str | os.PathLike, leadfield: LeadField | None = None) -> TrainedModel:
    """Read a model written by :func:`train_model` / :meth:`TrainedModel.save`.

    Parameters
    ----------
    path : path-like
        Model file (``.pt``).
    leadfield : LeadField | None
        If given, the model is checked against it (ValueError on any mismatch).
    """
    path = check_file(path, "model file")
    try:
        d = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ValueError(f"{path} is not a deepesi model file: {err}") from err
    if not isinstance(d, dict) or d.get("format") != MODEL_FORMAT:
        raise ValueError(f"{path} is not a deepesi model file (is it a training checkpoint?).")
    if d["format_version"] > MODEL_VERSION:
        raise ValueError(f"{path} was written by a newer deepesi (format {d['format_version']}).")
    model = TrainedModel._from_dict(d)
    if leadfield is not None:
        model.check_leadfield(leadfield)
    return model


def _scale_to_moment(
    maps: np.ndarray,
    x: np.ndarray,
    leadfield: LeadField,
    rel_threshold: float = 0.5,
    max_points: int = 32,
) -> np.ndarray:
    """Scale each column of ``maps`` to A·m by fitting the data with dipoles on its support."""
    src = leadfield.source_space
    gain = leadfield.gain
    types = np.asarray(leadfield.ch_types)
    eeg = types == "eeg"
    if eeg.any() and leadfield.eeg_reference != "average":
        gain = gain.copy()
        gain[eeg] -= gain[eeg].mean(axis=0, keepdims=True)
    w = np.ones(len(types))
    for t, s in type_scales(leadfield).items():
        w[types == t] = 1.0 / s
    out = np.zeros_like(maps)
    for t in range(maps.shape[1]):
        p = maps[:, t]
        if p.max() <= 0:
            continue
        sup = np.flatnonzero(p >= rel_threshold * p.max())
        sup = sup[np.argsort(-p[sup])][:max_points]
        cols, owner = [], []
        for i in sup:
            if src.free_ori[i]:
                cols.extend(gain[:, i, k] for k in range(3))
                owner.extend([i] * 3)
            else:
                cols.append(gain[:, i, :] @ src.normals[i])
                owner.append(i)
        a = np.stack(cols, 1) * w[:, None]
        b = x[:, t] * w
        lam = 1e-6 * np.trace(a.T @ a) / a.shape[1]
        q = np.linalg.solve(a.T @ a + lam * np.eye(a.shape[1]), a.T @ b)
        owner = np.asarray(owner)
        amp = np.array([np.linalg.norm(q[owner == i]) for i in sup])
        s = amp.sum() / p[sup].sum()
        out[:, t] = p * s
    return out


# ---------------------------------------------------------------------------- distributed helpers
def _dist_env() -> tuple[int, int, int]:
    """(rank, world_size, local_rank) from torchrun's environment (0, 1, 0 if absent)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return (
            torch.distributed.get_rank(),
            torch.distributed.get_world_size(),
            int(os.environ.get("LOCAL_RANK", 0)),
        )
    world = int(os.environ.get("WORLD_SIZE", 1))
    return int(os.environ.get("RANK", 0)), world, int(os.environ.get("LOCAL_RANK", 0))


def _pick_device(device: str | torch.device, local_rank: int) -> torch.device:
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device(f"cuda:{local_rank % torch.cuda.device_count()}")
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as err:
        raise ValueError(
            f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}."
        ) from err
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' requested but no CUDA GPU is available; use device='auto'.")
    return dev


# ---------------------------------------------------------------------------- training
def _checkpoint_path(out_path: Path) -> Path:
    return out_path.with_name(out_path.name + ".ckpt")


def train_model(
    leadfield: LeadField,
    config: SimulationConfig | None = None,
    out_path: str | os.PathLike = "model.pt",
    *,
    net: str = "4lcnn",
    net_kwargs: dict | None = None,
    epochs: int = 50,
    batch_size: int = 256,
    batches_per_epoch: int = 200,
    lr: float = 1e-3,
    loss: str = "ce",
    target_smoothing_mm: float | None = None,
    schedule: str = "cosine",
    seed: int = 0,
    device: str | torch.device = "auto",
    resume: bool = False,
    progress: bool = True,
    n_val: int = 2048,
    patience: int = 6,
    num_workers: int = 0,
    max_minutes: float | None = None,
    precision: str = "float32",
    whiten: bool | None = None,
    overwrite: bool = False,
) -> TrainedModel:
    """Train a source-imaging network on data simulated on the fly from ``leadfield``.

    Parameters
    ----------
    leadfield : LeadField
        The forward model the network is for (fixes channels, source space and gain).
    config : SimulationConfig | None
        Training-data distribution (default :class:`SimulationConfig`). ``config.n_times`` is the
        network's input window.
    out_path : path-like
        Model file to write (``.pt``); the checkpoint is ``<out_path>.ckpt``.
    net : {'4lcnn', 'convdip', 'linear'}
        Architecture.
    net_kwargs : dict | None
        Architecture options.
    epochs : int
        Maximum number of epochs.
    batch_size : int
        Samples per batch (per process under DDP).
    batches_per_epoch : int
        Batches per epoch, over all processes together.
    lr : float
        Adam (peak) learning rate.
    loss : {'ce', 'map'}
        'ce': cross-entropy of the softmax over the sources against the normalised target map
        (:func:`cross_entropy_loss`; the net's output is then ``exp(z - max z)``). 'map': weighted
        MSE + cosine distance on maps normalised to a peak of 1 (:func:`map_loss`; ReLU output).
    target_smoothing_mm : float | None
        σ (mm) of the Gaussian that smooths the target maps before the cross-entropy
        (:func:`smoothing_kernel`); None uses the source grid spacing, 0 turns it off. Ignored by
        the 'map' loss.
    schedule : {'cosine', 'plateau'}
        'cosine': warm-up then cosine decay over the training budget (``epochs``, or
        ``max_minutes`` when that ends first). 'plateau': constant, halved whenever the
        validation loss stalls for 2 epochs.
    seed : int
        Seeds the initial weights, the training stream and the validation set.
    device : {'auto', 'cpu', 'cuda', 'cuda:N'} | torch.device
        'auto' uses the GPU when there is one.
    resume : bool
        Continue from ``<out_path>.ckpt`` if it exists (same lead field, net and settings).
    progress : bool
        Show progress bars.
    n_val : int
        Size of the fixed validation set.
    patience : int
        Stop after this many epochs without a validation improvement.
    num_workers : int
        DataLoader worker processes generating data (0 = in the training process).
    max_minutes : float | None
        Stop after the epoch that exceeds this wall time.
    precision : {'float32', 'bfloat16'}
        Arithmetic of the training forward pass. 'bfloat16' runs it under ``torch.autocast``
        (weights, loss and optimiser stay float32): 1.7× faster steps on CPUs with AVX-512 BF16
        and on recent GPUs, for the same accuracy per batch (docs/network.md). Validation and
        inference are float32 either way.
    whiten : bool | None
        Whiten the net's input with ``config.noise_cov`` (:func:`deepesi.whitening.make_whitener`,
        stored in the model and applied by :meth:`TrainedModel.predict`) instead of scaling it per
        sensor type. That is what makes EEG, magnetometers and gradiometers commensurate and lets
        the net see data as the classical methods do; pair it with
        ``config.snr_space='whitened'``. None (default): whiten when ``config.noise_cov`` is given.
        With ``config.projs`` the whitener also removes the recording's SSP directions.
    overwrite : bool
        Replace an existing ``out_path``.

    Returns
    -------
    TrainedModel
        The best (lowest validation loss) weights, also written to ``out_path``.
    """
    if not isinstance(leadfield, LeadField):
        raise TypeError(f"leadfield must be a LeadField, got {type(leadfield).__name__}.")
    config = SimulationConfig() if config is None else config
    if not isinstance(config, SimulationConfig):
        raise TypeError(f"config must be a SimulationConfig, got {type(config).__name__}.")
    for name, val in (
        ("epochs", epochs),
        ("batch_size", batch_size),
        ("batches_per_epoch", batches_per_epoch),
        ("n_val", n_val),
        ("patience", patience),
    ):
        if not isinstance(val, int | np.integer) or val < 1:
            raise ValueError(f"{name} must be a positive integer, got {val!r}.")
    if not lr > 0:
        raise ValueError(f"lr must be > 0, got {lr}.")
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {sorted(LOSSES)}, got {loss!r}.")
    if schedule not in ("cosine", "plateau"):
        raise ValueError(f"schedule must be 'cosine' or 'plateau', got {schedule!r}.")
    if precision not in ("float32", "bfloat16"):
        raise ValueError(f"precision must be 'float32' or 'bfloat16', got {precision!r}.")
    if max_minutes is not None and not max_minutes > 0:
        raise ValueError(f"max_minutes must be > 0 or None, got {max_minutes!r}.")
    if whiten is None:
        whiten = config.noise_cov is not None
    if whiten and config.noise_cov is None:
        raise ValueError(
            "whiten=True needs the noise covariance in config.noise_cov (SimulationConfig("
            "noise_cov=...)), e.g. mne.read_cov of the recording's baseline or empty room."
        )
    loss_fn, output = LOSSES[loss]
    if target_smoothing_mm is None:
        target_smoothing_mm = float(leadfield.source_space.spacing) * 1e3
    if not (np.isfinite(target_smoothing_mm) and target_smoothing_mm >= 0):
        raise ValueError(f"target_smoothing_mm must be >= 0, got {target_smoothing_mm!r}.")
    if loss != "ce":
        target_smoothing_mm = 0.0
    out_path = Path(out_path)
    ckpt_path = _checkpoint_path(out_path)
    if not (resume and ckpt_path.exists()):
        check_overwrite(out_path, overwrite)

    rank, world, local_rank = _dist_env()
    distributed = world > 1
    dev = _pick_device(device, local_rank)
    mixed = precision == "bfloat16"  # forward pass in bfloat16; weights, loss, Adam in float32
    if distributed and not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    is_main = rank == 0
    show = progress and is_main

    # ---- model, normalisation, data
    net_kwargs = dict(net_kwargs or {})
    torch.manual_seed(seed)
    model = build_net(net, leadfield, n_times=config.n_times, **net_kwargs).to(dev)
    model.output = output
    scales = type_scales(leadfield)
    channel_scale = np.array([scales[t] for t in leadfield.ch_types])
    whitener = None
    if whiten:
        whitener = make_whitener(
            config.noise_cov, leadfield.ch_names, leadfield.ch_types,
            average_reference=config.average_reference, reg=config.noise_reg,
            projector=ssp_projector(config.projs, leadfield.ch_names),
        )
    input_t = torch.as_tensor(
        channel_scale if whitener is None else whitener, dtype=torch.float32, device=dev
    )
    centre = config.n_times // 2
    lf_hash, src_hash = leadfield.hash(), leadfield.source_space.hash()
    settings = {
        "net": net,
        "net_kwargs": net_kwargs,
        "batch_size": batch_size,
        "batches_per_epoch": batches_per_epoch,
        "lr": lr,
        "loss": loss,
        "target_smoothing_mm": target_smoothing_mm,
        "schedule": schedule,
        "precision": precision,
        "whiten": bool(whiten),
        "seed": seed,
        "world_size": world,
        "n_val": n_val,
        "sim_config": config.to_dict(),
        "leadfield_hash": lf_hash,
    }
    per_rank = -(-batches_per_epoch // world)
    kernel = smoothing_kernel(leadfield.source_space.pos, target_smoothing_mm * 1e-3)
    dataset = SimulatedDataset(
        leadfield,
        config,
        per_rank,
        batch_size,
        seed=seed,
        rank=rank,
        target_sample=centre,
        target_kernel=kernel,
    )
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=None,
        num_workers=num_workers,
        persistent_workers=False,
        pin_memory=dev.type == "cuda",
    )
    val = Simulator(leadfield, config).simulate(n_val, batch_seed(seed, _VAL_EPOCH, 0, 0))
    val_x = normalise_input(torch.from_numpy(val.data).to(dev), input_t)
    val_y = normalise_target(
        torch.from_numpy(smooth_target(val.sources[:, :, centre], kernel)).to(dev)
    )

    train_net = model
    if distributed:
        train_net = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[dev.index] if dev.type == "cuda" else None
        )
    # fused: one kernel for all parameters (4 ms less per step on the 2-core CPU, 256 × 8,092)
    opt = torch.optim.Adam(model.parameters(), lr=lr, fused=dev.type in ("cpu", "cuda"))
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=2)

    state = {
        "epoch": 0,
        "best_val": float("inf"),
        "best_state": None,
        "bad_epochs": 0,
        "history": [],
        "elapsed": 0.0,
    }
    if resume and ckpt_path.exists():
        ck = torch.load(ckpt_path, map_location=dev, weights_only=True)
        if ck.get("settings") != settings:
            diff = sorted(k for k in settings if ck.get("settings", {}).get(k) != settings[k])
            raise ValueError(
                f"cannot resume from {ckpt_path}: it was made with different settings ({diff}). "
                "Use the same lead field and options, or start afresh (resume=False, overwrite)."
            )
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        sched.load_state_dict(ck["scheduler"])
        state = ck["state"]
        if is_main:
            logger.info("resuming from %s after epoch %d", ckpt_path, state["epoch"])
    elif resume and is_main:
        logger.info("no checkpoint at %s; starting from scratch", ckpt_path)

    t_start = time.perf_counter() - state["elapsed"]
    epoch_bar = _progress(
        range(state["epoch"], epochs),
        enabled=show,
        desc="training",
        unit="epoch",
        initial=state["epoch"],
        total=epochs,
        leave=True,
    )
    for epoch in epoch_bar:
        if state["bad_epochs"] >= patience:
            break
        train_net.train()
        dataset.set_epoch(epoch)
        total, count = 0.0, 0
        for step, (xb, yb) in enumerate(
            _progress(loader, enabled=show, desc=f"epoch {epoch + 1}", total=per_rank)
        ):
            if schedule == "cosine":
                done = (epoch + step / per_rank) / epochs
                if max_minutes is not None:
                    done = max(done, (time.perf_counter() - t_start) / (60 * max_minutes))
                for group in opt.param_groups:
                    group["lr"] = lr * _lr_factor(done)
            xb = normalise_input(xb.to(dev, non_blocking=True), input_t)
            yb = normalise_target(yb.to(dev, non_blocking=True))  # smoothed in the dataset
            opt.zero_grad(set_to_none=True)
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=mixed):
                out = train_net(xb, rectify=False)
            batch_loss = loss_fn(out.float(), yb)
            batch_loss.backward()
            opt.step()
            total, count = total + float(batch_loss.detach()), count + 1
        model.eval()
        with torch.no_grad():
            v = (
                sum(
                    float(loss_fn(model(val_x[i : i + 1024], rectify=False), val_y[i : i + 1024]))
                    * len(val_x[i : i + 1024])
                    for i in range(0, n_val, 1024)
                )
                / n_val
            )
        if schedule == "plateau":
            sched.step(v)
        improved = v < state["best_val"] - 1e-6
        if improved:
            state["best_val"] = v
            state["best_state"] = {
                k: t.detach().cpu().clone() for k, t in model.state_dict().items()
            }
            state["bad_epochs"] = 0
        else:
            state["bad_epochs"] += 1
        state["epoch"] = epoch + 1
        state["elapsed"] = time.perf_counter() - t_start
        state["history"].append(
            {
                "epoch": epoch + 1,
                "train_loss": total / max(count, 1),
                "val_loss": v,
                "lr": opt.param_groups[0]["lr"],
                "elapsed_s": state["elapsed"],
            }
        )
        epoch_bar.set_postfix(train=f"{total / max(count, 1):.4f}", val=f"{v:.4f}")
        if is_main:
            with atomic_path(ckpt_path, overwrite=True) as tmp:
                torch.save(
                    {
                        "settings": settings,
                        "model": model.state_dict(),
                        "optimizer": opt.state_dict(),
                        "scheduler": sched.state_dict(),
                        "state": state,
                    },
                    tmp,
                )
        if max_minutes is not None and state["elapsed"] > 60 * max_minutes:
            break
    epoch_bar.close()

    if state["best_state"] is not None:
        model.load_state_dict(state["best_state"])
    model = model.cpu().eval()
    result = TrainedModel(
        net=model,
        ch_names=list(leadfield.ch_names),
        ch_types=list(leadfield.ch_types),
        channel_scale=channel_scale,
        leadfield_hash=lf_hash,
        source_space_hash=src_hash,
        sim_config=config.to_dict(),
        history=state["history"],
        whitener=whitener,
        meta={
            "epochs_run": state["epoch"],
            "best_val_loss": state["best_val"],
            "train_time_s": state["elapsed"],
            "device": str(dev),
            "world_size": world,
            "batch_size": batch_size,
            "batches_per_epoch": batches_per_epoch,
            "lr": lr,
            "loss": loss,
            "target_smoothing_mm": target_smoothing_mm,
            "schedule": schedule,
            "precision": precision,
            "whiten": bool(whiten),
            "seed": seed,
            "deepesi_version": _version(),
        },
    )
    if is_main:
        result.save(out_path, overwrite=True)  # existence was checked before training
    if distributed:
        torch.distributed.barrier()
    return result


def _version() -> str:
    from . import __version__

    return __version__
