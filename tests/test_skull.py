"""Tests for deepesi.anatomy.skull.split_skull."""

from __future__ import annotations

import numpy as np
import pytest

from deepesi.anatomy.skull import split_skull


def _slab(thickness_vox: int, n: int = 12, nz: int = 30):
    """Intracranial below z=5, a skull slab above it, outside above the slab."""
    inside = np.zeros((n, n, nz), bool)
    skull = np.zeros_like(inside)
    inside[:, :, :5] = True
    skull[:, :, 5 : 5 + thickness_vox] = True
    return skull, inside


def test_slab_tables_are_a_quarter_each():
    skull, inside = _slab(8)
    compact, spongy = split_skull(skull, inside, voxel_size=1.0)
    col = spongy[6, 6]
    assert np.array_equal(np.flatnonzero(col), [7, 8, 9, 10])  # middle 4 of 8 voxels
    assert np.array_equal(compact | spongy, skull) and not np.any(compact & spongy)


def test_minimum_table_and_thin_skull():
    skull, inside = _slab(2)
    compact, spongy = split_skull(skull, inside)
    assert not spongy.any() and np.array_equal(compact, skull)
    # 6 voxels of 0.5 mm = 3 mm: tables max(0.75, 1.0) = 1 mm → 2 voxels each side, 2 spongy
    skull, inside = _slab(6)
    _, spongy = split_skull(skull, inside, voxel_size=0.5)
    assert np.array_equal(np.flatnonzero(spongy[6, 6]), [7, 8])
    # larger min table → thin 3 mm skull all compact
    _, spongy = split_skull(skull, inside, voxel_size=0.5, min_table_mm=1.5)
    assert not spongy.any()


def test_spherical_shell_proportions():
    n = 61
    r = np.linalg.norm(np.indices((n,) * 3) - (n - 1) / 2, axis=0)
    inside = r < 20
    skull = (r >= 20) & (r < 28)
    _, spongy = split_skull(skull, inside, table_fraction=0.25, min_table_mm=0.0)
    frac = spongy.sum() / skull.sum()
    # diploë = shell 22..26 → volume fraction (26^3-22^3)/(28^3-20^3)
    expected = (26**3 - 22**3) / (28**3 - 20**3)
    assert abs(frac - expected) < 0.06
    assert spongy[30, 30, 30 + 24] and not spongy[30, 30, 30 + 20] and not spongy[30, 30, 57]


def test_skull_at_grid_edge_has_an_outer_side():
    skull, inside = _slab(8, nz=13)  # slab reaches the last slice
    _, spongy = split_skull(skull, inside)
    assert np.array_equal(np.flatnonzero(spongy[6, 6]), [7, 8, 9, 10])


def test_bad_inputs():
    skull, inside = _slab(8)
    with pytest.raises(ValueError, match="disjoint"):
        split_skull(skull | inside, inside)
    with pytest.raises(ValueError, match="intracranial mask is empty"):
        split_skull(skull, np.zeros_like(inside))
    with pytest.raises(ValueError, match="skull mask is empty"):
        split_skull(np.zeros_like(skull), inside)
    with pytest.raises(ValueError, match="table_fraction"):
        split_skull(skull, inside, table_fraction=0.6)
    with pytest.raises(ValueError, match="same grid"):
        split_skull(skull, inside[:-1])
    with pytest.raises(ValueError, match="voxel_size"):
        split_skull(skull, inside, voxel_size=(1.0, 0.0, 1.0))
    with pytest.raises(ValueError, match="boolean"):
        split_skull(skull * 2, inside)
