"""Closed triangle surfaces (inner skull, outer skull, scalp) extracted from a label volume.

Each surface is an icosahedral sphere whose vertices are moved along rays from a centre point
to the outermost crossing of a tissue mask's boundary, then lightly smoothed. The result is
star-shaped: its topology is fixed (always closed, manifold, outward-oriented) whatever the
segmentation looks like, which is what a boundary-element model needs. Regions of the mask that
are not visible from the centre (folds behind other parts of the mask) are bridged over, so
the surface encloses the whole mask along every ray.

The same ray casting places EEG electrodes on the scalp (:func:`project_radially`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage, sparse

#: Tissue labels (CHARM numbering) inside the skull: WM, GM, CSF.
INTRACRANIAL_TISSUES = ("WM", "GM", "CSF")


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


# ---------------------------------------------------------------------------- masks
def intracranial_mask(head) -> np.ndarray:
    """Voxels inside the skull: WM, GM and CSF, closed and with holes filled."""
    names = [n for n in INTRACRANIAL_TISSUES if n in head.tissues]
    if not names:
        raise ValueError(
            f"head model {head.name!r} has no WM/GM/CSF labels; cannot find the inner skull."
        )
    mask = head.tissue_mask(*names)
    if not mask.any():
        raise ValueError(f"head model {head.name!r} has no WM/GM/CSF voxels.")
    return ndimage.binary_fill_holes(ndimage.binary_closing(mask, iterations=1))


def skull_mask(head) -> np.ndarray:
    """Voxels inside the outer skull surface: the intracranial space plus all bone labels."""
    names = [n for n in ("Bone", "Compact_bone", "Spongy_bone") if n in head.tissues]
    mask = intracranial_mask(head) | (head.tissue_mask(*names) if names else False)
    return ndimage.binary_fill_holes(mask)


def head_mask(head) -> np.ndarray:
    """Voxels inside the scalp: every labelled voxel, with enclosed cavities filled."""
    return ndimage.binary_fill_holes(head.labels > 0)


def head_centre(head) -> np.ndarray:
    """The point rays are cast from (metres, MRI): centroid of the intracranial space.

    Falls back to the centroid of the whole head when there is no WM/GM/CSF.
    """
    try:
        mask = intracranial_mask(head)
    except ValueError:
        mask = head.labels > 0
    return head.voxel_to_mri(np.argwhere(mask).mean(axis=0)[None])[0]


# ---------------------------------------------------------------------------- ray casting
def radial_boundary(
    mask: np.ndarray, affine_m: np.ndarray, centre: np.ndarray, directions: np.ndarray,
    *, step: float | None = None, chunk: int = 256,
) -> np.ndarray:
    """Distance from ``centre`` to the outermost crossing of the mask boundary along each ray.

    Parameters
    ----------
    mask : ndarray of bool, shape (nx, ny, nz)
        The volume whose boundary is sought.
    affine_m : ndarray, shape (4, 4)
        Voxel → MRI affine in metres.
    centre : ndarray, shape (3,)
        Ray origin (metres).
    directions : ndarray, shape (n, 3)
        Unit ray directions.
    step : float | None
        Sampling step along the rays (metres); default a quarter of the smallest voxel edge.

    Returns
    -------
    radii : ndarray, shape (n,)
        Metres; the boundary is where the trilinearly interpolated mask crosses 0.5. NaN for
        rays that never enter the mask.
    """
    vox = np.sqrt((affine_m[:3, :3] ** 2).sum(axis=0))
    step = float(vox.min() / 4.0) if step is None else float(step)
    grid = np.meshgrid(*[[0, s - 1] for s in mask.shape], indexing="ij")
    corners = np.array(grid).reshape(3, -1).T
    corners_m = corners @ affine_m[:3, :3].T + affine_m[:3, 3]
    r_max = np.linalg.norm(corners_m - centre, axis=1).max()
    ts = np.arange(0.0, r_max + step, step)
    inv = np.linalg.inv(affine_m)
    field = mask.astype(np.float32)
    directions = np.asarray(directions, float)
    radii = np.full(len(directions), np.nan)
    for start in range(0, len(directions), chunk):
        d = directions[start : start + chunk]
        pts = centre[None, None, :] + ts[None, :, None] * d[:, None, :]  # (k, nt, 3)
        ijk = pts.reshape(-1, 3) @ inv[:3, :3].T + inv[:3, 3]
        val = ndimage.map_coordinates(field, ijk.T, order=1, mode="constant", cval=0.0)
        val = val.reshape(len(d), len(ts))
        inside = val >= 0.5
        has = inside.any(axis=1)
        last = len(ts) - 1 - np.argmax(inside[:, ::-1], axis=1)
        nxt = np.minimum(last + 1, len(ts) - 1)
        rows = np.arange(len(d))
        v0, v1 = val[rows, last], val[rows, nxt]
        frac = np.where(v0 > v1, (v0 - 0.5) / np.maximum(v0 - v1, 1e-12), 0.0)
        r = ts[last] + np.clip(frac, 0.0, 1.0) * step
        radii[start : start + chunk] = np.where(has, r, np.nan)
    return radii


def project_radially(
    points: np.ndarray, mask: np.ndarray, affine_m: np.ndarray, centre: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Move points along the ray from ``centre`` onto the outer boundary of ``mask``.

    Returns
    -------
    projected : ndarray, shape (n, 3)
        Points on the boundary (metres).
    shift : ndarray, shape (n,)
        Signed radial displacement (metres; positive = moved outwards).
    """
    points = np.asarray(points, float)
    vec = points - centre
    r = np.linalg.norm(vec, axis=1)
    if np.any(r == 0):
        raise ValueError("cannot project a point that sits at the head centre.")
    d = vec / r[:, None]
    radii = radial_boundary(mask, affine_m, centre, d)
    if np.any(np.isnan(radii)):
        raise ValueError(
            f"{int(np.isnan(radii).sum())} point(s) lie in directions where the head has no "
            "tissue; check the head model and the sensor coordinates."
        )
    return centre + radii[:, None] * d, radii - r


def boundary_faces(mask: np.ndarray, affine_m: np.ndarray) -> np.ndarray:
    """Centres (metres, MRI) of the voxel faces between the mask and the outside.

    The grid is padded with outside voxels, so a mask that touches the edge of the volume
    (a head cut at the neck) is closed by the faces of the edge.
    """
    padded = np.pad(np.asarray(mask, bool), 1)
    centres = []
    for axis in range(3):
        a = np.moveaxis(padded, axis, 0)
        change = a[1:] != a[:-1]
        idx = np.argwhere(change).astype(float)
        idx[:, 0] += 0.5  # face between index k and k+1 (padded, moved axes)
        order = np.argsort([axis] + [d for d in range(3) if d != axis])
        centres.append(idx[:, order] - 1.0)  # back to original axes and unpadded indices
    ijk = np.concatenate(centres)
    return ijk @ affine_m[:3, :3].T + affine_m[:3, 3]


def boundary_distance(points: np.ndarray, mask: np.ndarray, affine_m: np.ndarray) -> np.ndarray:
    """Distance (metres) from points to the boundary of ``mask`` (its outer voxel faces).

    Measured to the nearest centre of a boundary voxel face (see :func:`boundary_faces`), so
    it is exact to within about half a voxel.
    """
    from scipy.spatial import cKDTree

    faces = boundary_faces(mask, affine_m)
    if not len(faces):
        raise ValueError("the mask is empty; it has no boundary.")
    dist, _ = cKDTree(faces).query(np.asarray(points, float).reshape(-1, 3))
    return dist


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
