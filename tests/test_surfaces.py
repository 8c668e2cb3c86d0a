"""Closed surfaces from label masks, ray casting and boundary distances (forward.surfaces)."""

from __future__ import annotations

import numpy as np
import pytest

from deepesi.forward import surfaces as S


def _signed_volume(rr: np.ndarray, tris: np.ndarray) -> float:
    a, b, c = rr[tris[:, 0]], rr[tris[:, 1]], rr[tris[:, 2]]
    return float(np.einsum("ij,ij->i", a, np.cross(b, c)).sum() / 6.0)


@pytest.mark.parametrize("grade", [0, 1, 3])
def test_icosphere_is_closed_and_outward(grade):
    rr, tris = S.icosphere(grade)
    assert len(rr) == 10 * 4**grade + 2 and len(tris) == 20 * 4**grade
    edges = np.sort(np.concatenate([tris[:, [0, 1]], tris[:, [1, 2]], tris[:, [2, 0]]]), axis=1)
    uniq, counts = np.unique(edges, axis=0, return_counts=True)
    assert np.all(counts == 2)  # manifold: every edge shared by exactly two triangles
    assert len(rr) - len(uniq) + len(tris) == 2  # Euler characteristic of a sphere
    np.testing.assert_allclose(np.linalg.norm(rr, axis=1), 1.0)
    assert _signed_volume(rr, tris) > 0  # outward normals


def test_icosphere_rejects_bad_grade():
    with pytest.raises(ValueError, match="grade"):
        S.icosphere(7)


def test_head_surfaces_of_spheres_match_radii(sphere_head):
    surfs = S.make_head_surfaces(sphere_head, grade=3)
    np.testing.assert_allclose(surfs["inner_skull"].centre, 0.0, atol=1e-9)
    # conftest spheres: intracranial (CSF+GM) 60 mm, skull 66 mm, scalp 72 mm (4 mm voxels)
    for name, radius in (("inner_skull", 0.060), ("outer_skull", 0.066), ("head", 0.072)):
        r = surfs[name].radii
        assert abs(r.mean() - radius) < 0.002, (name, r.mean())
        assert r.std() < 0.001
        vol = _signed_volume(surfs[name].rr, surfs[name].tris)
        assert abs(vol / (4 / 3 * np.pi * radius**3) - 1) < 0.06
    assert np.all(surfs["outer_skull"].radii > surfs["inner_skull"].radii)
    assert np.all(surfs["head"].radii > surfs["outer_skull"].radii)


def test_surface_to_mne_is_complete(sphere_head):
    import mne

    surf = S.make_head_surfaces(sphere_head, grade=2)["inner_skull"].to_mne()
    assert surf["id"] == mne.io.constants.FIFF.FIFFV_BEM_SURF_ID_BRAIN
    assert surf["np"] == 162 and surf["ntri"] == 320
    # outward vertex normals point away from the centre
    assert np.all(np.einsum("ij,ij->i", surf["nn"], surf["rr"]) > 0)


def test_project_radially_lands_on_scalp(sphere_head):
    rng = np.random.default_rng(0)
    d = rng.normal(size=(50, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    pts = d * rng.uniform(0.03, 0.1, size=(50, 1))
    mask = S.head_mask(sphere_head)
    proj, shift = S.project_radially(pts, mask, sphere_head.affine_m, np.zeros(3))
    r = np.linalg.norm(proj, axis=1)
    assert np.all(np.abs(r - 0.072) < 0.004)  # within one 4 mm voxel of the 72 mm sphere
    np.testing.assert_allclose(shift, r - np.linalg.norm(pts, axis=1))
    np.testing.assert_allclose(proj / r[:, None], d, atol=1e-12)
    assert S.boundary_distance(proj, mask, sphere_head.affine_m).max() < 0.004


def test_boundary_distance_known_radii(sphere_head):
    mask = S.head_mask(sphere_head)
    pts = np.array([[0.0, 0.0, 0.092], [0.0, -0.102, 0.0], [0.05, 0.0, 0.0]])
    d = S.boundary_distance(pts, mask, sphere_head.affine_m)
    np.testing.assert_allclose(d, [0.020, 0.030, 0.022], atol=0.003)


def test_boundary_faces_close_a_cut_volume():
    # a mask filling the whole grid still has a boundary: the faces of the volume
    mask = np.ones((4, 4, 4), bool)
    faces = S.boundary_faces(mask, np.eye(4))
    assert len(faces) == 6 * 16
    assert faces.min() == -0.5 and faces.max() == 3.5


def test_enclose_points_pushes_surface_out(sphere_head):
    surf = S.make_head_surfaces(sphere_head, grade=3)["inner_skull"]
    pts = np.array([[0.0, 0.0, 0.065], [0.0, 0.0, 0.03]])
    out = S.enclose_points(surf, pts, margin=0.002)
    top = np.argmax(out.rr[:, 2])
    assert out.radii[top] >= 0.067 - 1e-9
    assert np.sum(out.radii > surf.radii + 1e-9) < 0.1 * len(surf.rr)  # only locally


def test_intracranial_mask_requires_brain():
    from deepesi.anatomy import HeadModel

    vol = np.zeros((10, 10, 10), np.uint8)
    vol[2:8, 2:8, 2:8] = 5
    with pytest.raises(ValueError, match="WM/GM/CSF"):
        S.intracranial_mask(HeadModel(vol, np.eye(4)))
