"""The dense scalp lead field: interpolation weights, splines, and the FEM on a small head."""

from __future__ import annotations

import numpy as np
import pytest

from deepesi.forward.scalp import read_scalp_leadfield, scalp_weights
from deepesi.simulation.caps import cap_to_virtual, spline_matrix


def _sphere_points(n: int, radius: float, seed: int, zmin: float = -0.3) -> np.ndarray:
    """Quasi-uniform points on the upper part of a sphere (Fibonacci lattice)."""
    k = np.arange(4 * n)
    z = 1 - 2 * (k + 0.5) / (4 * n)
    phi = k * np.pi * (3 - np.sqrt(5)) + seed
    p = np.c_[np.sqrt(1 - z**2) * np.cos(phi), np.sqrt(1 - z**2) * np.sin(phi), z]
    return radius * p[p[:, 2] > zmin][:n]


def test_weights_sum_to_one_and_reproduce_smooth_fields():
    dense = _sphere_points(1500, 0.09, 0)
    rng = np.random.default_rng(1)
    target = _sphere_points(60, 0.09, 7, zmin=0.0)
    w = scalp_weights(dense, target, np.zeros(3))
    np.testing.assert_allclose(np.asarray(w.sum(axis=1)).ravel(), 1.0, atol=1e-9)
    # a dipole-like smooth field on the sphere: potential of a point source 4 cm deep
    src = np.array([0.0, 0.02, 0.045])

    def field(p):
        return 1.0 / np.linalg.norm(p - src, axis=1)

    est, true = w @ field(dense), field(target)
    assert np.max(np.abs(est - true)) / np.ptp(true) < 2e-3
    # nearest-neighbour would be two orders worse: the test can fail
    nn = field(dense)[np.argmin(np.linalg.norm(dense[None] - target[:, None], axis=2), axis=1)]
    assert np.max(np.abs(nn - true)) / np.ptp(true) > 10 * np.max(np.abs(est - true)) / np.ptp(
        true)
    with pytest.raises(ValueError, match="outside the scalp region"):
        scalp_weights(dense, np.array([[0.0, 0.0, -0.2]]), np.zeros(3), max_distance=0.01)
    assert rng is not None


def test_spline_interpolates_and_tapers():
    cap = _sphere_points(64, 0.09, 3, zmin=0.1)
    virtual = _sphere_points(300, 0.09, 5, zmin=-0.5)
    src = np.array([0.01, -0.02, 0.05])
    vals = 1.0 / np.linalg.norm(cap - src, axis=1)
    s_self = spline_matrix(cap, cap, np.zeros(3), reg=1e-9)
    np.testing.assert_allclose(s_self @ vals, vals, rtol=1e-3)  # interpolates the nodes
    smooth = spline_matrix(cap, cap, np.zeros(3))  # the default smooths a little
    assert 1e-4 < np.abs(smooth @ vals - vals).max() / np.ptp(vals) < 0.03
    m = cap_to_virtual(cap, virtual, np.zeros(3))
    far = np.min(np.linalg.norm(virtual[:, None] - cap[None], axis=2), axis=1)
    nn = np.median(np.sort(np.linalg.norm(cap[:, None] - cap[None], axis=2), axis=1)[:, 1])
    assert np.all(m[far > 2 * nn] == 0)  # no electrode nearby: no value
    inside = far < 0.5 * nn
    true = 1.0 / np.linalg.norm(virtual[inside] - src, axis=1)
    assert np.median(np.abs(m[inside] @ vals - true) / np.ptp(vals)) < 0.02
    with pytest.raises(ValueError, match="at least 4"):
        cap_to_virtual(cap[:3], virtual, np.zeros(3))


def test_dense_lead_field_matches_direct_fem(small_scalp_leadfield, small_synthetic_head,
                                             tmp_path):
    """Interpolation reproduces the direct FEM on a small head (4 mm mesh)."""
    from deepesi.sources import make_source_space

    slf, cap, direct, cap_nodes = small_scalp_leadfield
    src = slf.source_space
    d = direct.reshape(cap.n_eeg, -1)
    interp = slf.gain_at(cap_nodes).reshape(cap.n_eeg, -1)
    rdm = np.linalg.norm(d / np.linalg.norm(d, axis=0)
                         - interp / np.linalg.norm(interp, axis=0), axis=0)
    assert np.median(rdm) < 0.02, np.median(rdm)  # 1.3 % here, at 8 mm spacing on a 4 mm mesh
    # the lead field of a cap, and the file round trip
    lf = slf.leadfield(cap)
    assert lf.ch_names == cap.eeg_names and lf.gain.shape == (32, src.n_sources, 3)
    np.testing.assert_allclose(lf.gain.sum(axis=0), 0.0, atol=1e-9 * np.abs(lf.gain).max())
    path, = slf.save(tmp_path / "scalp.npz")
    back = read_scalp_leadfield(path, src)
    np.testing.assert_allclose(back.gain_at(cap.eeg_pos_mri), slf.gain_at(cap.eeg_pos_mri),
                               rtol=0, atol=2e-3 * np.abs(lf.gain).max())
    with pytest.raises(FileExistsError):
        slf.save(path)
    # split into parts under a size limit: the same lead field back
    files = slf.save(tmp_path / "split.npz", max_part_mb=0.1)
    assert len(files) >= 3 and all(f.stat().st_size < 0.15e6 for f in files[1:])
    split = read_scalp_leadfield(files[0], src)
    np.testing.assert_array_equal(split.coefficients, back.coefficients)
    files[2].unlink()
    with pytest.raises(FileNotFoundError, match="part"):
        read_scalp_leadfield(files[0], src)
    with pytest.raises(ValueError, match="another source space"):
        read_scalp_leadfield(path, make_source_space(small_synthetic_head, 14e-3))
