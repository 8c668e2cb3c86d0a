"""HTML reports of localization results (:class:`mne.Report`).

:func:`make_report` shows, for a :class:`~deepesi.inverse.SourceMap`: orthogonal slices
through the strongest peak (over the head's tissues when a head is given), a glass-brain view
(maximum-intensity projections of the activity in three planes over the outline of the source
space), the time courses of the strongest regions, and the peak table; other methods passed as
``extra_results`` (SourceMaps on the same source space) get the same views and a side-by-side
glass-brain comparison.
"""

from __future__ import annotations

import html as _html
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from scipy import ndimage

from .._io import atomic_path, check_overwrite
from .._validation import validate_type
from ..inverse.network import agreement_sentence, nets_disagree
from ..inverse.noise_level import noise_sentence
from ..inverse.result import SourceMap, activity_grid
from .head import plot_head_slices

#: Glass-brain panels: name, axis projected away, (horizontal, vertical) axes, axis letters.
_VIEWS = (
    ("sagittal", 0, (1, 2), ("P", "A")),
    ("coronal", 1, (0, 2), ("L", "R")),
    ("axial", 2, (0, 1), ("L", "R")),
)
_AXIS = "xyz"
ACTIVITY_CMAP = "hot"
#: Fraction of the maximum below which the glass brain shows no colour.
MIP_FLOOR = 0.05
N_REGIONS = 6


def _new_figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _check_extra(obj: Any, like: SourceMap, name: str) -> SourceMap:
    """``obj`` if it is a SourceMap on the main result's source space."""
    validate_type(obj, SourceMap, f"extra_results[{name!r}]", "a deepesi SourceMap")
    if obj.n_sources != like.n_sources or obj.source_space.hash() != like.source_space.hash():
        raise ValueError(
            f"extra_results[{name!r}] is on another source space ({obj.n_sources} points) than "
            f"the main result ({like.n_sources}); compare methods on the same source space."
        )
    return obj


# ============================================================================ figures
def plot_glass_brain(
    result: SourceMap, time: float | None = None, *, title: str | None = None,
    fig: Figure | None = None, row: int = 0, n_rows: int = 1,
    truth: Sequence[Sequence[float]] | None = None,
) -> Figure:
    """Maximum-intensity projections of the activity at ``time`` in three planes.

    The grey silhouette is the projection of all source points (cortex and deep structures);
    values below 5 % of the map's maximum are not coloured; the colour scale runs from 0 to the
    maximum. Coordinates: MRI, mm.

    Parameters
    ----------
    result : SourceMap
        What to draw.
    time : float | None
        Seconds; None = the result's peak time (:attr:`SourceMap.peak_time`).
    title : str | None
        Row title; default: method and time.
    fig, row, n_rows
        Draw into row ``row`` of ``n_rows`` of an existing figure (for comparisons).
    truth : sequence of (x, y, z) | None
        Known source positions (MRI, m), drawn as open green circles (simulations).

    Returns
    -------
    matplotlib.figure.Figure
    """
    amp = result.map_at(time)
    t = result.times[result.sample(time)]
    vol, affine = activity_grid(result.source_space, amp)
    mask, _ = activity_grid(result.source_space, np.ones(result.n_sources))
    mask = ndimage.binary_dilation(mask > 0, iterations=1)
    step = affine[0, 0]
    vmax = float(vol.max()) or 1.0
    if fig is None:
        fig = _new_figure(12.0, 4.0 * n_rows)
    # one grid for every row of the figure, so constrained layout spaces the rows together
    grid = getattr(fig, "_deepesi_grid", None)
    if grid is None or grid.nrows != n_rows:
        grid = fig.add_gridspec(n_rows, 4, width_ratios=[1, 1, 1, 0.05])
        fig._deepesi_grid = grid
    image = None
    for col, (name, axis, (h, v), letters) in enumerate(_VIEWS):
        ax = fig.add_subplot(grid[row, col])
        mip = vol.max(axis=axis)
        outline = mask.max(axis=axis)
        # remaining axes in order (h, v) after removing `axis`
        lo = affine[:3, 3]
        extent = [
            lo[h] - step / 2, lo[h] + (vol.shape[h] - 0.5) * step,
            lo[v] - step / 2, lo[v] + (vol.shape[v] - 0.5) * step,
        ]
        ax.imshow(np.ma.masked_where(~outline.T, outline.T.astype(float)), origin="lower",
                  extent=extent, cmap="Greys", vmin=0, vmax=8, interpolation="nearest")
        image = ax.imshow(
            np.ma.masked_where(mip.T < MIP_FLOOR * vmax, mip.T), origin="lower", extent=extent,
            cmap=ACTIVITY_CMAP, vmin=0, vmax=vmax, interpolation="nearest",
        )
        ax.contour(outline.T.astype(float), levels=[0.5], colors="0.4", linewidths=1.0,
                   origin="lower", extent=extent)
        for k, pos in enumerate(np.asarray(truth if truth is not None else [], float)):
            ax.plot(pos[h] * 1e3, pos[v] * 1e3, "o", mfc="none", mec="limegreen", mew=2.0,
                    ms=13, label="true source" if k == 0 else None)
        if truth is not None and len(truth) and col == 0 and row == 0:
            ax.legend(fontsize=7, loc="upper left", frameon=False, handletextpad=0.2)
        ax.set_facecolor("white")
        ax.set_aspect("equal")
        if row == 0:  # the views' names once, above the first row
            ax.set_title(name, fontsize=10)
        ax.set_xlabel(f"{_AXIS[h]} (mm)", fontsize=8)
        ax.set_ylabel(f"{_AXIS[v]} (mm)", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.text(0.02, 0.02, letters[0], transform=ax.transAxes, fontsize=9, fontweight="bold")
        ax.text(0.98, 0.02, letters[1], transform=ax.transAxes, fontsize=9, ha="right",
                fontweight="bold")
    cax = fig.add_subplot(grid[row, 3])
    bar = fig.colorbar(image, cax=cax)
    bar.formatter.set_powerlimits((-2, 3))
    bar.ax.yaxis.get_offset_text().set_fontsize(7)
    units = str(getattr(result, "units", "") or "")
    bar.set_label("amplitude (relative)" if units.startswith("relative") else
                  f"amplitude ({units})" if units else "amplitude", fontsize=8)
    bar.ax.tick_params(labelsize=7)
    label = title or f"{result.method}, t = {t * 1000:.1f} ms"
    if n_rows == 1:
        fig.suptitle(f"glass brain: {label}", fontsize=12)
    else:
        fig.axes[-4].set_ylabel(f"{label}\n{_AXIS[_VIEWS[0][2][1]]} (mm)", fontsize=9)
    return fig


def plot_peak_slices(
    result: SourceMap, head: Any = None, *, peak: int = 0, time: float | None = None
) -> Figure:
    """Axial, coronal and sagittal slices through a peak, with the activity on top.

    With a head, the slices show its tissues (:func:`deepesi.viz.plot_head_slices`); without,
    the source points. Source points within half a grid step of each plane are drawn coloured
    by amplitude.

    Parameters
    ----------
    result : SourceMap
        What to draw.
    head : HeadModel | None
        The head the source space was built in.
    peak : int
        Which peak of :meth:`SourceMap.peaks` (0 = strongest).
    time : float | None
        Seconds; None = the result's peak time (:attr:`SourceMap.peak_time`).
    """
    table = result.peaks(n=peak + 1, time=time)
    if len(table) <= peak:
        raise ValueError(f"the map has only {len(table)} peak(s); cannot show peak {peak + 1}.")
    row = table[peak]
    coords = np.array([row["x_mri"], row["y_mri"], row["z_mri"]])
    amp = result.map_at(row["time"])
    src = result.source_space
    pos = src.pos * 1000.0
    half = src.spacing * 1000.0 / 2.0
    title = (
        f"{result.method}: peak {peak + 1} in {row['region']} at "
        f"({coords[0]:.0f}, {coords[1]:.0f}, {coords[2]:.0f}) mm MRI, "
        f"t = {row['time'] * 1000:.1f} ms"
    )
    planes = (("axial", 2, (0, 1)), ("coronal", 1, (0, 2)), ("sagittal", 0, (1, 2)))
    plot_head = plot_head_slices if head is not None else None
    if plot_head is not None:
        fig = plot_head(head, None, coords_mm=coords, title=title, snap_to_grid=False)
        axes = fig.axes[:3]
        dark = True
    else:
        fig = _new_figure(13.0, 4.6)
        axes = fig.subplots(1, 3)
        fig.suptitle(title, fontsize=12)
        dark = False
    vmax = float(amp.max()) or 1.0
    for ax, (name, fixed, (h, v)) in zip(axes, planes):
        near = np.abs(pos[:, fixed] - coords[fixed]) <= half
        if plot_head is None:
            ax.scatter(pos[near, h], pos[near, v], s=10, c="0.8", zorder=1)
            ax.set_title(f"{name}  {_AXIS[fixed]} = {coords[fixed]:.0f} mm", fontsize=10)
            ax.set_xlabel(f"{_AXIS[h]} (mm)", fontsize=8)
            ax.set_ylabel(f"{_AXIS[v]} (mm)", fontsize=8)
            ax.set_aspect("equal")
        on = near & (amp > 0.05 * vmax)
        order = np.argsort(amp[on])
        sc = ax.scatter(pos[on, h][order], pos[on, v][order], c=amp[on][order],
                        cmap=ACTIVITY_CMAP, vmin=0, vmax=vmax, s=40, zorder=4,
                        edgecolors="none")
        ax.scatter([coords[h]], [coords[v]], marker="+", s=160, c="cyan" if dark else "blue",
                   zorder=5, linewidths=1.5)
    cbar = fig.colorbar(sc, ax=list(axes), shrink=0.7)
    cbar.set_label("amplitude", color="#e8e8e8" if dark else "black")
    if dark:
        cbar.ax.tick_params(colors="#b0b0b0")
    return fig


def plot_region_time_courses(result: SourceMap, n_regions: int = N_REGIONS) -> Figure:
    """Time courses (maximum over each region's points) of the ``n_regions`` strongest regions."""
    courses = result.region_time_courses("max")
    ranked = sorted(courses, key=lambda k: -float(courses[k].max()))[: int(n_regions)]
    fig = _new_figure(9.0, 4.0)
    ax = fig.add_subplot(1, 1, 1)
    times_ms = result.times * 1000.0
    for name in ranked:
        if len(times_ms) > 1:
            ax.plot(times_ms, courses[name], label=name, lw=1.5)
        else:
            ax.plot(times_ms, courses[name], "o", label=name)
    ax.axvline(result.peak_time * 1000.0, color="0.5", ls="--", lw=0.8)
    ax.set_xlabel("time (ms)")
    ax.set_ylabel("max amplitude in region")
    ax.set_title(f"{result.method}: strongest regions", fontsize=11)
    ax.legend(fontsize=8, loc="upper left", frameon=False)
    return fig


# ============================================================================ report
def make_report(
    result: SourceMap,
    head: Any = None,
    *,
    title: str = "deepesi source localization",
    extra_results: dict[str, Any] | None = None,
    fname: str | os.PathLike,
    overwrite: bool = False,
    n_peaks: int = 5,
    truth: Sequence[dict] | None = None,
    notes: str | None = None,
) -> Path:
    """Write an HTML report of a localization (and, optionally, of classical methods).

    Parameters
    ----------
    result : SourceMap
        The main result (usually deepesi's network).
    head : HeadModel | None
        The head the source space was built in; its tissues are drawn under the slices.
    title : str
        Report title.
    extra_results : dict of str → SourceMap | None
        Other methods on the same source space (e.g. :func:`deepesi.inverse.apply_classical`
        results), shown with the same views and side by side.
    fname : path-like
        Output file (``.html``), written atomically.
    overwrite : bool
        Replace an existing file.
    n_peaks : int
        Rows of the peak tables.
    truth : sequence of dict | None
        Known sources of a simulation: ``pos_m`` (MRI, m) and ``region``; drawn on every glass
        brain, and a table gives each method's distance to each at the shared peak time.
    notes : str | None
        A paragraph (plain text) at the top: what the recording is, in words.

    Returns
    -------
    Path
        ``fname``.
    """
    import mne

    validate_type(result, SourceMap, "result", "a deepesi SourceMap")
    fname = Path(fname)
    if fname.suffix.lower() not in (".html", ".htm"):
        raise ValueError(f"report file name must end in .html, got {fname.name!r}.")
    check_overwrite(fname, overwrite)
    if head is not None:
        _check_head(head, result)
    extras = {
        str(name): _check_extra(obj, result, str(name))
        for name, obj in (extra_results or {}).items()
    }
    report = mne.Report(title=title, verbose=False)
    everyone = [(result.method, result), *extras.items()]
    true_pos = None if truth is None else [t["pos_m"] for t in truth]
    if notes:

        report.add_html(f"<p>{_html.escape(notes)}</p>", title="What this is",
                        section="summary")
    if truth is not None:
        report.add_html(_truth_table(truth, everyone), title="Known sources: each method's "
                        "error", section="summary")
    for name, res in everyone:
        _add_method(report, name, res, head, n_peaks, truth=true_pos)
    if extras:
        fig = _new_figure(12.0, 3.6 * len(everyone))
        for i, (name, res) in enumerate(everyone):
            plot_glass_brain(res, title=name, fig=fig, row=i, n_rows=len(everyone),
                             truth=true_pos)
        times = {round(res.peak_time, 6) for _, res in everyone}
        when = (f"all at t = {1000 * times.pop():.0f} ms, the same sample (the data's whitened "
                "GFP peak)" if len(times) == 1 else "each at its peak time")
        fig.suptitle(f"glass brains side by side ({when}; each on its own scale)")
        report.add_figure(fig, title="Comparison: glass brains", section="comparison")
        rows = "".join(
            _comparison_row(name, res) for name, res in everyone
        )
        report.add_html(
            '<table class="table table-sm"><thead><tr><th>method</th><th>peak time (ms)</th>'
            "<th>strongest region</th><th>MRI (mm)</th><th>goodness of fit</th></tr></thead>"
            + rows + "</table>",
            title="Comparison: strongest peaks", section="comparison",
        )
    with atomic_path(fname, overwrite=overwrite) as tmp:
        report.save(tmp, open_browser=False, overwrite=True, verbose=False)
    return fname


def _check_head(head: Any, result: SourceMap) -> None:
    head_hash = getattr(result.source_space, "head_hash", "")
    if not hasattr(head, "hash") or not hasattr(head, "labels"):
        raise TypeError(f"head must be a deepesi HeadModel, got {type(head).__name__}.")
    if head_hash and head.hash() != head_hash:
        raise ValueError(
            "the head passed to the report is not the one the source space was built from "
            f"(head hash {head.hash()[:12]} vs {head_hash[:12]}); pass the matching head or "
            "head=None."
        )


def _gof_text(res: SourceMap) -> str:
    """'81.2 %' (with a warning mark when the fit is poor), or 'n/a' without a fit."""
    if res.goodness_of_fit is None:
        return "n/a"
    mark = " ⚠" if res.fit.get("poor") else ""
    return f"{100 * res.goodness_of_fit:.1f} %{mark}"


def fit_html(res: SourceMap) -> str:
    """The goodness-of-fit paragraph of a method's section."""
    fit = res.fit
    if not fit:
        return ("<p>Goodness of fit: not computed (the map was made without the model's "
                "forward).</p>")
    parts = [
        f"<p><b>Goodness of fit</b> at {fit['time'] * 1000:.1f} ms: the map's "
        f"{fit['n_dipoles']} strongest peak(s), refitted as free dipoles on the whitened data, "
        f"explain <b>{100 * fit['gof']:.1f} %</b> of it"
    ]
    if fit.get("best_dipole_gof") is not None:
        parts.append(f"; the best single dipole on the grid explains "
                     f"{100 * fit['best_dipole_gof']:.1f} % (at {fit['best_dipole_position_mm']}"
                     " mm, MRI)")
    if fit.get("refined_gof") is not None:
        parts.append(f"; refined locally: {100 * fit['refined_gof']:.1f} % at "
                     f"{fit['refined_positions_mm']} mm")
    parts.append(".</p>")
    parts.append(_sources_html(res))
    if fit.get("poor"):
        parts.append("<p><b>Warning</b>: the map explains much less of the data than a single "
                     "dipole does; it is probably not where the sources are.</p>")
    return "".join(parts)


def ensemble_html(res: SourceMap) -> str:
    """The paragraph on a seed ensemble's agreement ('' for a single net or another method)."""
    e = res.meta.get("ensemble")
    if not e:
        return ""
    text = (f"<p><b>Ensemble of {e['members']} nets</b> ({e.get('rule')} of their "
            f"posteriors): {agreement_sentence(e)}.</p>")
    if nets_disagree(e):
        text += ("<p><b>Warning</b>: the nets disagree: the recording is unlike their training "
                 "data here; compare with a classical method before trusting the map.</p>")
    return text


def _sources_html(res: SourceMap) -> str:
    """The fitted source set as a table (empty without ``sources=True``)."""
    rows = res.sources
    if not rows:
        return ""
    fit = res.fit.get("sources") or {}
    body = "".join(
        f"<tr><td>{r['source']}</td><td>({r['x_mm']:.1f}, {r['y_mm']:.1f}, {r['z_mm']:.1f})</td>"
        f"<td>{r['amplitude_nAm']:.1f}</td><td>{_extent(r)}</td>"
        f"<td>{r['region']}{' (deep)' if r['deep'] else ''}"
        f"</td><td>{100 * r['gof_share']:.1f} %</td></tr>" for r in rows)
    return (f"<p><b>Sources</b> fitted to the data ({len(rows)}, together "
            f"{100 * fit.get('gof', 0.0):.1f} % of the whitened data; their number chosen by an "
            "information criterion):</p>"
            "<table><thead><tr><th>#</th><th>MRI (mm)</th><th>nA·m</th>"
            "<th>equivalent radius (mm)*</th><th>region</th>"
            f"<th>share of fit</th></tr></thead><tbody>{body}</tbody></table>"
            "<p>* the disc of cortex (ball of a deep structure) that gives the moment at a "
            "typical density, 0.5 nA·m/mm² (0.05 nA·m/mm³): the data's topography alone does "
            "not tell a patch's extent.</p>"
            + (f"<p>{_html.escape(noise_sentence(fit.get('noise')))}.</p>"
               if fit.get("noise") else ""))


def _extent(row: dict) -> str:
    """A source row's equivalent radius, or '-' for rows written before it was reported."""
    return f"{row['extent_mm']:.0f}" if "extent_mm" in row else "-"


def _comparison_row(name: str, res: SourceMap) -> str:
    table = res.peaks(1)
    if not len(table):
        return f"<tr><td>{name}</td><td colspan=4>no activity</td></tr>"
    r = table[0]
    return (
        f"<tr><td>{name}</td><td>{r['time'] * 1000:.1f}</td><td>{r['region']}</td>"
        f"<td>({r['x_mri']:.0f}, {r['y_mri']:.0f}, {r['z_mri']:.0f})</td>"
        f"<td>{_gof_text(res)}</td></tr>"
    )


def _truth_table(truth: Sequence[dict], everyone: list) -> str:
    """HTML: each known source, and each method's nearest of its 5 strongest peaks (mm) at
    that method's peak time."""
    head = "".join(f"<th>{n}: error (mm)</th>" for n, _ in everyone)
    rows = []
    for t in truth:
        pos = np.asarray(t["pos_m"], float)
        cells = []
        for _, res in everyone:
            table = res.peaks(n=5)
            if len(table):
                d = np.linalg.norm(table.positions() - pos, axis=1) * 1e3
                cells.append(f"<td>{d[0]:.1f} (best of 5: {d.min():.1f})</td>")
            else:
                cells.append("<td>no peak</td>")
        mm = ", ".join(f"{1e3 * c:.0f}" for c in pos)
        rows.append(f"<tr><td>{t.get('region', '')}</td><td>{mm}</td>{''.join(cells)}</tr>")
    return ('<table class="table table-sm"><thead><tr><th>true source</th><th>MRI (mm)</th>'
            f"{head}</tr></thead>{''.join(rows)}</table><p>Error: distance from the true "
            "source to the method's strongest peak; best of 5: to the nearest of its five "
            "strongest peaks (a second source is often the second peak). Green circles mark "
            "the true sources in the glass brains.</p>")


def _add_method(report, name: str, res: SourceMap, head: Any, n_peaks: int,
                truth: Sequence[Sequence[float]] | None = None) -> None:
    section = name
    table = res.peaks(n=n_peaks)
    if len(table):
        report.add_figure(plot_peak_slices(res, head), title=f"{name}: slices at the peak",
                          section=section)
    report.add_figure(plot_glass_brain(res, truth=truth), title=f"{name}: glass brain",
                      section=section)
    report.add_figure(plot_region_time_courses(res), title=f"{name}: region time courses",
                      section=section)
    html = table.to_html() if len(table) else "<p>No activity (the map is zero).</p>"
    note = (
        "<p>Coordinates in mm: MRI (surface RAS) and MNI (n/a when the head has no MNI "
        "transform). Peaks are local maxima over the source neighbour graph at the data's peak "
        f"time ({res.peak_time * 1000:.1f} ms: the largest whitened global field power, the same "
        f"for every method). Units of amplitude: {res.units}.</p>"
    )
    report.add_html(html + note + ensemble_html(res) + fit_html(res), title=f"{name}: peak table",
                    section=section)
