"""Grid scans of whitened data: how much of it a free dipole at each grid point explains.

The linear algebra under :mod:`deepesi.inverse.source_set` and :mod:`deepesi.inverse.offgrid`:
least-squares fits of dipoles with given gains (:func:`_fit`), an orthonormal basis of some
sources' gains (:func:`_orthonormal`), the energy explained at every grid point beside other
sources (:class:`_Scanner`) and the batched 3×3 quadratic forms behind it.

Speed: each point's gain is orthonormalised once, so a scan of the whole grid is one float32
matrix product and a 3×3 adjugate per point on contiguous rows.
"""

from __future__ import annotations

import numpy as np

#: The scan looks at the data components holding at least this fraction of the strongest
#: one's energy, at most :data:`MAX_SUBSPACE` of them.
SUBSPACE_FLOOR = 0.01
MAX_SUBSPACE = 8
SCAN_DTYPE = np.float32


def _fit(gains: list[np.ndarray], x: np.ndarray) -> tuple[float, np.ndarray]:
    """Residual energy and moments (n, n_orient, n_times) of dipoles with these gains."""
    if not gains:
        return float(np.sum(x**2)), np.zeros((0, 1, x.shape[1]))
    g = np.concatenate(gains, axis=1)
    q, *_ = np.linalg.lstsq(g, x, rcond=1e-8)
    r = x - g @ q
    return float(np.sum(r**2)), q.reshape(len(gains), -1, x.shape[1])


def _orthonormal(gains: list[np.ndarray]) -> np.ndarray | None:
    """An orthonormal basis (n_w, k) of the span of some sources' gains; None for none."""
    if not gains:
        return None
    u, sv, _ = np.linalg.svd(np.concatenate(gains, axis=1), full_matrices=False)
    return u[:, sv > 1e-8 * sv[0]]


class _Scanner:
    """Energy of data explained by each grid point's dipole, optionally once the span of other
    sources' gains is projected out of data and gain alike (alternating projection).

    Each point's gain is orthonormalised once (``U_s = G_s V Λ^-1/2`` from the eigenvectors of
    ``G_sᵀG_s``, silent orientations, e.g. radial MEG, left as zero columns). With ``P`` the
    projector away from the others (``B`` an orthonormal basis of them), the energy of ``x``
    (already projected) that point ``s`` explains is ``tr(bᵀ (I − ccᵀ)⁻¹ b)`` with
    ``b = U_sᵀ x`` and ``c = U_sᵀ B``: one pass over the gain (one matrix product in float32,
    ``[x | B]`` at once) and small 3×3 systems for all points, instead of an SVD per point.
    """

    def __init__(self, g: np.ndarray) -> None:
        self.n_w, self.n_s, self.n_o = g.shape
        gram = np.einsum("wso,wsp->sop", g, g)
        w, v = np.linalg.eigh(gram)  # (n_s, n_o), (n_s, n_o, n_o)
        ok = w > 1e-12 * np.maximum(w[:, -1:], 1e-300)
        scale = np.where(ok, 1.0 / np.sqrt(np.where(ok, w, 1.0)), 0.0)
        u = np.einsum("wso,sop,sp->wsp", g, v, scale)  # orthonormal columns per point
        self.flat = np.ascontiguousarray(u.reshape(self.n_w, -1), dtype=SCAN_DTYPE)

    def energy(self, x: np.ndarray, others: list[np.ndarray] | None = None) -> np.ndarray:
        """Energy of ``x`` (n_w, n_t) each point explains beside ``others`` (n_s,)."""
        basis = _orthonormal(others or [])
        if basis is not None:
            x = x - basis @ (basis.T @ x)
        # the energy depends on span(x) only; the components below 1 % of the strongest one's
        # energy (noise, at any useful SNR) are left out: this only picks a candidate, the
        # fits themselves use all the data
        u, sv, _ = np.linalg.svd(x, full_matrices=False)
        keep = sv**2 >= SUBSPACE_FLOOR * max(sv[0], 1e-300) ** 2
        keep[MAX_SUBSPACE:] = False
        xr = u[:, keep] * sv[keep]
        r = xr.shape[1]
        rhs = xr if basis is None else np.concatenate([xr, basis], axis=1)
        # (q, n_o, n_s), each orientation's row contiguous: b = U_sᵀ x, c = U_sᵀ B
        m = (rhs.T.astype(self.flat.dtype) @ self.flat).astype(np.float64)
        m = np.ascontiguousarray(m.reshape(-1, self.n_s, self.n_o).transpose(0, 2, 1))
        b = m[:r]
        if basis is None:
            return np.sum(b * b, axis=(0, 1))
        c = m[r:]
        if self.n_o == 3:  # U_sᵀ P U_s = I − ccᵀ, its six entries
            e = {(i, j): float(i == j) - np.sum(c[:, i] * c[:, j], axis=0)
                 for i in range(3) for j in range(i, 3)}
            return _quadratic_entries(e[0, 0], e[0, 1], e[0, 2], e[1, 1], e[1, 2], e[2, 2],
                                      b[:, 0], b[:, 1], b[:, 2])
        a = np.eye(self.n_o)[None] - np.einsum("kos,kps->sop", c, c)
        bb = b.transpose(2, 1, 0)
        return np.einsum("spt,spt->s", bb, np.linalg.solve(a, bb))

    def best(self, x: np.ndarray, others: list[np.ndarray] | None = None) -> int:
        """Row of the point that explains most of ``x`` (n_w, n_t) beside ``others``."""
        return int(np.argmax(self.energy(x, others)))


def _quadratic_3x3(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``Σ_t b_tᵀ A⁻¹ b_t`` for a stack of symmetric 3×3 ``A`` (n, 3, 3) and ``b`` (n, 3, r)."""
    bt = np.moveaxis(b, 0, -1)  # (3, r, n)
    return _quadratic_entries(a[:, 0, 0], a[:, 0, 1], a[:, 0, 2], a[:, 1, 1], a[:, 1, 2],
                              a[:, 2, 2], bt[0], bt[1], bt[2])


def _quadratic_entries(a00, a01, a02, a11, a12, a22, b0, b1, b2) -> np.ndarray:
    """``Σ_t b_tᵀ A⁻¹ b_t`` for many symmetric 3×3 ``A`` given by their six entries (n,) and
    ``b`` by its three rows (r, n): the adjugate over the determinant, vectorised (a LAPACK
    call per point is slower); 0 where ``A`` is singular."""
    c00 = a11 * a22 - a12 * a12
    c01 = a02 * a12 - a01 * a22
    c02 = a01 * a12 - a02 * a11
    c11 = a00 * a22 - a02 * a02
    c12 = a01 * a02 - a00 * a12
    c22 = a00 * a11 - a01 * a01
    det = a00 * c00 + a01 * c01 + a02 * c02
    quad = (c00 * np.sum(b0 * b0, axis=0) + c11 * np.sum(b1 * b1, axis=0)
            + c22 * np.sum(b2 * b2, axis=0)
            + 2 * (c01 * np.sum(b0 * b1, axis=0) + c02 * np.sum(b0 * b2, axis=0)
                   + c12 * np.sum(b1 * b2, axis=0)))
    scale = np.abs(a00) + np.abs(a11) + np.abs(a22)
    good = det > 1e-12 * scale**3
    return np.where(good, quad / np.where(good, det, 1.0), 0.0)
