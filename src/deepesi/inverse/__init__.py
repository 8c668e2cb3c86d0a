"""One inverse API for the network and the classical methods.

Every method returns a :class:`SourceMap`: :func:`apply_network` (a trained deepesi network) and
:func:`apply_classical` (MNE, dSPM, sLORETA, eLORETA, LCMV, MxNE, Gamma-MAP, dipole scan on the
same forward; :func:`make_classical` builds an operator once for many recordings). The recording
is prepared once for all (:func:`prepare_data`, :func:`prepare_evoked`, :func:`read_recording`);
peaks have one definition (:func:`find_peaks`), and every map is read by default at the same
sample, the data's peak of whitened global field power (:func:`peak_sample`).
:func:`fit_source_set` turns a map into a list of off-grid sources (``apply_network(...,
sources=True)``).
"""

from .classical import (
    CLASSICAL_METHODS,
    METHOD_UNITS,
    ClassicalInverse,
    apply_classical,
    check_method,
    make_classical,
)
from .dipole import dipole_scan
from .network import apply_network, check_model_source_space, warn_untrained_ssp
from .peaks import PeakTable, find_peaks, peak_centroids
from .prepare import crop_window, peak_sample, prepare_data, prepare_evoked, read_recording
from .result import SourceMap, activity_grid, read_source_map
from .source_set import SourceSet, SourceSetFitter, equivalent_extent_mm, fit_source_set

__all__ = [
    "CLASSICAL_METHODS",
    "METHOD_UNITS",
    "ClassicalInverse",
    "PeakTable",
    "SourceMap",
    "SourceSet",
    "SourceSetFitter",
    "activity_grid",
    "apply_classical",
    "apply_network",
    "check_method",
    "check_model_source_space",
    "crop_window",
    "dipole_scan",
    "equivalent_extent_mm",
    "find_peaks",
    "fit_source_set",
    "make_classical",
    "peak_centroids",
    "peak_sample",
    "prepare_data",
    "prepare_evoked",
    "read_recording",
    "read_source_map",
    "warn_untrained_ssp",
]
