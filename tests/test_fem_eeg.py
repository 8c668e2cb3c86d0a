"""FEM EEG forward: assembly, accuracy against the analytic sphere, reciprocity, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import sparse

from deepesi.anatomy import HeadModel
from deepesi.forward.blocksolve import BlockSolveStats, BlockVCycle, block_cg
from deepesi.forward.eeg import compute_eeg_leadfield, make_eeg_transfer
from deepesi.forward.fem import (
    AMGSolver,
    apply_reference,
    assemble_stiffness,
    element_conductivity,
    element_stiffness,
)
from deepesi.forward.mesh import make_hex_mesh
from deepesi.forward.sphere import (
    FOUR_SHELL_RADII_M,
    fibonacci_sphere_points,
    mag,
    make_sphere_head,
    rdm,
    sphere_potential,
)

VOXEL_MM = 4.0
N_EL = 16


def _dirs(n: int, seed: int) -> np.ndarray:
    d = np.random.default_rng(seed).normal(size=(n, 3))
    return d / np.linalg.norm(d, axis=1)[:, None]


@pytest.fixture(scope="module")
def electrodes() -> np.ndarray:
    return fibonacci_sphere_points(N_EL, FOUR_SHELL_RADII_M[0], upper_only=True)


@pytest.fixture(scope="module")
def homog_transfer(electrodes):
    head = make_sphere_head(VOXEL_MM, sigmas=[0.33] * 4)
    return make_eeg_transfer(head, electrodes, verbose=False, tol=1e-10)


@pytest.fixture(scope="module")
def shell_head():
    return make_sphere_head(VOXEL_MM)


@pytest.fixture(scope="module")
def shell_transfer(shell_head, electrodes):
    return make_eeg_transfer(shell_head, electrodes, verbose=False, tol=1e-8)


# ---------------------------------------------------------------------- mesh and assembly
def test_element_stiffness_properties():
    rng = np.random.default_rng(0)
    corners = np.array([[dx, dy, dz] for dz in (0, 1) for dy in (0, 1) for dx in (0, 1)], float)
    coords = (corners + rng.uniform(-0.2, 0.2, size=(5, 8, 3))) * 1e-3
    ke = element_stiffness(coords, np.full(5, 0.3))
    np.testing.assert_allclose(ke, np.swapaxes(ke, 1, 2), atol=1e-15)
    np.testing.assert_allclose(ke.sum(axis=2), 0.0, atol=1e-12)  # constants have no energy
    # energy of a linear field u = g.x equals sigma |g|^2 volume (exact for Q1 elements)
    g = np.array([1.0, -2.0, 0.5])
    u = coords @ g
    energy = np.einsum("mi,mij,mj->m", u, ke, u)
    cube = element_stiffness(corners[None] * 1e-3, np.array([0.3]))[0]
    uc = corners * 1e-3 @ g
    assert uc @ cube @ uc == pytest.approx(0.3 * g @ g * 1e-9, rel=1e-12)
    assert np.all(energy > 0)
    # anisotropic tensor sigma*I reproduces the isotropic matrix
    ke_t = element_stiffness(coords, np.tile(0.3 * np.eye(3), (5, 1, 1)))
    np.testing.assert_allclose(ke_t, ke, rtol=1e-12, atol=1e-15)


def test_patch_test_on_adapted_mesh(shell_head):
    """A linear potential is in the Q1 space: K u vanishes at interior nodes of a homogeneous
    region, also for shifted (distorted) hexahedra."""
    mesh = make_hex_mesh(shell_head, geometry_adapted=True)
    assert mesh.shifted.sum() > 1000
    mat = assemble_stiffness(mesh, np.ones(mesh.n_elements))
    assert abs(mat - mat.T).max() < 1e-12 * abs(mat).max()
    u = mesh.nodes @ np.array([0.3, -1.0, 2.0])
    res = mat @ u
    interior = ~mesh.surface
    assert np.abs(res[interior]).max() < 1e-10 * np.abs(mat).max()
    np.testing.assert_allclose(mat @ np.ones(mesh.n_nodes), 0.0, atol=1e-12)


def test_adapted_mesh_volume_closer_to_sphere(shell_head):
    true_vol = 4 / 3 * np.pi * FOUR_SHELL_RADII_M[0] ** 3
    for adapted in (False, True):
        mesh = make_hex_mesh(shell_head, geometry_adapted=adapted)
        r = np.linalg.norm(mesh.nodes[mesh.surface], axis=1)
        if adapted:
            spread_adapted = np.std(r)
        else:
            spread_regular = np.std(r)
        assert mesh.n_elements * (VOXEL_MM * 1e-3) ** 3 == pytest.approx(true_vol, rel=0.05)
    assert spread_adapted < spread_regular  # the scalp surface is smoother


def test_amg_solver_against_direct(shell_head):
    mesh = make_hex_mesh(shell_head)
    lut = shell_head.tissues.conductivity_lut()
    mat = assemble_stiffness(mesh, element_conductivity(mesh, lut))
    apply_reference(mat, 0)
    rhs = np.zeros(mesh.n_nodes)
    rhs[np.flatnonzero(mesh.surface)[100]] = 1.0
    solver = AMGSolver(mat, tol=1e-10)
    x = solver.solve(rhs)
    assert 0 < solver.stats.iterations[-1] < 100
    assert np.linalg.norm(mat @ x - rhs) < 1e-9
    assert x[0] == 0.0


# ---------------------------------------------------------------------- accuracy
def test_homogeneous_sphere_accuracy(homog_transfer):
    dirs = _dirs(8, 1)
    for ecc in (0.2, 0.5, 0.8):
        pos = dirs * ecc * FOUR_SHELL_RADII_M[-1]
        gain = homog_transfer.leadfield(pos)
        for ori in (dirs, np.cross(dirs, [0.0, 0.0, 1.0])):
            ori = ori / np.linalg.norm(ori, axis=1)[:, None]
            num = np.einsum("esd,sd->es", gain, ori)
            ana = sphere_potential(pos, ori, homog_transfer.electrodes, sigmas=[0.33] * 4)
            assert rdm(num, ana).mean() < 0.04
            assert abs(mag(num, ana).mean() - 1) < 0.04


def test_four_shell_accuracy_coarse(shell_transfer):
    """At 4 mm the 6 mm skull is 1-2 voxels thick: the error is large but bounded (the 1-2 mm
    numbers are in benchmarks/fem_sphere.py)."""
    dirs = _dirs(10, 2)
    pos = dirs * 0.5 * FOUR_SHELL_RADII_M[-1]
    num = np.einsum("esd,sd->es", shell_transfer.leadfield(pos), dirs)
    ana = sphere_potential(pos, dirs, shell_transfer.electrodes)
    assert rdm(num, ana).mean() < 0.12
    assert 1.0 < mag(num, ana).mean() < 1.45


def test_partial_integration_agrees_with_venant(shell_head, electrodes, shell_transfer):
    pi = make_eeg_transfer(
        shell_head, electrodes, verbose=False, source_model="partial_integration", tol=1e-6
    )
    ven = shell_transfer
    pos = _dirs(6, 3) * 0.4 * FOUR_SHELL_RADII_M[-1]
    a = pi.leadfield(pos).reshape(N_EL, -1)
    b = ven.leadfield(pos).reshape(N_EL, -1)
    assert rdm(a, b).mean() < 0.08
    assert abs(mag(a, b).mean() - 1) < 0.08


def test_reciprocity_matches_direct_solve(shell_transfer):
    """Transfer-matrix lead field == potential at the electrodes from a direct source solve."""
    pos = np.array([[-0.03, 0.035, 0.04]])
    gain = shell_transfer.leadfield(pos, reference=shell_transfer.ch_names[0])
    mesh = shell_transfer.mesh
    head = shell_transfer.head
    mat = assemble_stiffness(mesh, element_conductivity(mesh, head.tissues.conductivity_lut()))
    ref = int(shell_transfer.electrode_nodes[0])
    apply_reference(mat, ref)
    loads = shell_transfer.source_loads(pos).toarray()
    loads[ref] = 0.0
    solver = AMGSolver(mat, tol=1e-11)
    for col in range(loads.shape[1]):
        u = solver.solve(loads[:, col])
        direct = u[shell_transfer.electrode_nodes] - u[ref]
        np.testing.assert_allclose(
            gain[:, col // 3, col % 3], direct, rtol=0, atol=1e-5 * np.abs(direct).max()
        )


def test_more_conductive_skull_raises_scalp_potentials(shell_head, shell_transfer, electrodes):
    sig_hi = [0.43, 0.03, 1.79, 0.33]
    hi = make_eeg_transfer(
        shell_head.with_conductivities({"skull": sig_hi[1]}), electrodes, verbose=False, tol=1e-6
    )
    dirs = _dirs(5, 4)
    dirs[:, 2] = np.abs(dirs[:, 2]) + 0.5  # radial dipoles under the electrode cap
    dirs /= np.linalg.norm(dirs, axis=1)[:, None]
    pos = dirs * 0.6 * FOUR_SHELL_RADII_M[-1]
    n_lo = np.linalg.norm(np.einsum("esd,sd->es", shell_transfer.leadfield(pos), dirs), axis=0)
    n_hi = np.linalg.norm(np.einsum("esd,sd->es", hi.leadfield(pos), dirs), axis=0)
    a_lo = sphere_potential(pos, dirs, electrodes)
    a_hi = sphere_potential(pos, dirs, electrodes, FOUR_SHELL_RADII_M, sig_hi)
    ratio_ana = np.linalg.norm(a_hi - a_hi.mean(0), axis=0) / np.linalg.norm(
        a_lo - a_lo.mean(0), axis=0
    )
    assert np.all(ratio_ana > 1.25)
    assert np.all(n_hi / n_lo > 1.1)
    np.testing.assert_allclose(n_hi / n_lo, ratio_ana, rtol=0.2)


def test_leadfield_shape_reference_and_wrapper(shell_head, shell_transfer, electrodes):
    pos = _dirs(3, 5) * 0.3 * FOUR_SHELL_RADII_M[-1]
    gain = shell_transfer.leadfield(pos)
    assert gain.shape == (N_EL, 3, 3)
    np.testing.assert_allclose(gain.sum(axis=0), 0.0, atol=1e-12 * np.abs(gain).max())
    ref = shell_transfer.leadfield(pos, reference="EEG003")
    np.testing.assert_allclose(ref[2], 0.0, atol=0)
    np.testing.assert_allclose(ref - ref.mean(0), gain, rtol=1e-10, atol=1e-14)
    assert shell_transfer.meta["cg_iterations_mean"] > 0
    assert isinstance(shell_transfer.source_loads(pos), sparse.spmatrix | sparse.sparray)


# ---------------------------------------------------------------------- bad input
def test_bad_inputs(shell_head, shell_transfer, electrodes):
    with pytest.raises(ValueError, match="from the scalp"):
        make_eeg_transfer(shell_head, electrodes * 1.2, verbose=False)
    bad = electrodes.copy()
    bad[3, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        make_eeg_transfer(shell_head, bad, verbose=False)
    with pytest.raises(ValueError, match="millimetres"):
        make_eeg_transfer(shell_head, electrodes * 1e3, verbose=False)
    with pytest.raises(ValueError, match="source_model"):
        make_eeg_transfer(shell_head, electrodes, verbose=False, source_model="dipole")
    with pytest.raises(TypeError):
        make_eeg_transfer(shell_head.labels, electrodes, verbose=False)
    with pytest.raises(ValueError, match="not in source tissue"):
        shell_transfer.leadfield([[0.0, 0.0, 0.0795]])  # CSF
    with pytest.raises(ValueError, match="outside the head"):
        shell_transfer.leadfield([[0.0, 0.0, 0.2]])
    with pytest.raises(ValueError, match="NaN"):
        shell_transfer.leadfield([[0.0, np.nan, 0.01]])
    with pytest.raises(ValueError, match="reference"):
        shell_transfer.leadfield([[0.0, 0.0, 0.01]], reference="Cz")
    no_skull = shell_head.labels.copy()
    no_skull[no_skull == 4] = 5
    with pytest.raises(ValueError, match="skull"):
        make_eeg_transfer(HeadModel(no_skull, shell_head.affine), electrodes, verbose=False)
    mesh = make_hex_mesh(shell_head)
    lut = shell_head.tissues.conductivity_lut()
    lut[4] = 0.0
    with pytest.raises(ValueError, match="conductivity"):
        element_conductivity(mesh, lut)
    with pytest.raises(ValueError, match="shift"):
        make_hex_mesh(shell_head, shift=0.6)


def test_compute_eeg_leadfield_wrapper(electrodes):
    head = make_sphere_head(VOXEL_MM, sigmas=[0.33] * 4)
    pos = np.array([[0.0, 0.02, 0.03]])
    gain = compute_eeg_leadfield(head, electrodes, pos, verbose=False, geometry_adapted=False)
    ana = np.stack([sphere_potential(pos, [np.eye(3)[k]], electrodes, sigmas=[0.33] * 4)[:, 0]
                    for k in range(3)], axis=1)
    ana -= ana.mean(axis=0)
    for k in range(3):
        assert rdm(gain[:, 0, k], ana[:, k]) < 0.06


def test_parallel_solves_match_serial(electrodes):
    head = make_sphere_head(VOXEL_MM, sigmas=[0.33] * 4)
    pos = np.array([[0.0, 0.02, 0.03], [0.01, -0.02, 0.0]])
    ser = make_eeg_transfer(
        head, electrodes[:6], verbose=False, geometry_adapted=False, block_size=2, tol=1e-8
    )
    par = make_eeg_transfer(
        head, electrodes[:6], verbose=False, geometry_adapted=False, n_jobs=2, block_size=2,
        tol=1e-8,
    )
    np.testing.assert_allclose(par.leadfield(pos), ser.leadfield(pos), rtol=1e-12, atol=0)
    assert len(par.meta["cg_iterations"]) == 5
    par1 = make_eeg_transfer(
        head, electrodes[:6], verbose=False, geometry_adapted=False, n_jobs=2, solver="single",
        tol=1e-8,
    )
    ref = ser.leadfield(pos)
    np.testing.assert_allclose(par1.leadfield(pos), ref, rtol=0, atol=1e-6 * np.abs(ref).max())
    with pytest.raises(ValueError, match="n_jobs"):
        make_eeg_transfer(head, electrodes, verbose=False, n_jobs=0)


# ---------------------------------------------------------------------- block (multi-RHS) solver
@pytest.fixture(scope="module")
def shell_system(shell_head):
    mesh = make_hex_mesh(shell_head)
    lut = shell_head.tissues.conductivity_lut()
    mat = assemble_stiffness(mesh, element_conductivity(mesh, lut))
    surf = np.flatnonzero(mesh.surface)
    apply_reference(mat, int(surf[0]))
    return mat, surf


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_block_vcycle_is_symmetric_positive_definite(shell_system, dtype):
    """CG needs an SPD preconditioner: u.M v == v.M u and u.M u > 0 (up to the precision)."""
    mat, _ = shell_system
    vc = BlockVCycle(AMGSolver(mat).ml, degree=3, dtype=dtype)
    assert vc.n_levels >= 2
    uv = np.random.default_rng(7).normal(size=(mat.shape[0], 4))
    m_uv = vc(uv)
    assert m_uv.shape == uv.shape and m_uv.dtype == np.float64
    gram = uv.T @ m_uv
    eps = 1e-5 if dtype == np.float32 else 1e-11
    np.testing.assert_allclose(gram, gram.T, rtol=0, atol=eps * np.abs(gram).max())
    assert np.all(np.linalg.eigvalsh(0.5 * (gram + gram.T)) > 0)
    np.testing.assert_allclose(vc(uv[:, 1]), m_uv[:, 1], rtol=1e-12)  # a vector = a 1-block
    with pytest.raises(ValueError, match="degree"):
        BlockVCycle(AMGSolver(mat).ml, degree=0)


def test_block_cg_equals_single_solves(shell_system):
    mat, surf = shell_system
    nodes = surf[[40, 400, 900, 1500, 2500]]
    rhs = np.zeros((mat.shape[0], 6))  # last column all zero
    rhs[nodes, np.arange(5)] = 1.0
    single = AMGSolver(mat, tol=1e-11)
    vc = BlockVCycle(single.ml)
    stats = BlockSolveStats()
    x, its = block_cg(mat, rhs, vc, tol=1e-10, stats=stats)
    assert its[-1] == 0 and not x[:, -1].any()
    assert np.all((its[:5] > 3) & (its[:5] < 60))
    assert stats.iterations == its.tolist() and stats.solve_s > 0
    for j in range(5):
        ref = single.solve(rhs[:, j])
        assert np.linalg.norm(x[:, j] - ref) < 1e-8 * np.linalg.norm(ref)
        assert np.linalg.norm(mat @ x[:, j] - rhs[:, j]) <= 1e-10 * 1.01
    xf, _ = block_cg(mat, rhs[:, :2], vc, tol=1e-10, flexible=True)
    np.testing.assert_allclose(xf, x[:, :2], rtol=0, atol=1e-8 * np.abs(x[:, :2]).max())
    with pytest.raises(RuntimeError, match="did not reach"):
        block_cg(mat, rhs, vc, tol=1e-10, maxiter=2)
    with pytest.raises(ValueError, match="rhs"):
        block_cg(mat, rhs[:-1], vc)


def test_block_transfer_equals_single_transfer(shell_head, electrodes):
    """The default block solver gives the lead field of the one-electrode-at-a-time solver
    (same tolerance) to 1e-6, for any block size."""
    kw = dict(verbose=False, tol=1e-10)
    single = make_eeg_transfer(shell_head, electrodes, solver="single", **kw)
    block = make_eeg_transfer(shell_head, electrodes, **kw)
    small = make_eeg_transfer(shell_head, electrodes, block_size=4, **kw)
    assert block.meta["solver"] == "block" and block.meta["block_size"] == 32
    assert single.meta["block_size"] == 1 and len(block.meta["cg_iterations"]) == N_EL - 1
    pos = _dirs(6, 8) * 0.6 * FOUR_SHELL_RADII_M[-1]
    ref = single.leadfield(pos)
    for tm in (block, small):
        gain = tm.leadfield(pos)
        assert np.abs(gain - ref).max() < 1e-6 * np.abs(ref).max()
    with pytest.raises(ValueError, match="solver"):
        make_eeg_transfer(shell_head, electrodes, verbose=False, solver="gmres")
    with pytest.raises(ValueError, match="block_size"):
        make_eeg_transfer(shell_head, electrodes, verbose=False, block_size=0)
    with pytest.raises(TypeError, match="block_size"):
        make_eeg_transfer(shell_head, electrodes, verbose=False, block_size=4.0)
