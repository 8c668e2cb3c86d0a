"""The checks of :func:`deepesi.training.train_model`'s options and the net's input transform
(per-type scale or noise whitener), both decided before any training starts."""

from __future__ import annotations

import numpy as np

from .._validation import check_option, validate_type
from ..forward.leadfield import LeadField
from ..nets import type_scales
from ..simulation import SimulationConfig
from ..whitening import make_whitener, ssp_projector
from .losses import LOSSES


def check_options(
    leadfield: LeadField, config: SimulationConfig | None, *, epochs: int, batch_size: int,
    batches_per_epoch: int, n_val: int, patience: int, lr: float, loss: str, schedule: str,
    precision: str, max_minutes: float | None, whiten: bool | None,
    target_smoothing_mm: float | None, threads: int | None = None,
) -> tuple[SimulationConfig, bool, float]:
    """Check train_model's options; return the config, whether to whiten and the smoothing σ."""
    validate_type(leadfield, LeadField, "leadfield", "a LeadField")
    config = SimulationConfig() if config is None else config
    validate_type(config, SimulationConfig, "config", "a SimulationConfig")
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
    check_option("schedule", schedule, ("cosine", "plateau"))
    check_option("precision", precision, ("float32", "bfloat16"))
    if max_minutes is not None and not max_minutes > 0:
        raise ValueError(f"max_minutes must be > 0 or None, got {max_minutes!r}.")
    if threads is not None and (not isinstance(threads, int | np.integer) or threads < 1):
        raise ValueError(f"threads must be a positive integer or None, got {threads!r}.")
    if whiten is None:
        whiten = config.noise_cov is not None
    if whiten and config.noise_cov is None:
        raise ValueError(
            "whiten=True needs the noise covariance in config.noise_cov (SimulationConfig("
            "noise_cov=...)), e.g. mne.read_cov of the recording's baseline or empty room."
        )
    if target_smoothing_mm is None:
        target_smoothing_mm = float(leadfield.source_space.spacing) * 1e3
    if not (np.isfinite(target_smoothing_mm) and target_smoothing_mm >= 0):
        raise ValueError(f"target_smoothing_mm must be >= 0, got {target_smoothing_mm!r}.")
    if loss != "ce":
        target_smoothing_mm = 0.0
    return config, bool(whiten), target_smoothing_mm


def input_transform(
    leadfield: LeadField, config: SimulationConfig, whiten: bool
) -> tuple[np.ndarray, np.ndarray | None]:
    """Per-channel scale (RMS gain of the channel's type) and, with ``whiten``, the whitener."""
    scales = type_scales(leadfield)
    channel_scale = np.array([scales[t] for t in leadfield.ch_types])
    whitener = None
    if whiten:
        whitener = make_whitener(
            config.noise_cov, leadfield.ch_names, leadfield.ch_types,
            average_reference=config.average_reference, reg=config.noise_reg,
            projector=ssp_projector(config.projs, leadfield.ch_names),
        )
    return channel_scale, whitener
