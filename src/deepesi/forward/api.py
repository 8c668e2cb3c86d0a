"""``make_forward``: EEG (FEM) and MEG (BEM) lead fields of a head, stacked and cached on disk."""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import numpy as np

from .. import __version__
from .._deprecate import progress_to_verbose
from .._io import atomic_path
from .._logging import logger, verbose
from ..anatomy.headmodel import HeadModel
from ..sensors.container import Sensors
from ..sources import SourceSpace
from .leadfield import LeadField

#: Bump when the numerical method changes in a way that invalidates cached lead fields.
CACHE_FORMAT = 1


def default_cache_dir() -> Path:
    """``$DEEPESI_CACHE`` if set, else ``~/.cache/deepesi``."""
    env = os.environ.get("DEEPESI_CACHE")
    return Path(env).expanduser() if env else Path("~/.cache/deepesi").expanduser()


def _canonical_settings(obj):
    """Settings in a canonical, JSON-serialisable form for hashing (arrays by their sha256)."""
    if isinstance(obj, dict):
        items = sorted(obj.items(), key=lambda kv: str(kv[0]))
        return {str(k): _canonical_settings(v) for k, v in items}
    if isinstance(obj, list | tuple):
        return [_canonical_settings(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return hashlib.sha256(np.ascontiguousarray(obj).tobytes()).hexdigest()
    if isinstance(obj, np.generic):
        return obj.item()
    if obj is None or isinstance(obj, bool | int | float | str):
        return obj
    return repr(obj)


def forward_key(head, sensors, sources: SourceSpace, *, eeg_kw: dict, meg: bool,
                meg_kw: dict) -> str:
    """Content hash of everything a lead field depends on (the cache key)."""
    import mne

    parts = {
        "cache_format": CACHE_FORMAT,
        "deepesi": __version__,
        "head": head.hash(),  # labels, affine, conductivities, regions
        "conductivities": head.tissues.hash(),
        "sensors": sensors.hash(),
        "sources": sources.hash(),
        "eeg": _canonical_settings(eeg_kw) if sensors.n_eeg else None,
        "meg": _canonical_settings(meg_kw) if (meg and sensors.n_meg) else None,
        "mne": mne.__version__ if (meg and sensors.n_meg) else None,
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def _cache_file(cache_dir: Path, key: str) -> Path:
    return cache_dir / "forward" / f"{key}.npz"


def _save_cache(path: Path, gain: np.ndarray, names: list[str], types: list[str],
                meta: dict) -> None:
    with atomic_path(path, overwrite=True) as tmp:
        with open(tmp, "wb") as fid:
            np.savez(fid, gain=gain, ch_names=np.array(names), ch_types=np.array(types),
                     meta=json.dumps(meta, default=repr))


def _load_cache(path: Path) -> tuple[np.ndarray, list[str], list[str], dict] | None:
    try:
        with np.load(path, allow_pickle=False) as data:
            return (data["gain"], data["ch_names"].tolist(), data["ch_types"].tolist(),
                    json.loads(str(data["meta"])))
    except Exception as err:  # a corrupt cache entry is recomputed, not fatal
        logger.warning("ignoring unreadable cache entry %s (%s)", path, err)
        return None


def _compute_eeg(head, sensors, sources: SourceSpace, eeg_kw: dict):
    from .eeg import make_eeg_transfer  # lazy: the FEM stack is heavy

    transfer = make_eeg_transfer(head, sensors.eeg_pos_mri, ch_names=sensors.eeg_names,
                                 **eeg_kw)
    return np.asarray(transfer.leadfield(sources.pos), float)


def _compute_meg(head, sensors, sources: SourceSpace, meg_kw: dict):
    from .meg import compute_meg_leadfield

    gain, _, _, meta = compute_meg_leadfield(head, sensors, sources.pos, **meg_kw)
    return gain, meta


@progress_to_verbose
@verbose
def make_forward(
    head,
    sensors,
    sources: SourceSpace,
    *,
    eeg_kw: dict | None = None,
    meg: bool = True,
    meg_kw: dict | None = None,
    cache_dir: str | os.PathLike | bool | None = None,
    verbose: bool | str | int | None = None,
) -> LeadField:
    """Lead field of a head model for a sensor layout and a source space.

    EEG rows come from the finite-element solver (:func:`deepesi.forward.eeg.make_eeg_transfer`,
    average reference); MEG rows from a one-layer BEM on the inner skull
    (:func:`deepesi.forward.meg.compute_meg_leadfield`). Rows follow ``sensors.ch_names``.

    Parameters
    ----------
    head : HeadModel
        Volume conductor (its conductivities are part of the cache key).
    sensors : Sensors
        From :func:`deepesi.sensors.make_eeg_sensors` or :func:`deepesi.sensors.sensors_from_info`.
    sources : SourceSpace
        Source points; must have been made from ``head`` (checked by hash when recorded).
    eeg_kw : dict | None
        Keyword arguments of ``make_eeg_transfer`` (e.g. ``source_model``, ``tol``,
        ``geometry_adapted``).
    meg : bool
        Compute MEG rows when the sensors have MEG channels (else they are dropped).
    meg_kw : dict | None
        Keyword arguments of ``compute_meg_leadfield`` (``grade``, ``margin``).
    cache_dir : path-like | False | None
        Where lead fields are cached, keyed by a content hash of head, conductivities,
        sensors, sources, solver settings and deepesi version. None: ``$DEEPESI_CACHE`` or
        ``~/.cache/deepesi``; False: no cache.
    verbose : bool | str | int | None
        Log level for the call (:func:`deepesi.set_log_level`): steps and timings are logged,
        and progress bars shown, at INFO.

    Returns
    -------
    LeadField
        ``meta`` records the hashes, settings, timings and whether it came from the cache.
    """
    if not isinstance(head, HeadModel):
        raise TypeError(f"head must be a HeadModel, got {type(head).__name__}.")
    if not isinstance(sensors, Sensors):
        raise TypeError(f"sensors must be a deepesi Sensors, got {type(sensors).__name__}.")
    if not isinstance(sources, SourceSpace):
        raise TypeError(f"sources must be a SourceSpace, got {type(sources).__name__}.")
    head_hash = head.hash()
    if sources.head_hash and sources.head_hash != head_hash:
        # conductivities are not geometry: compare the hash of the same head at its defaults
        from dataclasses import replace

        from ..anatomy.tissues import TissueTable

        base = replace(head, tissues=TissueTable.charm()).hash() if set(
            head.tissues.labels.tolist()) <= set(TissueTable.charm().labels.tolist()) else ""
        if sources.head_hash != base:
            raise ValueError(
                "the source space was made from another head model (hash "
                f"{sources.head_hash[:12]}…, this head {head_hash[:12]}…); rebuild it with "
                "make_source_space(head)."
            )
    eeg_kw = dict(eeg_kw or {})
    meg_kw = dict(meg_kw or {})
    do_meg = bool(meg) and sensors.n_meg > 0
    if sensors.n_eeg == 0 and not do_meg:
        raise ValueError("nothing to compute: the sensors have no EEG channels and meg=False.")
    key = forward_key(head, sensors, sources, eeg_kw=eeg_kw, meg=do_meg, meg_kw=meg_kw)
    names = sensors.eeg_names + (sensors.meg_names if do_meg else [])
    types = [t for t in sensors.ch_types if t == "eeg"] + (
        [t for t in sensors.ch_types if t != "eeg"] if do_meg else [])

    cache_path = None
    if cache_dir is not False:
        root = default_cache_dir() if cache_dir in (None, True) else Path(cache_dir).expanduser()
        cache_path = _cache_file(root, key)
    cached = _load_cache(cache_path) if cache_path is not None and cache_path.is_file() else None
    if cached is not None and cached[1] == names:
        gain, _, _, meta = cached
        meta["from_cache"] = str(cache_path)
        logger.info("forward: loaded from cache %s", cache_path)
    else:
        t0 = time.perf_counter()
        blocks, meta = [], {}
        if sensors.n_eeg:
            t1 = time.perf_counter()
            blocks.append(_compute_eeg(head, sensors, sources, eeg_kw))
            meta["eeg_seconds"] = time.perf_counter() - t1
            meta["eeg_settings"] = _canonical_settings(eeg_kw)
        if do_meg:
            g_meg, meg_meta = _compute_meg(head, sensors, sources, meg_kw)
            blocks.append(g_meg)
            meta["meg"] = meg_meta
            meta["meg_settings"] = _canonical_settings(meg_kw)
        gain = np.concatenate(blocks, axis=0)
        meta.update(
            seconds=time.perf_counter() - t0,
            head_hash=head_hash,
            sensors_hash=sensors.hash(),
            source_space_hash=sources.hash(),
            conductivities={t.name: t.conductivity for t in head.tissues},
            deepesi_version=__version__,
            cache_key=key,
        )
        if cache_path is not None:
            _save_cache(cache_path, gain, names, types, meta)
        meta["from_cache"] = None
    order = [sensors.ch_names.index(n) for n in names]
    rows = np.argsort(order)  # back to sensors.ch_names order
    names = [names[i] for i in rows]
    types = [types[i] for i in rows]
    gain = gain[rows]
    import mne

    info = mne.pick_info(sensors.info, [sensors.info["ch_names"].index(n) for n in names],
                         verbose=False)
    return LeadField(gain, names, types, sources, info=info, trans=sensors.trans,
                     eeg_reference="average", meta=meta)
