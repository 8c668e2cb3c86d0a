"""Localize a recording with a trained network: :func:`apply_network` returns a SourceMap."""

from __future__ import annotations

from typing import Any

import mne
import numpy as np

from .._logging import logger, verbose
from .._validation import validate_type
from ..sources import SourceSpace
from ..whitening import only_rereferences
from .anycap import bind_recording, is_cap_free
from .compartments import decide_compartments
from .fit import map_fit
from .prepare import Recording, check_channels, peak_sample, prepare_data, recording_nave
from .result import SourceMap

__all__ = ["agreement_sentence", "apply_network", "check_model_source_space",
           "member_agreement", "nets_disagree", "warn_untrained_ssp"]

#: Largest n_sources x n_times a single call localizes: 0.4 GB of float64 amplitudes, and
#: about 1.2 GB for the 4-D NIfTI (the grid's bounding box holds ~6 voxels per source point).
MAX_VALUES = 50_000_000

#: Unit of a network's map (the net predicts the shape of the map, not A·m).
NETWORK_UNITS = "relative (network output)"


def check_model_source_space(model: Any, source_space: SourceSpace) -> None:
    """Raise ValueError unless ``model`` was trained for ``source_space`` (hash and size)."""
    validate_type(source_space, SourceSpace, "source_space",
                  "a deepesi SourceSpace (read one with deepesi.sources.read_source_space)")
    for attr in ("ch_names", "ch_types", "predict"):
        if not hasattr(model, attr):
            raise TypeError(
                f"model has no {attr!r}; load a trained model with deepesi.training.read_model."
            )
    n_model = getattr(model, "n_sources", None)
    if n_model is not None and int(n_model) != source_space.n_sources:
        raise ValueError(
            f"model/source-space mismatch: the model predicts {int(n_model)} source points, "
            f"the source space has {source_space.n_sources}. Use the source space the model "
            "was trained on."
        )
    expected = getattr(model, "source_space_hash", None)
    if expected and expected != source_space.hash():
        raise ValueError(
            "model/source-space mismatch: the model was trained on source space "
            f"{str(expected)[:12]}, this one is {source_space.hash()[:12]} "
            f"({source_space.n_sources} points). Use the source space the model was trained on."
        )


def warn_untrained_ssp(info: mne.Info, model: Any) -> bool:
    """Warn (and return True) when the recording carries SSP projectors on the model's channels
    that the model was not trained with (``SimulationConfig(projs=...)``).

    A projector that only re-references EEG to its average changes nothing here (every model is
    trained average-referenced) and does not count
    (:func:`deepesi.whitening.only_rereferences`).
    """
    extra = _untrained_projs(info, model)
    if not extra:
        return False
    logger.warning(
        "the recording has %d SSP projector(s) on the model's channels (%s) but the model was "
        "trained without them: the data lack field components the training data had, which "
        "biases the network. Give the model's forward (the field is then restored from it), "
        "or retrain with the recording's projectors (SimulationConfig(projs=info['projs']) or "
        "deepesi train --projs FILE.fif).", len(extra),
        ", ".join(q["desc"] for q in extra[:3]) + (", ..." if len(extra) > 3 else ""),
    )
    return True


def _untrained_projs(info: mne.Info, model: Any) -> list:
    """The recording's projectors on the model's channels that the model was not trained with
    (an average-reference projector does not count)."""
    if (getattr(model, "sim_config", None) or {}).get("projs") == "given":
        return []
    names, types = list(model.ch_names), list(model.ch_types)
    return [q for q in info["projs"] if not only_rereferences([q], names, types)]


def _restoring(model: Any, forward: Any, info: mne.Info) -> Any:
    """``model`` wrapped to restore what the recording's projectors removed (under ``forward``)."""
    from .fieldmap import MappedInputModel, restoration_matrix

    names, types = list(model.ch_names), np.asarray(model.ch_types)
    gain = forward.pick(names).gain.reshape(len(names), -1)
    scale = np.ones(len(names))
    for t in set(types):  # per-type RMS gain: magnetometers and gradiometers weigh alike
        scale[types == t] = np.sqrt(np.mean(gain[types == t] ** 2))
    extra = _untrained_projs(info, model)
    matrix = restoration_matrix(extra, gain, names, scale)
    if matrix is None:
        return model
    logger.info("the recording's %d SSP projector(s) were not in the model's training: the "
                "field they removed is restored from the forward before the net reads it",
                len(extra))
    return MappedInputModel(model, matrix)


def _base_model(model: Any) -> Any:
    """The trained model under the binding / mapping wrappers (their ``base``)."""
    while hasattr(model, "base"):
        model = model.base
    return model


class _WithDeepPrior:
    """A model whose ``predict`` reads the maps under another deep-source prior (the keyword
    passes through the binding and mapping wrappers to the trained model)."""

    def __init__(self, model: Any, deep_prior: float) -> None:
        self.base, self.deep_prior = model, deep_prior

    def __getattr__(self, name: str) -> Any:
        return getattr(self.base, name)

    def predict(self, data: np.ndarray, **kwargs: Any) -> np.ndarray:
        return self.base.predict(data, deep_prior=self.deep_prior, **kwargs)


def _source_space_of(model: Any, source_space: SourceSpace | None) -> SourceSpace:
    if source_space is not None:
        return source_space
    carried = getattr(model, "source_space", None)
    if isinstance(carried, SourceSpace):
        return carried
    raise ValueError(
        "the model file does not carry its source space; pass the one it was trained on "
        "(source_space=read_source_space('SRC.npz'); CLI: --source-space SRC.npz)."
    )


def _info_of(inst: Any) -> mne.Info:
    info = getattr(inst, "info", None)
    if not isinstance(info, mne.Info):
        raise TypeError("a montage-independent model needs an MNE recording (Raw, Epochs or "
                        f"Evoked, with electrode positions), got {type(inst).__name__}.")
    return info


def _peak_sample(data: np.ndarray, info: mne.Info, model: Any, noise_cov: Any) -> int:
    """The data's peak: whitened by ``noise_cov`` as the classical methods do when it is given,
    else by the model's own input whitener, else by its per-channel input scaling."""
    if noise_cov is not None:
        check_channels(list(model.ch_names), list(model.ch_names), list(noise_cov["names"]))
        return peak_sample(data, info, noise_cov)
    transform = getattr(model, "whitener", None)
    if transform is None:
        transform = getattr(model, "channel_scale", None)
    return peak_sample(data, transform=transform)


@verbose
def apply_network(
    inst: Recording,
    model: Any,
    *,
    source_space: SourceSpace | None = None,
    noise_cov: mne.Covariance | None = None,
    forward: Any = None,
    tmin: float | None = None,
    tmax: float | None = None,
    refine: bool = False,
    sources: bool = False,
    max_sources: int = 4,
    source_window: float = 0.01,
    noise_from_baseline: bool = True,
    restore_ssp: bool = True,
    deep_prior: float | None = None,
    compartment: str = "mass",
    verbose: bool | str | int | None = None,
) -> SourceMap:
    """Localize the sources of a recording with a trained network.

    Parameters
    ----------
    inst : mne.io.Raw | mne.Epochs | mne.Evoked
        The recording (SI units). Epochs are averaged first. Prepared by
        :func:`deepesi.inverse.prepare_data`: channels matched to the model by name, bad ones
        interpolated, EEG average-referenced, the signal checked.
    model : TrainedModel
        From :func:`deepesi.training.read_model` or :func:`deepesi.pretrained.load_pretrained`
        (anything with ``ch_names``, ``ch_types``, ``predict(data) -> (n_sources, n_times)`` and
        optionally ``n_sources``, ``source_space_hash``, ``source_space``). A montage-independent
        model (``'template-eeg'``, trained on random caps) reads the recording's own EEG
        electrodes, placed on its head by their fiducials
        (:func:`deepesi.inverse.anycap.bind_recording`).
    source_space : SourceSpace | None
        The source space the model was trained on (checked by hash and size); default the one
        the model carries.
    noise_cov : mne.Covariance | None
        Whitens the data to find the peak time as the classical methods do (the sample of the
        largest whitened global field power) and for the goodness of fit. None: the model's
        input whitener, or its per-type input scaling, stands in.
    forward : LeadField | ScalpLeadField | None
        The model's forward (its training lead field; :func:`deepesi.forward.read_forward`, or
        the one :func:`deepesi.pretrained.load_pretrained` returns; for a montage-independent
        model its head's dense scalp lead field, from which the recording's electrodes get
        theirs). With it the map's peaks are
        refitted on the data (:attr:`SourceMap.fit`: goodness of fit next to the best single
        dipole; a warning when the map explains much less). None: no fit.
    tmin, tmax : float | None
        Time window (s, inclusive).
    refine : bool
        With ``forward``: also move each peak by up to two grid diagonals to where the
        refitted dipoles explain the data best (:func:`deepesi.inverse.fit.refine_support`);
        the refined dipoles are in ``fit['refined_*']``, the map itself is unchanged.
    sources : bool
        With ``forward``: also fit a set of sources (:func:`deepesi.inverse.fit_source_set`):
        how many, where off the grid, how strong, seeded by the network's map of the data and
        of what the sources found so far leave unexplained. Kept in :attr:`SourceMap.sources`
        (and ``fit['sources']``); written as ``sources.tsv``. Needs ``noise_cov`` (of single
        trials, as MNE's; an average's ``nave`` is taken into account): the number of
        sources is decided against the noise level.
    max_sources : int
        Most sources to fit.
    source_window : float
        Half-width (s) of the window around the peak sample whose samples the sources are
        fitted to together (positions shared, moments per sample).
    noise_from_baseline : bool
        For the source set of an Evoked (or Epochs) with ≥ 20 samples before 0 s: measure the
        whitened noise on that baseline (:func:`deepesi.inverse.noise_level.baseline_noise`)
        and decide the number of sources against it, its level (the noise covariance / nave
        rescaled to the baseline's variance) and its independent samples (from its
        autocorrelation); ``fit['sources']['noise']`` reports both. False, or no baseline:
        the noise covariance / nave as given, the independent samples from the recording's
        low-pass.
    restore_ssp : bool
        With ``forward``, when the recording carries SSP projectors on the model's channels
        that the model was not trained with: fill the directions they removed in with their
        expected value under the forward before the net reads the data
        (:mod:`deepesi.inverse.fieldmap`; ``meta['ssp_restored']``). False, or no
        forward: the data are read as they are, with a warning.
    deep_prior : float | None
        Prior probability that a source is in a deep structure, to read the network's map
        (and its proposals for ``sources``) under, instead of the prior it was trained with
        (:meth:`deepesi.training.TrainedModel.deep_prior_weights`: Bayes' rule on the
        softmax posterior, no retraining; ``params['deep_prior']``). None: the training
        prior. Lower values make "deep" an answer the data must earn.
    compartment : {'mass', 'peak'}
        How the map's answer is put in a deep structure or in cortex. 'mass' (default, for a
        net trained with the cross-entropy loss): by where most of its posterior lies, the
        probability of a deep source (:mod:`deepesi.inverse.compartments`; the strongest
        point moved into that compartment where it was not; ``meta['compartment']``,
        ``extras['deep_probability']`` per sample). On the template it confuses fewer
        sources both ways than the peak alone (5 dB: cortical → deep 4.8 % instead of 8.7 %,
        deep → cortical 7.7 % instead of 7.9 %). 'peak': the map as the net gives it.
    verbose : bool | str | int | None
        Log level for the call.

    Returns
    -------
    SourceMap
        Method 'deepesi', relative units (the net predicts the shape of the map).
    """
    if is_cap_free(model):  # a montage-independent net: read through this recording's cap
        from ..forward.leadfield import LeadField

        if forward is not None and isinstance(forward, LeadField):
            raise ValueError("a montage-independent model takes the dense scalp lead field "
                             "of its head as forward (load_pretrained('template-eeg') returns "
                             "it), not a fixed-channel LeadField.")
        model, cap_forward = bind_recording(model, _info_of(inst), forward)
        forward = cap_forward if forward is not None else None
    src = _source_space_of(model, source_space)
    check_model_source_space(model, src)
    if compartment not in ("mass", "peak"):
        raise ValueError(f"compartment must be 'mass' or 'peak', got {compartment!r}.")
    if deep_prior is not None:
        base = _base_model(model)
        if not hasattr(base, "deep_prior_weights"):
            raise ValueError("deep_prior needs a deepesi TrainedModel (read_model / "
                             "load_pretrained); this model has no training prior.")
        base.deep_prior_weights(deep_prior)  # checks the value and the model, one line
        model = _WithDeepPrior(model, float(deep_prior))
    if noise_cov is not None:
        validate_type(noise_cov, mne.Covariance, "noise_cov", "an mne.Covariance")
    if (refine or sources) and forward is None:
        raise ValueError("refine=True / sources=True needs the model's forward (forward=...).")
    if sources and (isinstance(max_sources, bool) or int(max_sources) != max_sources
                    or max_sources < 1):
        raise ValueError(f"max_sources must be a positive integer, got {max_sources!r}.")
    if sources and noise_cov is None:
        raise ValueError("sources=True needs the recording's noise covariance (noise_cov=...; "
                         "CLI: --noise-cov): the number of sources is decided against the noise "
                         "level, which the model's input scaling does not give.")
    channels: dict = {}
    data, times, info = prepare_data(inst, list(model.ch_names), list(model.ch_types),
                                     tmin=tmin, tmax=tmax,
                                     model_info=getattr(model, "info", None),
                                     channel_report=channels)
    restored = False
    if forward is not None and restore_ssp and _untrained_projs(info, model):
        wrapped = _restoring(model, forward, info)
        model, restored = wrapped, wrapped is not model
    else:
        warn_untrained_ssp(info, model)
    size = src.n_sources * data.shape[1]
    if size > MAX_VALUES:
        raise ValueError(
            f"{data.shape[1]} time samples x {src.n_sources} sources = {size:.3g} "
            f"values ({size * 8 / 1e9:.1f} GB), more than deepesi localizes at once "
            f"({MAX_VALUES:.0e}). Pass tmin/tmax (--tmin/--tmax), or epoch and average the "
            "recording (mne.Epochs(...).average()) first."
        )
    amp = np.asarray(model.predict(data), dtype=float)
    if amp.ndim != 2 or amp.shape != (src.n_sources, data.shape[1]):
        raise ValueError(
            f"the model returned maps of shape {amp.shape}, expected "
            f"({src.n_sources}, {data.shape[1]}); model and source space do not match."
        )
    meta = {
        "model": repr(model),
        "model_source_space_hash": getattr(model, "source_space_hash", None),
        "model_leadfield_hash": getattr(model, "leadfield_hash", None),
        "n_channels": len(model.ch_names),
        "channels": channels,
        "ssp_restored": restored,
    }
    fnames = getattr(inst, "filenames", None) or []
    if fnames and fnames[0] is not None:
        meta["recording"] = str(fnames[0])
    k = _peak_sample(data, info, model, noise_cov)
    base = _base_model(model)
    trained_prior = getattr(base, "trained_deep_fraction", None)
    params = {"tmin": float(times[0]), "tmax": float(times[-1]), "eeg_reference": "average",
              "peak_whitening": "noise_cov" if noise_cov is not None else "model input",
              "deep_prior": deep_prior, "trained_deep_prior": trained_prior}
    if getattr(base, "n_members", 1) > 1:  # before the compartment gate: the nets' own maps
        meta["ensemble"] = member_agreement(model, data, k, amp[:, k], src)
    amp, meta["compartment"], p_deep = decide_compartments(
        np.maximum(amp, 0.0), k, src.is_subcortical, rule=compartment,
        softmax=getattr(getattr(base, "net", None), "output", None) == "softmax",
        prior=deep_prior if deep_prior is not None else trained_prior)
    extras = {} if p_deep is None else {"deep_probability": p_deep}
    fit = {}
    if forward is not None:
        w, g = _whitened_gain(model, forward, src, info, noise_cov)
        radius = 2.0 * float(src.spacing) * np.sqrt(3.0) * (1 + 1e-6) if refine else None
        fit = map_fit(amp[:, k], src, g, w @ data[:, k], time=float(times[k]),
                      refine_radius=radius, method="deepesi")
        if sources:
            fit["sources"] = _fit_sources(model, data, times, k, w, g, src, int(max_sources),
                                          source_window, recording_nave(inst), info,
                                          inst if noise_from_baseline else None)
    return SourceMap.from_amplitudes(
        amp, times, src, method="deepesi", units=NETWORK_UNITS, extras=extras,
        peak_time=float(times[k]), params=params, info=info, meta=meta, fit=fit,
    )


#: Members whose peak lies within this distance (mm, at least two grid steps) of the combined
#: peak agree with it (:func:`member_agreement`).
AGREE_RADIUS_MM = 10.0

#: Below this share of agreeing members the ensemble's answer comes with a warning.
MIN_AGREEMENT = 0.5


def agreement_sentence(agree: dict) -> str:
    """'k of n put the peak within R mm of the combined peak (...)', from
    :func:`member_agreement`'s dict: the one wording of the log, the CLI and the report."""
    n = agree["members"]
    return (f"{round(agree['agreement'] * n)} of {n} put the peak within "
            f"{agree['agree_radius_mm']:.0f} mm of the combined peak (their peaks up to "
            f"{agree['peak_spread_mm']:.0f} mm apart)")


def nets_disagree(agree: dict) -> bool:
    """True when fewer than :data:`MIN_AGREEMENT` of the members agree."""
    return agree["agreement"] < MIN_AGREEMENT


def member_agreement(model: Any, data: np.ndarray, k: int, combined: np.ndarray,
                     src: SourceSpace) -> dict:
    """How far a seed ensemble's members agree at sample ``k``.

    Each member's map of the same data (read through the same wrappers) is computed around
    sample ``k``; its strongest point is compared with that of the ``combined`` map.

    Returns
    -------
    dict
        ``members``; ``member_peaks_mm`` (MRI frame); ``peak_spread_mm``, the largest distance
        between two members' peaks; ``agree_radius_mm``; ``agreement``, the share of members
        whose peak is within that radius of the combined peak. Logs a warning when fewer than
        half agree (:func:`nets_disagree`): the recording is unlike what the nets were
        trained on.
    """
    base = _base_model(model)
    n = int(base.n_members)
    w = int(getattr(base.net, "n_times", 1))
    lo, hi = max(k - w, 0), min(k + w + 1, data.shape[1])  # the windows around k, unchanged
    peaks = np.array([
        src.pos[int(np.argmax(np.asarray(model.predict(data[:, lo:hi], member=m))[:, k - lo]))]
        for m in range(n)
    ]) * 1e3
    top = src.pos[int(np.argmax(combined))] * 1e3
    radius = max(AGREE_RADIUS_MM, 2e3 * float(src.spacing))
    spread = max(float(np.linalg.norm(a - b)) for a in peaks for b in peaks)
    agreement = float(np.mean(np.linalg.norm(peaks - top, axis=1) <= radius))
    out = {"members": n, "rule": getattr(base.net, "rule", None),
           "member_peaks_mm": peaks.round(2).tolist(), "peak_spread_mm": round(spread, 2),
           "agree_radius_mm": radius, "agreement": agreement}
    if nets_disagree(out):
        logger.warning("the ensemble's nets disagree: %s. The recording is unlike the nets' "
                       "training data here: compare with the classical methods before "
                       "trusting the map.", agreement_sentence(out))
    else:
        logger.info("ensemble: %s", agreement_sentence(out))
    return out


def _fit_sources(model: Any, data: np.ndarray, times: np.ndarray, k: int, w: np.ndarray,
                 g: np.ndarray, src: SourceSpace, max_sources: int, half_width: float,
                 nave: int, info: mne.Info, baseline_of: Any = None) -> dict:
    """The source set around sample ``k``, seeded by the network's map of data and residuals.

    The noise of an average of ``nave`` trials is the covariance / nave: data and gain are
    whitened by ``sqrt(nave)·W`` so that the noise is white with unit variance, as the order
    criterion assumes (the moments stay in A·m). With ``baseline_of`` (the recording), the
    noise is measured on its baseline and the criterion counts in its variance
    (:func:`~deepesi.inverse.noise_level.baseline_noise`); otherwise its independent samples
    in the window follow from the recording's low-pass
    (:func:`~deepesi.inverse.source_set.effective_samples`)."""
    from .noise_level import baseline_noise
    from .source_set import effective_samples, fit_source_set, network_proposal

    tstep = float(times[1] - times[0]) if len(times) > 1 else 1.0
    h = round(max(float(half_width), 0.0) / tstep)
    lo, hi = max(k - h, 0), min(k + h + 1, data.shape[1])
    w = np.sqrt(float(nave)) * w
    g = np.sqrt(float(nave)) * g
    measured = (None if baseline_of is None
                else baseline_noise(baseline_of, list(model.ch_names), w))
    variance = 1.0
    if measured is not None:
        variance = measured.variance
        n_eff = measured.effective_samples(hi - lo)
        noise = {"source": "baseline", **measured.to_dict(hi - lo)}
        if not 0.5 <= measured.variance <= 2.0:
            logger.warning("the recording's baseline has %.2f times the noise variance the noise "
                           "covariance / nave (%d) predicts: the sources are fitted against the "
                           "baseline's level", measured.variance, nave)
    else:
        n_eff = effective_samples(hi - lo, float(info["sfreq"]), info.get("lowpass"))
        noise = {"source": "noise covariance / nave", "independent_samples": round(n_eff, 2)}
    proposal = network_proposal(model, np.linalg.pinv(w, rcond=1e-8))
    found = fit_source_set(w @ data[:, lo:hi], g, src, proposal=proposal,
                           max_sources=max_sources, n_effective=n_eff,
                           noise_variance=variance)
    out = found.to_dict()
    out["window_s"] = [float(times[lo]), float(times[hi - 1])]
    out["nave"] = int(nave)
    out["noise"] = noise
    return out


def _whitened_gain(model: Any, forward: Any, src: SourceSpace, info: mne.Info,
                   noise_cov: Any) -> tuple[np.ndarray, np.ndarray]:
    """The whitener (n_w, n_ch) of the model's channels and the whitened gain of ``forward``.

    Whitening: ``noise_cov`` (MNE's whitener, average EEG reference added) when given, else the
    model's input whitener, else its per-channel input scaling."""
    from ..forward.leadfield import LeadField
    from .prepare import add_average_reference

    validate_type(forward, LeadField, "forward",
                  "a deepesi LeadField (deepesi.forward.read_forward('...-fwd.fif'))")
    names = list(model.ch_names)
    missing = [c for c in names if c not in set(forward.ch_names)]
    if missing:
        raise ValueError(f"the forward lacks {len(missing)} of the model's channels "
                         f"({missing[:5]}); pass the model's own forward.")
    if forward.n_sources != src.n_sources or forward.source_space.hash() != src.hash():
        raise ValueError("the forward's source space is not the model's; pass the lead field "
                         "the model was trained on.")
    gain = forward.pick(names).gain
    if noise_cov is not None:
        ev = mne.EvokedArray(np.zeros((len(names), 1)), info, verbose=False)
        add_average_reference(ev)
        w_cov, w_names = mne.cov.compute_whitener(noise_cov, ev.info, pca=True, verbose=False)
        w = np.zeros((w_cov.shape[0], len(names)))  # columns in the data's channel order
        w[:, [names.index(c) for c in w_names]] = w_cov
    elif getattr(model, "whitener", None) is not None:
        w = np.asarray(model.whitener, float)
    else:
        w = np.diag(1.0 / np.asarray(model.channel_scale, float))
    return w, np.einsum("wc,cso->wso", w, gain)
