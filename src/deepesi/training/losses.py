"""What the networks learn: the input/target normalisation shared by training and prediction,
the training losses and the learning-rate schedule.

Input: each channel is divided by the RMS gain of its sensor type (EEG, mag, grad become
commensurate) or whitened, then each sample (window) by its maximum absolute value. Target: the
true map (moment norm per source point, at the window's centre sample) divided by its maximum.
The net therefore predicts the *shape* of the map.
"""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F

__all__ = ["LOSSES", "cross_entropy_loss", "map_loss", "normalise_input", "normalise_target"]


def normalise_input(x: torch.Tensor, transform: torch.Tensor) -> torch.Tensor:
    """(batch, n_ch, n_times) SI data → the net's input.

    Parameters
    ----------
    x : Tensor, shape (batch, n_ch, n_times)
        Sensor data (V, T, T/m).
    transform : Tensor, shape (n_ch,) or (n_ch, n_ch)
        Channel scales (the data are divided by them) or a whitener (applied to them).

    Returns
    -------
    Tensor
        Scaled or whitened data, each sample divided by its maximum absolute value.
    """
    x = x / transform[None, :, None] if transform.ndim == 1 else torch.matmul(transform, x)
    peak = x.abs().amax(dim=(1, 2), keepdim=True)
    return x / torch.clamp(peak, min=torch.finfo(x.dtype).tiny)


def normalise_target(y: torch.Tensor) -> torch.Tensor:
    """(batch, n_src) moment norms → divided by each sample's maximum (0..1).

    Parameters
    ----------
    y : Tensor, shape (batch, n_src)
        Target maps (A·m, ≥ 0).

    Returns
    -------
    Tensor
        The maps scaled to a peak of 1 (all-zero maps stay zero).
    """
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
