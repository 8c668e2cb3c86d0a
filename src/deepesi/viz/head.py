"""Pictures of head models and source spaces: orthogonal slices with tissues and source points.

Figures are built with :class:`matplotlib.figure.Figure` and the Agg canvas directly (no
``pyplot``, no display needed), so they work on headless machines and never change the user's
matplotlib backend.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from matplotlib import patheffects
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import ListedColormap, to_rgb
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from scipy import ndimage

from .._io import atomic_path
from ..anatomy.headmodel import HeadModel
from ..anatomy.regions import SUBCORTICAL_REGIONS
from ..anatomy.tissues import BRAIN_TISSUES
from ..sources import SourceSpace

#: Fixed colour of each CHARM tissue (by name), used in every deepesi picture.
TISSUE_COLORS: dict[str, str] = {
    "WM": "#f2efe4",  # off-white
    "GM": "#8f8f96",  # grey
    "CSF": "#3d8fd1",  # blue
    "Bone": "#efd27c",  # bone yellow
    "Scalp": "#e0a98c",  # skin
    "Eye_balls": "#6fd0e8",  # light cyan
    "Compact_bone": "#f5df95",  # pale gold
    "Spongy_bone": "#b7833a",  # ochre
    "Blood": "#c0392b",  # red
    "Muscle": "#8e4a4a",  # brown-red
}
#: Colour of the outside of the head.
BACKGROUND_COLOR = "#101014"
#: Colours for tissues whose name is not in :data:`TISSUE_COLORS` (custom tissue tables).
_EXTRA_COLORS = ("#7fc97f", "#beaed4", "#fdc086", "#ffff99", "#f0027f", "#bf5b17", "#666666")

#: Marker styles of the source points.
CORTICAL_STYLE = dict(marker="o", s=9, c="#ffd400", edgecolors="#3a3000", linewidths=0.3)
SUBCORTICAL_STYLE = dict(marker="D", s=22, c="#ff3df2", edgecolors="#2a002a", linewidths=0.5)
#: Colour of the outline of the deep structures.
DEEP_OUTLINE_COLOR = "#ff9df7"

_PLANES = (
    # name, axis held fixed, (horizontal axis, vertical axis), axis letters
    ("axial", 2, (0, 1), (("L", "R"), ("P", "A"))),
    ("coronal", 1, (0, 2), (("L", "R"), ("I", "S"))),
    ("sagittal", 0, (1, 2), (("P", "A"), ("I", "S"))),
)
_AXIS_NAMES = "xyz"


def tissue_colormap(head: HeadModel) -> tuple[ListedColormap, list[tuple[str, str]]]:
    """Colour map indexed by tissue label, and (name, colour) legend entries in label order.

    The legend lists only the tissues present in the head's label volume.
    """
    colors = np.tile(np.array((*to_rgb(BACKGROUND_COLOR), 1.0)), (256, 1))
    present = np.bincount(head.labels.ravel(), minlength=256) > 0
    legend = []
    extra = iter(_EXTRA_COLORS * 40)
    for tissue in head.tissues:
        color = TISSUE_COLORS.get(tissue.name) or next(extra)
        colors[tissue.label] = (*to_rgb(color), 1.0)
        if present[tissue.label]:
            legend.append((tissue.name, color))
    return ListedColormap(colors), legend


def _brain_centre_mm(head: HeadModel) -> np.ndarray:
    """Centre of the brain (centroid of WM + GM; of the whole head if it has no brain), mm."""
    brain = [head.tissues.label_of(n) for n in BRAIN_TISSUES if n in head.tissues]
    mask = np.isin(head.labels, brain)
    if not mask.any():
        mask = head.labels > 0
    centre_vox = np.argwhere(mask).mean(axis=0)
    return head.affine[:3, :3] @ centre_vox + head.affine[:3, 3]


def _head_box_mm(head: HeadModel) -> tuple[np.ndarray, np.ndarray]:
    """MRI bounding box (mm) of the head's non-zero voxels."""
    idx = np.argwhere(head.labels > 0)
    lo, hi = idx.min(axis=0) - 0.5, idx.max(axis=0) + 0.5
    corners = np.array(
        [[(lo, hi)[b][a] for a, b in enumerate(bits)] for bits in np.ndindex(2, 2, 2)]
    )
    xyz = corners @ head.affine[:3, :3].T + head.affine[:3, 3]
    return xyz.min(axis=0), xyz.max(axis=0)


def _slice(
    volume: np.ndarray, head: HeadModel, fixed_axis: int, value: float,
    axes: tuple[int, int], lo: np.ndarray, hi: np.ndarray, step: float,
) -> tuple[np.ndarray, list[float]]:
    """Nearest-neighbour slice of ``volume`` on an MRI-aligned plane (any voxel orientation)."""
    # pixel centres half a step inside the box, so they fall on voxel centres for aligned grids
    u = np.arange(lo[axes[0]] + step / 2, hi[axes[0]], step)
    v = np.arange(lo[axes[1]] + step / 2, hi[axes[1]], step)
    uu, vv = np.meshgrid(u, v)  # rows: v (vertical), columns: u
    xyz = np.zeros((*uu.shape, 3))
    xyz[..., axes[0]] = uu
    xyz[..., axes[1]] = vv
    xyz[..., fixed_axis] = value
    ijk = (xyz - head.affine[:3, 3]) @ np.linalg.inv(head.affine[:3, :3]).T
    image = ndimage.map_coordinates(
        volume, ijk.reshape(-1, 3).T, order=0, mode="constant", cval=0
    ).reshape(uu.shape)
    extent = [u[0] - step / 2, u[-1] + step / 2, v[0] - step / 2, v[-1] + step / 2]
    return image, extent


def plot_head_slices(
    head: HeadModel,
    sources: SourceSpace | None = None,
    *,
    coords_mm: tuple[float, float, float] | np.ndarray | None = None,
    title: str | None = None,
    outline_deep: bool = True,
    snap_to_grid: bool = True,
) -> Figure:
    """Axial, coronal and sagittal slices of a head model, with its source points.

    Tissues are coloured with the fixed colours of :data:`TISSUE_COLORS` (legend below the
    slices). Source points within half a grid step of each slice plane are drawn on top:
    cortical (and cerebellar) points as yellow dots, deep-structure points as magenta
    diamonds. Slices are shown in neurological convention (left on the left) in MRI
    coordinates, whatever the orientation of the head's voxel grid.

    Parameters
    ----------
    head : HeadModel
        The head to draw.
    sources : SourceSpace | None
        Source points to overlay (MRI frame, as made by
        :func:`~deepesi.sources.make_source_space` for this head).
    coords_mm : (x, y, z) | None
        MRI coordinates (mm) where the three planes cross; default: the centre of the brain.
    title : str | None
        Figure title; default: the head's name, voxel size and source counts.
    outline_deep : bool
        Outline the deep structures of ``head.regions`` (if any).
    snap_to_grid : bool
        With ``sources``, move each plane to the nearest layer of the source grid
        (a multiple of the spacing), so that the points drawn lie in the slice drawn.

    Returns
    -------
    matplotlib.figure.Figure
        Save it with :func:`save_figure`.
    """
    if not isinstance(head, HeadModel):
        raise TypeError(f"head must be a HeadModel, got {type(head).__name__}.")
    if sources is not None and not isinstance(sources, SourceSpace):
        raise TypeError(f"sources must be a SourceSpace or None, got {type(sources).__name__}.")
    lo, hi = _head_box_mm(head)
    if coords_mm is None:
        coords = _brain_centre_mm(head)
    else:
        coords = np.asarray(coords_mm, dtype=float).ravel()
        if coords.shape != (3,) or not np.all(np.isfinite(coords)):
            raise ValueError(
                f"coords_mm must be three finite numbers (x, y, z in mm), got {coords_mm!r}."
            )
        outside = (coords < lo) | (coords > hi)
        if outside.any():
            raise ValueError(
                f"coords_mm {coords.tolist()} lie outside the head, whose MRI bounding box is "
                f"x {lo[0]:.0f}..{hi[0]:.0f}, y {lo[1]:.0f}..{hi[1]:.0f}, "
                f"z {lo[2]:.0f}..{hi[2]:.0f} mm."
            )
    if sources is not None and snap_to_grid:
        # show the slice through the grid layer whose points are drawn
        grid_mm = sources.spacing * 1000.0
        coords = np.round(coords / grid_mm) * grid_mm
    step = max(float(head.voxel_size.min()), float((hi - lo).max()) / 700.0)
    cmap, legend = tissue_colormap(head)
    deep = None
    if outline_deep and head.regions is not None:
        deep = np.isin(head.regions, list(SUBCORTICAL_REGIONS)).astype(np.uint8)
        if not deep.any():
            deep = None

    spans = [(hi - lo)[axes[0]] for _, _, axes, _ in _PLANES]
    fig = Figure(figsize=(13.5, 5.6), facecolor=BACKGROUND_COLOR, layout="constrained")
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(2, 3, width_ratios=spans, height_ratios=[1.0, 0.09])
    text_kw = dict(color="#e8e8e8")
    for col, (plane, fixed, axes, letters) in enumerate(_PLANES):
        ax = fig.add_subplot(grid[0, col])
        ax.set_facecolor(BACKGROUND_COLOR)
        image, extent = _slice(head.labels, head, fixed, coords[fixed], axes, lo, hi, step)
        ax.imshow(image, cmap=cmap, vmin=0, vmax=255, origin="lower", extent=extent,
                  interpolation="nearest")
        if deep is not None:
            mask, _ = _slice(deep, head, fixed, coords[fixed], axes, lo, hi, step)
            if mask.any():
                ax.contour(mask, levels=[0.5], colors=DEEP_OUTLINE_COLOR, linewidths=0.8,
                           origin="lower", extent=extent)
        # cross-hairs of the two other planes
        ax.axvline(coords[axes[0]], color="#ffffff", lw=0.5, alpha=0.35)
        ax.axhline(coords[axes[1]], color="#ffffff", lw=0.5, alpha=0.35)
        if sources is not None:
            pos_mm = sources.pos * 1000.0
            half = sources.spacing * 1000.0 / 2.0
            near = np.abs(pos_mm[:, fixed] - coords[fixed]) <= half
            sub = sources.is_subcortical
            for sel, style in ((near & ~sub, CORTICAL_STYLE), (near & sub, SUBCORTICAL_STYLE)):
                if sel.any():
                    ax.scatter(pos_mm[sel, axes[0]], pos_mm[sel, axes[1]], zorder=3, **style)
        ax.set_xlim(extent[0], extent[1])
        ax.set_ylim(extent[2], extent[3])
        ax.set_aspect("equal")
        value = float(np.round(coords[fixed])) + 0.0  # no "-0"
        ax.set_title(f"{plane}  {_AXIS_NAMES[fixed]} = {value:.0f} mm", fontsize=11,
                     **text_kw)
        ax.set_xlabel(f"{_AXIS_NAMES[axes[0]]} (mm)", fontsize=9, **text_kw)
        ax.set_ylabel(f"{_AXIS_NAMES[axes[1]]} (mm)", fontsize=9, **text_kw)
        ax.tick_params(colors="#b0b0b0", labelsize=8)
        for spine in ax.spines.values():
            spine.set_color("#505050")
        (left, right), (bottom, top) = letters
        box = dict(fontsize=11, fontweight="bold", transform=ax.transAxes, **text_kw,
                   path_effects=[patheffects.withStroke(linewidth=2.5, foreground="black")])
        ax.text(0.02, 0.5, left, ha="left", va="center", **box)
        ax.text(0.98, 0.5, right, ha="right", va="center", **box)
        ax.text(0.5, 0.02, bottom, ha="center", va="bottom", **box)
        ax.text(0.5, 0.98, top, ha="center", va="top", **box)

    handles = [Patch(facecolor=c, edgecolor="#303030", label=n) for n, c in legend]
    if deep is not None:
        handles.append(Line2D([], [], color=DEEP_OUTLINE_COLOR, lw=1.2, label="deep structures"))
    if sources is not None:
        n_deep = int(sources.is_subcortical.sum())
        n_ctx = sources.n_sources - n_deep
        handles.append(Line2D([], [], ls="", label=f"cortical sources ({n_ctx})",
                              **_legend_marker(CORTICAL_STYLE)))
        handles.append(Line2D([], [], ls="", label=f"subcortical sources ({n_deep})",
                              **_legend_marker(SUBCORTICAL_STYLE)))
    lax = fig.add_subplot(grid[1, :])
    lax.axis("off")
    lax.legend(handles=handles, loc="center", ncol=min(len(handles), 8), frameon=False,
               fontsize=9, labelcolor="#e8e8e8", handlelength=1.4, columnspacing=1.4)
    if title is None:
        vs = "x".join(f"{v:g}" for v in head.voxel_size)
        title = f"{head.name}  ({vs} mm voxels)"
        if sources is not None:
            title += f"  |  {sources.n_sources} sources on a {sources.spacing * 1000:g} mm grid"
    fig.suptitle(title, fontsize=13, **text_kw)
    return fig


def _legend_marker(style: dict) -> dict:
    return dict(marker=style["marker"], markerfacecolor=style["c"],
                markeredgecolor=style["edgecolors"], markersize=np.sqrt(style["s"]) + 1)


def save_figure(
    fig: Figure, path: str | os.PathLike, overwrite: bool = False, dpi: int = 150
) -> Path:
    """Write ``fig`` to ``path`` (format from the extension: .png, .pdf, .svg ...), atomically.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
        The figure.
    path : path-like
        Destination file; its folder is created if needed.
    overwrite : bool
        Replace an existing file (otherwise FileExistsError).
    dpi : int
        Resolution for raster formats.

    Returns
    -------
    Path
        The written file.
    """
    if not isinstance(fig, Figure):
        raise TypeError(f"fig must be a matplotlib Figure, got {type(fig).__name__}.")
    path = Path(path)
    if not path.suffix:
        raise ValueError(f"{path} has no extension; name the format, e.g. head.png or head.pdf.")
    with atomic_path(path, overwrite=overwrite) as tmp:
        fig.savefig(tmp, dpi=dpi, facecolor=fig.get_facecolor())
    return path
