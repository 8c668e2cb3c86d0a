"""Validation of the FEM EEG forward against MNE's boundary-element forward on the same surfaces.

A 3-layer BEM (brain / skull / scalp, each compartment homogeneous) is the volume conductor MNE
solves. :func:`three_layer_head_from_surfaces` voxelises the *same* three closed surfaces into a
:class:`~deepesi.anatomy.HeadModel` with the same conductivities, so that the FEM and the BEM
solve the same physical problem and differ only by their discretisations;
:func:`mne_bem_eeg_leadfield` computes MNE's lead field for given electrodes and sources in the
MRI frame, and :func:`compare_leadfields` gives the per-source agreement (correlation, RDM, MAG).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from .._validation import check_finite
from ..anatomy.headmodel import HeadModel
from ..anatomy.tissues import TissueTable
from ..anatomy.voxelize import check_closed_surface, read_surface, voxelize_surface

#: CHARM labels used for the three compartments (brain as grey matter, skull as bone, scalp).
BRAIN_LABEL, SKULL_LABEL, SCALP_LABEL = 2, 4, 5
#: Percentiles reported by :func:`compare_leadfields`.
SUMMARY_PERCENTILES = (5, 25, 50, 75, 95)

SurfaceLike = str | os.PathLike | tuple[np.ndarray, np.ndarray]


def _as_surface(surf: SurfaceLike, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(vertices mm, faces) from a FreeSurfer file or a (vertices, faces) pair in mm."""
    if isinstance(surf, str | os.PathLike):
        verts, faces = read_surface(surf, name)
    elif isinstance(surf, tuple | list) and len(surf) == 2:
        verts = np.asarray(surf[0], dtype=float)
        faces = np.asarray(surf[1])
    else:
        raise TypeError(
            f"{name} must be a FreeSurfer surface file or a (vertices_mm, faces) pair, got "
            f"{type(surf).__name__}."
        )
    check_closed_surface(verts, faces, name)
    extent = float(np.ptp(verts, axis=0).max())
    if not 20.0 <= extent <= 1000.0:
        raise ValueError(
            f"{name} spans {extent:g} along its largest axis; surfaces must be given in mm "
            "(a head is 100-250 mm across). Multiply metre coordinates by 1000."
        )
    return verts, faces.astype(np.int64)


def three_layer_head_from_surfaces(
    inner_skull: SurfaceLike,
    outer_skull: SurfaceLike,
    outer_skin: SurfaceLike,
    *,
    voxel_size: float,
    conductivities: Sequence[float] = (0.3, 0.006, 0.3),
    margin_vox: int = 2,
    min_layer_vox: int = 1,
    name: str = "three-layer",
) -> HeadModel:
    """Voxelise the three surfaces of a 3-layer BEM into a 3-tissue head model.

    Voxels inside ``inner_skull`` are labelled GM (brain, where sources live), voxels between
    ``inner_skull`` and ``outer_skull`` Bone, and voxels between ``outer_skull`` and
    ``outer_skin`` Scalp; conductivities are set to ``conductivities`` (MNE's defaults).

    Parameters
    ----------
    inner_skull, outer_skull, outer_skin : path-like | (vertices, faces)
        Closed surfaces, FreeSurfer files (e.g. ``bem/inner_skull.surf``) or pairs of vertex
        coordinates in **mm** (MRI / surface RAS) and triangles. The surfaces must be nested.
    voxel_size : float
        Voxel edge in mm.
    conductivities : sequence of 3 float
        Brain, skull and scalp conductivities in S/m (MNE default 0.3, 0.006, 0.3).
    margin_vox : int
        Air voxels around the scalp.
    min_layer_vox : int
        Each layer is made at least this many voxels thick (a brain voxel never touches
        scalp, a skull voxel never touches air) by giving the offending outer voxels the label
        of the layer in between. Without it a skull thinner than a voxel would open holes
        through which current bypasses it. 0 disables.
    name : str
        Head model name.

    Returns
    -------
    HeadModel
        Labels 2 (GM, brain), 4 (Bone, skull), 5 (Scalp); ``meta`` records the surfaces,
        voxel size and how many voxels the minimum-thickness rule changed.
    """
    vs = float(voxel_size)
    if not np.isfinite(vs) or not 0.2 <= vs <= 20.0:
        raise ValueError(f"voxel_size must be in mm, between 0.2 and 20, got {voxel_size!r}.")
    sig = np.asarray(conductivities, dtype=float)
    if sig.shape != (3,) or not np.all(np.isfinite(sig)) or np.any(sig <= 0):
        raise ValueError(
            "conductivities must be three positive numbers (brain, skull, scalp) in S/m, got "
            f"{conductivities!r}."
        )
    if int(min_layer_vox) != min_layer_vox or min_layer_vox < 0:
        raise ValueError(f"min_layer_vox must be an integer >= 0, got {min_layer_vox!r}.")
    surfs = {
        "inner_skull": _as_surface(inner_skull, "inner_skull"),
        "outer_skull": _as_surface(outer_skull, "outer_skull"),
        "outer_skin": _as_surface(outer_skin, "outer_skin"),
    }
    skin_v = surfs["outer_skin"][0]
    lo = skin_v.min(axis=0) - (margin_vox + 1) * vs
    hi = skin_v.max(axis=0) + (margin_vox + 1) * vs
    shape = tuple(int(n) for n in np.ceil((hi - lo) / vs).astype(int) + 1)
    affine = np.diag([vs, vs, vs, 1.0])
    affine[:3, 3] = lo
    masks = {k: voxelize_surface(v, f, shape, affine, name=k, check=False)
             for k, (v, f) in surfs.items()}
    for inner, outer in (("inner_skull", "outer_skull"), ("outer_skull", "outer_skin")):
        outside = masks[inner] & ~masks[outer]
        if outside.sum() > 0.01 * masks[inner].sum():
            raise ValueError(
                f"{inner} is not inside {outer}: {outside.sum()} of its {masks[inner].sum()} "
                "voxels lie outside; pass the surfaces in the order inner_skull, outer_skull, "
                "outer_skin and check that they are nested."
            )
    labels = np.zeros(shape, np.uint8)
    labels[masks["outer_skin"] | masks["outer_skull"] | masks["inner_skull"]] = SCALP_LABEL
    labels[masks["outer_skull"] | masks["inner_skull"]] = SKULL_LABEL
    labels[masks["inner_skull"]] = BRAIN_LABEL
    changed = {"skull": 0, "scalp": 0}
    if min_layer_vox:
        struct = ndimage.generate_binary_structure(3, 1)
        near_brain = ndimage.binary_dilation(labels == BRAIN_LABEL, struct,
                                             iterations=int(min_layer_vox))
        fix = near_brain & ((labels == SCALP_LABEL) | (labels == 0))
        labels[fix] = SKULL_LABEL
        changed["skull"] = int(fix.sum())
        near_skull = ndimage.binary_dilation(labels == SKULL_LABEL, struct,
                                             iterations=int(min_layer_vox))
        fix = near_skull & (labels == 0)
        labels[fix] = SCALP_LABEL
        changed["scalp"] = int(fix.sum())
    table = TissueTable.charm().with_conductivities(
        {BRAIN_LABEL: sig[0], SKULL_LABEL: sig[1], SCALP_LABEL: sig[2]}
    ).subset((BRAIN_LABEL, SKULL_LABEL, SCALP_LABEL))
    meta = {
        "reader": "deepesi.forward.validation.three_layer_head_from_surfaces",
        "surfaces": {k: (str(s) if isinstance(s, str | os.PathLike) else "array")
                     for k, s in (("inner_skull", inner_skull), ("outer_skull", outer_skull),
                                  ("outer_skin", outer_skin))},
        "voxel_size_mm": vs,
        "conductivities": sig.tolist(),
        "min_layer_vox": int(min_layer_vox),
        "voxels_relabelled_for_min_thickness": changed,
    }
    return HeadModel(labels, affine, table, name=name, meta=meta)


# ---------------------------------------------------------------------- surface geometry
def closest_points_on_surface(
    points: np.ndarray, vertices: np.ndarray, faces: np.ndarray, *, chunk: int = 64
) -> tuple[np.ndarray, np.ndarray]:
    """Closest point of a triangle mesh to each point (exact point-triangle distance).

    Parameters
    ----------
    points : ndarray, shape (n, 3)
        Query points (same units as ``vertices``).
    vertices : ndarray, shape (n_vertices, 3)
        Mesh vertices.
    faces : ndarray of int, shape (n_faces, 3)
        Triangles.
    chunk : int
        Points processed at once (memory: ``chunk x n_faces`` triangles).

    Returns
    -------
    closest : ndarray, shape (n, 3)
        Closest points on the surface.
    distance : ndarray, shape (n,)
        Distances to them.
    """
    pts = np.atleast_2d(np.asarray(points, dtype=float))
    if pts.ndim != 2 or pts.shape[1] != 3:
        raise ValueError(f"points must have shape (n, 3), got {pts.shape}.")
    check_finite(pts, "points")
    tri = np.asarray(vertices, float)[np.asarray(faces)]
    a, b, c = tri[:, 0], tri[:, 1], tri[:, 2]
    ab, ac = b - a, c - a
    d00 = np.einsum("ij,ij->i", ab, ab)
    d01 = np.einsum("ij,ij->i", ab, ac)
    d11 = np.einsum("ij,ij->i", ac, ac)
    den = d00 * d11 - d01**2
    out = np.empty_like(pts)
    dist = np.empty(len(pts))
    for s in range(0, len(pts), chunk):
        p = pts[s:s + chunk, None, :]
        ap = p - a
        d20 = np.einsum("pij,ij->pi", ap, ab)
        d21 = np.einsum("pij,ij->pi", ap, ac)
        # barycentric coordinates of the projection onto each triangle's plane
        v = (d11 * d20 - d01 * d21) / den
        w = (d00 * d21 - d01 * d20) / den
        inside = (v >= 0) & (w >= 0) & (v + w <= 1)
        cand = [np.where(inside[..., None], a + v[..., None] * ab + w[..., None] * ac, np.inf)]
        # otherwise the closest point lies on one of the three edges
        for e0, e1 in ((a, b), (b, c), (c, a)):
            ed = e1 - e0
            t = np.einsum("pij,ij->pi", p - e0, ed) / np.einsum("ij,ij->i", ed, ed)
            cand.append(e0 + np.clip(t, 0.0, 1.0)[..., None] * ed)
        cand = np.stack(cand)  # (4, n_chunk, n_faces, 3)
        d2 = ((cand - p[None]) ** 2).sum(-1)
        d2 = np.where(np.isfinite(d2), d2, np.inf)
        flat = d2.transpose(1, 0, 2).reshape(len(p), -1)
        best = flat.argmin(axis=1)
        k, f = np.divmod(best, d2.shape[2])
        rows = np.arange(len(p))
        out[s:s + chunk] = cand[k, rows, f]
        dist[s:s + chunk] = np.sqrt(flat[rows, best])
    return out, dist


# ---------------------------------------------------------------------- MNE's BEM forward
def mne_bem_eeg_leadfield(
    bem_solution,
    electrodes_m: np.ndarray,
    sources_m: np.ndarray,
    *,
    ch_names: Sequence[str] | None = None,
    n_jobs: int = 1,
) -> np.ndarray:
    """MNE's EEG lead field for electrodes and dipoles given in the MRI frame.

    The MRI frame is used as MNE's head frame (identity ``trans``), so the three dipole
    orientations are the MRI x/y/z axes, exactly as in the FEM lead field. MNE projects the
    electrodes onto the BEM's scalp surface; pass positions already on it (e.g. from
    :func:`closest_points_on_surface`) to give both methods the same electrodes.

    Parameters
    ----------
    bem_solution : mne.bem.ConductorModel | path-like
        A 3-layer BEM solution (``mne.make_bem_solution`` / ``-bem-sol.fif``) in the MRI frame.
    electrodes_m : ndarray, shape (n_el, 3)
        Electrode positions, MRI frame, metres.
    sources_m : ndarray, shape (n_src, 3)
        Dipole positions, MRI frame, metres (a discrete source space is built from them).
    ch_names : sequence of str | None
        Channel names (default EEG001, ...).
    n_jobs : int
        Passed to ``mne.make_forward_solution``.

    Returns
    -------
    gain : ndarray, shape (n_el, n_src, 3)
        V/(A·m), no re-referencing (MNE's raw potential), orientation axes = MRI x/y/z.
    """
    import mne

    el = np.asarray(electrodes_m, float)
    src_pos = np.asarray(sources_m, float)
    for arr, what in ((el, "electrodes_m"), (src_pos, "sources_m")):
        if arr.ndim != 2 or arr.shape[1] != 3 or len(arr) == 0:
            raise ValueError(f"{what} must have shape (n, 3) with n >= 1, got {arr.shape}.")
        check_finite(arr, what)
        if np.abs(arr).max() > 1.0:
            raise ValueError(f"{what} has coordinates above 1 m; give metres, not mm.")
    if isinstance(bem_solution, str | os.PathLike):
        bem_solution = mne.read_bem_solution(bem_solution, verbose=False)
    if len(bem_solution["surfs"]) != 3:
        raise ValueError(
            f"bem_solution has {len(bem_solution['surfs'])} layer(s); the EEG comparison needs a "
            "3-layer BEM (inner skull, outer skull, scalp)."
        )
    names = list(ch_names) if ch_names is not None else [f"EEG{i + 1:03d}" for i in range(len(el))]
    if len(names) != len(el):
        raise ValueError(f"{len(names)} channel names for {len(el)} electrodes.")
    info = mne.create_info(names, 1000.0, "eeg")
    montage = mne.channels.make_dig_montage(dict(zip(names, el, strict=True)),
                                            coord_frame="head")
    info.set_montage(montage, verbose=False)
    nn = np.tile([0.0, 0.0, 1.0], (len(src_pos), 1))
    src = mne.setup_volume_source_space(pos=dict(rr=src_pos, nn=nn), verbose=False)
    trans = mne.transforms.Transform("head", "mri", np.eye(4))
    fwd = mne.make_forward_solution(info, trans, src, bem_solution, meg=False, eeg=True,
                                    mindist=0.0, n_jobs=n_jobs, verbose=False)
    fwd = mne.convert_forward_solution(fwd, surf_ori=False, force_fixed=False, verbose=False)
    kept = fwd["src"][0]["vertno"]
    if len(kept) != len(src_pos):
        raise ValueError(
            f"MNE dropped {len(src_pos) - len(kept)} source(s) outside the inner skull; keep "
            "the sources inside it."
        )
    gain = fwd["sol"]["data"].reshape(len(names), len(src_pos), 3)
    order = [fwd["sol"]["row_names"].index(n) for n in names]
    return np.ascontiguousarray(gain[order])


# ---------------------------------------------------------------------- agreement
def _avg_ref(g: np.ndarray) -> np.ndarray:
    return g - g.mean(axis=0, keepdims=True)


def compare_leadfields(gain_a: np.ndarray, gain_b: np.ndarray) -> dict:
    """Per-source agreement of two EEG lead fields across electrodes.

    Both are average-referenced first. For each source and each dipole axis (x, y, z) and for
    the three axes together ("all": the topographies of the three axes concatenated, i.e. the
    lead-field block of the source), it computes

    - CC: Pearson correlation of the topographies,
    - RDM: ``|| a/||a|| - b/||b|| ||`` (0 = same topography, max 2),
    - MAG: ``||a|| / ||b||`` (1 = same amplitude), with ``gain_b`` the reference.

    Parameters
    ----------
    gain_a, gain_b : ndarray, shape (n_el, n_src, 3) or (n_el, n_src)
        Lead fields with the same electrodes and sources in the same order and orientation
        frame; ``gain_b`` is the reference.

    Returns
    -------
    dict
        ``per_source``: {'x'|'y'|'z'|'all': {'cc', 'rdm', 'mag': ndarray (n_src,)}};
        ``summary``: the same keys with mean, min, max and percentiles
        (:data:`SUMMARY_PERCENTILES`) of each measure, as floats.
    """
    a = np.asarray(gain_a, dtype=float)
    b = np.asarray(gain_b, dtype=float)
    if a.ndim == 2:
        a = a[..., None]
    if b.ndim == 2:
        b = b[..., None]
    if a.shape != b.shape or a.ndim != 3:
        raise ValueError(
            f"lead fields must have the same shape (n_el, n_src[, 3]), got {np.shape(gain_a)} "
            f"and {np.shape(gain_b)}."
        )
    if a.shape[0] < 3:
        raise ValueError(f"need at least 3 electrodes to compare topographies, got {a.shape[0]}.")
    check_finite(a, "gain_a")
    check_finite(b, "gain_b")
    a, b = _avg_ref(a), _avg_ref(b)
    axes = ["x", "y", "z"] if a.shape[2] == 3 else [str(i) for i in range(a.shape[2])]
    blocks = {ax: (a[:, :, i], b[:, :, i]) for i, ax in enumerate(axes)}
    if a.shape[2] > 1:
        n_el, n_src, n_or = a.shape
        blocks["all"] = (a.transpose(0, 2, 1).reshape(n_el * n_or, n_src),
                         b.transpose(0, 2, 1).reshape(n_el * n_or, n_src))
    per_source: dict = {}
    summary: dict = {}
    for key, (u, v) in blocks.items():
        un = np.linalg.norm(u, axis=0)
        vn = np.linalg.norm(v, axis=0)
        if np.any(un == 0) or np.any(vn == 0):
            raise ValueError(f"a source has an all-zero topography along {key!r}; cannot compare.")
        uc = u - u.mean(axis=0)
        vc = v - v.mean(axis=0)
        cc = (uc * vc).sum(0) / (np.linalg.norm(uc, axis=0) * np.linalg.norm(vc, axis=0))
        rdm = np.linalg.norm(u / un - v / vn, axis=0)
        per_source[key] = {"cc": cc, "rdm": rdm, "mag": un / vn}
        summary[key] = {m: _summarise(val) for m, val in per_source[key].items()}
    return {"per_source": per_source, "summary": summary}


def _summarise(x: np.ndarray) -> dict:
    out = {"mean": float(np.mean(x)), "min": float(np.min(x)), "max": float(np.max(x))}
    for p in SUMMARY_PERCENTILES:
        out[f"p{p}"] = float(np.percentile(x, p))
    return out
