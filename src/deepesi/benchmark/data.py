"""The benchmark's test data: one sensor set (model, lead fields, noise model), the noise-free
signals of a scenario cell simulated on the test lead field, and noise at a whitened SNR."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._validation import validate_type
from ..forward.leadfield import LeadField
from ..whitening import reference_projector, zca_whitener
from .config import DEEPESI, SOURCE_SET_METHODS, BenchmarkConfig, _seq
from .scoring import _Geometry

__all__ = ["default_set_name"]


@dataclass
class _SensorSet:
    """One sensor set: model, lead fields, noise model, cached inverse operators."""

    name: str
    model: Any
    inverse_lf: LeadField
    test_lf: LeadField
    geo: _Geometry
    noise_cov: Any  # mne.Covariance on the channels, in order
    noise_factor: np.ndarray
    proj: np.ndarray
    whitener: np.ndarray
    forward: Any = None
    info: Any = None
    inverse: dict = field(default_factory=dict)


def default_set_name(lf: LeadField) -> str:
    """'eeg64', 'meg306', 'meeg370'... from a lead field's channel types."""
    types = set(lf.ch_types)
    kind = "eeg" if types == {"eeg"} else "meg" if "eeg" not in types else "meeg"
    return f"{kind}{lf.n_channels}"


# ----------------------------------------------------------------------------- sensor sets
def _make_set(
    name: str, model: Any, inverse_lf: LeadField, test_lf: LeadField, noise_cov: Any,
    cfg: BenchmarkConfig,
) -> _SensorSet:
    """Check a sensor set's model and forwards against each other and build its noise model."""
    inverse_lf, test_lf = _pair_forwards(name, model, inverse_lf, test_lf)
    deep = test_lf.source_space.is_subcortical
    if "subcortical" in cfg.placements or "mixed" in cfg.placements:
        if not deep.any():
            raise ValueError(f"sensor set {name!r}: the test source space has no subcortical "
                             "points; drop 'subcortical'/'mixed' from placements.")
    if ("cortical" in cfg.placements or "mixed" in cfg.placements) and deep.all():
        raise ValueError(f"sensor set {name!r}: the test source space has no cortical points.")
    classical = [m for m in cfg.methods if m not in (DEEPESI, *SOURCE_SET_METHODS)]
    if classical and inverse_lf.info is None:
        raise ValueError(f"sensor set {name!r}: the classical methods need the model lead "
                         "field's info and trans (read it from a -fwd.fif file).")
    cov, c = _noise_covariance(noise_cov, inverse_lf, name)
    evals, evecs = np.linalg.eigh(c)
    proj = reference_projector(inverse_lf.ch_types, inverse_lf.eeg_reference == "average")
    return _SensorSet(
        name=name, model=model, inverse_lf=inverse_lf, test_lf=test_lf,
        geo=_Geometry.build(test_lf, inverse_lf), noise_cov=cov,
        noise_factor=evecs * np.sqrt(np.clip(evals, 0, None)), proj=proj,
        whitener=zca_whitener(c, proj, ch_types=inverse_lf.ch_types),
    )


def _pair_forwards(
    name: str, model: Any, inverse_lf: LeadField, test_lf: LeadField
) -> tuple[LeadField, LeadField]:
    """The model's and the test lead field on the model's channels, in its order."""
    for what, lf in (("model lead field", inverse_lf), ("test lead field", test_lf)):
        if not isinstance(lf, LeadField):
            raise TypeError(f"sensor set {name!r}: the {what} must be a deepesi LeadField, got "
                            f"{type(lf).__name__} (read -fwd.fif files with read_forward).")
    if model is not None:
        _check_model(model, inverse_lf, name)
        inverse_lf = inverse_lf.pick(list(model.ch_names))
    missing = [c for c in inverse_lf.ch_names if c not in test_lf.ch_names]
    if missing:
        raise ValueError(
            f"sensor set {name!r}: the test forward lacks {len(missing)} channel(s) of the model "
            f"({missing[:8]}{' ...' if len(missing) > 8 else ''}); compute the test forward for "
            "the same sensors."
        )
    test_lf = test_lf.pick(inverse_lf.ch_names)
    if test_lf.ch_types != inverse_lf.ch_types:
        raise ValueError(f"sensor set {name!r}: channel types differ between the forwards.")
    if test_lf.eeg_reference != inverse_lf.eeg_reference:
        raise ValueError(f"sensor set {name!r}: the forwards differ in EEG reference.")
    return inverse_lf, test_lf


def _check_model(model: Any, lf: LeadField, name: str) -> None:
    for attr in ("predict", "ch_names"):
        if not hasattr(model, attr):
            raise TypeError(
                f"model for {name!r} has no {attr!r}; pass a deepesi TrainedModel (read_model) or "
                "an object with predict(data, ch_names=...), ch_names and ch_types."
            )
    if hasattr(model, "check_leadfield") and hasattr(model, "leadfield_hash"):
        model.check_leadfield(lf)
    if sorted(model.ch_names) != sorted(lf.ch_names):
        missing = [c for c in model.ch_names if c not in lf.ch_names]
        extra = [c for c in lf.ch_names if c not in model.ch_names]
        raise ValueError(
            f"sensor set {name!r}: the model's channels differ from its lead field's (missing "
            f"{missing[:8]}, extra {extra[:8]}); pass the lead field the model was trained on."
        )
    n_src = getattr(model, "n_sources", lf.n_sources)
    if n_src != lf.n_sources:
        raise ValueError(
            f"sensor set {name!r}: the model predicts {n_src} sources but its lead field has "
            f"{lf.n_sources}; pass the lead field the model was trained on."
        )


def _noise_covariance(noise_cov: Any, lf: LeadField, name: str):
    """The noise covariance on the lead field's channels (full matrix), and its data array."""
    import mne

    validate_type(noise_cov, (mne.Covariance, None), "noise_cov", "mne.Covariance or None")
    if noise_cov is None:
        cov = mne.make_ad_hoc_cov(_channel_info(lf, 1000.0), verbose=False)
    else:
        cov = noise_cov
    missing = [c for c in lf.ch_names if c not in cov.ch_names]
    if missing:
        raise ValueError(
            f"sensor set {name!r}: the noise covariance lacks {len(missing)} channel(s), e.g. "
            f"{missing[:8]}; estimate it on the lead field's channels."
        )
    cov = cov.copy().pick_channels(lf.ch_names, ordered=True, verbose=False)
    c = np.diag(cov.data) if cov["diag"] else np.asarray(cov.data)
    if not cov["diag"]:
        cov = mne.Covariance(c, cov.ch_names, [], [], cov.nfree, verbose=False)
    return cov, c


def _channel_info(lf: LeadField, sfreq: float):
    """A complete mne.Info of the lead field's channels, in its order, no bads or projectors.

    A lead field read from a -fwd.fif file carries only the forward's reduced info (no sampling
    rate, no projector list); the channel records (kind, coil type, position) are copied from it.
    """
    import copy

    import mne

    info = mne.create_info(list(lf.ch_names), float(sfreq), list(lf.ch_types))
    src = lf.info
    if src is not None and "chs" in src:
        by_name = {ch["ch_name"]: ch for ch in src["chs"]}
        with info._unlock():
            info["chs"] = [copy.deepcopy(by_name[c]) for c in lf.ch_names]
            if src.get("dev_head_t") is not None:
                info["dev_head_t"] = src["dev_head_t"]
        info._update_redundant()
    return info


# ----------------------------------------------------------------------------- test data
def _subset_leadfield(lf: LeadField, index: np.ndarray) -> LeadField:
    return LeadField(
        lf.gain[:, index], lf.ch_names, lf.ch_types, lf.source_space.subset(index),
        lf.info, lf.trans, lf.eeg_reference, dict(lf.meta),
    )


def _simulate_cell(
    sset: _SensorSet, cell: dict, cfg: BenchmarkConfig, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list]:
    """Noise-free signals of one cell on the test lead field.

    Returns data (n, n_ch, T), true maps (n, n_test, T), centres (n, K), realised extents (mm)
    and, per sample, the test points of each source's patch.
    """
    from ..simulation import SimulationConfig, Simulator

    lf = sset.test_lf
    deep = lf.source_space.is_subcortical
    placement, k, n = cell["placement"], cell["n_sources"], cfg.n_samples
    sim_kwargs = {"waveforms": ("evoked",), **cfg.simulation}
    sim_kwargs["waveforms"] = tuple(_seq(sim_kwargs["waveforms"]))
    base = dict(
        n_sources=(k, k), extent_mm=cell["extent"], n_times=cfg.n_times, sfreq=cfg.sfreq,
        snr_db=(100.0, 100.0), colored_noise_fraction=(0.0, 0.0), noise_cov=None,
        average_reference=lf.eeg_reference == "average", bad_channel_prob=0.0, **sim_kwargs,
    )
    if placement == "cortical":
        index = np.flatnonzero(~deep)
        sub, deep_fraction = _subset_leadfield(lf, index), 0.0
    elif placement == "subcortical":
        index = np.flatnonzero(deep)
        sub, deep_fraction = _subset_leadfield(lf, index), 1.0
    else:
        index, sub, deep_fraction = np.arange(lf.n_sources), lf, 1.0
    sim = Simulator(sub, SimulationConfig(deep_fraction=deep_fraction, **base))
    kept = []
    for _ in range(200):
        batch = sim.simulate(n, rng)
        ok = np.ones(n, bool)
        if placement == "mixed":  # the first source is deep: need a cortical one too
            c = np.where(batch.centres >= 0, batch.centres, 0)
            ok = (~deep[c] & (batch.centres >= 0)).any(axis=1)
        kept.append((batch, np.flatnonzero(ok)))
        if sum(len(i) for _, i in kept) >= n:
            break
    else:
        raise RuntimeError(f"could not draw {n} 'mixed' samples; too few cortical points?")
    data = np.concatenate([b.data[i] for b, i in kept])[:n].astype(float)
    sub_maps = np.concatenate([b.sources[i] for b, i in kept])[:n].astype(float)
    centres_sub = np.concatenate([b.centres[i] for b, i in kept])[:n]
    extents = np.concatenate([b.extent_mm[i] for b, i in kept])[:n].astype(float)
    maps = np.zeros((n, lf.n_sources, cfg.n_times))
    maps[:, index] = sub_maps
    centres = np.where(centres_sub >= 0, index[np.maximum(centres_sub, 0)], -1)
    patches = [
        [index[sim.patch(int(c), float(e) * 1e-3)] for c, e in zip(cs, es, strict=True) if c >= 0]
        for cs, es in zip(centres_sub, extents, strict=True)
    ]
    return data, maps, centres, extents, patches


def _add_noise(
    sset: _SensorSet, signal: np.ndarray, snr_db: float, rng: np.random.Generator
) -> tuple[np.ndarray, float]:
    """Signal scaled to ``snr_db`` (whitened power ratio) plus noise from the noise covariance."""
    noise = sset.proj @ (sset.noise_factor @ rng.standard_normal(signal.shape))
    ps = float(np.sum((sset.whitener @ signal) ** 2))
    pn = float(np.sum((sset.whitener @ noise) ** 2))
    if ps <= 0:
        raise RuntimeError("a simulated signal is zero on every channel; check the lead field.")
    scale = np.sqrt(pn / ps * 10 ** (snr_db / 10))
    return signal * scale + noise, scale
