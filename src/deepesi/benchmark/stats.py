"""The statistic of the benchmark's tables and figures: medians with bootstrap intervals."""

from __future__ import annotations

import numpy as np

__all__ = ["bootstrap_median"]


def bootstrap_median(
    values: np.ndarray, n_boot: int, ci: float, rng: np.random.Generator
) -> tuple[float, float, float]:
    """Median of the finite values with a percentile-bootstrap confidence interval.

    Parameters
    ----------
    values : array
        Values (NaN ignored).
    n_boot : int
        Resamples with replacement, each of the size of the finite values.
    ci : float
        Confidence level, e.g. 0.95 for the 2.5 and 97.5 percentiles of the resampled medians.
    rng : numpy.random.Generator
        Random stream.

    Returns
    -------
    median, low, high : float
        NaN when there is no finite value.
    """
    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    if len(v) == 0:
        return float("nan"), float("nan"), float("nan")
    med = float(np.median(v))
    if len(v) == 1:
        return med, med, med
    boot = np.median(v[rng.integers(0, len(v), size=(int(n_boot), len(v)))], axis=1)
    a = 100 * (1 - ci) / 2
    lo, hi = np.percentile(boot, [a, 100 - a])
    return med, float(lo), float(hi)
