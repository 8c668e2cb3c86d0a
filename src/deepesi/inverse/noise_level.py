"""The noise of a recording measured on its own pre-stimulus baseline.

A source-set fit decides the number of sources against the noise level: the whitened data's
noise must have unit variance per dimension and the window's samples must be counted by how
many of them are independent. Both are assumptions about the noise covariance (its scale, the
``nave`` the average was made of) and about the filtering. An evoked response carries a check
of both: its pre-stimulus samples are noise as the recording has it. On the MNE sample
auditory average (nave 9) the baseline whitened by the noise covariance / 9 has a variance of
3.9 (EEG) and 4.5 (MEG) per dimension, not 1, and neighbouring samples correlate at 0.8 /
0.55: counted as given, that noise passes for three or four sources.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import mne
import numpy as np

__all__ = ["BaselineNoise", "baseline_noise", "effective_samples_from_correlation",
           "noise_sentence"]

#: Fewest pre-stimulus samples a measurement of the noise is made from.
MIN_BASELINE_SAMPLES = 20


def effective_samples_from_correlation(rho: np.ndarray, n: int) -> float:
    """Independent samples in ``n`` consecutive samples of noise with autocorrelation ``rho``.

    The participation ratio of the window's temporal correlation matrix ``C_ij =
    rho(|i - j|)``: ``(tr C)² / tr(C²) = n² / Σ_ij rho(|i - j|)²``, ``n`` for white noise, 1
    for a constant.

    Parameters
    ----------
    rho : ndarray, shape (n_lags,)
        Autocorrelation at lags 0, 1, ... (``rho[0] = 1``); lags past its end count as 0.
    n : int
        Samples in the window.

    Returns
    -------
    float
        Between 1 and ``n``.
    """
    n = int(n)
    r = np.zeros(n)
    k = min(n, len(rho))
    r[:k] = np.asarray(rho, float)[:k]
    lags = np.abs(np.arange(n)[:, None] - np.arange(n)[None, :])
    total = float(np.sum(r[lags] ** 2))
    return float(min(max(n * n / total, 1.0), n)) if total > 0 else float(n)


@dataclass
class BaselineNoise:
    """The whitened noise of a recording's baseline.

    Attributes
    ----------
    variance : float
        Mean variance per whitened dimension (1 when the noise covariance and ``nave`` are
        right in scale).
    autocorrelation : ndarray
        Its autocorrelation at lags 0, 1, ... (over channels and samples).
    n_samples : int
        Baseline samples it was measured on.
    """

    variance: float
    autocorrelation: np.ndarray
    n_samples: int

    def effective_samples(self, n: int) -> float:
        """Independent noise samples in a window of ``n`` samples."""
        return effective_samples_from_correlation(self.autocorrelation, n)

    def to_dict(self, n: int | None = None) -> dict:
        out = {"baseline_samples": int(self.n_samples),
               "variance_ratio": round(float(self.variance), 3),
               "lag1_correlation": round(float(self.autocorrelation[1]), 3)
               if len(self.autocorrelation) > 1 else None}
        if n is not None:
            out["independent_samples"] = round(self.effective_samples(n), 2)
        return out


def baseline_noise(inst: Any, ch_names: list[str], whitener: np.ndarray,
                   max_lag: int = 64) -> BaselineNoise | None:
    """Measure the whitened noise on the pre-stimulus samples (times < 0) of an average.

    Parameters
    ----------
    inst : mne.Evoked | mne.Epochs | mne.io.Raw
        The recording (Epochs are averaged first, as localization does). Raw data have no
        stimulus, hence no baseline: None.
    ch_names : list of str
        The channels the whitener's columns refer to, in order.
    whitener : ndarray, shape (n_w, n_channels)
        Whitener of the average's noise (the noise covariance / nave).
    max_lag : int
        Largest lag of the autocorrelation.

    Returns
    -------
    BaselineNoise | None
        None when the recording has fewer than ``MIN_BASELINE_SAMPLES`` samples before 0 s.
    """
    if isinstance(inst, mne.BaseEpochs):
        inst = inst.average(picks=ch_names)
    if not isinstance(inst, mne.Evoked):
        return None
    pre = np.flatnonzero(inst.times < 0)
    if len(pre) < MIN_BASELINE_SAMPLES:
        return None
    index = {c: i for i, c in enumerate(inst.ch_names)}
    if any(c not in index for c in ch_names):
        return None
    x = np.asarray(whitener, float) @ inst.data[[index[c] for c in ch_names]][:, pre]
    x = x - x.mean(axis=1, keepdims=True)
    energy = float(np.sum(x**2))
    if not np.isfinite(energy) or energy <= 0:
        return None
    lags = min(int(max_lag), x.shape[1] - 1)
    rho = np.array([float(np.sum(x[:, k:] * x[:, : x.shape[1] - k])) / energy
                    for k in range(lags + 1)])
    # the whitener's rows are its dimensions: its rank when it has null rows
    n_dims = int(np.sum(np.linalg.norm(whitener, axis=1) > 0)) or x.shape[0]
    variance = energy / (n_dims * x.shape[1]) * x.shape[1] / max(x.shape[1] - 1, 1)
    return BaselineNoise(variance, rho, x.shape[1])


def noise_sentence(noise: dict | None) -> str:
    """One line on the noise a source set was counted against (its ``fit['sources']['noise']``
    record); '' without one."""
    if not noise:
        return ""
    if noise.get("source") == "baseline":
        return (f"noise: measured on {noise['baseline_samples']} baseline samples, "
                f"{noise['variance_ratio']:.2f}x the variance of the noise covariance / nave, "
                f"{noise['independent_samples']:.1f} independent samples in the window")
    return ("noise: the noise covariance / nave (no baseline), "
            f"{noise['independent_samples']:.1f} independent samples in the window")
