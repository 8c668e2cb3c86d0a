"""Classical inverse methods on the same forward as the network, through MNE-Python.

:func:`make_classical` builds a method's operator once for a recording's channels (a minimum-norm
inverse operator, prepared per number of averages; the whitened gain of the dipole scan) and
:meth:`ClassicalInverse.apply` runs it on any recording with those channels;
:func:`apply_classical` does both in one call. Every method returns a
:class:`~deepesi.inverse.SourceMap` of the same form: a non-negative amplitude per source point and
time (the norm over orientations), read by default at the data's peak of whitened global field
power (the same sample for every method). Methods, settings and units: ``docs/baselines.md``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import mne
import numpy as np
from mne.io.constants import FIFF

from .._logging import logger, verbose
from .._validation import check_finite, validate_type
from .dipole import WhitenedGain, dipole_scan, n_orient
from .fit import map_fit
from .prepare import (
    Recording,
    add_average_reference,
    as_evoked_or_raw,
    check_channels,
    peak_sample,
    prepare_evoked,
)
from .result import SourceMap

__all__ = [
    "CLASSICAL_METHODS",
    "METHOD_UNITS",
    "ClassicalInverse",
    "apply_classical",
    "check_method",
    "make_classical",
]

#: Methods :func:`make_classical` knows, in the order benchmarks list them.
CLASSICAL_METHODS: tuple[str, ...] = (
    "MNE",
    "dSPM",
    "sLORETA",
    "eLORETA",
    "LCMV",
    "MxNE",
    "gamma_map",
    "dipole_scan",
    "dipoles",
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
    "dipoles": "A·m",
}

MINIMUM_NORM = ("MNE", "dSPM", "sLORETA", "eLORETA")
_ALIASES = {m.lower(): m for m in CLASSICAL_METHODS} | {
    "dipole": "dipole_scan",
    "gammamap": "gamma_map",
    "gamma-map": "gamma_map",
    "mixed_norm": "MxNE",
    "sequential_dipoles": "dipoles",
}


def check_method(method: str) -> str:
    """The canonical name of a classical method (case-insensitive; aliases 'dipole',
    'gamma-map', 'gammamap', 'mixed_norm'); ValueError for an unknown one."""
    validate_type(method, str, "method", "a string")
    name = _ALIASES.get(method.strip().lower())
    if name is None:
        raise ValueError(f"unknown method {method!r}; choose one of {list(CLASSICAL_METHODS)}.")
    return name


# ============================================================================ forward
def _as_forward(forward: Any, source_space: Any) -> tuple[mne.Forward, Any]:
    """The mne.Forward and the deepesi SourceSpace of its source points."""
    from ..forward.io import _fallback_source_space, leadfield_to_forward
    from ..forward.leadfield import LeadField

    if isinstance(forward, LeadField):
        return leadfield_to_forward(forward), (source_space or forward.source_space)
    if isinstance(forward, mne.Forward):
        if source_space is None:
            source_space = _fallback_source_space(forward)
        if source_space.n_sources != forward["nsource"]:
            raise ValueError(
                f"the source space has {source_space.n_sources} points but the forward "
                f"{forward['nsource']} sources; pass the source space the forward was made on."
            )
        return forward, source_space
    raise TypeError(
        f"forward must be an mne.Forward or a deepesi LeadField, got {type(forward).__name__}."
    )


def _vertex_rows(forward: mne.Forward, vertices: list[np.ndarray]) -> np.ndarray:
    """Forward source rows of an stc's vertices (concatenated over source spaces)."""
    rows, offset = [], 0
    for s, verts in zip(forward["src"], vertices, strict=True):
        rows.append(offset + np.searchsorted(s["vertno"], verts))
        offset += len(s["vertno"])
    return np.concatenate(rows).astype(int)


def _stc_kind(forward: mne.Forward) -> str:
    kinds = {s["type"] for s in forward["src"]}
    if kinds == {"surf"}:
        return "surface"
    return "vol" if kinds <= {"vol", "discrete"} else "mixed"


def _to_mri(fwd: mne.Forward, xyz: np.ndarray) -> np.ndarray:
    if fwd["coord_frame"] == FIFF.FIFFV_COORD_HEAD:
        head_mri = mne.transforms.invert_transform(fwd["mri_head_t"])
        return mne.transforms.apply_trans(head_mri, xyz)
    return np.asarray(xyz, dtype=float)


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
    return mne.Covariance(data, ev.ch_names, bads=[], projs=list(ev.info["projs"]),
                          nfree=max(x.shape[1] - 1, 1), verbose=False)


# ============================================================================ the operator
class ClassicalInverse:
    """A classical method made for one channel set: build once (:func:`make_classical`), apply
    to every recording with those channels (:meth:`apply`).

    Attributes
    ----------
    method : str
        Canonical name (:data:`CLASSICAL_METHODS`).
    ch_names : list of str
        The channels the operator takes (the good EEG/MEG channels of the info it was made for).
    forward : mne.Forward
        The forward, picked to ``ch_names``.
    source_space : SourceSpace
        The points of the maps it returns.
    params : dict
        The settings.
    """

    def __init__(self, method: str, info: mne.Info, forward: mne.Forward, source_space: Any,
                 noise_cov: mne.Covariance, *, snr: float, loose: Any, depth: float | None,
                 refine: bool, options: dict) -> None:
        self.method = method
        self.noise_cov = noise_cov
        self.source_space = source_space
        self.snr, self.loose, self.depth, self.refine = float(snr), loose, depth, bool(refine)
        self.options = dict(options)
        ev = mne.EvokedArray(np.zeros((len(info["ch_names"]), 1)), info, verbose=False)
        add_average_reference(ev)
        self.info = ev.info
        self.ch_names = list(ev.ch_names)
        self.forward = mne.pick_channels_forward(forward, self.ch_names, ordered=True,
                                                 verbose=False)
        self._inverse = None
        self._prepared: dict[int, Any] = {}
        self._whitened = None
        if method in MINIMUM_NORM:
            self._inverse = mne.minimum_norm.make_inverse_operator(
                self.info, self.forward, noise_cov, loose=loose, depth=depth, verbose=False
            )
        # the whitened gain: the dipole scan, and every method's goodness of fit
        self._whitened = WhitenedGain(self.info, self.forward, noise_cov)
        self._fitters: dict[int, Any] = {}  # 'dipoles': one source-set fitter per nave

    @property
    def params(self) -> dict:
        """The settings the method runs with (MNE options included)."""
        out: dict[str, Any] = {}
        if self.method in MINIMUM_NORM:
            out.update(snr=self.snr, lambda2=1.0 / self.snr**2, loose=self.loose,
                       depth=self.depth)
        elif self.method in ("MxNE", "gamma_map"):
            out.update(loose=self.loose, depth=self.depth)
        elif self.method == "dipole_scan":
            out.update(refine=self.refine)
        elif self.method == "dipoles":
            out.update(seeds="scan")
        out.update(self.options)
        return out

    def __repr__(self) -> str:
        return (f"<ClassicalInverse {self.method} | {len(self.ch_names)} channels → "
                f"{self.source_space.n_sources} sources>")

    # ------------------------------------------------------------------ apply
    def apply(self, inst: Recording, *, tmin: float | None = None, tmax: float | None = None,
              data_cov: mne.Covariance | None = None, fit: bool = True) -> SourceMap:
        """Localize a recording (Raw window, Epochs average or Evoked) with this operator.

        Parameters
        ----------
        inst : mne.io.Raw | mne.Epochs | mne.Evoked
            Its good EEG/MEG channels must be the operator's :attr:`ch_names`.
        tmin, tmax : float | None
            Time window (s, inclusive); ``tmin == tmax`` takes the nearest sample.
        data_cov : mne.Covariance | None
            LCMV only: the data covariance. Default: ``X Xᵀ / n`` of the window's samples plus
            ``noise_cov / nave`` (shrinkage toward the noise model), then MNE's ``reg``.
        fit : bool
            Refit the map's peaks on the data (:attr:`SourceMap.fit`, goodness of fit next to
            the best single dipole); False skips it (the benchmark times the methods alone).

        Returns
        -------
        SourceMap
            Amplitudes (n_sources, n_times) in :data:`METHOD_UNITS`, read by default at the
            data's peak of whitened global field power.
        """
        if data_cov is not None:
            validate_type(data_cov, mne.Covariance, "data_cov", "an mne.Covariance")
        ev = prepare_evoked(inst, self.ch_names, self.ch_names, tmin=tmin, tmax=tmax)
        if set(ev.ch_names) != set(self.ch_names):
            missing = [n for n in self.ch_names if n not in set(ev.ch_names)]
            raise ValueError(
                f"the {self.method} operator was made for {len(self.ch_names)} channels; this "
                f"recording lacks (or marks bad) {missing[:8]}{' ...' if len(missing) > 8 else ''}"
                ". Make the operator with this recording's info (make_classical) or repair "
                "the channels."
            )
        ev.reorder_channels(self.ch_names)
        amp, extras = self._amplitudes(ev, data_cov, baseline_of=inst)
        k = peak_sample(ev.data, ev.info, self.noise_cov)
        params = {"tmin": float(ev.times[0]), "tmax": float(ev.times[-1]), **self.params}
        report = {}
        if fit:
            report = map_fit(amp[:, k], self.source_space, self._whitened.gain,
                             self._whitened.whiten(ev)[:, k], time=float(ev.times[k]),
                             method=self.method)
        if "source_set" in extras:
            report["sources"] = {**extras["source_set"].to_dict(), "nave": int(ev.nave),
                                 "window_s": [float(ev.times[0]), float(ev.times[-1])]}
        return SourceMap.from_amplitudes(
            amp, ev.times, self.source_space, method=self.method,
            units=METHOD_UNITS[self.method], peak_time=float(ev.times[k]), params=params,
            info=ev.info, extras=extras, vertices=[s["vertno"].copy() for s in self.forward["src"]],
            stc_kind=_stc_kind(self.forward), fit=report,
        )

    def _amplitudes(self, ev: mne.Evoked, data_cov: mne.Covariance | None,
                    baseline_of: Any = None) -> tuple[np.ndarray, dict]:
        if self.method in MINIMUM_NORM:
            return self._minimum_norm(ev)
        if self.method == "LCMV":
            return self._lcmv(ev, data_cov)
        if self.method in ("MxNE", "gamma_map"):
            return self._sparse(ev)
        if self.method == "dipoles":
            return self._sequential(ev, baseline_of)
        return self._dipole(ev)

    def _empty(self, ev: mne.Evoked) -> np.ndarray:
        return np.zeros((self.forward["nsource"], len(ev.times)))

    def _minimum_norm(self, ev: mne.Evoked) -> tuple[np.ndarray, dict]:
        opts = dict(self.options)
        method_params = opts.pop("method_params", None)
        lambda2 = 1.0 / self.snr**2
        nave = int(ev.nave)
        if nave not in self._prepared:  # the operator depends on nave (noise scales 1/nave)
            self._prepared[nave] = mne.minimum_norm.prepare_inverse_operator(
                self._inverse, nave=nave, lambda2=lambda2, method=self.method,
                method_params=method_params, verbose=False,
            )
        stc = mne.minimum_norm.apply_inverse(
            ev, self._prepared[nave], lambda2=lambda2, method=self.method, pick_ori=None,
            prepared=True, verbose=False, **opts,
        )
        amp = self._empty(ev)
        amp[_vertex_rows(self.forward, stc.vertices)] = np.abs(stc.data)
        return amp, {"raw_stc": stc}

    def _lcmv(self, ev: mne.Evoked, data_cov: mne.Covariance | None) -> tuple[np.ndarray, dict]:
        if data_cov is None:
            data_cov = _data_covariance(ev, self.noise_cov)
        kwargs = {"reg": 0.05, "pick_ori": "max-power", "weight_norm": "unit-noise-gain-invariant"}
        kwargs.update(self.options)
        filters = mne.beamformer.make_lcmv(ev.info, self.forward, data_cov,
                                           noise_cov=self.noise_cov, verbose=False, **kwargs)
        stc = mne.beamformer.apply_lcmv(ev, filters, verbose=False)
        amp = self._empty(ev)
        amp[_vertex_rows(self.forward, stc.vertices)] = np.abs(stc.data)
        return amp, {"raw_stc": stc, "data_cov": data_cov, "filters": filters}

    def _sparse(self, ev: mne.Evoked) -> tuple[np.ndarray, dict]:
        amp = self._empty(ev)
        pick_ori = "vector" if n_orient(self.forward) == 3 else None  # all components: norm
        common = dict(loose=self.loose, depth=self.depth, pick_ori=pick_ori, verbose=False)
        if self.method == "MxNE":
            kwargs = {"alpha": 30.0, "n_mxne_iter": 10, **self.options}
            out = mne.inverse_sparse.mixed_norm(ev, self.forward, self.noise_cov, **common,
                                                **kwargs)
        else:
            kwargs = {"alpha": 0.5, "tol": 1e-4, **self.options}
            out = mne.inverse_sparse.gamma_map(ev, self.forward, self.noise_cov, **common,
                                               **kwargs)
        stc = out[0] if isinstance(out, tuple | list) else out
        if stc is None or len(np.concatenate(stc.vertices)) == 0:
            logger.warning("%s found no active source; try a smaller alpha", self.method)
            return amp, {"raw_stc": stc}
        norm = np.linalg.norm(stc.data, axis=1) if stc.data.ndim == 3 else np.abs(stc.data)
        amp[_vertex_rows(self.forward, stc.vertices)] = norm
        return amp, {"raw_stc": stc, "alpha": kwargs["alpha"]}

    def _sequential(self, ev: mne.Evoked, baseline_of: Any = None) -> tuple[np.ndarray, dict]:
        """Sequential dipole fitting (:func:`deepesi.inverse.fit_source_set` with scan seeds
        only: no network) over the window, on data whitened by the noise covariance / nave,
        rescaled to the noise of the recording's baseline when it has one (as
        :func:`deepesi.inverse.apply_network` does for its source sets); the map holds each
        source's moment norm over time at its nearest grid point."""
        from .noise_level import baseline_noise
        from .source_set import SourceSetFitter, effective_samples

        nave = max(int(ev.nave), 1)
        x = np.sqrt(nave) * self._whitened.whiten(ev)
        n_t = x.shape[1] if x.ndim > 1 else 1
        measured = (None if baseline_of is None else baseline_noise(
            baseline_of, list(self._whitened.names), np.sqrt(nave) * self._whitened.whitener))
        if nave not in self._fitters:
            self._fitters[nave] = SourceSetFitter(np.sqrt(nave) * self._whitened.gain,
                                                  self.source_space)
        if measured is not None:
            options = {"n_effective": measured.effective_samples(n_t),
                       "noise_variance": measured.variance}
        else:
            options = {"n_effective": effective_samples(n_t, float(ev.info["sfreq"]),
                                                        ev.info.get("lowpass"))}
        options.update(self.options)
        found = self._fitters[nave].fit(x, seeds="scan", **options)
        amp = self._empty(ev)
        for src in found.sources:
            amp[src.grid_index] = np.maximum(amp[src.grid_index],
                                             np.linalg.norm(src.moment, axis=0))
        return amp, {"source_set": found}

    def _dipole(self, ev: mne.Evoked) -> tuple[np.ndarray, dict]:
        fit = dipole_scan(ev, self.forward, self.noise_cov, refine=self.refine,
                          whitened=self._whitened)
        amp = self._empty(ev)
        amp[fit["best"]] = np.linalg.norm(fit["moment"], axis=0)
        extras = dict(fit)
        if "refined_pos" in fit:
            extras["refined_pos"] = _to_mri(self.forward, fit["refined_pos"])
        return amp, extras


# ============================================================================ entry points
@verbose
def make_classical(
    method: str,
    info: mne.Info,
    forward: Any,
    noise_cov: mne.Covariance,
    *,
    snr: float = 3.0,
    loose: float | str | Mapping = "auto",
    depth: float | None = 0.8,
    refine: bool = False,
    source_space: Any = None,
    options: Mapping[str, Any] | None = None,
    verbose: bool | str | int | None = None,
) -> ClassicalInverse:
    """Build a classical inverse method for the good channels of ``info``, once.

    Parameters
    ----------
    method : str
        One of :data:`CLASSICAL_METHODS` (case-insensitive): ``'MNE'``, ``'dSPM'``, ``'sLORETA'``,
        ``'eLORETA'`` (:mod:`mne.minimum_norm`), ``'LCMV'`` (:mod:`mne.beamformer`), ``'MxNE'``
        (:func:`mne.inverse_sparse.mixed_norm`), ``'gamma_map'``
        (:func:`mne.inverse_sparse.gamma_map`), ``'dipole_scan'``
        (:func:`deepesi.inverse.dipole.dipole_scan`) or ``'dipoles'`` (sequential dipole
        fitting: :func:`deepesi.inverse.fit_source_set` seeded by the scan alone; the number of
        dipoles by an information criterion, positions off the grid, the set in
        :attr:`SourceMap.sources`; ``options`` are its keywords, e.g. ``max_sources``).
    info : mne.Info
        The recording's info: its good EEG/MEG channels are used, each must be in the forward
        and the noise covariance. An average EEG reference projector is added if the EEG has
        none.
    forward : mne.Forward | deepesi.forward.LeadField
        The forward model (a LeadField is converted with
        :func:`deepesi.forward.io.leadfield_to_forward`).
    noise_cov : mne.Covariance
        Noise covariance: whitens the data and sets the regularisation.
    snr : float
        Assumed amplitude SNR of the whitened data for the minimum-norm methods:
        ``lambda2 = 1 / snr**2`` (MNE's convention; 3 for evoked data).
    loose : float | 'auto' | dict
        Orientation constraint (minimum-norm and sparse methods). ``'auto'`` is 0.2 for surface
        source spaces and 1 (free) for volume/discrete ones, which MNE requires.
    depth : float | None
        Depth-weighting exponent (MNE's default 0.8; None for none), minimum-norm and sparse
        methods.
    refine : bool
        ``'dipole_scan'`` only: also refine the dipole position off the grid; the result goes in
        ``extras['refined_pos']`` (MRI frame, m).
    source_space : SourceSpace | None
        The deepesi source space of the forward's points (default: the LeadField's own, or one
        built from an mne.Forward's positions).
    options : mapping | None
        Extra keyword arguments for the underlying MNE function, e.g. ``{'alpha': 30}`` for MxNE,
        ``{'reg': 0.1, 'pick_ori': None}`` for LCMV, ``{'method_params': ...}`` for eLORETA.
    verbose : bool | str | int | None
        Log level for the call (see :func:`deepesi.set_log_level`).

    Returns
    -------
    ClassicalInverse
    """
    name = check_method(method)
    validate_type(info, mne.Info, "info", "an mne.Info (e.g. evoked.info)")
    fwd, src = _as_forward(forward, source_space)
    if noise_cov is None:
        raise ValueError(
            "the classical methods need a noise covariance for whitening and regularisation: "
            "estimate one from baseline data (mne.compute_covariance(epochs, tmax=0)) or, as a "
            "last resort, use mne.make_ad_hoc_cov(evoked.info)."
        )
    validate_type(noise_cov, mne.Covariance, "noise_cov", "an mne.Covariance")
    validate_type(snr, "numeric", "snr")
    if not (np.isfinite(snr) and snr > 0):
        raise ValueError(f"snr must be a positive number (amplitude SNR, default 3), got {snr}.")
    if options is not None:
        validate_type(options, Mapping, "options", "a dict of MNE keyword arguments")
    check_finite(fwd["sol"]["data"], "forward gain")
    check_finite(noise_cov.data, "noise covariance")
    picks = mne.pick_types(info, meg=True, eeg=True, ref_meg=False, exclude="bads")
    names = [info["ch_names"][k] for k in picks]
    check_channels(names, list(fwd["sol"]["row_names"]), list(noise_cov["names"]))
    return ClassicalInverse(name, mne.pick_info(info, picks, verbose=False), fwd, src, noise_cov,
                            snr=snr, loose=loose, depth=depth, refine=refine,
                            options=dict(options or {}))


@verbose
def apply_classical(
    inst: Recording,
    method: str,
    forward: Any,
    noise_cov: mne.Covariance,
    *,
    tmin: float | None = None,
    tmax: float | None = None,
    snr: float = 3.0,
    loose: float | str | Mapping = "auto",
    depth: float | None = 0.8,
    data_cov: mne.Covariance | None = None,
    refine: bool = False,
    source_space: Any = None,
    options: Mapping[str, Any] | None = None,
    verbose: bool | str | int | None = None,
) -> SourceMap:
    """Localize a recording with a classical inverse method on a given forward.

    ``make_classical(method, inst.info, forward, noise_cov, ...).apply(inst, ...)`` in one call;
    see :func:`make_classical` for the parameters, :meth:`ClassicalInverse.apply` for ``tmin``,
    ``tmax`` and ``data_cov``.

    Returns
    -------
    SourceMap
        Amplitude map (n_sources, n_times) in :data:`METHOD_UNITS`, its source estimate
        (:meth:`SourceMap.to_stc`) and peaks (:meth:`SourceMap.peaks`) at the data's peak of
        whitened global field power.
    """
    if not isinstance(inst, mne.io.BaseRaw | mne.BaseEpochs | mne.Evoked):
        as_evoked_or_raw(inst)  # raises the TypeError that says what inst must be
    info = inst.info
    op = make_classical(method, info, forward, noise_cov, snr=snr, loose=loose, depth=depth,
                        refine=refine, source_space=source_space, options=options)
    return op.apply(inst, tmin=tmin, tmax=tmax, data_cov=data_cov)
