"""Deprecated: moved to :mod:`deepesi.inverse` (one API for the network and classical methods).

=====================================  ==============================================
old                                    new
=====================================  ==============================================
``localize(inst, model, src)``         ``deepesi.inverse.apply_network(inst, model,``
                                       ``source_space=src)``
``LocalizationResult``                 ``deepesi.inverse.SourceMap``
``prepare_data``, ``activity_grid``,   the same names in ``deepesi.inverse``
``PeakTable``, ``check_model_source_``
``space``, ``warn_untrained_ssp``
``find_peaks(amp, src, n)``            ``deepesi.inverse.find_peaks(amp, src, n_max=n)``
=====================================  ==============================================
"""

from __future__ import annotations

import warnings

from .inverse import (
    PeakTable,
    SourceMap,
    activity_grid,
    apply_network,
    check_model_source_space,
    prepare_data,
    warn_untrained_ssp,
)
from .inverse import find_peaks as _find_peaks

warnings.warn("deepesi.localize is deprecated; use deepesi.inverse (apply_network, SourceMap)",
              DeprecationWarning, stacklevel=2)

LocalizationResult = SourceMap


def localize(inst, model, source_space, *, tmin=None, tmax=None) -> SourceMap:
    """Deprecated: ``deepesi.inverse.apply_network(inst, model, source_space=source_space)``."""
    return apply_network(inst, model, source_space=source_space, tmin=tmin, tmax=tmax)


def find_peaks(amplitude, source_space, n: int = 5):
    """Deprecated: ``deepesi.inverse.find_peaks(amplitude, source_space, n_max=n)``."""
    return _find_peaks(amplitude, source_space, n_max=n)


__all__ = [
    "LocalizationResult",
    "PeakTable",
    "activity_grid",
    "check_model_source_space",
    "find_peaks",
    "localize",
    "prepare_data",
    "warn_untrained_ssp",
]
