"""How well a trained network localizes: single focal sources simulated with a (mismatched)
test lead field, scored by the distance of the map's peak to the true source.

This is the evaluation of the shipped models (``*-evaluation.json``, made by
``scripts/build_pretrained.py --stage evaluate``) and of the training benchmarks; the test lead
field is the mismatched forward of :mod:`deepesi.simulation.mismatch`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..forward.leadfield import LeadField
from ..simulation import SimulationConfig, Simulator

__all__ = ["evaluate_single_sources"]


def evaluate_single_sources(
    model: Any,
    train_lf: LeadField,
    test_lf: LeadField,
    n: int,
    seed: int,
    snr_db: float = 10.0,
    n_times: int = 1,
) -> dict:
    """Median peak localization error of single focal sources simulated with ``test_lf``.

    Sources are drawn half in deep structures, half cortical; the true position is the test
    (off-grid) position, the estimate the training-grid point with the largest predicted value.
    ``n_times > 1``: each sample is an evoked-like window of that many samples at 250 Hz (SNR over
    the window) and the estimate is the model's map at the window's centre sample: a window net
    of that length sees exactly the window, a single-sample net the centre sample.

    Parameters
    ----------
    model : TrainedModel
        The network (anything with ``predict(data, ch_names=)``).
    train_lf : LeadField
        Its training lead field (gives the estimated positions).
    test_lf : LeadField
        The lead field the test data are simulated with (gives the true positions); the same
        source points, possibly moved, and the same channels.
    n : int
        Number of test samples.
    seed : int
        Seed of the test samples.
    snr_db : float
        Signal-to-noise ratio of every sample (dB).
    n_times : int
        Samples per window.

    Returns
    -------
    dict
        ``n``, ``snr_db`` and for ``'subcortical'``, ``'cortical'`` and ``'all'`` sources:
        ``n``, ``median_mm``, ``p25_mm``, ``p75_mm``, ``within_10mm`` (fraction) and
        ``confusion`` (fraction of peaks in the other compartment, cortex ↔ deep).
    """
    config = SimulationConfig(n_sources=(1, 1), extent_mm=(0.0, 0.0), snr_db=(snr_db, snr_db),
                              deep_fraction=0.5, n_times=n_times, waveforms=("evoked",))
    batch = Simulator(test_lf, config).simulate(n, seed=seed)
    # samples end to end in time: the window centred on a sample's centre is that sample
    data = batch.data.transpose(1, 0, 2).reshape(len(batch.ch_names), n * n_times)
    maps = model.predict(data, ch_names=batch.ch_names)[:, n_times // 2 :: n_times]  # (n_src, n)
    est = train_lf.source_space.pos[np.argmax(maps, axis=0)]
    true = test_lf.source_space.pos[batch.centres[:, 0]]
    err_mm = np.linalg.norm(est - true, axis=1) * 1e3
    deep = test_lf.source_space.is_subcortical[batch.centres[:, 0]]
    est_deep = train_lf.source_space.is_subcortical[np.argmax(maps, axis=0)]
    out = {"n": n, "snr_db": snr_db}
    for name, mask in (("subcortical", deep), ("cortical", ~deep), ("all", np.ones_like(deep))):
        e = err_mm[mask]
        out[name] = {"n": int(mask.sum()), "median_mm": float(np.median(e)),
                     "p25_mm": float(np.percentile(e, 25)), "p75_mm": float(np.percentile(e, 75)),
                     "within_10mm": float(np.mean(e <= 10)),
                     "confusion": float(np.mean(est_deep[mask] != deep[mask]))}
    return out
