"""EEG lead fields by the FEM transfer matrix (reciprocity).

For a Dirichlet reference node ``r`` and the stiffness matrix ``K`` (row/column ``r`` fixed), the
potential at electrode node ``e`` caused by a source with load vector ``j`` is
``u_e = e_e^T K^-1 j = t_e^T j`` with ``K t_e = e_e``. So one solve per electrode gives the
transfer matrix ``T = [t_e]``, after which the lead field of any number of sources is the sparse
product ``T^T J`` (Wolters et al. 2004; Gencer & Acar 2004). ``T`` is kept only on the nodes of
source-capable tissue (brain), which is all a source load can touch.

Source model: the St. Venant approach (Buchner et al. 1997; Wolters et al. 2007, "Venant" in
DUNEuro). A dipole ``p`` at ``x0`` becomes monopoles ``q_i`` on the nearest mesh node and its grid
neighbours, restricted to nodes of elements of source tissue; ``q`` minimises
``||X q - t||^2 + lambda q^T W q`` where ``X`` holds the moments of order 0..2 (mixed ones
included) of the node offsets scaled by the voxel size, ``t = (0, p/h, 0)`` and
``W = diag(|dx_i|/h)``. The alternative ``'partial_integration'`` uses ``j_i = p . grad N_i(x0)``
in the element containing ``x0``.
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Sequence

import numpy as np
from scipy import sparse
from scipy.spatial import cKDTree

from .._deprecate import progress_to_verbose
from .._logging import verbose as _verbose
from .._progress import progress as _progress
from .._validation import check_finite
from ..anatomy.headmodel import HeadModel
from ..anatomy.tissues import BRAIN_TISSUES
from .blocksolve import BlockVCycle, as_solver_csr, block_cg
from .fem import AMGSolver, apply_reference, assemble_stiffness, element_conductivity
from .mesh import CORNERS, HexMesh, make_hex_mesh

SOURCE_MODELS = ("venant", "partial_integration")
SOLVERS = ("block", "single")

_OFFSETS27 = np.array([[a, b, c] for a in (-1, 0, 1) for b in (-1, 0, 1) for c in (-1, 0, 1)])
# node offset a (from the nearest corner) belongs to surrounding voxel dx iff a in {dx-1, dx}
_INCIDENCE = np.array(
    [[np.all((a - d >= -1) & (a - d <= 0)) for d in CORNERS] for a in _OFFSETS27]
)  # (27, 8)
_MOMENTS = np.array(
    [
        [0, 0, 0],
        [1, 0, 0], [0, 1, 0], [0, 0, 1],
        [2, 0, 0], [0, 2, 0], [0, 0, 2],
        [1, 1, 0], [1, 0, 1], [0, 1, 1],
    ]
)
_VENANT_LAMBDA = 1e-6


_WORKER: dict = {}


def _solve_node(node: int) -> tuple[int, np.ndarray, int]:
    """Worker: transfer vector of a unit load at ``node`` (solver inherited through fork)."""
    solver = _WORKER["solver"]
    rhs = np.zeros(solver.mat.shape[0])
    rhs[node] = 1.0
    x = solver.solve(rhs)
    return node, x[_WORKER["src_nodes"]], solver.stats.iterations[-1]


def _solve_block(nodes: list[int]) -> tuple[list[int], np.ndarray, list[int]]:
    """Worker: transfer vectors of unit loads at ``nodes`` by block CG (state inherited)."""
    x, its = _block_transfer(_WORKER["mat"], _WORKER["vcycle"], nodes, _WORKER["tol"])
    return nodes, x[_WORKER["src_nodes"]], its.tolist()


def _block_transfer(mat, vcycle, nodes: Sequence[int], tol: float) -> tuple[np.ndarray, np.ndarray]:
    """Solve ``mat X = [e_node ...]`` for a block of unit loads; returns X (n, k), iterations."""
    rhs = np.zeros((mat.shape[0], len(nodes)))
    rhs[np.asarray(nodes), np.arange(len(nodes))] = 1.0
    return block_cg(mat, rhs, vcycle, tol=tol)


def _check_electrodes(electrodes_m: np.ndarray, ch_names: Sequence[str] | None):
    el = np.asarray(electrodes_m, dtype=float)
    if el.ndim != 2 or el.shape[1] != 3 or el.shape[0] < 2:
        raise ValueError(
            f"electrodes_m must have shape (n_electrodes >= 2, 3) in metres, got {el.shape}."
        )
    check_finite(el, "electrode positions")
    if np.abs(el).max() > 1.0:
        raise ValueError(
            f"electrode positions reach {np.abs(el).max():.1f} m from the origin; they must be in "
            "metres (MRI frame), not millimetres."
        )
    if ch_names is None:
        ch_names = [f"EEG{i + 1:03d}" for i in range(len(el))]
    ch_names = [str(c) for c in ch_names]
    if len(ch_names) != len(el):
        raise ValueError(f"got {len(ch_names)} channel names for {len(el)} electrodes.")
    if len(set(ch_names)) != len(ch_names):
        raise ValueError("channel names must be unique.")
    return el, ch_names


class EEGTransferMatrix:
    """FEM EEG transfer matrix of a head model for a set of electrodes.

    Build it with :func:`make_eeg_transfer`; then :meth:`leadfield` gives the gain of any source
    positions at the cost of a sparse product.

    Attributes
    ----------
    ch_names : list of str
        Electrode names, in row order.
    electrodes : ndarray, shape (n_el, 3)
        Electrode positions given (m, MRI frame).
    electrode_nodes : ndarray of int, shape (n_el,)
        Mesh node each electrode is attached to.
    snap_distance : ndarray, shape (n_el,)
        Distance (m) from each electrode to its node.
    mesh : HexMesh
        The finite-element mesh.
    meta : dict
        Solver statistics and settings (iterations per electrode, timings, sizes).
    """

    def __init__(
        self,
        head: HeadModel,
        mesh: HexMesh,
        ch_names: list[str],
        electrodes: np.ndarray,
        electrode_nodes: np.ndarray,
        snap_distance: np.ndarray,
        transfer: np.ndarray,
        node_column: np.ndarray,
        source_labels: np.ndarray,
        source_model: str,
        meta: dict,
    ):
        self.head = head
        self.mesh = mesh
        self.ch_names = ch_names
        self.electrodes = electrodes
        self.electrode_nodes = electrode_nodes
        self.snap_distance = snap_distance
        self._transfer = transfer  # (n_source_nodes, n_el): potential at electrodes per unit load
        self._node_column = node_column  # node → row of _transfer, -1 if not a source node
        self.source_labels = source_labels
        self.source_model = source_model
        self.meta = meta

    @property
    def n_electrodes(self) -> int:
        """Number of electrodes."""
        return len(self.ch_names)

    # ------------------------------------------------------------------ sources
    def _locate(self, pos: np.ndarray) -> np.ndarray:
        """Voxel index of each source, with checks that it lies in source tissue."""
        idx = np.floor(self.head.mri_to_voxel(pos) + 0.5).astype(int)
        shape = np.array(self.head.shape)
        inside = np.all((idx >= 0) & (idx < shape), axis=1)
        if not inside.all():
            bad = int(np.flatnonzero(~inside)[0])
            raise ValueError(
                f"{int((~inside).sum())} source(s) lie outside the head model grid (first: #{bad} "
                f"at {np.round(pos[bad] * 1e3, 1).tolist()} mm); sources must be inside the brain."
            )
        lab = self.head.labels[idx[:, 0], idx[:, 1], idx[:, 2]]
        ok = np.isin(lab, self.source_labels)
        if not ok.all():
            bad = int(np.flatnonzero(~ok)[0])
            tissue = "air" if lab[bad] == 0 else self.head.tissues[int(lab[bad])].name
            names = [self.head.tissues[int(x)].name for x in self.source_labels]
            raise ValueError(
                f"{int((~ok).sum())} source(s) are not in source tissue {names} (first: #{bad} at "
                f"{np.round(pos[bad] * 1e3, 1).tolist()} mm lies in {tissue}); move the sources "
                "into the brain or pass source_tissues to make_eeg_transfer."
            )
        return idx

    def _venant_loads(self, pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Venant monopole loads: node ids (n_src, 27) (-1 unused) and loads (n_src, 27, 3)."""
        head = self.head
        fidx = head.mri_to_voxel(pos)
        corner = np.floor(fidx + 1.0).astype(int)  # nearest grid corner (corner c at c - 0.5)
        n_src = len(pos)
        # surrounding voxels of the corner: c - 1 + d
        vox = corner[:, None, :] - 1 + CORNERS[None]  # (n, 8, 3)
        shape = np.array(head.shape)
        vin = np.all((vox >= 0) & (vox < shape), axis=2)
        vc = np.clip(vox, 0, shape - 1)
        vlab = head.labels[vc[..., 0], vc[..., 1], vc[..., 2]]
        vox_ok = vin & np.isin(vlab, self.source_labels)
        valid = (vox_ok.astype(np.int8) @ _INCIDENCE.T.astype(np.int8)) > 0  # (n, 27)
        nodes_ijk = corner[:, None, :] + _OFFSETS27[None]
        gshape = np.array(self.mesh.node_grid.shape)
        nin = np.all((nodes_ijk >= 0) & (nodes_ijk < gshape), axis=2)
        nc = np.clip(nodes_ijk, 0, gshape - 1)
        node = self.mesh.node_grid[nc[..., 0], nc[..., 1], nc[..., 2]]
        valid &= nin & (node >= 0)
        node = np.where(valid, node, -1)
        h = float(np.mean(head.voxel_size)) * 1e-3
        delta = (self.mesh.nodes[np.maximum(node, 0)] - pos[:, None, :]) / h  # (n, 27, 3)
        xmat = np.prod(delta[:, None, :, :] ** _MOMENTS[None, :, None, :], axis=3)  # (n,10,27)
        xmat = np.where(valid[:, None, :], xmat, 0.0)
        dist = np.linalg.norm(delta, axis=2)
        winv = np.where(valid, 1.0 / np.maximum(dist, 1e-3), 0.0)  # (n, 27)
        gram = np.einsum("nak,nk,nbk->nab", xmat, winv, xmat)
        gram += _VENANT_LAMBDA * np.eye(len(_MOMENTS))[None]
        target = np.zeros((n_src, len(_MOMENTS), 3))
        target[:, 1:4, :] = np.eye(3)[None] / h
        y = np.linalg.solve(gram, target)  # (n, 10, 3)
        loads = winv[:, :, None] * np.einsum("nak,nad->nkd", xmat, y)
        return node, loads

    def _pi_loads(self, pos: np.ndarray, vidx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Partial-integration loads ``p . grad N_i(x0)``: node ids (n, 8), loads (n, 8, 3)."""
        grid = self.mesh.node_grid
        node = np.stack(
            [grid[vidx[:, 0] + dx, vidx[:, 1] + dy, vidx[:, 2] + dz] for dx, dy, dz in CORNERS],
            axis=1,
        )
        xyz = self.mesh.nodes[node]  # (n, 8, 3)
        xi = np.clip(self.head.mri_to_voxel(pos) - vidx + 0.5, 0.0, 1.0)
        c = CORNERS[None].astype(float)
        for _ in range(8):  # Newton for the local coordinates in a (possibly shifted) hexahedron
            val = np.where(c == 1, xi[:, None, :], 1.0 - xi[:, None, :])  # (n, 8, 3)
            nval = val.prod(axis=2)
            dn = _shape_derivatives(val)
            x = np.einsum("nl,nla->na", nval, xyz)
            jac = np.einsum("nla,nld->nad", xyz, dn)
            xi = xi - np.linalg.solve(jac, (x - pos)[..., None])[..., 0]
        xi = np.clip(xi, 0.0, 1.0)
        val = np.where(c == 1, xi[:, None, :], 1.0 - xi[:, None, :])
        dn = _shape_derivatives(val)
        jac = np.einsum("nla,nld->nad", xyz, dn)
        grad = np.einsum("nld,nda->nla", dn, np.linalg.inv(jac))  # (n, 8, 3)
        return node, grad

    def source_loads(self, source_pos_m: np.ndarray) -> sparse.csc_matrix:
        """FEM right-hand sides of unit dipoles x, y, z at each source, shape (n_nodes, 3 n_src).

        Column ``3 s + d`` is the load vector of a unit (1 A·m) dipole along axis ``d`` at source
        ``s``, in the source model chosen at construction.
        """
        pos = self._check_sources(source_pos_m)
        node, loads = self._loads(pos)
        n_src = node.shape[0]
        rows = np.repeat(node[:, :, None], 3, axis=2)
        cols = np.broadcast_to(3 * np.arange(n_src)[:, None, None] + np.arange(3), rows.shape)
        keep = rows >= 0
        return sparse.csc_matrix(
            (loads[keep], (rows[keep], cols[keep])), shape=(self.mesh.n_nodes, 3 * n_src)
        )

    def _check_sources(self, source_pos_m: np.ndarray) -> np.ndarray:
        pos = np.asarray(source_pos_m, dtype=float)
        if pos.ndim == 1 and pos.shape == (3,):
            pos = pos[None]
        if pos.ndim != 2 or pos.shape[1] != 3:
            raise ValueError(f"source positions must have shape (n_sources, 3), got {pos.shape}.")
        check_finite(pos, "source positions")
        if pos.size and np.abs(pos).max() > 1.0:
            raise ValueError("source positions must be in metres (MRI frame), not millimetres.")
        return pos

    def _loads(self, pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        vidx = self._locate(pos)
        if self.source_model == "venant":
            return self._venant_loads(pos)
        return self._pi_loads(pos, vidx)

    # ------------------------------------------------------------------ lead field
    def leadfield(
        self, source_pos_m: np.ndarray, *, reference: str = "average", chunk: int = 5000
    ) -> np.ndarray:
        """EEG gain of unit dipoles along x, y, z at the given positions.

        Parameters
        ----------
        source_pos_m : ndarray, shape (n_src, 3)
            Source positions (m, MRI frame), inside source tissue (brain).
        reference : str
            'average' (default) for average reference, or a channel name to reference to.
        chunk : int
            Sources processed at a time.

        Returns
        -------
        gain : ndarray, shape (n_el, n_src, 3)
            Potential in V per A·m.
        """
        pos = self._check_sources(source_pos_m)
        if reference != "average" and reference not in self.ch_names:
            raise ValueError(
                f"reference must be 'average' or one of the channel names, got {reference!r}."
            )
        n_src = len(pos)
        gain = np.empty((self.n_electrodes, n_src, 3))
        for start in range(0, n_src, chunk):
            sl = slice(start, min(start + chunk, n_src))
            node, loads = self._loads(pos[sl])
            col = np.where(node >= 0, self._node_column[np.maximum(node, 0)], -1)
            if np.any((node >= 0) & (col < 0)):
                raise RuntimeError("internal error: a source load touches a non-source node.")
            m = sl.stop - sl.start
            rows = np.repeat(np.arange(m)[:, None], node.shape[1], axis=1)
            keep = col >= 0
            for d in range(3):
                jd = sparse.csr_matrix(
                    (loads[..., d][keep], (rows[keep], col[keep])),
                    shape=(m, self._transfer.shape[0]),
                )
                gain[:, sl, d] = (jd @ self._transfer).T
        if reference == "average":
            gain -= gain.mean(axis=0, keepdims=True)
        else:
            gain -= gain[self.ch_names.index(reference)][None]
        return gain

    def __repr__(self) -> str:
        return (
            f"<EEGTransferMatrix | {self.n_electrodes} electrodes, {self.mesh.n_nodes} nodes, "
            f"source model {self.source_model!r}>"
        )


def _shape_derivatives(val: np.ndarray) -> np.ndarray:
    """dN_l/dxi_d from the 1-D factors ``val`` (n, 8, 3) of the trilinear shape functions."""
    sign = np.where(CORNERS == 1, 1.0, -1.0)[None]  # (1, 8, 3)
    out = np.empty_like(val)
    out[..., 0] = sign[..., 0] * val[..., 1] * val[..., 2]
    out[..., 1] = sign[..., 1] * val[..., 0] * val[..., 2]
    out[..., 2] = sign[..., 2] * val[..., 0] * val[..., 1]
    return out


def _solve_transfer(
    amg: AMGSolver, mat_solve, vcycle, el_nodes: np.ndarray, ref_node: int,
    src_nodes: np.ndarray, n_nodes: int, *, solver: str, tol: float, n_jobs: int,
    block_size: int,
) -> tuple[np.ndarray, list[int]]:
    """One solve per electrode node (block CG or single pyamg CG, optionally in workers).

    Returns the transfer matrix on the source nodes, shape (n_src_nodes, n_electrodes) (zero
    for electrodes on the reference node), and the CG iterations of the solves.
    """
    transfer = np.zeros((src_nodes.size, len(el_nodes)))
    todo = sorted({int(n) for n in el_nodes} - {ref_node})
    columns_of = {node: np.flatnonzero(el_nodes == node) for node in todo}
    iters: list[int] = []
    bar = _progress(total=len(todo), desc="FEM transfer", unit="electrode")
    if solver == "block":
        blocks = [todo[i : i + block_size] for i in range(0, len(todo), block_size)]
        if n_jobs > 1 and len(blocks) > 1:
            _WORKER.update(mat=mat_solve, vcycle=vcycle, tol=tol, src_nodes=src_nodes)
            try:
                ctx = multiprocessing.get_context("fork")
                with ctx.Pool(min(n_jobs, len(blocks))) as pool:
                    for nodes, cols, its in pool.imap_unordered(_solve_block, blocks):
                        for j, node in enumerate(nodes):
                            transfer[:, columns_of[node]] = cols[:, j : j + 1]
                        iters.extend(its)
                        bar.update(len(nodes))
            finally:
                _WORKER.clear()
        else:
            for nodes in blocks:
                x, its = _block_transfer(mat_solve, vcycle, nodes, tol)
                for j, node in enumerate(nodes):
                    transfer[:, columns_of[node]] = x[src_nodes, j][:, None]
                del x
                iters.extend(its.tolist())
                bar.update(len(nodes))
    elif n_jobs > 1 and len(todo) > 1:
        # fork: the workers share the matrix and the AMG hierarchy copy-on-write
        _WORKER.update(solver=amg, src_nodes=src_nodes)
        try:
            ctx = multiprocessing.get_context("fork")
            with ctx.Pool(min(n_jobs, len(todo))) as pool:
                for node, col, n_it in pool.imap_unordered(_solve_node, todo):
                    transfer[:, columns_of[node]] = col[:, None]
                    iters.append(n_it)
                    bar.update()
        finally:
            _WORKER.clear()
    else:
        rhs = np.zeros(n_nodes)
        for node in todo:
            rhs[node] = 1.0
            x = amg.solve(rhs)
            rhs[node] = 0.0
            transfer[:, columns_of[node]] = x[src_nodes][:, None]
            iters.append(amg.stats.iterations[-1])
            bar.update()
    bar.close()
    return transfer, iters


@progress_to_verbose
@_verbose
def make_eeg_transfer(
    head: HeadModel,
    electrodes_m: np.ndarray,
    *,
    ch_names: Sequence[str] | None = None,
    geometry_adapted: bool = True,
    source_model: str = "venant",
    tol: float = 1e-5,
    shift: float = 0.45,
    max_snap_mm: float | None = None,
    source_tissues: Sequence[str] | None = None,
    n_jobs: int = 1,
    solver: str = "block",
    block_size: int = 32,
    verbose: bool | str | int | None = None,
) -> EEGTransferMatrix:
    """Build the FEM EEG transfer matrix of a head model (one AMG-CG solve per electrode).

    The solves run ``block_size`` electrodes at a time (``solver='block'``, default) or one at a
    time (``solver='single'``); see ``docs/forward.md`` for the measured speed of each.

    Parameters
    ----------
    head : HeadModel
        Volume conductor; must pass :meth:`HeadModel.check_forward_ready`.
    electrodes_m : ndarray, shape (n_el, 3)
        Electrode positions in metres, MRI frame; each is attached to the nearest node of the
        outer (scalp) surface.
    ch_names : sequence of str | None
        Channel names (default EEG001, ...).
    geometry_adapted : bool
        Use geometry-adapted hexahedra (node shifting at tissue boundaries).
    source_model : {'venant', 'partial_integration'}
        How a dipole becomes a right-hand side.
    tol : float
        Relative residual of the CG solves. The default 1e-5 changes the lead field by < 0.01 %
        RDM against tol 1e-10 on the 3 mm sphere, and a transfer column on the brain nodes by
        2.4e-7 relative against tol 1e-8 at 1.5 mm (``docs/forward.md``).
    shift : float
        Node-shift factor of the geometry adaptation.
    max_snap_mm : float | None
        Largest allowed electrode-to-node distance (mm); default ``max(5, 2 x voxel size)``.
    source_tissues : sequence of str | None
        Tissues where sources may lie (default: those of WM/GM present in the head).
    n_jobs : int
        Worker processes for the electrode solves (POSIX fork; they share the matrix and the
        AMG hierarchy). Each worker needs its own solve vectors, about 10 x 8 bytes per node
        (``solver='single'``) or about 10 x 8 x ``block_size`` bytes per node (``'block'``).
    solver : {'block', 'single'}
        ``'block'`` (default): ``block_size`` electrodes at a time by lock-step CG with a
        single-precision Chebyshev-smoothed V-cycle of the same AMG hierarchy
        (:mod:`deepesi.forward.blocksolve`), several times faster per electrode because each
        pass over the matrix serves the whole block. ``'single'``: one pyamg V-cycle-CG
        (Gauss-Seidel smoothing) per electrode. Both stop at the same relative residual ``tol``.
    block_size : int
        Right-hand sides per block (``solver='block'``); memory grows by about
        ``100 x block_size`` bytes per node.
    verbose : bool | str | int | None
        Log level for the call (:func:`deepesi.set_log_level`); the progress bar over the
        electrodes is shown at INFO.

    Returns
    -------
    EEGTransferMatrix
    """
    if not isinstance(head, HeadModel):
        raise TypeError(f"head must be a HeadModel, got {type(head).__name__}.")
    if source_model not in SOURCE_MODELS:
        raise ValueError(f"source_model must be one of {SOURCE_MODELS}, got {source_model!r}.")
    el, names = _check_electrodes(electrodes_m, ch_names)
    n_jobs = int(n_jobs)
    if n_jobs < 1:
        raise ValueError(f"n_jobs must be >= 1, got {n_jobs}.")
    if solver not in SOLVERS:
        raise ValueError(f"solver must be one of {SOLVERS}, got {solver!r}.")
    if isinstance(block_size, bool) or not isinstance(block_size, int | np.integer):
        raise TypeError(f"block_size must be an int, got {type(block_size).__name__}.")
    block_size = int(block_size)
    if block_size < 1:
        raise ValueError(f"block_size must be >= 1, got {block_size}.")
    head.check_forward_ready()
    lut = head.tissues.conductivity_lut()
    present = np.unique(head.labels)
    present = present[present > 0]
    if np.any(lut[present] <= 0):
        raise ValueError("every tissue present in the head needs a conductivity > 0 S/m.")
    if source_tissues is None:
        source_tissues = [n for n in BRAIN_TISSUES if head.has_tissue(n)]
    source_labels = np.array([head.tissues.label_of(n) for n in source_tissues], dtype=int)
    if not np.isin(source_labels, present).any():
        raise ValueError(f"no voxel of the source tissues {list(source_tissues)} in the head.")

    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    mesh = make_hex_mesh(head, geometry_adapted=geometry_adapted, shift=shift)
    timings["mesh_s"] = time.perf_counter() - t0

    # electrodes → nearest outer-surface node
    surf = np.flatnonzero(mesh.surface)
    dist, which = cKDTree(mesh.nodes[surf]).query(el)
    el_nodes = surf[which]
    vox_mm = float(np.max(head.voxel_size))
    limit_mm = max(5.0, 2.0 * vox_mm) if max_snap_mm is None else float(max_snap_mm)
    far = dist * 1e3 > limit_mm
    if far.any():
        bad = [f"{names[i]} ({dist[i] * 1e3:.1f} mm)" for i in np.flatnonzero(far)[:10]]
        raise ValueError(
            f"{int(far.sum())} electrode(s) are more than {limit_mm:g} mm from the scalp surface: "
            f"{', '.join(bad)}. Check that the positions are in metres, in the MRI frame (apply "
            "the head→MRI trans), and project them onto the scalp."
        )

    t0 = time.perf_counter()
    sigma = element_conductivity(mesh, lut)
    mat = assemble_stiffness(mesh, sigma)
    ref_node = int(el_nodes[0])
    apply_reference(mat, ref_node)
    timings["assembly_s"] = time.perf_counter() - t0

    src_el = np.isin(mesh.labels, source_labels)
    src_node_mask = np.zeros(mesh.n_nodes, dtype=bool)
    src_node_mask[mesh.elements[src_el].ravel()] = True
    src_nodes = np.flatnonzero(src_node_mask)
    node_column = np.full(mesh.n_nodes, -1, dtype=np.int64)
    node_column[src_nodes] = np.arange(src_nodes.size)

    t0 = time.perf_counter()
    amg = AMGSolver(mat, tol=tol)
    vcycle = mat_solve = None
    if solver == "block":
        vcycle = BlockVCycle(amg.ml)
        mat_solve = as_solver_csr(mat)
    timings["amg_setup_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    transfer, iters = _solve_transfer(
        amg, mat_solve, vcycle, el_nodes, ref_node, src_nodes, mesh.n_nodes, solver=solver,
        tol=tol, n_jobs=n_jobs, block_size=block_size,
    )
    timings["solve_s"] = time.perf_counter() - t0
    meta = {
        "head_hash": head.hash(),
        "n_nodes": mesh.n_nodes,
        "n_elements": mesh.n_elements,
        "n_shifted_nodes": int(mesh.shifted.sum()),
        "geometry_adapted": bool(geometry_adapted),
        "shift": mesh.shift,
        "source_model": source_model,
        "tol": tol,
        "n_jobs": int(n_jobs),
        "solver": solver,
        "block_size": block_size if solver == "block" else 1,
        "nnz": int(mat.nnz),
        "amg_levels": amg.stats.levels,
        "amg_operator_complexity": amg.stats.operator_complexity,
        "cg_iterations": iters,
        "cg_iterations_mean": float(np.mean(iters)) if iters else 0.0,
        "reference_node": ref_node,
        "timings": timings,
    }
    return EEGTransferMatrix(
        head, mesh, names, el, el_nodes, dist, transfer, node_column, source_labels,
        source_model, meta,
    )


def compute_eeg_leadfield(
    head: HeadModel,
    electrodes_m: np.ndarray,
    source_pos_m: np.ndarray,
    *,
    reference: str = "average",
    **kwargs,
) -> np.ndarray:
    """Build the transfer matrix and return the lead field, shape (n_el, n_src, 3), V/(A·m).

    ``kwargs`` go to :func:`make_eeg_transfer`.
    """
    transfer = make_eeg_transfer(head, electrodes_m, **kwargs)
    return transfer.leadfield(source_pos_m, reference=reference)
