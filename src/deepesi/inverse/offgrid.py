"""Dipoles anywhere in the brain, not only on the grid: the gain between grid points and the
search for the best position near a start.

:class:`LocalGain` interpolates a grid's gains by moving least squares (so a shipped model's
float16 lead field is all a refinement needs, no FEM at run time); :func:`_refine_positions`
moves a set of sources continuously, one at a time with the others projected out, by a batched
lattice + quadratic search (:func:`_lattice_search`).
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

from .scan import _fit, _orthonormal, _quadratic_3x3


class LocalGain:
    """The whitened gain at any position inside a grid source space.

    Moving least squares: the gains of the grid points within ``2·spacing`` of the position are
    fitted by a quadratic polynomial in the offset (Gaussian weights of width one spacing) and
    the fit is read at the position; a linear polynomial where fewer than 14 points are near (the
    edge of the brain), the nearest point where fewer than 5. On the grid points it returns
    (almost) their own gain; between them a smooth field, so a dipole can be fitted anywhere.

    Parameters
    ----------
    gain_w : ndarray, shape (n_w, n_sources, n_orient)
        Whitened (or raw) gain of the grid points.
    pos : ndarray, shape (n_sources, 3)
        Grid positions (m).
    spacing : float
        Grid spacing (m).
    """

    def __init__(self, gain_w: np.ndarray, pos: np.ndarray, spacing: float) -> None:
        self.gain = np.asarray(gain_w, float)
        self.pos = np.asarray(pos, float)
        self.spacing = float(spacing)
        if self.gain.ndim != 3 or self.gain.shape[1] != len(self.pos):
            raise ValueError(f"gain of shape {self.gain.shape} does not match "
                             f"{len(self.pos)} positions; expected (n_w, n_sources, n_orient).")
        if not self.spacing > 0:
            raise ValueError(f"spacing must be positive, got {spacing}.")
        self.tree = cKDTree(self.pos)

    def inside(self, p: np.ndarray) -> bool:
        """Whether ``p`` lies within half a voxel diagonal of a grid point (not extrapolated)."""
        d, _ = self.tree.query(p)
        return bool(d <= 0.5 * np.sqrt(3.0) * self.spacing * (1 + 1e-9))

    def weights(self, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Grid rows and weights whose weighted sum of gains is the gain at ``p``."""
        idx, a = self.weights_many(np.asarray(p, float)[None])
        keep = a[0] != 0
        return idx[0][keep], a[0][keep]

    def weights_many(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Rows and weights of many positions at once, padded: ``(n, m)`` grid rows and
        ``(n, m)`` weights (0 on the padding), ``m`` the most neighbours any position has.

        Every position's moving least-squares system (:class:`LocalGain`) is solved in one
        batched call: the quadratic terms switched off (their rows and columns replaced by the
        identity) where fewer than 14 grid points are near, the nearest point alone where
        fewer than 5.
        """
        pts = np.atleast_2d(np.asarray(points, float))
        near = self.tree.query_ball_point(pts, 2.0 * self.spacing * (1 + 1e-6))
        counts = np.array([len(n) for n in near], int)
        width = max(int(counts.max(initial=0)), 1)
        idx = np.zeros((len(pts), width), int)
        mask = np.zeros((len(pts), width), bool)
        for i, n in enumerate(near):
            idx[i, :len(n)] = n
            mask[i, :len(n)] = True
        d = (self.pos[idx] - pts[:, None]) / self.spacing  # (n, m, 3)
        x, y, z = d[..., 0], d[..., 1], d[..., 2]
        basis = np.stack([np.ones_like(x), x, y, z, x * x, y * y, z * z, x * y, x * z, y * z],
                         axis=-1)  # (n, m, 10)
        quadratic = counts >= 14
        basis[~quadratic, :, 4:] = 0.0
        w = np.where(mask, np.exp(-np.sum(d * d, axis=-1)), 0.0)
        normal = np.einsum("nmi,nm,nmj->nij", basis, w, basis)
        off = np.zeros((len(pts), 10))
        off[~quadratic, 4:] = 1.0  # the linear fit: unit diagonal where the quadratic is off
        normal += 1e-9 * np.trace(normal, axis1=1, axis2=2)[:, None, None] * np.eye(10)
        normal += off[:, :, None] * np.eye(10)[None]
        few = counts < 5  # the nearest grid point alone (below)
        normal[few] = np.eye(10)
        e0 = np.zeros((len(pts), 10, 1))
        e0[:, 0] = 1.0
        c = np.linalg.solve(normal, e0)[..., 0]  # (n, 10)
        a = w * np.einsum("nmi,ni->nm", basis, c)
        if few.any():
            _, j = self.tree.query(pts[few])
            idx[few] = 0
            a[few] = 0.0
            idx[few, 0] = j
            a[few, 0] = 1.0
        return idx, a

    def at(self, p: np.ndarray) -> np.ndarray:
        """Gain (n_w, n_orient) at position ``p`` (m)."""
        idx, a = self.weights(p)
        return np.einsum("n,wno->wo", a, self.gain[:, idx])

    def at_many(self, points: np.ndarray) -> np.ndarray:
        """Gains (n_w, n_points, n_orient) at many positions (m) at once."""
        idx, a = self.weights_many(points)
        return np.einsum("nm,wnmo->wno", a, self.gain[:, idx])

    def inside_many(self, points: np.ndarray) -> np.ndarray:
        """:meth:`inside` for many positions (n,) at once."""
        d, _ = self.tree.query(np.atleast_2d(points))
        return d <= 0.5 * np.sqrt(3.0) * self.spacing * (1 + 1e-9)


#: Offsets of the 3×3×3 lattice the off-grid refinement evaluates around a position.
_LATTICE = np.stack(np.meshgrid(*[np.array([-1.0, 0.0, 1.0])] * 3, indexing="ij"),
                    axis=-1).reshape(-1, 3)
#: Its quadratic design (1, x, y, z, x², y², z², xy, xz, yz) and the least-squares solver of it.
_LATTICE_DESIGN = np.column_stack([
    np.ones(27), _LATTICE, _LATTICE**2, _LATTICE[:, 0] * _LATTICE[:, 1],
    _LATTICE[:, 0] * _LATTICE[:, 2], _LATTICE[:, 1] * _LATTICE[:, 2]])
_LATTICE_PINV = np.linalg.pinv(_LATTICE_DESIGN)


def _explained(gains: np.ndarray, x: np.ndarray, basis: np.ndarray | None) -> np.ndarray:
    """Energy of ``x`` (already projected away from ``basis``) that a free dipole explains at
    each of many positions, given their gains (n_w, n, n_orient), with ``basis`` (orthonormal
    columns: the other sources) projected out of the gains too."""
    if basis is not None and basis.size:
        gains = gains - np.einsum("wk,kno->wno", basis, np.einsum("wk,wno->kno", basis, gains))
    gram = np.einsum("wno,wnp->nop", gains, gains)
    b = np.einsum("wno,wt->not", gains, x)
    if gains.shape[2] == 3:
        return _quadratic_3x3(gram, b)
    sol = np.linalg.lstsq  # 1 or 2 orientations: a small solve per position
    return np.array([float(np.sum(bi * sol(gi, bi, rcond=1e-10)[0])) for gi, bi in
                     zip(gram, b, strict=True)])


def _lattice_search(local: LocalGain, x: np.ndarray, basis: np.ndarray | None,
                    start: np.ndarray, n_levels: int = 5) -> tuple[np.ndarray, float]:
    """The position near ``start`` whose dipole explains most of ``x``: the 27 points of a
    lattice around the current centre are evaluated at once (:meth:`LocalGain.at_many`), a
    quadratic is fitted to their energies and the next centre is its maximum (kept inside the
    lattice; the best lattice point where the quadratic is not concave), the lattice halves,
    ``n_levels`` times from half a grid spacing. Returns the best position evaluated (the start
    included) and the energy its dipole explains."""
    best_p = np.asarray(start, float)
    best_e = float(_explained(local.at_many(best_p[None]), x, basis)[0])
    centre, h = best_p.copy(), 0.5 * local.spacing
    for _ in range(int(n_levels)):
        cand = centre + h * _LATTICE
        ok = local.inside_many(cand)
        energy = np.full(27, -np.inf)
        energy[ok] = _explained(local.at_many(cand[ok]), x, basis)
        k = int(np.argmax(energy))
        if energy[k] > best_e:
            best_p, best_e = cand[k].copy(), float(energy[k])
        nxt = cand[k]
        if ok.all():
            coef = _LATTICE_PINV @ energy
            hess = np.array([[2 * coef[4], coef[7], coef[8]],
                             [coef[7], 2 * coef[5], coef[9]],
                             [coef[8], coef[9], 2 * coef[6]]])
            if np.all(np.linalg.eigvalsh(hess) < 0):
                step = np.clip(np.linalg.solve(hess, -coef[1:4]), -1.0, 1.0)
                nxt = centre + h * step
        centre, h = nxt, 0.5 * h
    if local.inside(centre):  # the last quadratic maximum itself
        e = float(_explained(local.at_many(centre[None]), x, basis)[0])
        if e > best_e:
            best_p, best_e = centre.copy(), e
    return best_p, best_e


def _refine_positions(local: LocalGain, x: np.ndarray, positions: list[np.ndarray],
                      n_rounds: int) -> tuple[list[np.ndarray], float]:
    """Coordinate ascent over the sources' continuous positions: each source in turn moves to
    where it explains most of what the others (refitted) leave (:func:`_lattice_search`)."""
    pos = [np.asarray(p, float).copy() for p in positions]
    gains = [local.at(p) for p in pos]
    rss, _ = _fit(gains, x)
    for _ in range(int(n_rounds)):
        start = rss
        for j in range(len(pos)):
            others = gains[:j] + gains[j + 1:]
            basis = _orthonormal(others)
            xp = x - basis @ (basis.T @ x) if basis is not None else x
            p, _ = _lattice_search(local, xp, basis, pos[j])
            g = local.at(p)
            new_rss, _ = _fit([*others, g], x)
            if new_rss < rss:
                pos[j], gains[j], rss = p, g, new_rss
        if start - rss <= 1e-6 * start:
            break
    return pos, rss
