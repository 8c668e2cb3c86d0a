"""The source-set methods in the benchmark: sources fitted on the whitened data, seeded by the
network's map of the residual (:func:`deepesi.inverse.fit_source_set`), or by the residual's
best dipole alone (sequential dipole fitting with alternating projection, a classical method)."""

from __future__ import annotations

import numpy as np

from ..inverse.source_set import (
    PROPOSAL_SAMPLES,
    SourceSet,
    SourceSetFitter,
    network_proposal,
)
from .config import NETWORK_METHODS, SOURCE_SET_METHODS
from .data import _SensorSet

__all__ = ["NETWORK_SET_METHODS", "SET_METHODS"]

#: Benchmark method name → candidate seeds of :func:`fit_source_set`.
SET_METHODS = dict(zip(SOURCE_SET_METHODS, ("map+scan", "map", "scan"), strict=True))
#: The set methods that need the network.
NETWORK_SET_METHODS = tuple(m for m in SOURCE_SET_METHODS if m in NETWORK_METHODS)


def _cache(sset: _SensorSet) -> dict:
    """The source-set fitter of the model forward and the whitener's pseudo-inverse, once."""
    c = sset.inverse.get("_sets")
    if c is None:
        w = sset.whitener
        c = {"fitter": SourceSetFitter(np.einsum("wc,cso->wso", w, sset.inverse_lf.gain),
                                       sset.inverse_lf.source_space),
             "unwhiten": np.linalg.pinv(w, rcond=1e-8)}
        sset.inverse["_sets"] = c
    return c


def estimate_set(sset: _SensorSet, method: str, data: np.ndarray, **options) -> SourceSet:
    """One set method on one sample (n_ch, n_times), positions in the model grid's frame."""
    c = _cache(sset)
    x_w = sset.whitener @ np.asarray(data, float)
    proposal, n_samples = None, options.pop("proposal_samples", PROPOSAL_SAMPLES)
    if method in NETWORK_SET_METHODS:
        proposal = network_proposal(sset.model, c["unwhiten"],
                                    ch_names=sset.inverse_lf.ch_names, n_samples=n_samples)
    return c["fitter"].fit(x_w, proposal=proposal, seeds=SET_METHODS[method], **options)


def set_map(sset: _SensorSet, found: SourceSet) -> np.ndarray:
    """The sources as a map on the model grid (each amplitude at its nearest point), for the
    map metrics."""
    out = np.zeros(sset.inverse_lf.n_sources)
    for s in found.sources:
        out[s.grid_index] = max(out[s.grid_index], s.amplitude)
    return out
