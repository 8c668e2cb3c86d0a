"""Galerkin FEM for the EEG forward problem: Q1 hexahedra, stiffness assembly and the AMG-CG solver.

The potential ``u`` solves ``div(sigma grad u) = div(j_p)`` in the head with no current through
the outer surface. With trilinear (Q1) shape functions ``N_i`` the stiffness matrix is
``K_ij = sum_e int_e grad N_i . sigma_e grad N_j``, integrated with 2x2x2 Gauss points (exact for
parallelepipeds, second-order accurate for the mildly distorted hexahedra of a
geometry-adapted mesh).

Assembly is vectorised over elements. Because the mesh lives on a voxel grid, every node couples
to at most its 26 grid neighbours, so ``K`` is accumulated in a (n_nodes, 27) stencil array and
converted to CSR without any sort of a COO list: memory is 27 x 12 bytes per node. Elements
whose nodes were not moved share one reference matrix (scaled by their conductivity); only
shifted elements are integrated individually.

The pure Neumann problem is singular (potentials are defined up to a constant); it is fixed by a
Dirichlet condition ``u = 0`` at one reference node, kept symmetric positive definite by zeroing
that row and column except for the diagonal.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import pyamg
from scipy import sparse

from .mesh import CORNERS, HexMesh

_GAUSS_1D = np.array([0.5 - 0.5 / np.sqrt(3.0), 0.5 + 0.5 / np.sqrt(3.0)])


def _shape_gradients() -> np.ndarray:
    """dN_l/dxi_d at the 8 Gauss points of the unit cube, shape (8 gauss, 8 nodes, 3)."""
    pts = np.array([[a, b, c] for c in _GAUSS_1D for b in _GAUSS_1D for a in _GAUSS_1D])
    out = np.empty((8, 8, 3))
    for g, xi in enumerate(pts):
        # 1-D factors: value and derivative of (1 - xi) for corner 0, xi for corner 1
        val = np.where(CORNERS == 1, xi[None, :], 1.0 - xi[None, :])  # (8, 3)
        der = np.where(CORNERS == 1, 1.0, -1.0)
        for d in range(3):
            others = [e for e in range(3) if e != d]
            out[g, :, d] = der[:, d] * val[:, others[0]] * val[:, others[1]]
    return out


_DN = _shape_gradients()
_WEIGHT = 1.0 / 8.0


def element_stiffness(coords: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """Stiffness matrices of trilinear hexahedra.

    Parameters
    ----------
    coords : ndarray, shape (m, 8, 3)
        Node positions (m) in local order ``dx + 2 dy + 4 dz``.
    sigma : ndarray, shape (m,) or (m, 3, 3)
        Isotropic conductivity (S/m) or conductivity tensor of each element.

    Returns
    -------
    ke : ndarray, shape (m, 8, 8)
    """
    coords = np.asarray(coords, dtype=float)
    sigma = np.asarray(sigma, dtype=float)
    tensor = sigma.ndim == 3
    m = coords.shape[0]
    ke = np.zeros((m, 8, 8))
    coords_t = np.ascontiguousarray(coords.transpose(0, 2, 1)).reshape(m * 3, 8)
    for g in range(8):
        dn = _DN[g]  # (8, 3)
        jac = (coords_t @ dn).reshape(m, 3, 3)  # jac[m, a, d] = dx_a / dxi_d
        det, inv = _det_inv3(jac)  # inv[m, d, a] = dxi_d / dx_a
        if np.any(det <= 0):
            raise ValueError(
                "a hexahedron is inverted or degenerate (non-positive Jacobian); lower the "
                "node-shift factor or check the affine."
            )
        # gradients in x, laid out (m, a, l): grad_t[m, a, l] = sum_d inv[m, d, a] dn[l, d]
        grad_t = (np.ascontiguousarray(inv.transpose(0, 2, 1)).reshape(m * 3, 3) @ dn.T).reshape(
            m, 3, 8
        )
        if tensor:
            flux = np.einsum("mab,mbl->mal", sigma, grad_t)
        else:
            flux = grad_t * sigma[:, None, None]
        flux *= (_WEIGHT * det)[:, None, None]
        for a in range(3):
            ke += grad_t[:, a, :, None] * flux[:, a, None, :]
    if tensor:
        ke = 0.5 * (ke + ke.transpose(0, 2, 1))
    return ke


def _det_inv3(mat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Determinants and inverses of a stack of 3x3 matrices by cofactors (much faster than LAPACK
    for millions of tiny matrices)."""
    a, b, c = mat[:, 0, 0], mat[:, 0, 1], mat[:, 0, 2]
    d, e, f = mat[:, 1, 0], mat[:, 1, 1], mat[:, 1, 2]
    g, h, i = mat[:, 2, 0], mat[:, 2, 1], mat[:, 2, 2]
    co00 = e * i - f * h
    co01 = f * g - d * i
    co02 = d * h - e * g
    det = a * co00 + b * co01 + c * co02
    inv = np.empty_like(mat)
    safe = np.where(det != 0, det, 1.0)
    inv[:, 0, 0] = co00 / safe
    inv[:, 1, 0] = co01 / safe
    inv[:, 2, 0] = co02 / safe
    inv[:, 0, 1] = (c * h - b * i) / safe
    inv[:, 1, 1] = (a * i - c * g) / safe
    inv[:, 2, 1] = (b * g - a * h) / safe
    inv[:, 0, 2] = (b * f - c * e) / safe
    inv[:, 1, 2] = (c * d - a * f) / safe
    inv[:, 2, 2] = (a * e - b * d) / safe
    return det, inv


def _slot(offset: np.ndarray) -> int:
    """Index (0..26) of a neighbour offset in {-1,0,1}^3, ordered so CSR columns come sorted."""
    ox, oy, oz = (int(v) for v in offset)
    return (ox + 1) * 9 + (oy + 1) * 3 + (oz + 1)


def element_conductivity(mesh: HexMesh, lut: np.ndarray) -> np.ndarray:
    """Isotropic conductivity of each element from a 256-entry label → S/m table."""
    sigma = np.asarray(lut, dtype=float)[mesh.labels]
    if np.any(~np.isfinite(sigma)) or np.any(sigma <= 0):
        bad = np.unique(mesh.labels[~(sigma > 0)])
        raise ValueError(
            f"tissue label(s) {bad.tolist()} have zero, negative or non-finite conductivity; "
            "every tissue of the head model needs a conductivity > 0 S/m."
        )
    return sigma


def assemble_stiffness(
    mesh: HexMesh, sigma: np.ndarray, *, chunk: int = 200_000
) -> sparse.csr_matrix:
    """Assemble the global stiffness matrix (CSR, float64, symmetric positive semi-definite).

    Parameters
    ----------
    mesh : HexMesh
        The mesh.
    sigma : ndarray, shape (n_elements,) or (n_elements, 3, 3)
        Conductivity per element (S/m): isotropic values or tensors (e.g. anisotropic WM).
    chunk : int
        Elements integrated at a time (bounds memory for distorted elements).
    """
    sigma = np.asarray(sigma, dtype=float)
    n_el = mesh.n_elements
    if sigma.shape not in ((n_el,), (n_el, 3, 3)):
        raise ValueError(
            f"sigma must have shape ({n_el},) or ({n_el}, 3, 3), got {sigma.shape}."
        )
    tensor = sigma.ndim == 3
    elements = mesh.elements
    n = mesh.n_nodes
    stencil = np.zeros((n, 27))
    neighbour = np.full((n, 27), -1, dtype=np.int32)
    slots = np.array([[_slot(CORNERS[j] - CORNERS[i]) for j in range(8)] for i in range(8)])
    for i in range(8):
        for j in range(8):
            neighbour[elements[:, i], slots[i, j]] = elements[:, j]

    regular = mesh.element_is_regular() & (not tensor)
    if regular.any():
        ref = int(np.argmax(regular))
        ke_ref = element_stiffness(mesh.nodes[elements[ref]][None], np.ones(1))[0]
        reg_idx = np.flatnonzero(regular)
        reg_nodes = elements[reg_idx]
        reg_sigma = sigma[reg_idx]
        for i in range(8):
            rows = reg_nodes[:, i]
            for j in range(8):
                stencil[rows, slots[i, j]] += reg_sigma * ke_ref[i, j]
        del reg_nodes
    irr_idx = np.flatnonzero(~regular)
    for start in range(0, irr_idx.size, chunk):
        idx = irr_idx[start : start + chunk]
        el = elements[idx]
        ke = element_stiffness(mesh.nodes[el], sigma[idx])
        for i in range(8):
            for j in range(8):
                stencil[el[:, i], slots[i, j]] += ke[:, i, j]
    mask = neighbour >= 0
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(mask.sum(axis=1), out=indptr[1:])
    indices = neighbour[mask]
    data = stencil[mask]
    del stencil, neighbour, mask
    mat = sparse.csr_matrix((data, indices, indptr), shape=(n, n))
    mat.has_sorted_indices = True
    return mat


def apply_reference(mat: sparse.csr_matrix, ref: int) -> sparse.csr_matrix:
    """Impose ``u[ref] = 0`` in place: zero row and column ``ref`` except the diagonal."""
    ref = int(ref)
    lo, hi = mat.indptr[ref], mat.indptr[ref + 1]
    diag = mat.data[lo:hi][mat.indices[lo:hi] == ref].copy()
    mat.data[lo:hi] = 0.0
    mat.data[mat.indices == ref] = 0.0
    mat.data[lo:hi][mat.indices[lo:hi] == ref] = diag if diag.size else 1.0
    mat.eliminate_zeros()
    return mat


@dataclass
class SolveStats:
    """Iteration counts and timings of an :class:`AMGSolver`."""

    setup_s: float = 0.0
    solve_s: float = 0.0
    iterations: list[int] = field(default_factory=list)
    levels: int = 0
    operator_complexity: float = 0.0


class AMGSolver:
    """Conjugate gradients preconditioned by smoothed-aggregation AMG, hierarchy built once.

    Parameters
    ----------
    mat : scipy.sparse.csr_matrix
        Symmetric positive definite system matrix (Dirichlet reference already applied).
    tol : float
        Relative residual ``||b - A x|| / ||b||`` at which CG stops.
    maxiter : int
        Iteration cap; reaching it raises RuntimeError.
    """

    def __init__(self, mat: sparse.csr_matrix, *, tol: float = 1e-8, maxiter: int = 500):
        if not tol > 0:
            raise ValueError(f"tol must be > 0, got {tol}.")
        self.mat = mat
        self.tol = float(tol)
        self.maxiter = int(maxiter)
        self.stats = SolveStats()
        t0 = time.perf_counter()
        # evolution strength of connection (Olson, Schroder & Tuminaro 2010) copes with the
        # 1:180 conductivity jumps (skull/CSF) far better than the classical symmetric measure
        # (13-15 instead of 19-27 CG iterations on the template head); one forward
        # Gauss-Seidel sweep before and one backward sweep after the coarse correction keep
        # the V-cycle symmetric, as CG requires, at half the cost of symmetric sweeps.
        # pyamg estimates spectral radii from random vectors of numpy's global RNG: seed it
        # (and restore it afterwards) so that the same problem always gives the same hierarchy
        rng_state = np.random.get_state()  # noqa: NPY002 (pyamg draws from the legacy RNG)
        np.random.seed(0)  # noqa: NPY002
        try:
            self.ml = pyamg.smoothed_aggregation_solver(
                mat,
                symmetry="hermitian",
                strength="evolution",
                smooth=("jacobi", {"omega": 4.0 / 3.0, "degree": 1}),
                presmoother=("gauss_seidel", {"sweep": "forward"}),
                postsmoother=("gauss_seidel", {"sweep": "backward"}),
                max_coarse=1000,
            )
        finally:
            np.random.set_state(rng_state)  # noqa: NPY002
        # aggregation leaves the coarse operators in BSR format, whose Gauss-Seidel kernel is
        # several times slower than the CSR one for these scalar problems
        for level in self.ml.levels[1:]:
            if level.A.format == "bsr":
                level.A = level.A.tocsr()
        self.stats.setup_s = time.perf_counter() - t0
        self.stats.levels = len(self.ml.levels)
        self.stats.operator_complexity = float(self.ml.operator_complexity())

    def solve(self, rhs: np.ndarray) -> np.ndarray:
        """Solve ``A x = rhs`` for one right-hand side; records the iteration count."""
        rhs = np.asarray(rhs, dtype=float)
        if not np.any(rhs):
            self.stats.iterations.append(0)
            return np.zeros_like(rhs)
        residuals: list[float] = []
        t0 = time.perf_counter()
        x = self.ml.solve(
            rhs, tol=self.tol, maxiter=self.maxiter, accel="cg", residuals=residuals
        )
        self.stats.solve_s += time.perf_counter() - t0
        n_it = len(residuals) - 1
        self.stats.iterations.append(n_it)
        if residuals[-1] > self.tol * np.linalg.norm(rhs) * 1.01:
            raise RuntimeError(
                f"AMG-CG did not reach tol={self.tol:g} in {self.maxiter} iterations (relative "
                f"residual {residuals[-1] / np.linalg.norm(rhs):.2e}); check the conductivities."
            )
        return x
