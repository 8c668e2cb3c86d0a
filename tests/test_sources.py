"""Tests for deepesi.sources: cortical + subcortical grid source spaces on a synthetic head."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import DEEP_BALLS, RADII, synthetic_head
from deepesi.anatomy import HeadModel
from deepesi.anatomy.regions import SUBCORTICAL_REGIONS
from deepesi.sources import (
    CORTICAL_MIN_NORMAL_DOT,
    SourceSpace,
    make_source_space,
)


@pytest.fixture(scope="module")
def head() -> HeadModel:
    return synthetic_head()


@pytest.fixture(scope="module")
def src(head) -> SourceSpace:
    return make_source_space(head, 5e-3)


def _voxels(head: HeadModel, pos: np.ndarray) -> tuple[np.ndarray, ...]:
    """Voxel of each point; a point on a voxel face belongs to the voxel on its + side."""
    return tuple(np.rint(head.mri_to_voxel(pos + 1e-7)).astype(int).T)


def test_every_deep_structure_has_points(head, src):
    present = set(np.unique(head.regions).tolist()) & set(SUBCORTICAL_REGIONS)
    assert present == {10, 11, 12, 16, 17, 26, 49}
    counts = {rid: int((src.region_ids == rid).sum()) for rid in present}
    assert all(c >= 1 for c in counts.values()), counts
    # the accumbens is smaller than a grid cell: exactly one added point, inside it
    assert counts[26] == 1
    assert src.meta["added_points"] == {"Left-Accumbens-area": 1}
    acc = src.pos[src.region_ids == 26]
    assert np.all(head.regions[_voxels(head, acc)] == 26)
    # a WM-labelled thalamus keeps its full extent: ~ volume / spacing^3 points
    expected = 4 / 3 * np.pi * 9.0**3 / 5.0**3
    assert abs(counts[10] - expected) < 0.3 * expected
    assert np.all(head.labels[_voxels(head, src.pos[src.region_ids == 10])] == 1)


def test_min_points_per_region(head):
    src = make_source_space(head, 5e-3, min_points_per_region=3)
    for rid in (10, 11, 12, 16, 17, 26, 49):
        assert (src.region_ids == rid).sum() >= 3
    acc = src.pos[src.region_ids == 26]
    assert len(acc) == 3 and len(np.unique(acc, axis=0)) == 3
    assert np.all(head.regions[_voxels(head, acc)] == 26)
    src0 = make_source_space(head, 5e-3, min_points_per_region=0)
    assert not np.any(src0.region_ids == 26)


def test_points_lie_in_right_tissue_and_region(head, src):
    vox = _voxels(head, src.pos)
    deep = src.is_subcortical
    # cortex: grey matter, region from head.regions
    assert np.all(head.labels[vox][~deep] == 2)
    assert np.array_equal(head.regions[vox], src.region_ids)
    # deep points: brain tissue only (WM or GM)
    assert np.all(np.isin(head.labels[vox][deep], [1, 2]))
    # grid points are on the k * spacing grid (MRI origin), the added accumbens point excepted
    on_grid = src.pos[src.region_ids != 26] / 5e-3
    np.testing.assert_allclose(on_grid, np.rint(on_grid), atol=1e-9)
    # cortical points lie in the GM shell (up to the voxel discretisation)
    r = np.linalg.norm(src.pos[~deep], axis=1) * 1000
    half_diag = np.sqrt(3)  # grid point to the centre of its 2 mm voxel
    assert r.min() > RADII["wm"] - half_diag and r.max() < RADII["gm"] + half_diag
    assert src.pos.shape == (src.n_sources, 3)
    assert src.meta["n_cortical"] + src.meta["n_subcortical"] == src.n_sources


def test_cortical_normals_point_outward(src):
    cortex = ~src.is_subcortical
    nn = src.normals[cortex]
    np.testing.assert_allclose(np.linalg.norm(nn, axis=1), 1.0, atol=1e-9)
    radial = src.pos[cortex] / np.linalg.norm(src.pos[cortex], axis=1)[:, None]
    angle = np.degrees(np.arccos(np.clip(np.sum(nn * radial, axis=1), -1, 1)))
    assert np.median(angle) < 3.0
    assert angle.max() < 15.0
    assert not src.free_ori[cortex].any()
    # deep structures: free orientation, zero normals
    assert src.free_ori[~cortex].all()
    assert np.all(src.normals[~cortex] == 0)


def test_adjacency_rule(src):
    adj = src.adjacency
    assert (adj != adj.T).nnz == 0
    assert adj.diagonal().sum() == 0
    row, col = adj.nonzero()
    length = np.linalg.norm(src.pos[row] - src.pos[col], axis=1)
    assert length.max() <= np.sqrt(3) * 5e-3 * (1 + 1e-6)
    ri, rj = src.region_ids[row], src.region_ids[col]
    lh = lambda r: (r > 1100) & (r < 1200)  # noqa: E731
    rh = lambda r: (r > 2100) & (r < 2200)  # noqa: E731
    deep_i, deep_j = np.isin(ri, list(SUBCORTICAL_REGIONS)), np.isin(rj, list(SUBCORTICAL_REGIONS))
    assert not np.any(lh(ri) & rh(rj)), "no links across the midline"
    assert not np.any(deep_i != deep_j), "no links between cortex and deep structures"
    pairs = {(a, b) for a, b in zip(ri[deep_i].tolist(), rj[deep_i].tolist()) if a != b}
    assert pairs == {(11, 12), (12, 11)}, "deep links: only within a structure or the striatum"
    # cortical links cross lobes within a hemisphere, and join points with agreeing normals
    assert np.any(lh(ri) & lh(rj) & (ri != rj))
    dots = np.sum(src.normals[row] * src.normals[col], axis=1)
    assert np.all(dots[~deep_i] >= CORTICAL_MIN_NORMAL_DOT)
    # putamen and hippocampus are grid neighbours, yet unlinked
    put, hip = src.pos[src.region_ids == 12], src.pos[src.region_ids == 17]
    gap = np.linalg.norm(put[:, None] - hip[None], axis=2).min()
    assert gap <= np.sqrt(3) * 5e-3
    # an interior brainstem point has its full 26-neighbourhood
    stem = np.flatnonzero(src.region_ids == 16)
    assert np.asarray(adj[stem].sum(axis=1)).max() == 26


def test_save_load_round_trip(src, tmp_path):
    path = src.save(tmp_path / "src.npz")
    loaded = SourceSpace.load(path)
    assert loaded.hash() == src.hash()
    np.testing.assert_array_equal(loaded.pos, src.pos)
    np.testing.assert_array_equal(loaded.region_ids, src.region_ids)
    assert (loaded.adjacency != src.adjacency).nnz == 0
    with pytest.raises(FileExistsError):
        src.save(path)


def test_save_keeps_meta_and_refuses_foreign_files(src, tmp_path):
    loaded = SourceSpace.load(src.save(tmp_path / "src.npz"))
    assert loaded.meta == src.meta
    assert loaded.meta["added_points"] == {"Left-Accumbens-area": 1}
    np.savez(tmp_path / "other.npz", pos=src.pos)
    with pytest.raises(ValueError, match="not a deepesi source space file"):
        SourceSpace.load(tmp_path / "other.npz")
    (tmp_path / "text.npz").write_text("not a zip file")
    with pytest.raises(ValueError, match="not a deepesi source space file"):
        SourceSpace.load(tmp_path / "text.npz")


def test_same_input_same_hash(head, src):
    assert make_source_space(head, 5e-3).hash() == src.hash()
    assert make_source_space(head, 5e-3, loose=0.2).hash() != src.hash()
    assert src.head_hash == head.hash()


def test_to_mne_forward_with_sphere_model(head):
    mne = pytest.importorskip("mne")
    src = make_source_space(head, 10e-3)
    msrc = src.to_mne()
    assert len(msrc) == 1 and msrc[0]["type"] == "discrete"
    np.testing.assert_allclose(msrc[0]["rr"], src.pos)
    # 32 electrodes on the upper half of the 90 mm scalp sphere (Fibonacci lattice)
    k = np.arange(32) + 0.5
    cz = k / 32
    phi = np.pi * (1 + 5**0.5) * k
    rho = np.sqrt(1 - cz**2)
    xyz = 0.09 * np.stack([rho * np.cos(phi), rho * np.sin(phi), cz], axis=1)
    names = [f"E{i:02d}" for i in range(32)]
    info = mne.create_info(names, 1000.0, "eeg")
    info.set_montage(mne.channels.make_dig_montage(dict(zip(names, xyz)), coord_frame="head"))
    sphere = mne.make_sphere_model(r0=(0.0, 0.0, 0.0), head_radius=0.09, verbose=False)
    trans = mne.transforms.Transform("head", "mri")
    fwd = mne.make_forward_solution(info, trans, msrc, sphere, meg=False, mindist=0.0,
                                    verbose=False)
    assert fwd["nsource"] == src.n_sources
    assert fwd["sol"]["data"].shape == (32, 3 * src.n_sources)
    np.testing.assert_allclose(fwd["source_rr"], src.pos, atol=1e-9)
    # a superficial radial (normal-oriented) dipole peaks at the electrode nearest to it
    gain = fwd["sol"]["data"].reshape(32, src.n_sources, 3)
    assert np.all(np.isfinite(gain))
    elec = np.array([ch["loc"][:3] for ch in fwd["info"]["chs"]])
    elec /= np.linalg.norm(elec, axis=1)[:, None]
    cortex = np.flatnonzero(~src.is_subcortical & (src.pos[:, 2] > 0.03))
    hits = 0
    for i in cortex:
        v = gain[:, i] @ src.normals[i]
        v -= v.mean()  # average reference
        u = src.pos[i] / np.linalg.norm(src.pos[i])
        hits += np.argmax(v) == np.argmax(elec @ u)
    assert hits >= 0.8 * len(cortex)


def test_subset(src):
    mask = src.is_subcortical
    sub = src.subset(mask)
    assert sub.n_sources == int(mask.sum())
    assert sub.is_subcortical.all()
    idx = np.flatnonzero(mask)
    np.testing.assert_array_equal(sub.pos, src.pos[idx])
    assert (sub.adjacency != src.adjacency[idx][:, idx]).nnz == 0
    assert sub.meta["subset_of"] == src.hash()
    assert src.subset(idx[::-1]).region_ids[0] == src.region_ids[idx[-1]]
    with pytest.raises(ValueError, match="shape"):
        src.subset(mask[:-1])
    with pytest.raises(ValueError, match="no source point"):
        src.subset(np.zeros(src.n_sources, bool))
    with pytest.raises(ValueError, match="unique"):
        src.subset(np.array([0, 0]))


def test_neighbours_within(src):
    stem = np.flatnonzero(src.region_ids == 16)
    degree = np.asarray(src.adjacency[stem].sum(axis=1)).ravel()
    seed = int(stem[np.argmax(degree)])
    assert np.array_equal(src.neighbours_within(seed, 0.0), [seed])
    # radius = spacing: the seed and its 6 face neighbours (edge length 5 mm)
    near, dist = src.neighbours_within(seed, 5e-3, return_distance=True)
    assert near[0] == seed and len(near) == 7
    np.testing.assert_allclose(dist[1:], 5e-3)
    # graph distance >= straight-line distance, all within the radius, all in the brainstem
    far, dist = src.neighbours_within(seed, 12e-3, return_distance=True)
    straight = np.linalg.norm(src.pos[far] - src.pos[seed], axis=1)
    assert np.all(dist >= straight - 1e-12) and np.all(dist <= 12e-3 + 1e-12)
    assert np.all(src.region_ids[far] == 16)
    # on the cortex it never jumps to the other hemisphere
    cortex = np.flatnonzero(src.region_ids == 1101)
    patch = src.neighbours_within(int(cortex[0]), 30e-3)
    assert np.all((src.region_ids[patch] > 1100) & (src.region_ids[patch] < 1200))
    with pytest.raises(ValueError, match="radius_m"):
        src.neighbours_within(seed, -1.0)
    with pytest.raises(ValueError, match="index"):
        src.neighbours_within(src.n_sources, 1e-3)


def test_surface_orientation_for_deep_structures(head):
    src = make_source_space(head, 5e-3, deep_orientation="surface")
    deep = src.is_subcortical
    assert not src.free_ori.any()
    np.testing.assert_allclose(np.linalg.norm(src.normals[deep], axis=1), 1.0, atol=1e-9)
    thal = src.region_ids == 49
    out = src.pos[thal] - np.array(DEEP_BALLS[49][0]) / 1000
    rim = np.linalg.norm(out, axis=1) > 4e-3
    cos = np.sum(src.normals[thal][rim] * out[rim], axis=1) / np.linalg.norm(out[rim], axis=1)
    assert np.all(cos > 0.8)


def test_head_without_regions_splits_cortex_by_hemisphere():
    head = synthetic_head(regions=False)
    src = make_source_space(head, 8e-3)
    assert set(np.unique(src.region_ids).tolist()) == {3, 42}
    left = src.region_ids == 3
    assert np.all(src.pos[left, 0] < 0) and np.all(src.pos[~left, 0] >= 0)


def test_loose_and_name(head):
    src = make_source_space(head, 10e-3, loose=0.3, name="coarse")
    assert src.loose == 0.3 and src.name == "coarse"
    assert make_source_space(head, 10e-3).name == "synthetic-10mm"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"spacing": 5.0}, "metres"),
        ({"spacing": 0.0}, "metres"),
        ({"loose": 1.5}, "loose"),
        ({"deep_orientation": "fixed"}, "deep_orientation"),
        ({"min_points_per_region": -1}, "min_points_per_region"),
    ],
)
def test_invalid_arguments(head, kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_source_space(head, **kwargs)


def test_head_type_and_missing_gm():
    with pytest.raises(TypeError, match="HeadModel"):
        make_source_space("template")  # type: ignore[arg-type]
    lab = np.zeros((10, 10, 10), np.uint8)
    lab[2:8, 2:8, 2:8] = 1
    with pytest.raises(ValueError, match="grey matter"):
        make_source_space(HeadModel(lab, np.eye(4)), 2e-3)


def test_voxel_orientation_does_not_matter(head, src):
    """The same head stored with permuted/flipped voxel axes (e.g. FreeSurfer's LIA) gives the
    same points and normals: the grid lives in MRI space and normals go through the affine."""
    import nibabel as nib

    ornt = np.array([[0, -1], [2, 1], [1, -1]])  # x flipped, y <-> z swapped, flipped
    shape = head.shape
    permuted = HeadModel(
        nib.orientations.apply_orientation(head.labels, ornt),
        head.affine @ nib.orientations.inv_ornt_aff(ornt, shape),
        regions=nib.orientations.apply_orientation(head.regions, ornt),
        name="synthetic",
    )
    other = make_source_space(permuted, 5e-3)
    np.testing.assert_allclose(other.pos, src.pos, atol=1e-9)
    np.testing.assert_array_equal(other.region_ids, src.region_ids)
    np.testing.assert_allclose(other.normals, src.normals, atol=1e-5)
