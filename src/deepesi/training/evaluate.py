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

__all__ = ["DipoleScanReference", "LocallyRefined", "evaluate_single_sources",
           "single_source_errors", "single_source_maps",
           "summarize_errors"]


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
    err_mm, deep, est_deep = single_source_errors(model, train_lf, test_lf, n, seed,
                                                  snr_db=snr_db, n_times=n_times)
    return summarize_errors(err_mm, deep, est_deep, snr_db=snr_db)


def single_source_maps(
    model: Any,
    test_lf: LeadField,
    n: int,
    seed: int,
    snr_db: float = 10.0,
    n_times: int = 1,
    projs: Any = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The model's maps of the single sources of :func:`evaluate_single_sources` (same
    arguments; ``projs``: SSP projectors applied to the simulated data, as a recording carries
    them): ``maps`` (n_sources, n), each at its window's centre sample, and the true sources'
    indices into ``test_lf``'s source space (n,)."""
    config = SimulationConfig(n_sources=(1, 1), extent_mm=(0.0, 0.0), snr_db=(snr_db, snr_db),
                              deep_fraction=0.5, n_times=n_times, waveforms=("evoked",),
                              projs=projs)
    batch = Simulator(test_lf, config).simulate(n, seed=seed)
    # samples end to end in time: the window centred on a sample's centre is that sample
    data = batch.data.transpose(1, 0, 2).reshape(len(batch.ch_names), n * n_times)
    maps = model.predict(data, ch_names=batch.ch_names)[:, n_times // 2 :: n_times]  # (n_src, n)
    return np.asarray(maps), batch.centres[:, 0]


def single_source_errors(
    model: Any,
    train_lf: LeadField,
    test_lf: LeadField,
    n: int,
    seed: int,
    snr_db: float = 10.0,
    n_times: int = 1,
    projs: Any = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The per-sample errors behind :func:`evaluate_single_sources` (same arguments; ``projs``:
    SSP projectors applied to the simulated data, as a recording carries them): the peak
    localization error (mm), whether the true source is deep, and whether the peak is."""
    maps, centres = single_source_maps(model, test_lf, n, seed, snr_db, n_times, projs)
    peaks = np.argmax(maps, axis=0)
    est = train_lf.source_space.pos[peaks]
    true = test_lf.source_space.pos[centres]
    err_mm = np.linalg.norm(est - true, axis=1) * 1e3
    deep = test_lf.source_space.is_subcortical[centres]
    est_deep = train_lf.source_space.is_subcortical[peaks]
    return err_mm, deep, est_deep


def summarize_errors(err_mm: np.ndarray, deep: np.ndarray, est_deep: np.ndarray, *,
                     snr_db: float) -> dict:
    """Median, quartiles, fraction within 10 mm and cortical ↔ deep confusion, for the deep
    ('subcortical'), cortical and all sources (the format of the ``*-evaluation.json`` files)."""
    err_mm, deep, est_deep = (np.asarray(a) for a in (err_mm, deep, est_deep))
    out = {"n": len(err_mm), "snr_db": snr_db}
    for name, mask in (("subcortical", deep), ("cortical", ~deep), ("all", np.ones_like(deep))):
        e = err_mm[mask]
        out[name] = {"n": int(mask.sum()), "median_mm": float(np.median(e)),
                     "p25_mm": float(np.percentile(e, 25)), "p75_mm": float(np.percentile(e, 75)),
                     "within_10mm": float(np.mean(e <= 10)),
                     "confusion": float(np.mean(est_deep[mask] != deep[mask]))}
    return out


class DipoleScanReference:
    """The exhaustive single-dipole scan on a lead field, as a "model" (``predict`` → the energy
    each grid point's three dipoles explain, per sample): the classical reference of the
    evaluations, on the same samples and the same (nominal) forward the nets are told.

    Parameters
    ----------
    lf : LeadField
        The forward the scan assumes.
    channel_scale : ndarray (n_channels,) | None
        Divides each channel (data and gain) first, e.g. the per-type noise level of mixed
        magnetometers and gradiometers; None: no scaling (one channel type).
    """

    def __init__(self, lf: LeadField, channel_scale: np.ndarray | None = None) -> None:
        self.ch_names = list(lf.ch_names)
        self.scale = (np.ones(len(self.ch_names)) if channel_scale is None
                      else np.asarray(channel_scale, float))
        g = np.moveaxis(lf.gain / self.scale[:, None, None], 1, 0)  # (n_src, n_ch, 3)
        u, sv, _ = np.linalg.svd(g, full_matrices=False)
        self.u = u * (sv > 1e-6 * sv[:, :1])[:, None, :]

    def predict(self, data: np.ndarray, ch_names: list[str] | None = None) -> np.ndarray:
        if ch_names is not None:
            data = data[[list(ch_names).index(n) for n in self.ch_names]]
        data = data / self.scale[:, None]
        return np.sum(np.einsum("sco,ct->sot", self.u, data) ** 2, axis=1)


class LocallyRefined:
    """A network's peak refined on the data, as a "model" for the evaluations: the grid point
    within ``radius`` of the net's peak where a single dipole explains the most of the data
    (the single-source case of :func:`deepesi.inverse.fit.refine_support`, which
    ``apply_network(refine=True)`` runs); ``predict`` returns that point's one-hot map.

    Parameters
    ----------
    model
        The network (``predict(data, ch_names=)``).
    scan : DipoleScanReference
        The dipole scan on the forward the refinement may use (e.g. the recording's own).
    pos : ndarray, shape (n_sources, 3)
        The grid (m).
    radius : float
        Search radius (m); 0 keeps the net's peak.
    """

    def __init__(self, model: Any, scan: DipoleScanReference, pos: np.ndarray,
                 radius: float) -> None:
        from scipy.spatial import cKDTree

        self.model, self.scan, self.radius = model, scan, float(radius)
        self.pos = np.asarray(pos, float)
        self.tree = cKDTree(self.pos)
        self.ch_names = list(model.ch_names)

    def predict(self, data: np.ndarray, ch_names: list[str] | None = None) -> np.ndarray:
        maps = np.asarray(self.model.predict(data, ch_names=ch_names))
        energy = self.scan.predict(data, ch_names=ch_names)
        out = np.zeros_like(energy)
        for t, peak in enumerate(np.argmax(maps, axis=0)):
            near = np.asarray(self.tree.query_ball_point(self.pos[peak], self.radius), int)
            near = near if len(near) else np.array([peak])
            out[near[np.argmax(energy[near, t])], t] = 1.0
        return out
