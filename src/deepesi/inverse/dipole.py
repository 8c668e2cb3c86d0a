"""Single-dipole scan on a forward's source points, on whitened data (one of the classical
methods of :mod:`deepesi.inverse.classical`), with an optional off-grid refinement."""

from __future__ import annotations

from typing import Any

import mne
import numpy as np
from mne.cov import compute_whitener
from mne.io.constants import FIFF
from scipy.interpolate import LinearNDInterpolator
from scipy.optimize import minimize
from scipy.spatial import cKDTree

__all__ = ["WhitenedGain", "dipole_scan"]


def n_orient(forward: mne.Forward) -> int:
    """Dipoles per source point of a forward (3 free, 1 fixed)."""
    return 3 if forward["source_ori"] == FIFF.FIFFV_MNE_FREE_ORI else 1


class WhitenedGain:
    """The whitener of a noise covariance and the whitened gain of a forward, for one info.

    Built once per channel set (:func:`mne.cov.compute_whitener`, ``pca=True``) and reused for
    every recording a dipole scan is applied to.
    """

    def __init__(self, info: mne.Info, forward: mne.Forward, noise_cov: mne.Covariance) -> None:
        self.whitener, self.names = compute_whitener(noise_cov, info, pca=True, verbose=False)
        fwd = mne.pick_channels_forward(forward, self.names, ordered=True, verbose=False)
        gain = fwd["sol"]["data"].reshape(len(self.names), fwd["nsource"], n_orient(fwd))
        self.gain = np.einsum("wc,cso->wso", self.whitener, gain)
        self.forward = forward

    def whiten(self, evoked: mne.Evoked) -> np.ndarray:
        """Whitened data (n_w, n_times) of an evoked holding these channels."""
        order = [evoked.ch_names.index(n) for n in self.names]
        return self.whitener @ evoked.data[order]


def _explained(g: np.ndarray, xr: np.ndarray, chunk: int = 2048) -> np.ndarray:
    """Energy of ``xr`` explained by each source's column space, ``‖U_sᵀ xr‖²`` (n_sources,)."""
    n_src = g.shape[1]
    out = np.empty(n_src)
    for start in range(0, n_src, chunk):
        gs = np.moveaxis(g[:, start : start + chunk], 1, 0)  # (s, w, o)
        u, sv, _ = np.linalg.svd(gs, full_matrices=False)
        keep = sv > 1e-6 * sv[:, :1]  # drop silent orientations (e.g. radial dipoles in MEG)
        proj = np.einsum("swo,wt->sot", u, xr) * keep[:, :, None]
        out[start : start + chunk] = np.sum(proj**2, axis=(1, 2))
    return out


def _moment(gi: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Least-squares dipole moment (n_orient, n_times) of one source for whitened data."""
    q, *_ = np.linalg.lstsq(gi, x, rcond=1e-6)
    return q


def dipole_scan(
    evoked: mne.Evoked,
    forward: mne.Forward,
    noise_cov: mne.Covariance,
    *,
    refine: bool = False,
    whitened: WhitenedGain | None = None,
) -> dict[str, Any]:
    """Single-dipole scan over the forward's source points on whitened data.

    For every source point the least-squares dipole (free orientation: three components; fixed:
    one) with a moment that may vary over the samples of ``evoked`` but a position that does not,
    is fitted to the whitened data; its goodness of fit is
    ``GOF = 1 − ‖X − G q‖²_F / ‖X‖²_F`` (whitened, over all samples). The best point wins.

    Parameters
    ----------
    evoked : mne.Evoked
        Data already picked and cropped to the channels and window to fit.
    forward : mne.Forward
        Forward with these channels.
    noise_cov : mne.Covariance
        Noise covariance for whitening.
    refine : bool
        Also refine the position continuously around the best point: the gain is interpolated
        linearly (Delaunay tetrahedra) between the grid points within 2.5 grid spacings, and
        ``1 − GOF`` is minimised by Nelder-Mead.
    whitened : WhitenedGain | None
        The whitened gain for ``evoked.info``, when it was built already.

    Returns
    -------
    fit : dict
        ``gof`` (n_sources,), ``best`` (row), ``moment`` (n_orient, n_times) A·m in the
        forward's orientation basis, and with ``refine`` also ``refined_pos`` (forward frame, m)
        and ``refined_gof``.
    """
    wg = WhitenedGain(evoked.info, forward, noise_cov) if whitened is None else whitened
    x, g = wg.whiten(evoked), wg.gain
    total = float(np.sum(x**2))
    if total <= 0:
        raise ValueError("the evoked data are zero in the fitting window; nothing to fit.")
    # the explained energy only depends on the column space of x: compress it first
    u, s, _ = np.linalg.svd(x, full_matrices=False)
    r = max(int(np.sum(s > 1e-12 * s[0])), 1)
    xr = u[:, :r] * s[:r]
    gof = _explained(g, xr) / total
    best = int(np.argmax(gof))
    out: dict[str, Any] = {"gof": gof, "best": best, "moment": _moment(g[:, best], x)}
    if refine:
        out.update(_refine(wg.forward, g, x, best, total, float(gof[best])))
    return out


def _refine(
    fwd: mne.Forward, g: np.ndarray, x: np.ndarray, best: int, total: float, gof_best: float
) -> dict[str, Any]:
    rr = np.asarray(fwd["source_rr"], dtype=float)
    tree = cKDTree(rr)
    d, _ = tree.query(rr[best], k=2)
    spacing = float(d[1]) if len(rr) > 1 else 0.0
    near = tree.query_ball_point(rr[best], 2.5 * spacing) if spacing > 0 else []
    if len(near) < 5:
        return {"refined_pos": rr[best].copy(), "refined_gof": gof_best}
    near = np.asarray(near)
    n_w, _, n_o = g.shape
    interp = LinearNDInterpolator(rr[near], np.moveaxis(g[:, near], 1, 0).reshape(len(near), -1))

    def cost(p: np.ndarray) -> float:
        gi = interp(p[None])[0]
        if not np.all(np.isfinite(gi)):
            return 1.0 + float(np.linalg.norm(p - rr[best])) / spacing
        gi = gi.reshape(n_w, n_o)
        q = _moment(gi, x)
        return float(np.sum((x - gi @ q) ** 2)) / total

    simplex = rr[best] + np.vstack([np.zeros(3), 0.5 * spacing * np.eye(3)])
    res = minimize(
        cost,
        rr[best],
        method="Nelder-Mead",
        options={"initial_simplex": simplex, "xatol": 1e-4 * spacing, "fatol": 1e-10},
    )
    if res.fun < 1.0 - gof_best:
        return {"refined_pos": np.asarray(res.x), "refined_gof": 1.0 - float(res.fun)}
    return {"refined_pos": rr[best].copy(), "refined_gof": gof_best}
