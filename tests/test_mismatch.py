"""Tests of the mismatched test forward (deepesi.simulation.mismatch): seeded, within its stated
ranges, sources kept in their tissue and region."""

from __future__ import annotations

import numpy as np
import pytest

from deepesi.simulation import (
    SOURCE_TISSUES,
    off_grid_sources,
    perturbed_conductivities,
    snap_into_tissue,
)
from deepesi.sources import make_source_space


@pytest.fixture(scope="module")
def head_src():
    from conftest import synthetic_head

    head = synthetic_head(voxel_mm=4.0, n=42)
    return head, make_source_space(head, 0.008)


def _voxel(head, pos):
    return tuple(np.clip(np.round(head.mri_to_voxel(pos)).astype(int), 0,
                         np.array(head.shape) - 1).T)


def test_perturbed_conductivities_seeded_and_within_range(head_src):
    head, _ = head_src
    a = perturbed_conductivities(head, np.random.default_rng(1))
    assert a == perturbed_conductivities(head, 1)  # an int seed is the same stream
    assert a != perturbed_conductivities(head, 2)
    base = {t.name: t.conductivity for t in head.tissues}
    assert list(a) == list(base)  # every tissue, in the head's order
    ratio = np.array([a[k] / base[k] for k in base])
    assert (ratio >= 0.8).all() and (ratio <= 1.2).all()
    assert np.ptp(ratio) > 0.05  # independent factors
    small = np.array([v / base[k] for k, v in perturbed_conductivities(head, 3, 0.05).items()])
    assert (np.abs(small - 1) <= 0.05).all()
    assert [t.conductivity for t in head.with_conductivities(a).tissues] == list(a.values())
    with pytest.raises(ValueError, match="max_rel"):
        perturbed_conductivities(head, 0, max_rel=1.5)


def test_off_grid_sources_stay_in_tissue_and_region(head_src):
    head, src = head_src
    moved = off_grid_sources(src, head, np.random.default_rng(4))
    again = off_grid_sources(src, head, np.random.default_rng(4))
    np.testing.assert_array_equal(moved.pos, again.pos)  # seeded: bit for bit
    assert not np.array_equal(moved.pos, off_grid_sources(src, head, 5).pos)
    # at most half a grid step along each axis, most points moved
    step = np.abs(moved.pos - src.pos)
    assert (step <= 0.5 * src.spacing + 1e-12).all()
    frac = np.mean(np.any(moved.pos != src.pos, axis=1))
    assert frac > 0.9 and moved.meta["moved_fraction"] == pytest.approx(frac)
    # every point keeps its voxel's tissue label and region
    before, after = _voxel(head, src.pos), _voxel(head, moved.pos)
    np.testing.assert_array_equal(head.labels[after], head.labels[before])
    np.testing.assert_array_equal(head.regions[after], head.regions[before])
    # the rest of the source space is the training one
    assert moved.name == f"{src.name}-offgrid" and moved.n_sources == src.n_sources
    np.testing.assert_array_equal(moved.region_ids, src.region_ids)
    np.testing.assert_array_equal(moved.free_ori, src.free_ori)
    assert (moved.adjacency != src.adjacency).nnz == 0


def test_template_test_forward_is_pinned():
    """The seed of scripts/build_pretrained.py gives the shipped evaluation's test forward."""
    from deepesi.anatomy.template import load_template

    head = load_template()
    rng = np.random.default_rng(20241104)
    cond = perturbed_conductivities(head, rng)
    assert cond["GM"] == 0.32690576970451163 and cond["Bone"] == 0.011784617230979646
    assert cond["CSF"] == 1.6667193685620518 and cond["Scalp"] == 0.5029389670103303
    src = make_source_space(head, 5e-3)
    moved = off_grid_sources(src, head, rng)  # drawn after the conductivities
    assert moved.meta["moved_fraction"] == pytest.approx(0.9986406327236778, abs=1e-12)


def test_snap_into_tissue(head_src):
    head, src = head_src
    pos, n = snap_into_tissue(head, src.pos)
    assert n == 0 and pos is src.pos  # all in brain tissue already: untouched
    allowed = head.tissue_mask(*SOURCE_TISSUES)
    outside = head.voxel_to_mri(np.argwhere(~allowed)[:5])  # e.g. in the skull or outside
    snapped, n = snap_into_tissue(head, np.vstack([src.pos[:3], outside]))
    assert n == 5
    np.testing.assert_array_equal(snapped[:3], src.pos[:3])
    idx = tuple(np.floor(head.mri_to_voxel(snapped) + 0.5).astype(int).T)
    assert allowed[idx].all()
    # moved to the nearest allowed voxel centre
    centres = head.voxel_to_mri(np.argwhere(allowed))
    d = np.linalg.norm(centres[None] - outside[:, None], axis=2).min(1)
    np.testing.assert_allclose(np.linalg.norm(snapped[3:] - outside, axis=1), d)


def test_realistic_conductivities_recipe():
    from deepesi.anatomy.template import load_template
    from deepesi.simulation.mismatch import REALISTIC_SKULL, realistic_conductivities

    head = load_template()
    a = realistic_conductivities(head, 7)
    assert a == realistic_conductivities(head, 7) and a != realistic_conductivities(head, 8)
    for name, value in REALISTIC_SKULL.items():
        assert a[name] == value
    for name in ("GM", "WM", "CSF", "Scalp"):
        rel = abs(a[name] / head.tissues[name].conductivity - 1)
        assert 0.08 <= rel <= 0.20
    assert set(a) >= {*REALISTIC_SKULL, "GM", "WM", "CSF", "Scalp"}
