"""The :class:`SourceSpace` container: source points, regions, orientations and neighbours.

:meth:`SourceSpace.save` writes a compressed ``.npz`` file; :func:`read_source_space` (or
:meth:`SourceSpace.load`) reads it back. :func:`deepesi.sources.make_source_space` builds one
from a head model.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
from scipy import sparse
from scipy.sparse import csgraph

from .._io import atomic_path, to_jsonable
from .._validation import check_file, check_finite
from ..anatomy.regions import SUBCORTICAL_REGIONS, region_name

#: Version of the ``.npz`` layout written by :meth:`SourceSpace.save`.
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
    meta : dict
        Provenance (counts, added points, normal estimation); saved with the points as JSON.
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
        object.__setattr__(self, "meta", dict(self.meta))

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
        return [region_name(r) for r in self.region_ids]

    def counts_per_region(self) -> dict[str, int]:
        """Number of points per region name."""
        ids, counts = np.unique(self.region_ids, return_counts=True)
        return {region_name(i): int(c) for i, c in zip(ids, counts, strict=True)}

    def pos_mni(self) -> np.ndarray:
        """Positions in MNI coordinates (mm); raises if the head has no MNI transform."""
        if self.mri_to_mni is None:
            raise ValueError(
                "this source space has no MRI→MNI transform; MNI coordinates are only "
                "available for the template or heads built with one."
            )
        xyz = self.pos * 1000.0
        return xyz @ self.mri_to_mni[:3, :3].T + self.mri_to_mni[:3, 3]

    # ------------------------------------------------------------------ selections
    def subset(self, mask: np.ndarray) -> SourceSpace:
        """The source points selected by ``mask``, with the neighbour graph restricted to them.

        Parameters
        ----------
        mask : array of bool, shape (n_sources,), or array of int
            Boolean mask, or indices of the points to keep (kept in the given order).

        Returns
        -------
        SourceSpace
            A new source space; ``head_hash`` is kept and ``meta['subset_of']`` records the
            hash of this one.
        """
        mask = np.asarray(mask)
        if mask.dtype == bool:
            if mask.shape != (self.n_sources,):
                raise ValueError(
                    f"boolean mask must have shape ({self.n_sources},), got {mask.shape}."
                )
            index = np.flatnonzero(mask)
        elif mask.dtype.kind in "iu":
            index = mask.ravel().astype(np.int64)
            if index.size and (index.min() < 0 or index.max() >= self.n_sources):
                raise ValueError(
                    f"indices must be in 0..{self.n_sources - 1}, got {index.min()}..{index.max()}."
                )
            if len(np.unique(index)) != len(index):
                raise ValueError("indices passed to subset() must be unique.")
        else:
            raise TypeError(f"mask must be a boolean or integer array, got dtype {mask.dtype}.")
        if index.size == 0:
            raise ValueError("subset() would keep no source point; select at least one.")
        adj = self.adjacency[index][:, index].tocsr()
        adj.sort_indices()
        return SourceSpace(
            pos=self.pos[index],
            region_ids=self.region_ids[index],
            normals=self.normals[index],
            free_ori=self.free_ori[index],
            adjacency=adj,
            spacing=self.spacing,
            loose=self.loose,
            head_hash=self.head_hash,
            mri_to_mni=self.mri_to_mni,
            name=self.name,
            meta={**self.meta, "subset_of": self.hash()},
        )

    @cached_property
    def _edge_lengths(self) -> sparse.csr_matrix:
        """The adjacency weighted by the Euclidean length (m) of each edge."""
        adj = self.adjacency.tocoo()
        length = np.linalg.norm(self.pos[adj.row] - self.pos[adj.col], axis=1)
        # an edge of length 0 would vanish from a sparse graph; keep it tiny instead
        length = np.maximum(length, 1e-12)
        return sparse.csr_matrix((length, (adj.row, adj.col)), shape=adj.shape)

    def neighbours_within(
        self, index: int | np.ndarray, radius_m: float, *, return_distance: bool = False
    ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Points within graph distance ``radius_m`` of a seed point, along the neighbour graph.

        The graph distance is the length of the shortest path through :attr:`adjacency`, each
        edge weighted by the Euclidean distance between its points. Growing an extended source
        this way follows the cortical sheet (or stays inside a deep structure) instead of
        jumping across a sulcus or into a neighbouring nucleus, as a straight-line ball would.

        Parameters
        ----------
        index : int | array of int
            Seed point(s). With several seeds, the distance is to the nearest seed.
        radius_m : float
            Radius in metres (>= 0). The seed itself is always included.
        return_distance : bool
            Also return the graph distance (m) of each returned point.

        Returns
        -------
        indices : ndarray of int
            Points within the radius, sorted by increasing distance (the seed first).
        distances : ndarray of float
            Only if ``return_distance``; same order.
        """
        radius_m = float(radius_m)
        if not np.isfinite(radius_m) or radius_m < 0:
            raise ValueError(f"radius_m must be a finite distance >= 0 in metres, got {radius_m}.")
        seeds = np.atleast_1d(np.asarray(index))
        if seeds.dtype.kind not in "iu" or seeds.ndim != 1 or seeds.size == 0:
            raise TypeError(f"index must be an integer or a 1-D array of integers, got {index!r}.")
        if seeds.min() < 0 or seeds.max() >= self.n_sources:
            raise ValueError(f"index must be in 0..{self.n_sources - 1}, got {seeds.tolist()}.")
        dist = csgraph.dijkstra(
            self._edge_lengths, directed=False, indices=seeds, limit=radius_m * (1 + 1e-9),
            min_only=True,
        )
        within = np.flatnonzero(np.isfinite(dist) & (dist <= radius_m * (1 + 1e-9)))
        order = np.lexsort((within, dist[within]))
        within = within[order]
        if return_distance:
            return within, dist[within]
        return within

    # ------------------------------------------------------------------ MNE
    def to_mne(self, subject: str | None = None, *, verbose: bool | str | None = False):
        """This source space as a discrete :class:`mne.SourceSpaces` in the MRI frame.

        The result can be passed to :func:`mne.make_forward_solution` (with a sphere model or
        a BEM and a head→MRI ``trans``), or used in :class:`mne.VolSourceEstimate` /
        :class:`mne.MixedSourceEstimate` with ``vertices=[np.arange(n_sources)]``.

        Parameters
        ----------
        subject : str | None
            FreeSurfer subject name to record in the source space.
        verbose : bool | str | None
            MNE verbosity.

        Returns
        -------
        mne.SourceSpaces
            One discrete source space with ``rr`` = :attr:`pos` (m) and ``nn`` = :attr:`normals`
            for fixed points. MNE needs a unit normal at every point: free-orientation points
            get (0, 0, 1), which MNE ignores for free-orientation forwards. Region names are not
            stored by MNE; keep this :class:`SourceSpace` next to the ``-src.fif``.
        """
        import mne

        nn = self.normals.copy()
        nn[self.free_ori | (np.linalg.norm(nn, axis=1) == 0)] = (0.0, 0.0, 1.0)
        return mne.setup_volume_source_space(
            subject=subject, pos=dict(rr=self.pos.copy(), nn=nn), mri=None, verbose=verbose
        )

    # ------------------------------------------------------------------ identity
    def hash(self) -> str:
        """Content hash (sha256 hex) of positions, regions, orientation model and adjacency."""
        h = hashlib.sha256()
        arrays = (np.round(self.pos, 9), self.region_ids, np.round(self.normals, 6), self.free_ori)
        for arr in arrays:
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
        """Write to a compressed ``.npz`` file (atomically); :func:`read_source_space` reads it.

        Parameters
        ----------
        path : path-like
            Destination, conventionally ending in ``.npz``.
        overwrite : bool
            Replace an existing file (otherwise FileExistsError).

        Returns
        -------
        Path
            The written file.
        """
        adj = self.adjacency.tocoo()
        m2m = np.full((4, 4), np.nan) if self.mri_to_mni is None else self.mri_to_mni
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
                    mri_to_mni=m2m,
                    name=self.name,
                    meta=json.dumps(to_jsonable(self.meta)),
                )
        return Path(path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> SourceSpace:
        """Read a source space written by :meth:`save` (same as :func:`read_source_space`)."""
        return read_source_space(path)


def read_source_space(fname: str | os.PathLike) -> SourceSpace:
    """Read a source space written by :meth:`SourceSpace.save`.

    Parameters
    ----------
    fname : path-like
        A ``.npz`` file written by :meth:`SourceSpace.save` (or ``deepesi sources``).

    Returns
    -------
    SourceSpace

    Raises
    ------
    FileNotFoundError
        No such file.
    ValueError
        The file is not a deepesi source space, or was written by a newer deepesi.
    """
    path = check_file(fname, "source space file")
    try:
        with np.load(path, allow_pickle=False) as npz:
            data = {key: npz[key] for key in npz.files}
    except Exception as err:  # numpy raises several types for bad files
        raise ValueError(f"{path} is not a deepesi source space file: {err}") from err
    required = ("pos", "region_ids", "normals", "free_ori", "adj_row", "adj_col", "spacing",
                "loose", "head_hash", "mri_to_mni", "name")
    missing = [key for key in required if key not in data]
    if missing:
        raise ValueError(
            f"{path} is not a deepesi source space file (no {', '.join(missing)}); make one "
            "with SourceSpace.save() or `deepesi sources`."
        )
    version = int(data.get("format_version", 0))
    if version > FORMAT_VERSION:
        raise ValueError(
            f"{path} was written by a newer deepesi (format {version}); upgrade deepesi."
        )
    n = len(data["pos"])
    adj = sparse.coo_matrix(
        (np.ones(len(data["adj_row"]), np.float32), (data["adj_row"], data["adj_col"])),
        shape=(n, n),
    )
    m2m = data["mri_to_mni"]
    return SourceSpace(
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
        meta=json.loads(str(data["meta"])) if "meta" in data else {},
    )
