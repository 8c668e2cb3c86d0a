"""The EEG lead field of a head anywhere on its scalp, for any electrode set.

The FEM transfer matrix is solved once for a dense set of scalp positions that covers every
position EEG caps use (:func:`dense_scalp_positions`: the union of MNE's built-in montages
registered to the head, 10-05 and the low temporal, cheek and neck rows of the 256-channel nets,
sampled every ``spacing`` metres by farthest-point sampling). The gain of an electrode anywhere
in that region is then a moving-least-squares quadratic of the dense positions' gains in the
tangent plane of the scalp (:func:`scalp_weights`), so the lead field of a new cap costs a sparse
product instead of one FEM solve per electrode.

The dense gain is stored as a truncated singular-value basis (positions × K and K × sources,
float16), which keeps the shipped file small; :class:`ScalpLeadField` rebuilds it.

The reference of the dense gain does not matter: the interpolation weights of every electrode
sum to one, so a potential common to all dense positions reaches every electrode unchanged and
cancels in the electrode set's own average reference.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
from scipy import sparse
from scipy.spatial import cKDTree

from .._io import atomic_path, check_overwrite
from .._logging import logger
from .._validation import check_finite
from ..sensors.scalp import tangent_frames
from ..sources import SourceSpace

__all__ = [
    "COVERAGE_MONTAGES",
    "ScalpLeadField",
    "coverage_positions",
    "dense_scalp_positions",
    "read_scalp_leadfield",
    "scalp_weights",
]

#: MNE's built-in montages whose union (registered to the head) defines the scalp region the
#: dense positions cover: 10-05 (345 positions), BioSemi up to 256, EasyCap, MGH and the EGI
#: 256 nets with their cheek and neck rows.
COVERAGE_MONTAGES = (
    "standard_1005", "biosemi256", "biosemi160", "easycap-M1", "easycap-M10", "easycap-M43",
    "EGI_256", "GSN-HydroCel-256", "GSN-HydroCel-128", "GSN-HydroCel-64_1.0",
    "GSN-HydroCel-32", "mgh70", "brainproducts-RNP-BA-128",
)

FORMAT = "deepesi-scalp-leadfield"


def coverage_positions(head: Any, montages: Sequence[str] = COVERAGE_MONTAGES) -> np.ndarray:
    """Electrodes (n, 3; MRI frame, m) of ``montages`` registered to and projected onto the
    scalp of ``head`` (fiducial registration with automatic scaling, as for any cap)."""
    from .._logging import use_log_level
    from ..sensors import make_eeg_sensors

    pos = []
    with use_log_level("ERROR"):
        for name in montages:
            pos.append(make_eeg_sensors(head, name).eeg_pos_mri)
    return np.concatenate(pos)


def farthest_points(points: np.ndarray, start: int, *, spacing: float = 0.0,
                    n: int | None = None) -> np.ndarray:
    """Indices picked by farthest-point sampling from ``start``: until every point lies within
    ``spacing`` of a pick, or ``n`` picks (deterministic: ties go to the lowest index)."""
    dmin = np.linalg.norm(points - points[start], axis=1)
    picked = [start]
    while n is None or len(picked) < n:
        i = int(np.argmax(dmin))
        if dmin[i] < spacing or dmin[i] == 0:
            break
        picked.append(i)
        np.minimum(dmin, np.linalg.norm(points - points[i], axis=1), out=dmin)
    return np.array(picked)


def dense_scalp_positions(
    head: Any, spacing: float = 8e-3, *, margin: float = 10e-3,
    montages: Sequence[str] = COVERAGE_MONTAGES, cover: np.ndarray | None = None,
) -> np.ndarray:
    """Dense scalp positions (N, 3; MRI frame, m) covering the region EEG caps use.

    The candidates are the centres of the head's outer voxel faces within ``margin`` of an
    electrode of ``montages`` (registered to the head); farthest-point sampling from the one
    nearest the vertex keeps every candidate within ``spacing`` of a position.

    Parameters
    ----------
    head : HeadModel
    spacing : float
        Largest distance (m) from any covered scalp point to its nearest dense position; the
        positions are about ``spacing`` apart.
    margin : float
        How far (m) beyond the montages' electrodes the region reaches.
    montages : sequence of str
        MNE built-in montages defining the region (:data:`COVERAGE_MONTAGES`).
    cover : ndarray, shape (n, 3) | None
        Electrode positions (MRI, m) defining the region instead of ``montages``.
    """
    from ..anatomy.masks import boundary_faces, head_mask

    if not 2e-3 <= spacing <= 50e-3:
        raise ValueError(f"spacing must be between 2 and 50 mm (in metres), got {spacing!r}.")
    faces = boundary_faces(head_mask(head), head.affine_m)
    cover = coverage_positions(head, montages) if cover is None else np.asarray(cover, float)
    dist, _ = cKDTree(cover).query(faces, distance_upper_bound=margin)
    cand = faces[np.isfinite(dist)]
    # a regular sub-lattice of the faces first (one per spacing/4 cube): same coverage, less work
    key = np.floor(cand / (spacing / 4)).astype(np.int64)
    _, first = np.unique(key, axis=0, return_index=True)
    cand = cand[np.sort(first)]
    start = int(np.argmax(cand[:, 2] - 1e-3 * np.abs(cand[:, 0]) - 1e-3 * np.abs(cand[:, 1])))
    return cand[farthest_points(cand, start, spacing=spacing)]


def scalp_weights(
    dense_pos: np.ndarray, target_pos: np.ndarray, centre: np.ndarray, *,
    n_neighbors: int = 16, max_distance: float | None = None, tree: cKDTree | None = None,
) -> sparse.csr_matrix:
    """Moving-least-squares weights (n_target, N) from dense scalp positions to targets.

    Each target's value is the value at the target of the weighted least-squares quadratic
    (1, u, v, u², uv, v²) of its ``n_neighbors`` nearest dense positions, ``u, v`` their
    offsets in the plane normal to the ray from ``centre`` (Gaussian weights on a width of
    half the distance to the farthest neighbour). The weights of a target sum to one.

    Parameters
    ----------
    dense_pos : ndarray, shape (N, 3)
    target_pos : ndarray, shape (n, 3)
        On the scalp (m, same frame).
    centre : ndarray, shape (3,)
        A point inside the head (rays from it meet the scalp once).
    n_neighbors : int
    max_distance : float | None
        Refuse targets farther (m) than this from every dense position (outside the covered
        region, where the quadratic would extrapolate). None: no check.
    tree : scipy.spatial.cKDTree | None
        A KD-tree of ``dense_pos``, when the caller keeps one.
    """
    dense_pos = np.asarray(dense_pos, float)
    target = check_finite(np.atleast_2d(np.asarray(target_pos, float)), "electrode positions")
    k = min(int(n_neighbors), len(dense_pos))
    if k < 6:
        raise ValueError(f"need at least 6 dense positions for a quadratic, got {k}.")
    tree = cKDTree(dense_pos) if tree is None else tree
    dist, idx = tree.query(target, k=k)
    if max_distance is not None and np.any(dist[:, 0] > max_distance):
        far = np.flatnonzero(dist[:, 0] > max_distance)
        raise ValueError(
            f"{far.size} electrode(s) lie outside the scalp region the dense lead field covers "
            f"(nearest dense position {dist[far[0], 0] * 1e3:.0f} mm from electrode #{far[0]}, "
            f"allowed {max_distance * 1e3:.0f} mm); drop them or check their positions."
        )
    normal = target - np.asarray(centre, float)
    normal /= np.linalg.norm(normal, axis=1, keepdims=True)
    e1, e2 = tangent_frames(normal)
    off = dense_pos[idx] - target[:, None, :]  # (n, k, 3)
    scale = dist[:, -1:]  # (n, 1)
    u = np.einsum("nkd,nd->nk", off, e1) / scale
    v = np.einsum("nkd,nd->nk", off, e2) / scale
    basis = np.stack([np.ones_like(u), u, v, u * u, u * v, v * v], axis=2)  # (n, k, 6)
    w = np.exp(-((dist / (0.5 * scale)) ** 2))  # (n, k)
    gram = np.einsum("nki,nk,nkj->nij", basis, w, basis) + 1e-10 * np.eye(6)[None]
    e0 = np.zeros((len(target), 6, 1))
    e0[:, 0, 0] = 1.0
    coef = np.linalg.solve(gram, e0)[..., 0]  # (n, 6): row 0 of gram⁻¹
    weights = w * np.einsum("nki,ni->nk", basis, coef)  # (n, k)
    rows = np.repeat(np.arange(len(target)), k)
    return sparse.csr_matrix((weights.ravel(), (rows, idx.ravel())),
                             shape=(len(target), len(dense_pos)))


@dataclass(frozen=True, eq=False)
class ScalpLeadField:
    """The EEG gain of a head at a dense set of scalp positions, and of any electrode set.

    Parameters
    ----------
    positions : ndarray, shape (N, 3)
        Dense scalp positions (m, MRI frame).
    basis : ndarray, shape (N, K)
        Left singular vectors of the dense gain (per position).
    coefficients : ndarray, shape (K, n_sources, 3)
        Singular values times right singular vectors: ``gain = basis @ coefficients``.
    source_space : SourceSpace
    centre : ndarray, shape (3,)
        Head centre (m, MRI) the scalp's tangent planes are taken about.
    meta : dict
        Provenance (head hash, FEM voxel size, spacing, truncation error).
    """

    positions: np.ndarray
    basis: np.ndarray
    coefficients: np.ndarray
    source_space: SourceSpace
    centre: np.ndarray
    meta: dict = field(default_factory=dict)

    @classmethod
    def from_gain(cls, positions: np.ndarray, gain: np.ndarray, source_space: SourceSpace,
                  centre: np.ndarray, *, rel_error: float = 1e-3,
                  meta: dict | None = None) -> ScalpLeadField:
        """Compress a dense gain (N, n_sources, 3) to the fewest singular components whose
        reconstruction error is at most ``rel_error`` (Frobenius, relative) after removing the
        mean over positions (a common reference, which no electrode set sees)."""
        g = np.asarray(gain, float).reshape(len(positions), -1)
        g = g - g.mean(axis=0, keepdims=True)
        u, s, vt = np.linalg.svd(g, full_matrices=False)
        # error[j]: the relative error with j + 1 components (0 with all of them)
        error = np.r_[np.sqrt(np.cumsum((s**2)[::-1])[::-1])[1:] / np.sqrt(np.sum(s**2)), 0.0]
        k = int(np.argmax(error <= rel_error)) + 1
        meta = dict(meta or {})
        meta.update({"n_components": k, "truncation_rel_error": float(error[k - 1])})
        coef = (s[:k, None] * vt[:k]).reshape(k, source_space.n_sources, 3)
        return cls(np.asarray(positions, float), u[:, :k].astype(np.float32),
                   coef.astype(np.float32), source_space, np.asarray(centre, float), meta)

    @property
    def n_positions(self) -> int:
        """Number of dense scalp positions."""
        return len(self.positions)

    @cached_property
    def _tree(self) -> cKDTree:
        return cKDTree(self.positions)

    @cached_property
    def spacing(self) -> float:
        """Median distance (m) from a dense position to its nearest neighbour."""
        d, _ = self._tree.query(self.positions, k=2)
        return float(np.median(d[:, 1]))

    def dense_gain(self, dtype: Any = np.float32) -> np.ndarray:
        """The gain at the dense positions (N, n_sources, 3), mean over positions removed."""
        k = self.basis.shape[1]
        flat = self.basis.astype(dtype) @ self.coefficients.reshape(k, -1).astype(dtype)
        return flat.reshape(self.n_positions, self.source_space.n_sources, 3)

    def weights(self, pos_mri: np.ndarray, *, max_distance: float | None = None
                ) -> sparse.csr_matrix:
        """Interpolation weights (n, N) of electrodes at ``pos_mri`` (on the scalp, m, MRI);
        electrodes farther than ``max_distance`` (default 2.5 dense spacings) from every dense
        position are refused."""
        limit = 2.5 * self.spacing if max_distance is None else max_distance
        return scalp_weights(self.positions, pos_mri, self.centre, max_distance=limit,
                             tree=self._tree)

    def gain_at(self, pos_mri: np.ndarray, *, reference: str = "average") -> np.ndarray:
        """EEG gain (n, n_sources, 3) of electrodes at ``pos_mri``, average-referenced over
        them (``reference='average'``) or as stored (``'none'``, an arbitrary common
        reference)."""
        if reference not in ("average", "none"):
            raise ValueError(f"reference must be 'average' or 'none', got {reference!r}.")
        w = self.weights(pos_mri)
        k = self.basis.shape[1]
        flat = np.asarray(w @ self.basis.astype(np.float64)) @ self.coefficients.reshape(k, -1)
        gain = flat.reshape(len(w.indptr) - 1, self.source_space.n_sources, 3).astype(float)
        if reference == "average":
            gain -= gain.mean(axis=0, keepdims=True)
        return gain

    def leadfield(self, sensors: Any) -> Any:
        """The :class:`~deepesi.forward.LeadField` of an EEG :class:`~deepesi.sensors.Sensors`
        set placed on this head (average reference), interpolated on the scalp."""
        from .leadfield import LeadField

        gain = self.gain_at(sensors.eeg_pos_mri)
        meta = {"scalp_leadfield": {k: self.meta.get(k) for k in ("head_hash", "fem_voxel_mm",
                                                                   "n_components")},
                "sensors_hash": sensors.hash()}
        return LeadField(gain, list(sensors.eeg_names), ["eeg"] * sensors.n_eeg,
                         self.source_space, info=sensors.info, trans=sensors.trans, meta=meta)

    # ------------------------------------------------------------------ I/O
    def save(self, fname: str | os.PathLike, overwrite: bool = False, *,
             max_part_mb: float = 7.5) -> list[Path]:
        """Write the compressed dense lead field (float16) as ``.npz``.

        The coefficients are split along the source points into parts of at most
        ``max_part_mb`` (``<stem>-part<k>.npz`` beside ``fname``, which lists them), so that
        no file of a shipped package exceeds its size limit. Returns the files written.
        """
        fname = Path(fname)
        if fname.suffix != ".npz":
            raise ValueError(f"a scalp lead field is written as .npz, got {fname.name!r}.")
        coef = self.coefficients.astype(np.float16)
        n_src = coef.shape[1]
        n_parts = max(1, int(np.ceil(coef.nbytes / (max_part_mb * 1e6))))
        bounds = np.linspace(0, n_src, n_parts + 1).round().astype(int)
        parts = [fname.with_name(f"{fname.stem}-part{k + 1}.npz") for k in range(n_parts)]
        if n_parts == 1:
            parts = []
        for path in [fname, *parts]:
            check_overwrite(path, overwrite)
        written = []
        for k, path in enumerate(parts):
            with atomic_path(path, overwrite=overwrite) as tmp, open(tmp, "wb") as fh:
                np.savez_compressed(fh, coefficients=coef[:, bounds[k]:bounds[k + 1]])
            written.append(path)
        main = {"coefficients": coef} if not parts else {
            "parts": np.array([p.name for p in parts]), "part_bounds": bounds}
        with atomic_path(fname, overwrite=overwrite) as tmp, open(tmp, "wb") as fh:
            np.savez_compressed(
                fh, format=np.array(FORMAT), positions=self.positions,
                basis=self.basis.astype(np.float16), centre=self.centre,
                meta=np.array(json.dumps(self.meta)),
                source_space_hash=np.array(self.source_space.hash()), **main,
            )
        logger.info("wrote %s (%d positions, %d components, %d part file(s))", fname,
                    self.n_positions, self.basis.shape[1], len(parts))
        return [fname, *written]

    def __repr__(self) -> str:
        return (f"<ScalpLeadField | {self.n_positions} scalp positions "
                f"({self.spacing * 1e3:.1f} mm apart), {self.basis.shape[1]} components, "
                f"{self.source_space.n_sources} sources>")


def read_scalp_leadfield(fname: str | os.PathLike, source_space: SourceSpace) -> ScalpLeadField:
    """Read a :class:`ScalpLeadField` written by :meth:`ScalpLeadField.save` for
    ``source_space`` (checked by hash)."""
    from .._validation import check_file

    fname = check_file(fname, "scalp lead field")
    with np.load(fname, allow_pickle=False) as data:
        if "format" not in data or str(data["format"]) != FORMAT:
            raise ValueError(f"{fname} is not a deepesi scalp lead field (.npz from "
                             "ScalpLeadField.save).")
        if str(data["source_space_hash"]) != source_space.hash():
            raise ValueError(f"{fname} was computed for another source space; pass the one "
                             "it was built for.")
        if "parts" in data:
            pieces = []
            for name in data["parts"]:
                part = check_file(fname.with_name(str(name)), "scalp lead field part")
                with np.load(part, allow_pickle=False) as p:
                    pieces.append(p["coefficients"].astype(np.float32))
            coef = np.concatenate(pieces, axis=1)
        else:
            coef = data["coefficients"].astype(np.float32)
        if coef.shape[1:] != (source_space.n_sources, 3):
            raise ValueError(f"{fname}: coefficients for {coef.shape[1]} sources, the source "
                             f"space has {source_space.n_sources}.")
        return ScalpLeadField(
            data["positions"].astype(float), data["basis"].astype(np.float32), coef,
            source_space, data["centre"].astype(float), json.loads(str(data["meta"])),
        )
