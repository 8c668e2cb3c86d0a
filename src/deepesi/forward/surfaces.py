"""Closed triangle surfaces (inner skull, outer skull, scalp) extracted from a label volume.

Each surface is an icosahedral sphere whose vertices are moved along rays from a centre point
to the outermost crossing of a tissue mask's boundary, then lightly smoothed. The result is
star-shaped: its topology is fixed (always closed, manifold, outward-oriented) whatever the
segmentation looks like, which is what a boundary-element model needs. Regions of the mask that
are not visible from the centre (folds behind other parts of the mask) are bridged over, so
the surface encloses the whole mask along every ray.

The masks and the ray casting live in :mod:`deepesi.anatomy.masks` (the same ray casting
places EEG electrodes on the scalp); they are re-exported here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse

from ..anatomy.masks import (
    boundary_distance,
    boundary_faces,
    head_centre,
    head_mask,
    intracranial_mask,
    project_radially,
    radial_boundary,
    skull_mask,
)
from ..anatomy.tissues import INTRACRANIAL_TISSUES

__all__ = [
    "INTRACRANIAL_TISSUES",
    "Surface",
    "boundary_distance",
    "boundary_faces",
    "enclose_points",
    "head_centre",
    "head_mask",
    "icosphere",
    "intracranial_mask",
    "make_head_surfaces",
    "mask_surface",
    "project_radially",
    "radial_boundary",
    "skull_mask",
]


@dataclass(frozen=True)
class Surface:
    """A closed triangle surface in the MRI frame.

    Parameters
    ----------
    rr : ndarray, shape (n_vertices, 3)
        Vertex positions in metres (MRI frame).
    tris : ndarray of int, shape (n_triangles, 3)
        Triangles, counter-clockwise seen from outside (normals point outwards).
    name : str
        'inner_skull', 'outer_skull', 'head' or any label.
    centre : ndarray, shape (3,)
        The point the surface is star-shaped about (metres).
    """

    rr: np.ndarray
    tris: np.ndarray
    name: str = "surface"
    centre: np.ndarray | None = None

    @property
    def radii(self) -> np.ndarray:
        """Distance of each vertex from :attr:`centre` (metres)."""
        return np.linalg.norm(self.rr - self.centre, axis=1)

    def to_mne(self) -> dict:
        """The surface as an MNE BEM-surface dict (MRI frame, metres), without conductivity."""
        import mne
        from mne.io.constants import FIFF

        ids = {
            "inner_skull": FIFF.FIFFV_BEM_SURF_ID_BRAIN,
            "outer_skull": FIFF.FIFFV_BEM_SURF_ID_SKULL,
            "head": FIFF.FIFFV_BEM_SURF_ID_HEAD,
        }
        surf = dict(
            rr=self.rr.copy(), tris=self.tris.astype(int), ntri=len(self.tris), np=len(self.rr),
            coord_frame=FIFF.FIFFV_COORD_MRI, id=ids.get(self.name, FIFF.FIFFV_BEM_SURF_ID_UNKNOWN),
        )
        return mne.surface.complete_surface_info(surf, copy=False, verbose=False)


# ---------------------------------------------------------------------------- icosphere
def icosphere(grade: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Unit sphere triangulated by subdividing an icosahedron ``grade`` times.

    Returns
    -------
    rr : ndarray, shape (10 * 4**grade + 2, 3)
        Unit vectors.
    tris : ndarray, shape (20 * 4**grade, 3)
        Triangles oriented counter-clockwise seen from outside.
    """
    if int(grade) != grade or not 0 <= grade <= 6:
        raise ValueError(f"icosphere grade must be an integer in 0..6, got {grade}.")
    t = (1.0 + np.sqrt(5.0)) / 2.0
    rr = np.array(
        [[-1, t, 0], [1, t, 0], [-1, -t, 0], [1, -t, 0], [0, -1, t], [0, 1, t],
         [0, -1, -t], [0, 1, -t], [t, 0, -1], [t, 0, 1], [-t, 0, -1], [-t, 0, 1]], float,
    )
    tris = np.array(
        [[0, 11, 5], [0, 5, 1], [0, 1, 7], [0, 7, 10], [0, 10, 11], [1, 5, 9], [5, 11, 4],
         [11, 10, 2], [10, 7, 6], [7, 1, 8], [3, 9, 4], [3, 4, 2], [3, 2, 6], [3, 6, 8],
         [3, 8, 9], [4, 9, 5], [2, 4, 11], [6, 2, 10], [8, 6, 7], [9, 8, 1]], int,
    )
    rr /= np.linalg.norm(rr, axis=1, keepdims=True)
    for _ in range(int(grade)):
        edges = np.sort(np.concatenate([tris[:, [0, 1]], tris[:, [1, 2]], tris[:, [2, 0]]]), axis=1)
        uniq, inv = np.unique(edges, axis=0, return_inverse=True)
        mid = rr[uniq[:, 0]] + rr[uniq[:, 1]]
        mid /= np.linalg.norm(mid, axis=1, keepdims=True)
        m = inv.reshape(3, -1) + len(rr)  # midpoints of edges (01, 12, 20) per triangle
        a, b, c = tris.T
        tris = np.concatenate([
            np.stack([a, m[0], m[2]], 1), np.stack([b, m[1], m[0]], 1),
            np.stack([c, m[2], m[1]], 1), np.stack([m[0], m[1], m[2]], 1),
        ])
        rr = np.concatenate([rr, mid])
    # orient outwards
    a, b, c = rr[tris[:, 0]], rr[tris[:, 1]], rr[tris[:, 2]]
    flip = np.einsum("ij,ij->i", np.cross(b - a, c - a), a + b + c) < 0
    tris[flip] = tris[flip][:, [0, 2, 1]]
    return rr, tris


def _vertex_adjacency(n: int, tris: np.ndarray) -> sparse.csr_matrix:
    """Row-normalised vertex adjacency (mean over neighbours)."""
    i = np.concatenate([tris[:, 0], tris[:, 1], tris[:, 2], tris[:, 1], tris[:, 2], tris[:, 0]])
    j = np.concatenate([tris[:, 1], tris[:, 2], tris[:, 0], tris[:, 0], tris[:, 1], tris[:, 2]])
    adj = sparse.csr_matrix((np.ones(len(i)), (i, j)), shape=(n, n))
    adj.data[:] = 1.0
    deg = np.asarray(adj.sum(axis=1)).ravel()
    return sparse.diags(1.0 / deg) @ adj


# ---------------------------------------------------------------------------- surfaces
def mask_surface(
    mask: np.ndarray, affine_m: np.ndarray, *, centre: np.ndarray, grade: int = 4,
    smooth: int = 2, name: str = "surface",
) -> Surface:
    """A closed star-shaped surface fitted to the outer boundary of ``mask``.

    Parameters
    ----------
    mask : ndarray of bool
        The compartment (e.g. :func:`intracranial_mask`).
    affine_m : ndarray, shape (4, 4)
        Voxel → MRI affine in metres.
    centre : ndarray, shape (3,)
        Centre of the rays (metres); must lie inside the compartment.
    grade : int
        Icosahedron subdivision (4 → 2562 vertices, 5120 triangles; 3 → 642, 1280).
    smooth : int
        Iterations of radius smoothing (each: half own radius, half mean of neighbours).
    name : str
        Surface name ('inner_skull', 'outer_skull', 'head').
    """
    units, tris = icosphere(grade)
    radii = radial_boundary(mask, affine_m, centre, units)
    if np.any(np.isnan(radii)):
        raise ValueError(f"the {name} mask is empty along some rays; is the centre inside it?")
    avg = _vertex_adjacency(len(units), tris)
    for _ in range(int(smooth)):
        radii = 0.5 * radii + 0.5 * (avg @ radii)
    return Surface(centre + radii[:, None] * units, tris, name, np.asarray(centre, float))


def enclose_points(surface: Surface, points: np.ndarray, margin: float = 0.002) -> Surface:
    """Push the surface outwards so every point lies at least ``margin`` (m) inside it.

    Each vertex's radius becomes at least the radius of the points within the angular
    neighbourhood of the vertex (about twice the mesh spacing) plus ``margin``.
    """
    centre = surface.centre
    units = (surface.rr - centre) / surface.radii[:, None]
    vec = np.asarray(points, float) - centre
    r_pts = np.linalg.norm(vec, axis=1)
    u_pts = vec / np.maximum(r_pts, 1e-12)[:, None]
    spacing = np.sqrt(4 * np.pi / len(units))  # mean angular vertex spacing (radians)
    cos_lim = np.cos(2.0 * spacing)
    radii = surface.radii.copy()
    for start in range(0, len(units), 512):
        cos = units[start : start + 512] @ u_pts.T
        near = np.where(cos >= cos_lim, r_pts[None, :] + margin, 0.0)
        if near.size:
            radii[start : start + 512] = np.maximum(radii[start : start + 512], near.max(axis=1))
    return Surface(centre + radii[:, None] * units, surface.tris, surface.name, centre)


def make_head_surfaces(head, *, grade: int = 4, smooth: int = 2, min_gap: float = 0.001) -> dict:
    """Inner skull, outer skull and scalp surfaces of a head model, nested with ``min_gap`` (m).

    Returns
    -------
    surfaces : dict of str → Surface
        Keys 'inner_skull', 'outer_skull', 'head'; all share one centre and triangulation.
    """
    centre = head_centre(head)
    aff = head.affine_m
    inner = mask_surface(intracranial_mask(head), aff, centre=centre, grade=grade,
                         smooth=smooth, name="inner_skull")
    outer = mask_surface(skull_mask(head), aff, centre=centre, grade=grade,
                         smooth=smooth, name="outer_skull")
    scalp = mask_surface(head_mask(head), aff, centre=centre, grade=grade,
                         smooth=smooth, name="head")
    units = (inner.rr - centre) / inner.radii[:, None]
    r_out = np.maximum(outer.radii, inner.radii + min_gap)
    r_head = np.maximum(scalp.radii, r_out + min_gap)
    return {
        "inner_skull": inner,
        "outer_skull": Surface(centre + r_out[:, None] * units, inner.tris, "outer_skull", centre),
        "head": Surface(centre + r_head[:, None] * units, inner.tris, "head", centre),
    }
