"""Fill closed triangle surfaces into a voxel grid (vectorised ray-parity scanline test).

A voxel centre is inside a closed surface when a ray from it crosses the surface an odd number of
times. We cast one ray per grid column along the third voxel axis (all columns at once): each
triangle is projected onto the plane of the first two voxel axes, the column centres it covers are
found with exact edge functions, and the height at which the ray crosses the triangle toggles the
parity of every voxel above it. A cumulative sum along the column then gives the parity of every
voxel. Edges and vertices shared by several triangles are resolved with the *top-left rule* of
rasterisation, applied to edge functions computed once per (undirected) mesh edge, so a ray that
passes exactly through an edge or a vertex is counted once (or, at a silhouette fold, zero or two
times) -- the fill is exact for closed (watertight) surfaces, whatever the grid alignment.

Works in voxel index space, so any invertible affine (oblique grids included) is handled.
"""

from __future__ import annotations

import os

import nibabel as nib
import numpy as np

from .._validation import check_affine, check_file, check_finite

#: Largest number of (triangle, column) candidates processed at once (bounds memory use).
_CHUNK = 2_000_000


def read_surface(path: str | os.PathLike, what: str = "surface") -> tuple[np.ndarray, np.ndarray]:
    """Read a FreeSurfer triangle surface (e.g. ``bem/inner_skull.surf``).

    Parameters
    ----------
    path : path-like
        FreeSurfer binary surface file. Coordinates are FreeSurfer surface RAS (tkr RAS), mm.
    what : str
        Name used in error messages.

    Returns
    -------
    vertices : ndarray, shape (n_vertices, 3)
        Vertex coordinates in mm.
    faces : ndarray of int, shape (n_faces, 3)
        Vertex indices of each triangle.
    """
    path = check_file(path, what)
    try:
        vertices, faces = nib.freesurfer.read_geometry(str(path))
    except Exception as err:  # nibabel raises ValueError/struct.error/... on damaged files
        raise ValueError(
            f"cannot read {what} {path} as a FreeSurfer surface ({type(err).__name__}: {err}); "
            "the file is damaged or not a FreeSurfer .surf file (re-create it, e.g. with "
            "mne.bem.make_watershed_bem or mne.write_surface)."
        ) from err
    return np.asarray(vertices, dtype=float), np.asarray(faces, dtype=np.int64)


def check_closed_surface(vertices: np.ndarray, faces: np.ndarray, name: str = "surface") -> None:
    """Raise ValueError unless the triangle mesh is closed (every edge shared by two triangles).

    Parameters
    ----------
    vertices : ndarray, shape (n_vertices, 3)
        Vertex coordinates.
    faces : ndarray of int, shape (n_faces, 3)
        Triangles.
    name : str
        Name used in error messages.
    """
    vertices = np.asarray(vertices)
    faces = np.asarray(faces)
    if vertices.ndim != 2 or vertices.shape[1] != 3 or len(vertices) < 4:
        raise ValueError(
            f"{name}: vertices must have shape (n>=4, 3), got {vertices.shape}; a closed surface "
            "needs at least a tetrahedron."
        )
    check_finite(vertices, f"{name} vertices")
    if faces.ndim != 2 or faces.shape[1] != 3 or len(faces) < 4:
        raise ValueError(f"{name}: faces must have shape (n>=4, 3), got {faces.shape}.")
    if faces.dtype.kind not in "iu":
        raise ValueError(f"{name}: faces must hold integer vertex indices, got {faces.dtype}.")
    if faces.min() < 0 or faces.max() >= len(vertices):
        raise ValueError(
            f"{name}: faces refer to vertex {int(faces.max())} but there are only "
            f"{len(vertices)} vertices; the surface file is inconsistent."
        )
    if np.any((faces[:, 0] == faces[:, 1]) | (faces[:, 1] == faces[:, 2])
              | (faces[:, 0] == faces[:, 2])):
        raise ValueError(f"{name}: some triangles repeat a vertex; repair the mesh.")
    edges = np.sort(faces[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2), axis=1)
    _, counts = np.unique(edges, axis=0, return_counts=True)
    open_edges = int(np.sum(counts == 1))
    bad_edges = int(np.sum(counts > 2))
    if open_edges or bad_edges:
        raise ValueError(
            f"{name} is not a closed surface: {open_edges} edge(s) belong to a single triangle "
            f"(holes) and {bad_edges} to more than two (non-manifold). Only closed surfaces "
            "bound a volume; repair the mesh (e.g. with MeshFix, or re-create the BEM surfaces "
            "with mne.bem.make_watershed_bem / make_flash_bem)."
        )


def voxelize_surface(
    vertices: np.ndarray,
    faces: np.ndarray,
    shape: tuple[int, int, int],
    affine: np.ndarray,
    *,
    name: str = "surface",
    check: bool = True,
) -> np.ndarray:
    """Boolean mask of the voxels whose centres lie inside a closed triangle surface.

    Parameters
    ----------
    vertices : ndarray, shape (n_vertices, 3)
        Vertex coordinates in the world frame of ``affine`` (e.g. surface RAS, mm).
    faces : ndarray of int, shape (n_faces, 3)
        Triangles (any orientation; the parity test does not use it).
    shape : tuple of 3 int
        Grid shape.
    affine : ndarray, shape (4, 4)
        Voxel index → world coordinates (same units as ``vertices``).
    name : str
        Name used in error messages.
    check : bool
        Check that the surface is closed first (recommended; an open surface gives a wrong,
        streaky fill).

    Returns
    -------
    mask : ndarray of bool, shape ``shape``
        True inside. Parts of the surface outside the grid are handled correctly: a column
        crossing the surface below the grid starts inside.
    """
    vertices = np.asarray(vertices, dtype=float)
    faces = np.asarray(faces)
    shape = tuple(int(s) for s in shape)
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"shape must be three positive integers, got {shape}.")
    affine = check_affine(affine, f"{name} grid affine")
    if check:
        check_closed_surface(vertices, faces, name)
    faces = faces.astype(np.int64)
    pts = nib.affines.apply_affine(np.linalg.inv(affine), vertices)
    nx, ny, _ = shape
    toggles = np.zeros(shape, dtype=np.uint8)

    # Edge functions per undirected edge, evaluated from the lower to the higher vertex id, so
    # that the triangles sharing an edge see bit-identical values (consistent tie-breaking).
    a, b, c = faces[:, 0], faces[:, 1], faces[:, 2]
    area2 = _cross2(pts[b] - pts[a], pts[c] - pts[a])
    keep = area2 != 0.0  # triangles seen edge-on by the rays contribute no crossing
    a, b, c, area2 = a[keep], b[keep], c[keep], area2[keep]
    flip = area2 < 0  # make every projected triangle counter-clockwise
    b, c = np.where(flip, c, b), np.where(flip, b, c)
    tri = np.stack([a, b, c], axis=1)
    xy = pts[:, :2]
    lo = np.ceil(xy[tri].min(axis=1)).astype(np.int64)
    hi = np.floor(xy[tri].max(axis=1)).astype(np.int64)
    lo = np.maximum(lo, 0)
    hi = np.minimum(hi, [nx - 1, ny - 1])
    ncol = np.maximum(hi - lo + 1, 0)
    counts = ncol[:, 0] * ncol[:, 1]
    has = counts > 0
    tri, lo, ncol, counts = tri[has], lo[has], ncol[has], counts[has]
    if len(tri) == 0:
        return np.zeros(shape, dtype=bool)

    bounds = np.concatenate([[0], np.cumsum(counts)])
    start = 0
    while start < len(tri):
        stop = int(np.searchsorted(bounds, bounds[start] + _CHUNK, side="right")) - 1
        stop = max(stop, start + 1)
        sl = slice(start, stop)
        _toggle_chunk(pts, tri[sl], lo[sl], ncol[sl], counts[sl], toggles)
        start = stop
    parity = np.cumsum(toggles, axis=2, dtype=np.uint32) & 1
    return parity.astype(bool)


def _cross2(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """z component of the cross product of the 2-D parts of ``u`` and ``v``."""
    return u[..., 0] * v[..., 1] - u[..., 1] * v[..., 0]


def _toggle_chunk(
    pts: np.ndarray,
    tri: np.ndarray,
    lo: np.ndarray,
    ncol: np.ndarray,
    counts: np.ndarray,
    toggles: np.ndarray,
) -> None:
    """Add the ray crossings of a chunk of (counter-clockwise) triangles to ``toggles``."""
    nz = toggles.shape[2]
    n = int(counts.sum())
    owner = np.repeat(np.arange(len(tri)), counts)
    offset = np.arange(n) - np.repeat(np.cumsum(counts) - counts, counts)
    ny_c = ncol[owner, 1]
    qi = lo[owner, 0] + offset // ny_c
    qj = lo[owner, 1] + offset % ny_c
    q = np.stack([qi, qj], axis=1).astype(float)
    t = tri[owner]
    inside = np.ones(n, dtype=bool)
    weights = []
    for k in range(3):  # directed edge t[k] -> t[k+1], opposite vertex t[k+2]
        u, v = t[:, k], t[:, (k + 1) % 3]
        low = np.minimum(u, v)
        high = np.maximum(u, v)
        sign = np.where(u == low, 1.0, -1.0)
        d = pts[high, :2] - pts[low, :2]
        w = sign * _cross2(d, q - pts[low, :2])
        dx, dy = sign * d[:, 0], sign * d[:, 1]
        top_left = (dy < 0) | ((dy == 0) & (dx < 0))
        inside &= (w > 0) | ((w == 0) & top_left)
        weights.append(w)
    if not inside.any():
        return
    w0, w1, w2 = (w[inside] for w in weights)  # w_k is opposite vertex t[k+2]
    t = t[inside]
    z = pts[t[:, 2], 2] * w0 + pts[t[:, 0], 2] * w1 + pts[t[:, 1], 2] * w2
    z /= w0 + w1 + w2
    first_above = np.floor(z).astype(np.int64) + 1  # first voxel centre strictly above
    ok = first_above < nz
    first_above = np.maximum(first_above[ok], 0)
    np.add.at(toggles, (qi[inside][ok], qj[inside][ok], first_above), 1)


def resample_nearest(
    data: np.ndarray,
    src_affine: np.ndarray,
    shape: tuple[int, int, int],
    affine: np.ndarray,
    fill: int = 0,
) -> np.ndarray:
    """Nearest-neighbour resampling of a label volume onto another grid (same world frame).

    Parameters
    ----------
    data : ndarray, shape (sx, sy, sz)
        Source volume (labels: no interpolation).
    src_affine : ndarray, shape (4, 4)
        Source voxel → world.
    shape : tuple of 3 int
        Target grid shape.
    affine : ndarray, shape (4, 4)
        Target voxel → world (same world frame and units as ``src_affine``).
    fill : int
        Value for target voxels outside the source grid.

    Returns
    -------
    ndarray, shape ``shape``, same dtype as ``data``.
    """
    data = np.asanyarray(data)
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise ValueError(f"expected a 3-D volume, got shape {data.shape}.")
    m = np.linalg.inv(check_affine(src_affine, "source affine")) @ check_affine(affine)
    shape = tuple(int(s) for s in shape)
    lin = m[:3, :3]
    nonzero = np.abs(lin) > 1e-9 * np.abs(lin).max()
    if np.all(nonzero.sum(axis=0) == 1) and np.all(nonzero.sum(axis=1) == 1):
        return _resample_separable(data, m, shape, fill)
    out = np.full(shape, fill, dtype=data.dtype)
    src_shape = np.array(data.shape)
    jk = np.indices(shape[1:]).reshape(2, -1).T.astype(float)
    base = jk @ m[:3, 1:3].T + m[:3, 3]
    for i in range(shape[0]):
        # nearest source voxel (half-up rounding), done slice by slice to bound memory
        idx = np.floor(base + i * m[:3, 0] + 0.5).astype(np.int64)
        ok = np.all((idx >= 0) & (idx < src_shape), axis=1)
        out[i].reshape(-1)[ok] = data[idx[ok, 0], idx[ok, 1], idx[ok, 2]]
    return out


def _resample_separable(data: np.ndarray, m: np.ndarray, shape: tuple, fill: int) -> np.ndarray:
    """Nearest-neighbour resampling between grids with parallel (permuted/flipped) axes."""
    out_axis = [int(np.argmax(np.abs(m[s, :3]))) for s in range(3)]
    idx, valid = [], []
    for s, a in enumerate(out_axis):
        k = np.floor(m[s, a] * np.arange(shape[a]) + m[s, 3] + 0.5).astype(np.int64)
        ok = (k >= 0) & (k < data.shape[s])
        idx.append(np.where(ok, k, 0))
        valid.append(ok)
    picked = data[np.ix_(*idx)]  # axes in source order
    mask = valid[0][:, None, None] & valid[1][None, :, None] & valid[2][None, None, :]
    picked = np.where(mask, picked, np.asarray(fill, dtype=data.dtype))
    order = [out_axis.index(a) for a in range(3)]
    return np.ascontiguousarray(np.transpose(picked, order))

