"""Deprecated: moved to :mod:`deepesi.inverse` (one API for the network and classical methods).

``apply_classical(method, evoked, forward, noise_cov)`` is now
``deepesi.inverse.apply_classical(inst, method, forward, noise_cov)`` (the recording first, as
everywhere) and returns a :class:`deepesi.inverse.SourceMap` (``amplitudes``, ``peak_time``,
``peaks()``, ``to_stc()``) instead of a ``SourceResult``; ``dipole_scan`` is
:func:`deepesi.inverse.dipole_scan`; operators built once: :func:`deepesi.inverse.make_classical`.
"""

from __future__ import annotations

import warnings

from .inverse import CLASSICAL_METHODS, METHOD_UNITS, SourceMap, dipole_scan
from .inverse import apply_classical as _apply_classical

warnings.warn("deepesi.baselines is deprecated; use deepesi.inverse (apply_classical, "
              "make_classical, SourceMap)", DeprecationWarning, stacklevel=2)

SourceResult = SourceMap


def apply_classical(method, evoked, forward, noise_cov, **kwargs) -> SourceMap:
    """Deprecated: ``deepesi.inverse.apply_classical(evoked, method, forward, noise_cov)``."""
    kwargs.pop("n_peaks", None)  # peaks are SourceMap.peaks(n) now
    return _apply_classical(evoked, method, forward, noise_cov, **kwargs)


__all__ = ["CLASSICAL_METHODS", "METHOD_UNITS", "SourceResult", "apply_classical", "dipole_scan"]
