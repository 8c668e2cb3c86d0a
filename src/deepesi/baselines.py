"""Classical inverse methods on the same forward as the network, through MNE-Python.

One entry point, :func:`apply_classical`, runs any method of :data:`CLASSICAL_METHODS` on an
:class:`mne.Evoked` with a forward (:class:`mne.Forward` or a deepesi
:class:`~deepesi.forward.leadfield.LeadField`) and a noise covariance, and returns a
:class:`SourceResult` of the same form for every method: a non-negative amplitude per source point
and time (the norm over orientations), the matching MNE source estimate, and the peak(s).
The methods, their settings and their units are described in ``docs/baselines.md``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import mne
import numpy as np
from mne.cov import compute_whitener
from mne.io.constants import FIFF
from scipy.interpolate import LinearNDInterpolator
from scipy.optimize import minimize
from scipy.spatial import cKDTree

from ._validation import check_finite
from .metrics import find_peaks

logger = logging.getLogger(__name__)

__all__ = ["CLASSICAL_METHODS", "METHOD_UNITS", "SourceResult", "apply_classical", "dipole_scan"]

#: Methods :func:`apply_classical` knows, in the order benchmarks list them.
CLASSICAL_METHODS: tuple[str, ...] = (
    "MNE",
    "dSPM",
    "sLORETA",
    "eLORETA",
    "LCMV",
    "MxNE",
    "gamma_map",
    "dipole_scan",
)

#: Unit of the amplitude map of each method.
METHOD_UNITS: dict[str, str] = {
    "MNE": "A·m",
    "dSPM": "dimensionless (noise-normalised F)",
    "sLORETA": "dimensionless (standardised)",
    "eLORETA": "A·m",
    "LCMV": "dimensionless (neural activity index)",
    "MxNE": "A·m",
    "gamma_map": "A·m",
    "dipole_scan": "A·m",
}

_MINIMUM_NORM = ("MNE", "dSPM", "sLORETA", "eLORETA")
_ALIASES = {m.lower(): m for m in CLASSICAL_METHODS} | {
    "dipole": "dipole_scan",
    "gammamap": "gamma_map",
    "gamma-map": "gamma_map",
    "mixed_norm": "MxNE",
}


@dataclass(frozen=True, eq=False)
class SourceResult:
    """The output of one classical method, the same for every method.

    Attributes
    ----------
    method : str
        Name from :data:`CLASSICAL_METHODS`.
    stc : mne.SourceEstimate
        Source estimate of ``amplitude`` over every point of the forward's source space
        (``mne.VolSourceEstimate`` for volume/discrete source spaces).
    amplitude : ndarray, shape (n_sources, n_times)
        Non-negative amplitude per source point and time: the norm over the dipole orientations
        (see :data:`METHOD_UNITS` for the unit). Rows follow the forward's source order.
    pos : ndarray, shape (n_sources, 3)
        Source positions in the MRI (surface RAS) frame, metres.
    times : ndarray, shape (n_times,)
        Time of each column, seconds.
    peak_time : float
        Time (s) of the largest whitened global field power of the data in the window: the same
        sample for every method.
    peak_index : ndarray of int, shape (n_peaks,)
        Rows of the local maxima of ``amplitude`` at ``peak_time``, strongest first.
    peak_pos : ndarray, shape (n_peaks, 3)
        Their positions (MRI frame, m).
    peak_amplitude : ndarray, shape (n_peaks,)
        Their amplitudes at ``peak_time``.
    units : str
        Unit of ``amplitude``.
    params : dict
        The settings the method ran with.
    extras : dict
        Method-specific outputs (e.g. the dipole scan's goodness-of-fit map, MNE's raw output).
    """

    method: str
    stc: Any
    amplitude: np.ndarray
    pos: np.ndarray
    times: np.ndarray
    peak_time: float
    peak_index: np.ndarray
    peak_pos: np.ndarray
    peak_amplitude: np.ndarray
    units: str
    params: dict = field(default_factory=dict)
    extras: dict = field(default_factory=dict)

    @property
    def n_sources(self) -> int:
        """Number of source points."""
        return self.amplitude.shape[0]

    def map_at(self, time: float | None = None) -> np.ndarray:
        """Amplitude map (n_sources,) at the sample nearest ``time`` (default: ``peak_time``)."""
        t = self.peak_time if time is None else float(time)
        return self.amplitude[:, int(np.argmin(np.abs(self.times - t)))]

    def __repr__(self) -> str:
        xyz = ", ".join(f"{v * 1000:.1f}" for v in self.peak_pos[0]) if len(self.peak_pos) else ""
        return (
            f"<SourceResult {self.method} | {self.n_sources} sources x {len(self.times)} times | "
            f"peak at ({xyz}) mm MRI, t = {self.peak_time:.3f} s>"
        )


# ----------------------------------------------------------------------------- validation
def _check_method(method: str) -> str:
    if not isinstance(method, str):
        raise TypeError(f"method must be a string, got {type(method).__name__}.")
    name = _ALIASES.get(method.strip().lower())
    if name is None:
        raise ValueError(f"unknown method {method!r}; choose one of {list(CLASSICAL_METHODS)}.")
    return name


def _as_forward(forward: Any) -> mne.Forward:
    if isinstance(forward, mne.Forward):
        return forward
    from .forward.leadfield import LeadField

    if isinstance(forward, LeadField):
        try:
            from .forward.io import leadfield_to_forward
        except ImportError as err:  # pragma: no cover - depends on the build
            raise ValueError(
                "converting a LeadField needs deepesi.forward.io.leadfield_to_forward, which this "
                "installation lacks; pass an mne.Forward instead."
            ) from err
        return leadfield_to_forward(forward)
    raise TypeError(
        f"forward must be an mne.Forward or a deepesi LeadField, got {type(forward).__name__}."
    )


def _data_channels(info: mne.Info) -> list[str]:
    picks = mne.pick_types(info, meg=True, eeg=True, exclude="bads")
    return [info["ch_names"][k] for k in picks]


def _check_inputs(evoked: Any, forward: mne.Forward, noise_cov: Any, snr: float) -> list[str]:
    if not isinstance(evoked, mne.Evoked):
        raise TypeError(
            f"evoked must be an mne.Evoked, got {type(evoked).__name__}; average epochs with "
            "epochs.average() or wrap an array with mne.EvokedArray."
        )
    if noise_cov is None:
        raise ValueError(
            "the classical methods need a noise covariance for whitening and regularisation: "
            "estimate one from baseline data (mne.compute_covariance(epochs, tmax=0)) or, as a "
            "last resort, use mne.make_ad_hoc_cov(evoked.info)."
        )
    if not isinstance(noise_cov, mne.Covariance):
        raise TypeError(f"noise_cov must be an mne.Covariance, got {type(noise_cov).__name__}.")
    check_finite(evoked.data, "evoked data")
    check_finite(forward["sol"]["data"], "forward gain")
    check_finite(noise_cov.data, "noise covariance")
    if not (np.isfinite(snr) and snr > 0):
        raise ValueError(f"snr must be a positive number (amplitude SNR, default 3), got {snr}.")
    names = _data_channels(evoked.info)
    if not names:
        raise ValueError("evoked has no good EEG or MEG channels; check evoked.info['bads'].")
    fwd_names = set(forward["sol"]["row_names"])
    cov_names = set(noise_cov["names"])
    for what, have, fix in (
        ("forward", fwd_names, "compute the forward for these sensors"),
        ("noise covariance", cov_names, "estimate the covariance with these channels"),
    ):
        missing = [n for n in names if n not in have]
        if missing:
            raise ValueError(
                f"{len(missing)} good channel(s) of the evoked are not in the {what}: "
                f"{missing[:8]}{' ...' if len(missing) > 8 else ''}. Mark them bad "
                f"(evoked.info['bads']), drop them (evoked.drop_channels), or {fix}."
            )
    return names


def _prepare_evoked(
    evoked: mne.Evoked, names: list[str], tmin: float | None, tmax: float | None
) -> mne.Evoked:
    ev = evoked.copy().pick(names)
    t0, t1 = ev.times[0], ev.times[-1]
    lo = t0 if tmin is None else float(tmin)
    hi = t1 if tmax is None else float(tmax)
    if lo > hi:
        raise ValueError(f"tmin ({lo} s) must not be after tmax ({hi} s).")
    half = 0.5 / ev.info["sfreq"]
    if lo > t1 + half or hi < t0 - half:
        raise ValueError(
            f"the window [{lo}, {hi}] s lies outside the evoked time range [{t0:.4f}, {t1:.4f}] s."
        )
    # keep at least the nearest sample when tmin == tmax
    i0 = int(np.argmin(np.abs(ev.times - lo))) if tmin is not None else 0
    i1 = int(np.argmin(np.abs(ev.times - hi))) if tmax is not None else len(ev.times) - 1
    ev.crop(ev.times[i0], ev.times[i1], include_tmax=True)
    has_eeg = "eeg" in ev.get_channel_types()
    if has_eeg and not ev.info["custom_ref_applied"]:
        has_avg = any("Average EEG reference" in p["desc"] for p in ev.info["projs"])
        if not has_avg:
            logger.info("adding an average EEG reference projector (required by the inverse)")
            ev.set_eeg_reference("average", projection=True, verbose=False)
    return ev


# ----------------------------------------------------------------------------- geometry
def _source_positions_mri(forward: mne.Forward) -> np.ndarray:
    """Forward source positions in the MRI frame (m)."""
    rr = np.asarray(forward["source_rr"], dtype=float)
    if forward["coord_frame"] == FIFF.FIFFV_COORD_HEAD:
        head_mri = mne.transforms.invert_transform(forward["mri_head_t"])
        rr = mne.transforms.apply_trans(head_mri, rr)
    return rr


def _vertex_rows(forward: mne.Forward, vertices: list[np.ndarray]) -> np.ndarray:
    """Forward source rows of an stc's vertices (concatenated over source spaces)."""
    rows, offset = [], 0
    for s, verts in zip(forward["src"], vertices, strict=True):
        idx = np.searchsorted(s["vertno"], verts)
        rows.append(offset + idx)
        offset += len(s["vertno"])
    return np.concatenate(rows).astype(int)


def _make_stc(forward: mne.Forward, data: np.ndarray, tmin: float, tstep: float) -> Any:
    src = forward["src"]
    vertices = [s["vertno"].copy() for s in src]
    kinds = {s["type"] for s in src}
    subject = src._subject if hasattr(src, "_subject") else None
    if kinds == {"surf"}:
        return mne.SourceEstimate(data, vertices, tmin, tstep, subject=subject)
    if kinds <= {"vol", "discrete"}:
        return mne.VolSourceEstimate(data, vertices, tmin, tstep, subject=subject)
    return mne.MixedSourceEstimate(data, vertices, tmin, tstep, subject=subject)


def _n_orient(forward: mne.Forward) -> int:
    return 3 if forward["source_ori"] == FIFF.FIFFV_MNE_FREE_ORI else 1


# ----------------------------------------------------------------------------- methods
def _run_minimum_norm(
    method: str,
    ev: mne.Evoked,
    fwd: mne.Forward,
    cov: mne.Covariance,
    lambda2: float,
    loose: Any,
    depth: float | None,
    options: dict,
) -> tuple[np.ndarray, dict]:
    inv = mne.minimum_norm.make_inverse_operator(
        ev.info, fwd, cov, loose=loose, depth=depth, verbose=False
    )
    stc = mne.minimum_norm.apply_inverse(
        ev, inv, lambda2=lambda2, method=method, pick_ori=None, verbose=False, **options
    )
    amp = np.zeros((fwd["nsource"], len(ev.times)))
    amp[_vertex_rows(fwd, stc.vertices)] = np.abs(stc.data)
    return amp, {"raw_stc": stc}


def _data_covariance(ev: mne.Evoked, noise_cov: mne.Covariance) -> mne.Covariance:
    """Second moment of the evoked window, shrunk toward the noise covariance.

    ``C = X Xᵀ / n + C_noise / nave``: with an evoked window of few samples (often fewer than
    channels) the noise part of ``X Xᵀ / n`` is estimated badly; adding its expected value
    ``C_noise / nave`` keeps the estimate well conditioned and noise-shaped.
    """
    x = ev.data
    noise = noise_cov.copy().pick_channels(ev.ch_names, ordered=True, verbose=False)
    c_noise = np.diag(noise.data) if noise["diag"] else noise.data
    data = x @ x.T / x.shape[1] + c_noise / max(ev.nave, 1)
    return mne.Covariance(
        data,
        ev.ch_names,
        bads=[],
        projs=list(ev.info["projs"]),
        nfree=max(x.shape[1] - 1, 1),
        verbose=False,
    )


def _run_lcmv(
    ev: mne.Evoked,
    fwd: mne.Forward,
    cov: mne.Covariance,
    data_cov: mne.Covariance | None,
    options: dict,
) -> tuple[np.ndarray, dict]:
    if data_cov is None:
        data_cov = _data_covariance(ev, cov)
    kwargs = {"reg": 0.05, "pick_ori": "max-power", "weight_norm": "unit-noise-gain-invariant"}
    kwargs.update(options)
    filters = mne.beamformer.make_lcmv(
        ev.info, fwd, data_cov, noise_cov=cov, verbose=False, **kwargs
    )
    stc = mne.beamformer.apply_lcmv(ev, filters, verbose=False)
    amp = np.zeros((fwd["nsource"], len(ev.times)))
    amp[_vertex_rows(fwd, stc.vertices)] = np.abs(stc.data)
    return amp, {"raw_stc": stc, "data_cov": data_cov, "filters": filters}


def _run_sparse(
    method: str,
    ev: mne.Evoked,
    fwd: mne.Forward,
    cov: mne.Covariance,
    loose: Any,
    depth: float | None,
    options: dict,
) -> tuple[np.ndarray, dict]:
    amp = np.zeros((fwd["nsource"], len(ev.times)))
    pick_ori = "vector" if _n_orient(fwd) == 3 else None  # all components, to take their norm
    if method == "MxNE":
        kwargs = {"alpha": 30.0, "n_mxne_iter": 10}
        kwargs.update(options)
        out = mne.inverse_sparse.mixed_norm(
            ev, fwd, cov, loose=loose, depth=depth, pick_ori=pick_ori, verbose=False, **kwargs
        )
    else:
        kwargs = {"alpha": 0.5, "tol": 1e-4}
        kwargs.update(options)
        out = mne.inverse_sparse.gamma_map(
            ev, fwd, cov, loose=loose, depth=depth, pick_ori=pick_ori, verbose=False, **kwargs
        )
    stc = out[0] if isinstance(out, tuple | list) else out
    if stc is None or len(np.concatenate(stc.vertices)) == 0:
        logger.warning("%s found no active source; try a smaller alpha", method)
        return amp, {"raw_stc": stc}
    data = stc.data
    norm = np.linalg.norm(data, axis=1) if data.ndim == 3 else np.abs(data)
    amp[_vertex_rows(fwd, stc.vertices)] = norm
    return amp, {"raw_stc": stc, "alpha": kwargs["alpha"]}


def _whitened(
    ev: mne.Evoked, fwd: mne.Forward, cov: mne.Covariance
) -> tuple[np.ndarray, np.ndarray]:
    """Whitened data (n_w, n_times) and gain (n_w, n_sources, n_orient)."""
    w, names = compute_whitener(cov, ev.info, pca=True, verbose=False)
    fwd = mne.pick_channels_forward(fwd, names, ordered=True, verbose=False)
    gain = fwd["sol"]["data"].reshape(len(names), fwd["nsource"], _n_orient(fwd))
    order = [ev.ch_names.index(n) for n in names]
    x = w @ ev.data[order]
    g = np.einsum("wc,cso->wso", w, gain)
    return x, g


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

    Returns
    -------
    fit : dict
        ``gof`` (n_sources,), ``best`` (row), ``moment`` (n_orient, n_times) A·m in the
        forward's orientation basis, and with ``refine`` also ``refined_pos`` (forward frame, m)
        and ``refined_gof``.
    """
    x, g = _whitened(evoked, forward, noise_cov)
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
        out.update(_refine(forward, g, x, best, total, float(gof[best])))
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


# ----------------------------------------------------------------------------- entry point
def apply_classical(
    method: str,
    evoked: mne.Evoked,
    forward: Any,
    noise_cov: mne.Covariance,
    *,
    tmin: float | None = None,
    tmax: float | None = None,
    snr: float = 3.0,
    loose: float | str | Mapping = "auto",
    depth: float | None = 0.8,
    data_cov: mne.Covariance | None = None,
    n_peaks: int = 1,
    refine: bool = False,
    options: Mapping[str, Any] | None = None,
) -> SourceResult:
    """Localize ``evoked`` with a classical inverse method on a given forward.

    Parameters
    ----------
    method : str
        One of :data:`CLASSICAL_METHODS` (case-insensitive): ``'MNE'``, ``'dSPM'``, ``'sLORETA'``,
        ``'eLORETA'`` (:mod:`mne.minimum_norm`), ``'LCMV'`` (:mod:`mne.beamformer`), ``'MxNE'``
        (:func:`mne.inverse_sparse.mixed_norm`), ``'gamma_map'``
        (:func:`mne.inverse_sparse.gamma_map`) or ``'dipole_scan'`` (:func:`dipole_scan`).
    evoked : mne.Evoked
        The data. Its good EEG/MEG channels are used; each must be in the forward and the noise
        covariance. An average EEG reference projector is added if the EEG has none.
    forward : mne.Forward | deepesi.forward.leadfield.LeadField
        The forward model (a LeadField is converted with
        ``deepesi.forward.io.leadfield_to_forward``).
    noise_cov : mne.Covariance
        Noise covariance: whitens the data and sets the regularisation.
    tmin, tmax : float | None
        Time window (s) to localize; default the whole evoked. With ``tmin == tmax`` the nearest
        single sample is used.
    snr : float
        Assumed amplitude SNR of the whitened data for the minimum-norm methods:
        ``lambda2 = 1 / snr**2`` (MNE's convention; 3 for evoked data).
    loose : float | 'auto' | dict
        Orientation constraint, passed to MNE (minimum-norm and sparse methods). ``'auto'`` is
        0.2 for surface source spaces and 1 (free) for volume/discrete ones, which MNE requires.
    depth : float | None
        Depth-weighting exponent (MNE's default 0.8; None for none), minimum-norm and sparse
        methods.
    data_cov : mne.Covariance | None
        LCMV only: data covariance. Default: ``X Xᵀ / n`` of the evoked samples in the window plus
        ``noise_cov / nave`` (shrinkage toward the noise model), then MNE's ``reg`` (5 % of the
        mean eigenvalue); estimate it from epochs when you can.
    n_peaks : int
        Number of local maxima to report, at the sample of largest whitened global field power.
    refine : bool
        ``'dipole_scan'`` only: also refine the dipole position off the grid (see
        :func:`dipole_scan`); the result goes in ``extras['refined_pos']`` (MRI frame, m).
    options : mapping | None
        Extra keyword arguments for the underlying MNE function, e.g. ``{'alpha': 30}`` for MxNE,
        ``{'reg': 0.1, 'pick_ori': None}`` for LCMV, ``{'method_params': ...}`` for eLORETA.

    Returns
    -------
    result : SourceResult
        Amplitude map (n_sources, n_times), its source estimate, and the peak(s).
    """
    name = _check_method(method)
    fwd = _as_forward(forward)
    names = _check_inputs(evoked, fwd, noise_cov, snr)
    if int(n_peaks) < 1:
        raise ValueError(f"n_peaks must be at least 1, got {n_peaks}.")
    if data_cov is not None and not isinstance(data_cov, mne.Covariance):
        raise TypeError(f"data_cov must be an mne.Covariance, got {type(data_cov).__name__}.")
    opts = dict(options or {})
    ev = _prepare_evoked(evoked, names, tmin, tmax)
    fwd = mne.pick_channels_forward(fwd, ev.ch_names, ordered=True, verbose=False)
    params: dict[str, Any] = {"tmin": float(ev.times[0]), "tmax": float(ev.times[-1])}
    extras: dict[str, Any]
    if name in _MINIMUM_NORM:
        lambda2 = 1.0 / float(snr) ** 2
        params.update(snr=float(snr), lambda2=lambda2, loose=loose, depth=depth)
        amp, extras = _run_minimum_norm(name, ev, fwd, noise_cov, lambda2, loose, depth, opts)
    elif name == "LCMV":
        amp, extras = _run_lcmv(ev, fwd, noise_cov, data_cov, opts)
    elif name in ("MxNE", "gamma_map"):
        params.update(loose=loose, depth=depth)
        amp, extras = _run_sparse(name, ev, fwd, noise_cov, loose, depth, opts)
    else:
        fit = dipole_scan(ev, fwd, noise_cov, refine=refine)
        amp = np.zeros((fwd["nsource"], len(ev.times)))
        amp[fit["best"]] = np.linalg.norm(fit["moment"], axis=0)
        extras = dict(fit)
        if "refined_pos" in fit:
            extras["refined_pos"] = _to_mri(fwd, fit["refined_pos"])
    params.update(opts)

    pos = _source_positions_mri(fwd)
    tstep = 1.0 / ev.info["sfreq"]
    stc = _make_stc(fwd, amp, float(ev.times[0]), tstep)
    t_idx = _peak_sample(ev, noise_cov)
    peaks = find_peaks(amp[:, t_idx], pos, rel_threshold=0.0, n_max=int(n_peaks))
    return SourceResult(
        method=name,
        stc=stc,
        amplitude=amp,
        pos=pos,
        times=ev.times.copy(),
        peak_time=float(ev.times[t_idx]),
        peak_index=peaks,
        peak_pos=pos[peaks],
        peak_amplitude=amp[peaks, t_idx],
        units=METHOD_UNITS[name],
        params=params,
        extras=extras,
    )


def _peak_sample(ev: mne.Evoked, noise_cov: mne.Covariance) -> int:
    """Sample with the largest whitened global field power (the same for every method)."""
    w, names = compute_whitener(noise_cov, ev.info, pca=True, verbose=False)
    order = [ev.ch_names.index(n) for n in names]
    return int(np.argmax(np.sum((w @ ev.data[order]) ** 2, axis=0)))


def _to_mri(fwd: mne.Forward, xyz: np.ndarray) -> np.ndarray:
    if fwd["coord_frame"] == FIFF.FIFFV_COORD_HEAD:
        head_mri = mne.transforms.invert_transform(fwd["mri_head_t"])
        return mne.transforms.apply_trans(head_mri, xyz)
    return np.asarray(xyz, dtype=float)
