"""Running the benchmark: every method on every sample of the scenario grid, scored.

:func:`run_benchmark` checks the sensor sets, simulates each cell once on the test lead field,
adds noise per SNR and runs the network and the classical methods on the same data, all of them
inverting with the model's lead field. The classical operators are made once per sensor set
(:func:`deepesi.inverse.make_classical`) and applied per sample.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from .._deprecate import progress_to_verbose
from .._logging import logger, verbose
from .._progress import progress
from .._validation import validate_type
from ..forward.io import leadfield_to_forward
from ..forward.leadfield import LeadField
from ..inverse.classical import make_classical
from .config import (
    DEEPESI,
    NETWORK_METHODS,
    SOURCE_SET_METHODS,
    BenchmarkConfig,
    _crc,
    _extent_label,
)
from .data import _add_noise, _channel_info, _make_set, _SensorSet, _simulate_cell, default_set_name
from .results import BenchmarkResult
from .scoring import _match_to_patches, _score
from .sets import estimate_set, set_map

__all__ = ["run_benchmark"]


# ============================================================================ classical methods
# The one place the benchmark talks to the classical methods: each operator is made once per
# sensor set (deepesi.inverse.make_classical) and applied to every sample.
def _prepare_classical(sset: _SensorSet, cfg: BenchmarkConfig) -> None:
    """The forward, the channels' info and one :class:`ClassicalInverse` per method, once."""
    _ensure_forward(sset, cfg)
    for method in _classical_methods(cfg):
        opts = dict(cfg.classical_options.get(method, {}))
        if method == "LCMV" and "eeg" not in sset.inverse_lf.ch_types:
            # MEG is blind to radial dipoles: the 3-orientation gain is rank-deficient at many
            # points (exactly so in a sphere), and MNE's max-power LCMV then needs reduced rank
            opts.setdefault("reduce_rank", True)
        sset.inverse[method] = make_classical(
            method, sset.info, sset.forward, sset.noise_cov, snr=cfg.lambda_snr,
            depth=cfg.depth, source_space=sset.inverse_lf.source_space, options=opts or None,
        )
    if sset.inverse:  # the info with the average EEG reference projector the operators use
        sset.info = next(iter(sset.inverse.values())).info


def _ensure_forward(sset: _SensorSet, cfg: BenchmarkConfig) -> None:
    """The ``mne.Forward`` of the model lead field and the channels' info, once per set."""
    if sset.forward is None:
        sset.forward = leadfield_to_forward(sset.inverse_lf)
        sset.info = _channel_info(sset.inverse_lf, cfg.sfreq)


def _classical_methods(cfg: BenchmarkConfig) -> list[str]:
    return [m for m in cfg.methods if m not in (DEEPESI, *SOURCE_SET_METHODS)]


def _check_external(external: Mapping[str, Callable] | None, cfg: BenchmarkConfig
                    ) -> dict[str, Callable]:
    """Names and factories of the outside methods, checked."""
    if external is None:
        return {}
    if not isinstance(external, Mapping):
        raise TypeError("external_methods must be a dict {name: factory}, got "
                        f"{type(external).__name__}.")
    out = {}
    for name, factory in external.items():
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"external method names must be non-empty strings, got {name!r}.")
        if name in cfg.methods:
            raise ValueError(f"external method {name!r} has the name of a built-in method; "
                             "rename it (e.g. 'peer-{name}').")
        if not callable(factory):
            raise TypeError(f"external method {name!r}: the factory must be callable "
                            "(forward, info, noise_cov) -> (evoked -> amplitudes).")
        out[name] = factory
    return out


def _prepare_external(sset: _SensorSet, cfg: BenchmarkConfig, external: dict) -> None:
    """Each outside method's apply function for this sensor set, made once from the same
    forward, info and noise covariance the classical methods get."""
    _ensure_forward(sset, cfg)
    sset.inverse["_external"] = {name: factory(sset.forward, sset.info, sset.noise_cov)
                                 for name, factory in external.items()}


def _run_external(sset: _SensorSet, method: str, data: np.ndarray) -> np.ndarray:
    """An outside method's amplitudes (n_sources, n_times) on one sample; free-orientation
    rows (x, y, z per source) are combined by their norm."""
    import mne

    evoked = mne.EvokedArray(data, sset.info, tmin=0.0, nave=1, verbose=False)
    est = np.asarray(sset.inverse["_external"][method](evoked), float)
    est = est[:, None] if est.ndim == 1 else est
    n = sset.inverse_lf.n_sources
    if est.shape[0] == 3 * n:
        est = np.linalg.norm(est.reshape(n, 3, -1), axis=1)
    return est


def _run_classical(
    sset: _SensorSet, method: str, data: np.ndarray, cfg: BenchmarkConfig
) -> np.ndarray:
    """The amplitude map (n_sources, n_times) of one classical method on one sample."""
    import mne

    evoked = mne.EvokedArray(data, sset.info, tmin=0.0, nave=1, verbose=False)
    return sset.inverse[method].apply(evoked, fit=False).amplitudes


# ============================================================================ entry point
@progress_to_verbose
@verbose
def run_benchmark(
    models: Any,
    test_leadfields: LeadField | Mapping[str, LeadField],
    config: BenchmarkConfig | None = None,
    *,
    model_leadfields: LeadField | Mapping[str, LeadField],
    noise_cov: Any = None,
    external_methods: Mapping[str, Callable] | None = None,
    verbose: bool | str | int | None = None,
) -> BenchmarkResult:
    """Run every method on every sample of the scenario grid and score the maps.

    Parameters
    ----------
    models : TrainedModel | dict of str to TrainedModel | None
        The network per sensor set (anything with ``predict(data, ch_names=...)`` → (n_src,
        n_times), ``ch_names``, ``ch_types``). None (or no ``'deepesi'`` in the methods) runs the
        classical methods only.
    test_leadfields : LeadField | dict of str to LeadField
        The forward the test data are simulated with, per sensor set: it should differ from the
        model's (finer mesh, perturbed conductivities, off-grid sources). It must contain the
        model's channels.
    config : BenchmarkConfig | None
        The grid and settings (defaults if None).
    model_leadfields : LeadField | dict of str to LeadField
        The lead field each model was trained on; the classical methods invert with it too (the
        same mismatched forward for everyone).
    noise_cov : mne.Covariance | None
        Noise covariance of the simulated sensor noise, also given to the classical methods
        (whitening, regularisation). Default: ``mne.make_ad_hoc_cov`` of the channels (EEG 0.2 µV,
        gradiometers 5 fT/cm, magnetometers 20 fT, diagonal).
    external_methods : dict of str to callable | None
        Methods from outside deepesi (e.g. another package's solvers), run on the same samples
        and scored the same way: ``{name: factory}``, ``factory(forward, info, noise_cov)``
        called once per sensor set with the ``mne.Forward`` of the model lead field, the
        channels' ``mne.Info`` and the noise covariance, returning ``apply(evoked) →
        amplitudes`` of shape (n_sources, n_times) or (3·n_sources, n_times) for free
        orientations (rows x, y, z per source). deepesi imports nothing of theirs; the
        records carry ``name`` as their method.
    verbose : bool | str | int | None
        Log level for the call (see :func:`deepesi.set_log_level`); the progress bar is shown
        at INFO (``verbose=False`` hides it).

    Returns
    -------
    BenchmarkResult
        One record per (sample, SNR, method).
    """
    cfg = BenchmarkConfig() if config is None else config
    validate_type(cfg, BenchmarkConfig, "config", "BenchmarkConfig")
    external = _check_external(external_methods, cfg)
    sets = _sensor_sets(models, test_leadfields, model_leadfields, noise_cov, cfg)
    t_start = time.perf_counter()
    records = _run_grid(sets, cfg, external)
    meta = {
        "elapsed_s": time.perf_counter() - t_start,
        "sets": {s.name: _set_meta(s) for s in sets},
    }
    return BenchmarkResult(records, cfg, meta)


def _as_mapping(obj: Any, what: str, names: Sequence[str] | None) -> dict:
    if obj is None:
        return {}
    if isinstance(obj, Mapping):
        return {str(k): v for k, v in obj.items()}
    if names is not None and len(names) != 1:
        raise ValueError(
            f"a single {what} was given but config.sensor_sets names {list(names)}; pass a dict "
            "{sensor_set: ...} with one entry per set."
        )
    return {names[0] if names else "": obj}


def _sensor_sets(
    models: Any, test_leadfields: Any, model_leadfields: Any, noise_cov: Any,
    cfg: BenchmarkConfig,
) -> list[_SensorSet]:
    """The sensor sets to run, named and checked (one object for one set, or dicts by name)."""
    names = cfg.sensor_sets
    tests = _as_mapping(test_leadfields, "test lead field", names)
    invs = _as_mapping(model_leadfields, "model lead field", names)
    mods = _as_mapping(models, "model", names)
    if "" in tests:  # one unnamed set: name it after its channels
        tests = {default_set_name(tests[""]): tests[""]}
    names = list(names) if names is not None else list(tests)
    if len(names) == 1:  # a single object given for the only set
        invs = {names[0]: invs[""]} if "" in invs else invs
        mods = {names[0]: mods[""]} if "" in mods else mods
    want_net = any(m in NETWORK_METHODS for m in cfg.methods)
    for name in names:
        for what, d in (("test lead field", tests), ("model lead field", invs)) + (
            (("model", mods),) if want_net else ()
        ):
            if d.get(name) is None:
                raise ValueError(f"no {what} for sensor set {name!r}; have {sorted(d)}.")
    return [
        _make_set(n, mods.get(n) if want_net else None, invs[n], tests[n], noise_cov, cfg)
        for n in names
    ]


def _run_grid(sets: list[_SensorSet], cfg: BenchmarkConfig, external: dict | None = None
              ) -> list[dict]:
    """The records of every cell × SNR × sample × method (seeded per cell and SNR)."""
    external = external or {}
    classical = _classical_methods(cfg)
    records: list[dict] = []
    cells = cfg.cells([s.name for s in sets])
    total = len(cells) * cfg.n_samples * len(cfg.snr_db)
    bar = progress(total=total, desc="benchmark", unit="sample")
    try:
        for sset in sets:
            if classical:
                _prepare_classical(sset, cfg)
            if external:
                _prepare_external(sset, cfg, external)
            for cell in (c for c in cells if c["sensor_set"] == sset.name):
                key = (f"{cell['sensor_set']}|{cell['n_sources']}|{cell['placement']}|"
                       f"{_extent_label(cell['extent'])}")
                rng = np.random.default_rng([cfg.seed, _crc(key)])
                signals, maps, centres, extents, patches = _simulate_cell(sset, cell, cfg, rng)
                for snr in cfg.snr_db:
                    noise_rng = np.random.default_rng([cfg.seed, _crc(key), _crc(f"{snr:g}")])
                    for i in range(cfg.n_samples):
                        data, scale = _add_noise(sset, signals[i], snr, noise_rng)
                        records.extend(
                            _run_sample(sset, cfg, cell, snr, i, data, maps[i] * scale,
                                        centres[i], extents[i], patches[i], tuple(external))
                        )
                        bar.update(1)
    finally:
        bar.close()
    return records


def _set_meta(s: _SensorSet) -> dict:
    return {
        "n_channels": s.inverse_lf.n_channels,
        "ch_types": sorted(set(s.inverse_lf.ch_types)),
        "model_leadfield_hash": s.inverse_lf.hash(),
        "test_leadfield_hash": s.test_lf.hash(),
        "model_sources": s.inverse_lf.n_sources,
        "test_sources": s.test_lf.n_sources,
        "same_forward": s.inverse_lf.hash() == s.test_lf.hash(),
    }


# ============================================================================ one sample
def _rms(x: np.ndarray) -> np.ndarray:
    return np.sqrt(np.mean(np.asarray(x, float) ** 2, axis=-1))


def _sample_columns(
    sset: _SensorSet, cell: dict, snr: float, index: int, centres: np.ndarray,
    extents: np.ndarray,
) -> dict:
    """The columns of a sample's records that do not depend on the method."""
    geo = sset.geo
    return {
        "sensor_set": sset.name,
        "n_sources": cell["n_sources"],
        "placement": cell["placement"],
        "snr_db": float(snr),
        "extent_mm": _extent_label(cell["extent"]),
        "sample": int(index),
        "source_class": ["subcortical" if geo.test_subcortical[c] else "cortical"
                         for c in centres],
        "source_region": [int(sset.test_lf.source_space.region_ids[c]) for c in centres],
        "source_depth_mm": [float(geo.test_depth[c] * 1e3) for c in centres],
        "source_extent_mm": [float(e) for e in extents],
        "source_offgrid_mm": [
            float(np.linalg.norm(geo.test_pos[c] - geo.model_pos[geo.test_to_model[c]]) * 1e3)
            for c in centres
        ],
        "depth_mm": float(geo.test_depth[centres].max() * 1e3),
    }


def _estimate(sset: _SensorSet, method: str, data: np.ndarray, cfg: BenchmarkConfig
              ) -> np.ndarray:
    """The RMS-over-time amplitude map of one method on one sample (model grid)."""
    if method == DEEPESI:
        est = sset.model.predict(data, ch_names=sset.inverse_lf.ch_names)
    elif method in sset.inverse.get("_external", {}):
        est = _run_external(sset, method, data)
    else:
        est = _run_classical(sset, method, data, cfg)
    est = np.asarray(est, float)
    if est.ndim == 1:
        est = est[:, None]
    if est.shape[0] != sset.inverse_lf.n_sources:
        raise ValueError(
            f"{method} returned {est.shape[0]} sources, expected {sset.inverse_lf.n_sources}."
        )
    return np.abs(_rms(est))


def _matched_extents(sset: _SensorSet, patches: list[np.ndarray], found: Any
                     ) -> list[float | None]:
    """The equivalent extent (mm) of the found source matched to each true source, as the
    localization errors match them; None for every source when nothing was found."""
    if not len(found):
        return [None] * len(patches)
    rows = found.to_table()
    _, match = _match_to_patches(sset.geo, patches, found.positions)
    return [float(rows[j]["extent_mm"]) for j in match]


def _run_sample(
    sset: _SensorSet, cfg: BenchmarkConfig, cell: dict, snr: float, index: int,
    data: np.ndarray, true: np.ndarray, centres: np.ndarray, extents: np.ndarray,
    patches: list[np.ndarray], external: tuple[str, ...] = (),
) -> list[dict]:
    """One record per method (the built-in ones, then the outside ones) for one noisy
    sample."""
    k = int((centres >= 0).sum())
    centres, extents = centres[:k], extents[:k]
    true_map = _rms(true)
    base = _sample_columns(sset, cell, snr, index, centres, extents)
    out = []
    for method in (*cfg.methods, *external):
        t0 = time.perf_counter()
        error, positions, extra = "", None, {}
        try:
            if method in SOURCE_SET_METHODS:
                found = estimate_set(sset, method, data, **cfg.source_set_options)
                est_map, positions = set_map(sset, found), found.positions
                extra = {"n_estimated": len(found), "count_correct": len(found) == k,
                         # each order's gain in units of its price (accepted while > 1)
                         "order_gain": [round(c["gain"] / c["penalty"], 4)
                                        for c in found.criterion],
                         "source_extent_estimated_mm": _matched_extents(sset, patches, found)}
            else:
                est_map = _estimate(sset, method, data, cfg)
        except Exception as err:  # outside code may raise anything
            if method not in external and not isinstance(
                    err, RuntimeError | np.linalg.LinAlgError | FloatingPointError):
                raise
            logger.warning("%s failed on a %s sample: %s", method, cell["placement"], err)
            est_map, error = np.zeros(sset.inverse_lf.n_sources), f"{type(err).__name__}: {err}"
        runtime = time.perf_counter() - t0
        scores, per_source = _score(sset.geo, true_map, centres, patches, est_map,
                                    cfg.emd_max_support, positions=positions)
        out.append({**base, "method": method, **scores, "source_error_mm": per_source,
                    "runtime_s": runtime, "error": error, **extra})
    return out
