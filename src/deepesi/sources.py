"""SourceSpace: cortical and subcortical source points with regions, orientations and neighbours.

The container (:class:`SourceSpace`) is defined here; :func:`make_source_space` builds one from a
:class:`~deepesi.anatomy.HeadModel`.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import sparse

from ._io import atomic_path
from ._validation import check_file, check_finite
from .anatomy.regions import REGION_NAMES, SUBCORTICAL_REGIONS

FORMAT_VERSION = 1


@dataclass(frozen=True, eq=False)
class SourceSpace:
    """Source points in a head, in MRI (surface RAS) coordinates, metres.

    Parameters
    ----------
    pos : ndarray, shape (n_sources, 3)
        Positions in metres, MRI frame.
    region_ids : ndarray of int, shape (n_sources,)
        Region id of each point (see :mod:`deepesi.anatomy.regions`).
    normals : ndarray, shape (n_sources, 3)
        Unit normal to the cortical surface for fixed/loose-orientation points; zeros where
        the orientation is free.
    free_ori : ndarray of bool, shape (n_sources,)
        True where the dipole orientation is free (3 orthogonal dipoles), e.g. deep nuclei.
    adjacency : scipy.sparse matrix, shape (n_sources, n_sources)
        Symmetric neighbour graph (True/1 between neighbouring points), used to grow
        spatially extended sources.
    spacing : float
        Grid spacing in metres.
    loose : float
        Loose-orientation weight for the fixed-orientation (cortical) points, 0 = strictly fixed.
    head_hash : str
        Hash of the :class:`~deepesi.anatomy.HeadModel` the points were made from.
    mri_to_mni : ndarray, shape (4, 4) | None
        MRI (mm) → MNI (mm) affine, for MNI coordinates in reports.
    name : str
        Short name.
    """

    pos: np.ndarray
    region_ids: np.ndarray
    normals: np.ndarray
    free_ori: np.ndarray
    adjacency: sparse.csr_matrix
    spacing: float
    loose: float = 0.0
    head_hash: str = ""
    mri_to_mni: np.ndarray | None = None
    name: str = "sources"
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        pos = check_finite(np.asarray(self.pos, dtype=float), "source positions")
        if pos.ndim != 2 or pos.shape[1] != 3 or len(pos) == 0:
            raise ValueError(f"source positions must have shape (n_sources>0, 3), got {pos.shape}.")
        n = len(pos)
        region_ids = np.asarray(self.region_ids, dtype=np.int32)
        normals = check_finite(np.asarray(self.normals, dtype=float), "source normals")
        free_ori = np.asarray(self.free_ori, dtype=bool)
        for arr, what, shape in (
            (region_ids, "region_ids", (n,)),
            (normals, "normals", (n, 3)),
            (free_ori, "free_ori", (n,)),
        ):
            if arr.shape != shape:
                raise ValueError(f"{what} must have shape {shape}, got {arr.shape}.")
        adjacency = sparse.csr_matrix(self.adjacency, dtype=np.float32)
        if adjacency.shape != (n, n):
            raise ValueError(f"adjacency must be ({n}, {n}), got {adjacency.shape}.")
        if not 0.0 <= float(self.loose) <= 1.0:
            raise ValueError(f"loose must be in [0, 1], got {self.loose}.")
        object.__setattr__(self, "pos", pos)
        object.__setattr__(self, "region_ids", region_ids)
        object.__setattr__(self, "normals", normals)
        object.__setattr__(self, "free_ori", free_ori)
        object.__setattr__(self, "adjacency", adjacency)
        object.__setattr__(self, "spacing", float(self.spacing))
        object.__setattr__(self, "loose", float(self.loose))

    # ------------------------------------------------------------------ views
    @property
    def n_sources(self) -> int:
        """Number of source points."""
        return len(self.pos)

    def __len__(self) -> int:
        return self.n_sources

    @property
    def is_subcortical(self) -> np.ndarray:
        """Boolean mask of the points in deep structures."""
        return np.isin(self.region_ids, list(SUBCORTICAL_REGIONS))

    @property
    def region_names(self) -> list[str]:
        """Region name of each point."""
        return [REGION_NAMES.get(int(r), "unknown") for r in self.region_ids]

    def counts_per_region(self) -> dict[str, int]:
        """Number of points per region name."""
        ids, counts = np.unique(self.region_ids, return_counts=True)
        return {REGION_NAMES.get(int(i), "unknown"): int(c) for i, c in zip(ids, counts, strict=True)}

    def pos_mni(self) -> np.ndarray:
        """Positions in MNI coordinates (mm); raises if the head has no MNI transform."""
        if self.mri_to_mni is None:
            raise ValueError(
                "this source space has no MRI→MNI transform; MNI coordinates are only "
                "available for the template or heads built with one."
            )
        xyz = self.pos * 1000.0
        return xyz @ self.mri_to_mni[:3, :3].T + self.mri_to_mni[:3, 3]

    # ------------------------------------------------------------------ identity
    def hash(self) -> str:
        """Content hash (sha256 hex) of positions, regions, orientation model and adjacency."""
        h = hashlib.sha256()
        for arr in (np.round(self.pos, 9), self.region_ids, np.round(self.normals, 6), self.free_ori):
            h.update(np.ascontiguousarray(arr).tobytes())
        h.update(f"{self.loose:.6f}|{self.spacing:.9f}|{self.head_hash}".encode())
        adj = self.adjacency.tocoo()
        h.update(np.ascontiguousarray(np.stack([adj.row, adj.col])).tobytes())
        return h.hexdigest()

    def __repr__(self) -> str:
        n_deep = int(self.is_subcortical.sum())
        return (
            f"<SourceSpace {self.name!r} | {self.n_sources} points "
            f"({self.n_sources - n_deep} cortical, {n_deep} subcortical) | "
            f"{self.spacing * 1000:g} mm grid>"
        )

    # ------------------------------------------------------------------ I/O
    def save(self, path: str | os.PathLike, overwrite: bool = False) -> Path:
        """Write to a compressed ``.npz`` file (atomically)."""
        adj = self.adjacency.tocoo()
        with atomic_path(path, overwrite=overwrite) as tmp:
            with open(tmp, "wb") as fid:
                np.savez_compressed(
                    fid,
                    format_version=FORMAT_VERSION,
                    pos=self.pos,
                    region_ids=self.region_ids,
                    normals=self.normals,
                    free_ori=self.free_ori,
                    adj_row=adj.row,
                    adj_col=adj.col,
                    spacing=self.spacing,
                    loose=self.loose,
                    head_hash=self.head_hash,
                    mri_to_mni=np.full((4, 4), np.nan) if self.mri_to_mni is None else self.mri_to_mni,
                    name=self.name,
                )
        return Path(path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> SourceSpace:
        """Read a source space written by :meth:`save`."""
        path = check_file(path, "source space file")
        try:
            data = np.load(path, allow_pickle=False)
        except Exception as err:  # noqa: BLE001 - numpy raises several types for bad files
            raise ValueError(f"{path} is not a deepesi source space file: {err}") from err
        n = len(data["pos"])
        adj = sparse.coo_matrix(
            (np.ones(len(data["adj_row"]), np.float32), (data["adj_row"], data["adj_col"])),
            shape=(n, n),
        )
        m2m = data["mri_to_mni"]
        return cls(
            pos=data["pos"],
            region_ids=data["region_ids"],
            normals=data["normals"],
            free_ori=data["free_ori"],
            adjacency=adj.tocsr(),
            spacing=float(data["spacing"]),
            loose=float(data["loose"]),
            head_hash=str(data["head_hash"]),
            mri_to_mni=None if np.isnan(m2m).all() else m2m,
            name=str(data["name"]),
        )
