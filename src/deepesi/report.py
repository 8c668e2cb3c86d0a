"""Deprecated: moved to :mod:`deepesi.viz.report` (``make_report`` and the report figures take a
:class:`deepesi.inverse.SourceMap`)."""

from __future__ import annotations

import warnings

from .viz.report import make_report, plot_glass_brain, plot_peak_slices, plot_region_time_courses

warnings.warn("deepesi.report is deprecated; use deepesi.viz (make_report)", DeprecationWarning,
              stacklevel=2)

__all__ = ["make_report", "plot_glass_brain", "plot_peak_slices", "plot_region_time_courses"]
