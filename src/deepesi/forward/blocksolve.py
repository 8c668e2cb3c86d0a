"""Multi-right-hand-side (block) AMG-preconditioned conjugate gradients.

The transfer matrix needs one solve ``K t_e = e_e`` per electrode with the same matrix. Sparse
matrix-vector products are memory-bandwidth bound: each product streams the whole matrix (12-16
bytes per non-zero) to do 2 flops per non-zero. Multiplying the matrix by ``k`` vectors at once
(CSR x dense ``n x k``, "SpMM") streams it once for all of them, so a block of right-hand sides
costs much less per right-hand side than ``k`` separate solves.

:class:`BlockVCycle` is a V-cycle of a pyamg smoothed-aggregation hierarchy (its ``A_l``, ``P_l``,
``R_l``) rewritten for blocks of vectors:

- smoothing by Chebyshev polynomials of the Jacobi-scaled operator ``D^-1 A`` (only SpMMs, no
  sequential Gauss-Seidel sweep), the same polynomial before and after the coarse correction, so
  the V-cycle is a symmetric positive definite operator, as CG requires;
- a dense Cholesky factorisation of the coarsest operator, reused for every right-hand side;
- optionally single precision (``float32`` matrices and vectors) for the whole V-cycle, which
  halves its memory traffic; CG itself stays in double precision.

:func:`block_cg` advances ``k`` independent preconditioned CG iterations in lock step: products
with ``A`` and the preconditioner act on the whole block, inner products are column-wise. Each
column stops when its own relative residual reaches ``tol`` (converged columns leave the block).
``flexible=True`` switches to the Polak-Ribiere form of ``beta`` (flexible CG), which tolerates a
preconditioner that is not exactly the same linear operator at every application.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import pyamg
from scipy import linalg, sparse

__all__ = ["BlockSolveStats", "BlockVCycle", "as_solver_csr", "block_cg"]


def _csr(mat, dtype) -> sparse.csr_matrix:
    """CSR copy with the given value type and 32-bit indices where they fit (less traffic)."""
    out = sparse.csr_matrix(mat, dtype=dtype, copy=True)
    out.sum_duplicates()
    if out.nnz < 2**31 - 1:
        out.indices = out.indices.astype(np.int32, copy=False)
        out.indptr = out.indptr.astype(np.int32, copy=False)
    return out


def as_solver_csr(mat) -> sparse.csr_matrix:
    """Double-precision CSR copy of ``mat`` with 32-bit indices, for the products inside CG."""
    return _csr(mat, np.float64)


def _inverse_diagonal(mat, level: int) -> np.ndarray:
    """``1 / diag(A)``, 0 for unknowns whose row of ``A`` is zero.

    A coarse operator ``P^T A P`` of an SPD ``A`` has a zero diagonal entry only where the
    column of ``P`` is zero (aggregation can leave such an empty coarse unknown): its row and
    column are zero, it receives nothing from the restriction and gives nothing back, so the
    smoother leaves it at zero.
    """
    diag = np.asarray(mat.diagonal(), dtype=np.float64)
    scale = float(np.abs(diag).max()) if diag.size else 0.0
    if np.any(diag < -1e-10 * scale):
        raise ValueError(
            f"the operator of AMG level {level} has a negative diagonal entry: the system matrix "
            "is not positive definite (check the conductivities)."
        )
    empty = diag <= 1e-14 * scale
    if empty.any():
        rows = np.flatnonzero(empty)
        sub = mat[rows] if sparse.issparse(mat) else np.asarray(mat)[rows]
        if np.abs(sub).max() > 1e-10 * scale:
            raise ValueError(
                f"the operator of AMG level {level} has a zero diagonal entry in a non-zero row: "
                "the system matrix is not positive definite (check the conductivities)."
            )
    return np.where(empty, 0.0, 1.0 / np.where(empty, 1.0, diag))


def _spectral_radius_jacobi(mat: sparse.csr_matrix, dinv: np.ndarray) -> float:
    """Largest eigenvalue of ``D^-1 A`` via the symmetric ``D^-1/2 A D^-1/2`` (Lanczos, seeded)."""
    s = np.sqrt(dinv.astype(np.float64))
    scaled = sparse.diags(s) @ mat.astype(np.float64) @ sparse.diags(s)
    rng_state = np.random.get_state()  # noqa: NPY002 (pyamg draws from the legacy RNG)
    np.random.seed(0)  # noqa: NPY002
    try:
        rho = pyamg.util.linalg.approximate_spectral_radius(
            sparse.csr_matrix(scaled), symmetric=True, maxiter=30
        )
    finally:
        np.random.set_state(rng_state)  # noqa: NPY002
    return float(rho)


@dataclass
class _Level:
    A: sparse.csr_matrix
    P: sparse.csr_matrix | None
    R: sparse.csr_matrix | None
    dinv: np.ndarray  # (n, 1) so that it broadcasts over a block
    theta: float
    delta: float


class BlockVCycle:
    """Symmetric AMG V-cycle acting on blocks of vectors, built from a pyamg hierarchy.

    Parameters
    ----------
    ml : pyamg.multilevel.MultilevelSolver
        Smoothed-aggregation hierarchy of the SPD system matrix.
    degree : int
        Degree of the Chebyshev smoother (SpMMs per smoothing pass), before and after the
        coarse correction.
    lower : float
        The smoother damps eigenvalues of ``D^-1 A`` in ``[rho / lower, 1.1 rho]``.
    dtype : numpy dtype
        ``np.float32`` (default: half the memory traffic) or ``np.float64``.
    """

    def __init__(self, ml, *, degree: int = 2, lower: float = 30.0, dtype=np.float32):
        degree = int(degree)
        if degree < 1:
            raise ValueError(f"degree must be >= 1, got {degree}.")
        if not lower > 1:
            raise ValueError(f"lower must be > 1, got {lower}.")
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.float32, np.float64):
            raise ValueError(f"dtype must be float32 or float64, got {self.dtype}.")
        self.degree = degree
        self.levels: list[_Level] = []
        n_lev = len(ml.levels)
        for i, lev in enumerate(ml.levels[:-1]):
            a = _csr(lev.A, self.dtype)
            dinv = _inverse_diagonal(lev.A, i)
            rho = _spectral_radius_jacobi(a, dinv)
            upper, low = 1.1 * rho, 1.1 * rho / lower
            self.levels.append(
                _Level(
                    A=a,
                    P=_csr(lev.P, self.dtype) if i + 1 < n_lev else None,
                    R=_csr(lev.R, self.dtype) if i + 1 < n_lev else None,
                    dinv=dinv.astype(self.dtype)[:, None],
                    theta=0.5 * (upper + low),
                    delta=0.5 * (upper - low),
                )
            )
        coarse = ml.levels[-1].A
        coarse = np.array(
            coarse.toarray() if sparse.issparse(coarse) else coarse, dtype=np.float64
        )
        idle = np.flatnonzero(_inverse_diagonal(coarse, n_lev - 1) == 0)
        coarse[idle, idle] = 1.0  # decoupled unknowns (see _inverse_diagonal): solution 0
        self._coarse = linalg.cho_factor(coarse, lower=False)

    @property
    def n_levels(self) -> int:
        """Number of levels including the coarsest (direct) one."""
        return len(self.levels) + 1

    def _smooth(self, lev: _Level, b: np.ndarray, x: np.ndarray | None) -> np.ndarray:
        """Chebyshev iteration on ``D^-1 A x = D^-1 b`` (``x=None``: zero initial guess).

        Written with in-place operations: on a block the vector updates cost as much memory
        traffic as the sparse products, and every temporary is a fresh (n, k) array.
        """
        if x is None:
            r = lev.dinv * b
        else:
            r = lev.A @ x
            np.subtract(b, r, out=r)
            r *= lev.dinv
        sigma = lev.theta / lev.delta
        rho = 1.0 / sigma
        d = r * (1.0 / lev.theta)
        if x is None:
            x = d.copy()
        else:
            x += d
        for _ in range(self.degree - 1):
            ad = lev.A @ d
            ad *= lev.dinv
            r -= ad
            rho_new = 1.0 / (2.0 * sigma - rho)
            d *= rho_new * rho
            np.multiply(r, 2.0 * rho_new / lev.delta, out=ad)
            d += ad
            rho = rho_new
            x += d
        return x

    def _cycle(self, i: int, b: np.ndarray) -> np.ndarray:
        if i == len(self.levels):
            sol = linalg.cho_solve(self._coarse, b.astype(np.float64, copy=False))
            return sol.astype(self.dtype, copy=False)
        lev = self.levels[i]
        x = self._smooth(lev, b, None)
        res = lev.A @ x
        np.subtract(b, res, out=res)
        x += lev.P @ self._cycle(i + 1, lev.R @ res)
        del res
        return self._smooth(lev, b, x)

    def __call__(self, block: np.ndarray) -> np.ndarray:
        """Apply the V-cycle to ``block`` (n,) or (n, k); returns float64."""
        b = np.asarray(block)
        vec = b.ndim == 1
        b = np.ascontiguousarray(b.reshape(b.shape[0], -1), dtype=self.dtype)
        out = self._cycle(0, b).astype(np.float64, copy=False)
        return out[:, 0] if vec else out


@dataclass
class BlockSolveStats:
    """Iteration counts (per column) and wall time of :func:`block_cg`."""

    iterations: list[int] = field(default_factory=list)
    solve_s: float = 0.0


def _coldot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.einsum("ij,ij->j", a, b)


def block_cg(
    mat: sparse.csr_matrix,
    rhs: np.ndarray,
    precond,
    *,
    tol: float = 1e-8,
    maxiter: int = 500,
    flexible: bool = False,
    stats: BlockSolveStats | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Solve ``mat @ X = rhs`` for all columns by preconditioned CG advanced in lock step.

    Parameters
    ----------
    mat : scipy.sparse.csr_matrix, shape (n, n)
        Symmetric positive definite matrix (float64).
    rhs : ndarray, shape (n, k)
        Right-hand sides; an all-zero column gives a zero solution.
    precond : callable
        ``precond(R) -> Z`` for blocks ``(n, m)``, ``m <= k``; an SPD approximation of ``mat^-1``
        (e.g. :class:`BlockVCycle`).
    tol : float
        Each column stops at ``||b - A x|| <= tol ||b||``.
    maxiter : int
        Iteration cap; a column that has not converged by then raises RuntimeError.
    flexible : bool
        Polak-Ribiere ``beta`` (robust to a preconditioner that varies slightly between
        applications, one more inner product and a copy per iteration) instead of
        Fletcher-Reeves.
    stats : BlockSolveStats | None
        Receives the iterations of each column and the time.

    Returns
    -------
    x : ndarray, shape (n, k)
    iterations : ndarray of int, shape (k,)
    """
    if not tol > 0:
        raise ValueError(f"tol must be > 0, got {tol}.")
    rhs = np.asarray(rhs, dtype=np.float64)
    if rhs.ndim != 2 or rhs.shape[0] != mat.shape[0]:
        raise ValueError(f"rhs must have shape ({mat.shape[0]}, k), got {rhs.shape}.")
    t0 = time.perf_counter()
    n, k = rhs.shape
    x = np.zeros((n, k))
    its = np.zeros(k, dtype=int)
    bnorm = np.sqrt(_coldot(rhs, rhs))
    active = np.flatnonzero(bnorm > 0)
    r = np.ascontiguousarray(rhs[:, active])
    limit = tol * bnorm[active]
    xa = np.zeros_like(r)
    z = precond(r)
    p = z.copy()
    rz = _coldot(r, z)
    del z
    it = 0
    while active.size:
        it += 1
        if it > maxiter:
            res = np.sqrt(_coldot(r, r)) / bnorm[active]
            raise RuntimeError(
                f"block AMG-CG did not reach tol={tol:g} in {maxiter} iterations for "
                f"{active.size} right-hand side(s) (worst relative residual {res.max():.2e}); "
                "check the conductivities."
            )
        ap = mat @ p
        alpha = rz / _coldot(p, ap)
        r_old = r.copy() if flexible else None
        np.multiply(ap, alpha, out=ap)
        r -= ap
        np.multiply(p, alpha, out=ap)
        xa += ap
        del ap
        rnorm = np.sqrt(_coldot(r, r))
        done = rnorm <= limit
        its[active] = it
        if done.any():
            x[:, active[done]] = xa[:, done]
            keep = ~done
            active, limit = active[keep], limit[keep]
            xa, r, p, rz = xa[:, keep], r[:, keep], p[:, keep], rz[keep]
            if flexible:
                r_old = r_old[:, keep]
            if not active.size:
                break
        z_new = precond(r)
        rz_new = _coldot(r, z_new)
        if flexible:  # Polak-Ribiere form: z_new . (r - r_old) / rz
            beta = (rz_new - _coldot(z_new, r_old)) / rz
            del r_old
        else:  # Fletcher-Reeves
            beta = rz_new / rz
        rz = rz_new
        p *= beta
        p += z_new
        del z_new
    if stats is not None:
        stats.iterations.extend(int(v) for v in its)
        stats.solve_s += time.perf_counter() - t0
    return x, its
