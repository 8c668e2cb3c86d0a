"""Pictures: head models and source spaces (:mod:`deepesi.viz.head`) and HTML reports of source
maps (:mod:`deepesi.viz.report`)."""

from .head import (
    BACKGROUND_COLOR,
    CORTICAL_STYLE,
    SUBCORTICAL_STYLE,
    TISSUE_COLORS,
    plot_head_slices,
    save_figure,
    tissue_colormap,
)
from .report import make_report, plot_glass_brain, plot_peak_slices, plot_region_time_courses

__all__ = [
    "BACKGROUND_COLOR",
    "CORTICAL_STYLE",
    "SUBCORTICAL_STYLE",
    "TISSUE_COLORS",
    "make_report",
    "plot_glass_brain",
    "plot_head_slices",
    "plot_peak_slices",
    "plot_region_time_courses",
    "save_figure",
    "tissue_colormap",
]
