"""Peaks of a source map: the one definition of a local maximum, and the peak table.

:func:`find_peaks` is used by every result (:meth:`deepesi.inverse.SourceMap.peaks`, network and
classical alike), by the metrics (DLE) and by the benchmark's scoring; only the neighbourhood is a
parameter. Over a :class:`~deepesi.sources.SourceSpace` it is the source neighbour graph **and**
every point within one grid diagonal (√3 × spacing): the graph alone separates neighbouring
structures (cortex / deep nuclei), so the spill-over of one blob into an adjacent structure would
show as a spurious peak.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import sparse
from scipy.spatial import cKDTree

from .._validation import check_finite

__all__ = ["PeakTable", "find_peaks", "neighbour_radius", "peak_centroids"]


def _median_spacing(pos: np.ndarray) -> float:
    if len(pos) < 2:
        return 1.0
    d, _ = cKDTree(pos).query(pos, k=2)
    spacing = float(np.median(d[:, 1]))
    return spacing if spacing > 0 else 1e-3


def neighbour_radius(source_space: Any) -> float:
    """The spatial part of a source space's peak neighbourhood: one grid diagonal (m).

    √3 × the grid spacing (the 26-neighbourhood of a regular grid); the median nearest-neighbour
    distance stands in for a spacing the source space does not record (or for bare positions,
    an array (n, 3)).
    """
    spacing = float(getattr(source_space, "spacing", 0.0) or 0.0)
    if spacing <= 0:
        spacing = _median_spacing(np.asarray(getattr(source_space, "pos", source_space), float))
    return float(np.sqrt(3.0) * spacing * (1 + 1e-6))


def _points(where: Any, n: int) -> np.ndarray:
    """The positions (n, 3) of a source space or of bare positions, checked against a map of
    ``n`` values."""
    if hasattr(where, "pos"):
        pos = np.asarray(where.pos, float)
    else:
        pos = check_finite(np.asarray(where, dtype=float), "source positions")
        if pos.ndim != 2 or pos.shape[1] != 3:
            raise ValueError(f"source positions must have shape (n_sources, 3), got {pos.shape}.")
    if len(pos) != n:
        raise ValueError(f"the map has {n} values but there are {len(pos)} source points.")
    return pos


def _check_radius(radius: float) -> float:
    if not (np.isfinite(radius) and radius >= 0):
        raise ValueError(f"radius must be >= 0 metres, got {radius}.")
    return float(radius)


def _values(values: np.ndarray) -> np.ndarray:
    arr = np.asarray(values)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"the map must be a numeric array, got dtype {arr.dtype}.")
    arr = check_finite(arr.astype(float), "map")
    if arr.ndim != 1:
        raise ValueError(
            f"the map must be one value per source point, shape (n_sources,), got {arr.shape}; "
            "for time courses pick a time point (or average) first."
        )
    if (arr < 0).any():
        raise ValueError(
            f"the map has negative values (min {arr.min():.3g}); peaks are found on "
            "non-negative amplitude maps: pass np.abs(values), or the norm over orientations."
        )
    return arr


#: Neighbour pairs of the source spaces peaks were sought on, built once per source space,
#: graph and radius (a map's peaks are sought many times on one grid, e.g. once per residual by
#: the source-set fit).
_PAIRS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _neighbour_pairs(pos: np.ndarray, adjacency: Any, radius: float, owner: Any
                     ) -> tuple[np.ndarray, np.ndarray]:
    """(row, col) of every neighbour pair: the graph's edges and the points within
    ``radius``, both directions, no self-pairs; cached per ``owner`` (a source space)."""
    key = (id(adjacency), radius)
    cached = None
    if owner is not None:
        try:
            cached = _PAIRS.setdefault(owner, {}).get(key)
        except TypeError:  # not weak-referenceable: no cache
            owner = None
    if cached is not None and cached[0] is adjacency and cached[1] is owner.pos:
        return cached[2], cached[3], cached[4]
    n = len(pos)
    rows, cols = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
    if adjacency is not None:
        adj = sparse.coo_matrix(adjacency)
        if adj.shape != (n, n):
            raise ValueError(f"adjacency must be ({n}, {n}), got {adj.shape}.")
        rows.append(adj.row.astype(np.int64))
        cols.append(adj.col.astype(np.int64))
    if radius > 0:
        pairs = cKDTree(pos).query_pairs(radius, output_type="ndarray").astype(np.int64)
        rows += [pairs[:, 0], pairs[:, 1]]
        cols += [pairs[:, 1], pairs[:, 0]]
    row, col = np.concatenate(rows), np.concatenate(cols)
    off = row != col
    row, col = row[off], col[off]
    order = np.argsort(row, kind="stable")  # by row: each point's neighbours contiguous
    row, col = row[order], col[order]
    indptr = np.searchsorted(row, np.arange(n + 1))
    if owner is not None:
        entries = _PAIRS[owner]
        if len(entries) >= 4:  # a few graphs / radii per source space at most
            entries.clear()
        entries[key] = (adjacency, owner.pos, row, col, indptr)
    return row, col, indptr


def _strongest_peaks(values: np.ndarray, col: np.ndarray, indptr: np.ndarray, n_max: int,
                     floor: float) -> np.ndarray | None:
    """The ``n_max`` strongest peaks, sought among the points above the value of the m-th
    strongest one, m = 16·n_max, 64·n_max, ... (a few hundred points instead of the whole
    grid, for a map with a few blobs), or None when a quarter of the grid holds fewer (the
    caller then looks at every point). Exact: every peak outside the set looked at is weaker
    than every peak inside it, and ties are broken as :func:`find_peaks` breaks them."""
    n = len(values)
    m = max(64, 16 * n_max)
    while m < n // 4:
        cut = np.partition(values, n - m)[n - m]
        cand = np.flatnonzero((values > cut) & (values > 0) & (values >= floor))
        if len(cand) >= n_max:
            start, stop = indptr[cand], indptr[cand + 1]
            lengths = stop - start
            owner = np.repeat(np.arange(len(cand)), lengths)
            offsets = np.repeat(start - np.concatenate([[0], np.cumsum(lengths)[:-1]]),
                                lengths)
            nb = col[offsets + np.arange(lengths.sum())]
            me = cand[owner]
            beaten = (values[nb] > values[me]) | ((values[nb] == values[me]) & (nb < me))
            lost = np.zeros(len(cand), bool)
            lost[owner[beaten]] = True
            peaks = cand[~lost]
            if len(peaks) >= n_max:
                return peaks[np.argsort(-values[peaks], kind="stable")][:n_max]
        if cut <= 0 or cut < floor:  # nothing more above the floor to look at
            return None
        m *= 4
    return None


def find_peaks(
    values: np.ndarray,
    where: Any,
    *,
    adjacency: sparse.spmatrix | np.ndarray | None = None,
    radius: float | None = None,
    rel_threshold: float = 0.0,
    n_max: int | None = None,
) -> np.ndarray:
    """Local maxima of a map over source points, strongest first.

    A point is a peak when its value is positive, at least ``rel_threshold`` times the global
    maximum, and not smaller than any neighbour's value; on a plateau of equal neighbouring values
    only the lowest index counts. The neighbours of a point are its ``adjacency`` graph neighbours
    together with every point within ``radius`` metres.

    Parameters
    ----------
    values : ndarray, shape (n_sources,)
        Non-negative map.
    where : SourceSpace | ndarray, shape (n_sources, 3)
        The points. For a :class:`~deepesi.sources.SourceSpace` the defaults are its neighbour
        graph and :func:`neighbour_radius` (graph ∪ 26-neighbourhood). For positions (metres)
        the default, without ``adjacency``, is ``radius`` = 1.5 × the median nearest-neighbour
        distance, and with ``adjacency`` the graph alone.
    adjacency : sparse matrix, shape (n_sources, n_sources) | None
        Neighbour graph.
    radius : float | None
        Neighbourhood radius (m); 0 for the graph alone.
    rel_threshold : float
        Peaks below this fraction of the maximum are left out (0 keeps every positive peak).
    n_max : int | None
        Keep at most this many.

    Returns
    -------
    peaks : ndarray of int
        Indices of the peaks, by decreasing value (equal values: lower index first).
    """
    values = _values(values)
    n = len(values)
    pos = _points(where, n)
    if hasattr(where, "pos") and hasattr(where, "adjacency"):
        if adjacency is None:
            adjacency = where.adjacency
        if radius is None:
            radius = neighbour_radius(where)
    elif radius is None:
        radius = 0.0 if adjacency is not None else 1.5 * _median_spacing(pos)
    if not 0.0 <= rel_threshold <= 1.0:
        raise ValueError(f"rel_threshold must be in [0, 1], got {rel_threshold}.")
    radius = _check_radius(radius)
    if n == 0 or values.max() <= 0:
        return np.zeros(0, dtype=int)
    graph_of = where if hasattr(where, "pos") and hasattr(where, "adjacency") else None
    row, col, indptr = _neighbour_pairs(pos, adjacency, float(radius), graph_of)
    if n_max is not None and int(n_max) > 0:  # a few strongest: look near the top only
        found = _strongest_peaks(values, col, indptr, int(n_max),
                                 rel_threshold * values.max())
        if found is not None:
            return found
    # a neighbour beats a point if it is larger, or equal with a lower index (plateaus)
    beaten = (values[col] > values[row]) | ((values[col] == values[row]) & (col < row))
    is_peak = np.ones(n, dtype=bool)
    is_peak[row[beaten]] = False
    is_peak &= values > 0
    is_peak &= values >= rel_threshold * values.max()
    peaks = np.flatnonzero(is_peak)
    peaks = peaks[np.argsort(-values[peaks], kind="stable")]
    return peaks if n_max is None else peaks[: int(n_max)]


def peak_centroids(
    values: np.ndarray,
    where: Any,
    peaks: np.ndarray,
    *,
    radius: float | None = None,
    power: float = 2.0,
) -> np.ndarray:
    """Sub-grid positions of peaks: the ``values**power``-weighted mean position of the points
    within ``radius`` of each peak.

    A map quantised to a grid puts its peak on a grid point even when the source lies between
    points; the points around the peak carry the rest of the information. For a network's
    softmax map (a posterior over the grid) the weighted mean is the posterior-mean position of
    the peak's neighbourhood (with ``power`` > 1, of a sharpened posterior), the estimate with
    the least expected squared error, and continuous. Measured on the template (single sources,
    realistic forward mismatch, ``benchmarks/subgrid_readout.py``): one grid diagonal and
    ``power=2`` lower the window net's median error by about 0.5 mm.

    Parameters
    ----------
    values : ndarray, shape (n_sources,)
        Non-negative map.
    where : SourceSpace | ndarray, shape (n_sources, 3)
        The points (metres).
    peaks : ndarray of int
        Indices of the peaks (e.g. :func:`find_peaks`).
    radius : float | None
        Neighbourhood radius (m); None: one grid diagonal (:func:`neighbour_radius`, or
        √3 × the median nearest-neighbour distance for bare positions).
    power : float
        Exponent of the weights (1: the map itself; larger: closer to the peak point).

    Returns
    -------
    ndarray, shape (n_peaks, 3)
        Positions (m), in the frame of ``where``; a peak with no positive neighbour stays on its
        grid point.
    """
    values = _values(values)
    pos = _points(where, len(values))
    radius = _check_radius(neighbour_radius(where if hasattr(where, "pos") else pos)
                           if radius is None else radius)
    if not (np.isfinite(power) and power > 0):
        raise ValueError(f"power must be > 0, got {power}.")
    idx = np.asarray(peaks, dtype=int).reshape(-1)
    if idx.size and (idx.min() < 0 or idx.max() >= len(pos)):
        raise ValueError(f"peak indices must be in [0, {len(pos)}), got {idx.min()}..{idx.max()}.")
    tree = cKDTree(pos)
    out = pos[idx].copy()
    for k, i in enumerate(idx):
        near = np.asarray(tree.query_ball_point(pos[i], radius), dtype=int)
        w = values[near] ** float(power)
        if near.size and w.sum() > 0:
            out[k] = w @ pos[near] / w.sum()
    return out


@dataclass(frozen=True)
class PeakTable:
    """Ranked activity peaks: one dict per peak.

    Keys: ``rank``, ``source``, ``region``, ``x_mri``, ``y_mri``, ``z_mri`` (mm), ``x_mni``,
    ``y_mni``, ``z_mni`` (mm; NaN when the source space has no MRI→MNI transform),
    ``amplitude``, ``time`` (s).
    """

    rows: list[dict]

    COLUMNS = (
        "rank", "source", "region", "x_mri", "y_mri", "z_mri", "x_mni", "y_mni", "z_mni",
        "amplitude", "time",
    )

    @classmethod
    def from_map(cls, amplitude: np.ndarray, source_space: Any, time: float,
                 index: np.ndarray, positions: np.ndarray | None = None) -> PeakTable:
        """The table of the points ``index`` of a map at ``time`` (s); ``positions`` (m, MRI,
        one row per peak) replace the grid points' coordinates (e.g. :func:`peak_centroids`),
        the region and amplitude stay the grid point's."""
        from ..anatomy.regions import region_name

        idx = np.asarray(index, dtype=int)
        src = source_space
        at = src.pos[idx] if positions is None else np.asarray(positions, float).reshape(-1, 3)
        if len(at) != len(idx):
            raise ValueError(f"{len(at)} positions for {len(idx)} peaks.")
        mri = at * 1000.0
        if src.mri_to_mni is not None:
            t = np.asarray(src.mri_to_mni, float)
            mni = mri @ t[:3, :3].T + t[:3, 3]
        else:
            mni = np.full((len(idx), 3), np.nan)
        rows = [
            {
                "rank": r + 1,
                "source": int(i),
                "region": region_name(int(src.region_ids[i])),
                "x_mri": float(mri[r, 0]), "y_mri": float(mri[r, 1]), "z_mri": float(mri[r, 2]),
                "x_mni": float(mni[r, 0]), "y_mni": float(mni[r, 1]), "z_mni": float(mni[r, 2]),
                "amplitude": float(amplitude[i]),
                "time": float(time),
            }
            for r, i in enumerate(idx)
        ]
        return cls(rows)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict:
        return self.rows[i]

    def __iter__(self) -> Iterator[dict]:
        return iter(self.rows)

    def column(self, name: str) -> list:
        """The values of one column."""
        if name not in self.COLUMNS:
            raise KeyError(f"no column {name!r}; columns are {self.COLUMNS}.")
        return [r[name] for r in self.rows]

    def positions(self) -> np.ndarray:
        """Peak positions, shape (n_peaks, 3), MRI frame, **metres**."""
        if not self.rows:
            return np.zeros((0, 3))
        return np.array([[r["x_mri"], r["y_mri"], r["z_mri"]] for r in self.rows]) / 1000.0

    def _cell(self, key: str, value: Any) -> str:
        if key in ("rank", "source") or isinstance(value, str):
            return str(value)
        if key == "amplitude":
            return f"{value:.6g}"
        if key == "time":
            return f"{value:.4f}"
        return "n/a" if not np.isfinite(value) else f"{value:.1f}"

    def to_tsv(self) -> str:
        """Tab-separated text with a header line."""
        lines = ["\t".join(self.COLUMNS)]
        lines += ["\t".join(self._cell(k, r[k]) for k in self.COLUMNS) for r in self.rows]
        return "\n".join(lines) + "\n"

    def to_html(self) -> str:
        """An HTML table (for reports)."""
        head = "".join(f"<th>{k}</th>" for k in self.COLUMNS)
        body = "".join(
            "<tr>" + "".join(f"<td>{self._cell(k, r[k])}</td>" for k in self.COLUMNS) + "</tr>"
            for r in self.rows
        )
        return f'<table class="table table-sm"><thead><tr>{head}</tr></thead>{body}</table>'

    def to_dataframe(self):
        """A :class:`pandas.DataFrame` (needs pandas)."""
        import pandas as pd

        return pd.DataFrame(self.rows, columns=list(self.COLUMNS))

    def __str__(self) -> str:
        cells = [list(self.COLUMNS)]
        cells += [[self._cell(k, r[k]) for k in self.COLUMNS] for r in self.rows]
        widths = [max(len(c[j]) for c in cells) for j in range(len(self.COLUMNS))]
        return "\n".join(
            "  ".join(c.ljust(w) if j == 2 else c.rjust(w)
                      for j, (c, w) in enumerate(zip(line, widths, strict=True)))
            for line in cells
        )
