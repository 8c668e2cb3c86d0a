"""Tests for deepesi.anatomy.voxelize: exact ray-parity fill of closed surfaces."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
from scipy.spatial import ConvexHull, transform

from deepesi.anatomy.voxelize import (
    check_closed_surface,
    read_surface,
    resample_nearest,
    voxelize_surface,
)


def _hull(radii, n=120, seed=0, centre=(0.0, 0.0, 0.0)):
    rng = np.random.default_rng(seed)
    p = rng.normal(size=(n, 3))
    p /= np.linalg.norm(p, axis=1)[:, None]
    p = p * np.asarray(radii) + np.asarray(centre)
    hull = ConvexHull(p)
    return p, hull.simplices, hull.equations


def _reference_inside(equations, shape, affine):
    """Half-space test of every voxel centre, in chunks of points to bound the memory use."""
    ijk = np.indices(shape).reshape(3, -1).T
    xyz = nib.affines.apply_affine(affine, ijk)
    inside = np.empty(len(xyz), bool)
    for start in range(0, len(xyz), 20_000):
        part = xyz[start : start + 20_000]
        inside[start : start + 20_000] = np.all(
            part @ equations[:, :3].T + equations[:, 3] <= 0, axis=1
        )
    return inside.reshape(shape)


def test_convex_fill_matches_halfspace_test_exactly():
    v, f, eq = _hull((30.0, 25.0, 20.0))
    affine = np.eye(4)
    affine[:3, 3] = -40.0
    mask = voxelize_surface(v, f, (81, 81, 81), affine)
    ref = _reference_inside(eq, (81, 81, 81), affine)
    assert mask.sum() > 40_000
    assert np.array_equal(mask, ref)


def test_oblique_anisotropic_grid():
    v, f, eq = _hull((30.0, 22.0, 18.0), seed=1, centre=(3.0, -2.0, 5.0))
    rot = transform.Rotation.from_euler("xyz", [20, -35, 50], degrees=True).as_matrix()
    affine = np.eye(4)
    affine[:3, :3] = rot @ np.diag([1.5, 2.0, 1.0])
    affine[:3, 3] = -affine[:3, :3] @ np.array([30, 25, 45])
    shape = (60, 50, 90)
    mask = voxelize_surface(v, f, shape, affine)
    ref = _reference_inside(eq, shape, affine)
    assert np.array_equal(mask, ref)


def test_ties_on_vertices_and_edges_count_once():
    # a cube whose vertices and edges sit exactly on voxel centres: the top-left rule makes the
    # fill half-open, so a 10 mm cube gives exactly 10^3 voxels of 1 mm
    corners = np.array([[x, y, z] for x in (0, 10) for y in (0, 10) for z in (0, 10)], float)
    hull = ConvexHull(corners)
    affine = np.eye(4)
    affine[:3, 3] = -5.0
    mask = voxelize_surface(corners, hull.simplices, (20, 20, 20), affine)
    assert mask.sum() == 1000
    assert np.all(mask.sum(axis=2)[6:15, 6:15] == 10)


def test_nested_surfaces_give_a_shell_and_volume_converges():
    vo, fo, _ = _hull((40.0, 40.0, 40.0), n=3000, seed=2)
    vi, fi, _ = _hull((30.0, 30.0, 30.0), n=3000, seed=3)
    v = np.vstack([vo, vi])
    f = np.vstack([fo, fi + len(vo)])
    affine = np.diag([0.5, 0.5, 0.5, 1.0])
    affine[:3, 3] = -45.0
    mask = voxelize_surface(v, f, (181, 181, 181), affine)
    vol = mask.sum() * 0.125
    expected = 4 / 3 * np.pi * (40.0**3 - 30.0**3)
    assert abs(vol - expected) / expected < 0.01
    assert not mask[90, 90, 90]  # the centre is inside both: even parity


def test_surface_partly_outside_the_grid():
    v, f, eq = _hull((30.0, 30.0, 30.0), seed=4)
    affine = np.eye(4)
    affine[:3, 3] = [-10.0, -40.0, -5.0]  # grid starts inside the sphere in x and z
    shape = (60, 81, 50)
    mask = voxelize_surface(v, f, shape, affine)
    assert np.array_equal(mask, _reference_inside(eq, shape, affine))


def test_open_surface_is_refused():
    v, f, _ = _hull((10.0, 10.0, 10.0))
    with pytest.raises(ValueError, match="not a closed surface"):
        voxelize_surface(v, f[:-3], (10, 10, 10), np.eye(4))
    with pytest.raises(ValueError, match="only"):
        check_closed_surface(v, np.array([[0, 1, 2], [0, 1, 9999], [1, 2, 3], [0, 2, 3]]))
    with pytest.raises(ValueError, match="shape"):
        voxelize_surface(v, f, (10, 10), np.eye(4))


def test_read_surface(tmp_path):
    v, f, _ = _hull((10.0, 12.0, 14.0))
    path = tmp_path / "x.surf"
    nib.freesurfer.write_geometry(str(path), v, f)
    v2, f2 = read_surface(path)
    assert np.allclose(v, v2, atol=1e-4) and np.array_equal(f, f2)
    with pytest.raises(FileNotFoundError, match="not found"):
        read_surface(tmp_path / "missing.surf")
    bad = tmp_path / "bad.surf"
    bad.write_bytes(b"\x00\x01garbage")
    with pytest.raises(ValueError, match="cannot read"):
        read_surface(bad)


def test_resample_nearest_between_aligned_grids():
    coarse = np.arange(27, dtype=np.uint8).reshape(3, 3, 3)
    a3 = np.diag([3.0, 3.0, 3.0, 1.0])
    a1 = np.eye(4)
    a1[:3, 3] = -1.0  # 1 mm voxel centres -1..7 cover the 3 mm voxels centred at 0, 3, 6
    fine = resample_nearest(coarse, a3, (9, 9, 9), a1)
    assert np.array_equal(fine[::3, ::3, ::3], coarse)
    assert fine[0, 0, 0] == coarse[0, 0, 0] and fine[2, 2, 2] == coarse[0, 0, 0]
    assert fine[3, 0, 0] == coarse[1, 0, 0]
    out = resample_nearest(coarse, a3, (12, 9, 9), a1)
    assert np.all(out[11] == 0)  # beyond the source grid
