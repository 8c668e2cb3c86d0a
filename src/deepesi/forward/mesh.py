"""Hexahedral finite-element meshes made from a voxel label volume.

Every labelled voxel becomes one trilinear hexahedron; nodes are the voxel corners. Optionally the
mesh is *geometry-adapted* (Camacho et al. 1997; Wolters et al. 2007, NeuroImage 37:1002): a node
whose eight surrounding voxels carry different labels (air counts as a label) is moved a fraction
``shift`` of the way towards the centroid of the voxels of the label that is in the minority
there. That cuts the corners of the voxel staircase, so tissue boundaries (and the scalp surface)
follow smooth surfaces more closely, at no cost in the number of unknowns. ``shift < 0.5`` keeps
every hexahedron convex.

Local node order of an element: ``l = dx + 2 dy + 4 dz`` for the corner at voxel offset
``(dx, dy, dz)`` in {0, 1}^3.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..anatomy.headmodel import HeadModel

#: corner offsets of the local nodes, shape (8, 3), order l = dx + 2 dy + 4 dz
CORNERS = np.array([[dx, dy, dz] for dz in (0, 1) for dy in (0, 1) for dx in (0, 1)], dtype=int)


@dataclass(frozen=True, eq=False)
class HexMesh:
    """A hexahedral mesh on the voxel grid of a head model.

    Attributes
    ----------
    nodes : ndarray, shape (n_nodes, 3)
        Node positions in metres, MRI frame (after any geometry adaptation).
    elements : ndarray of int32, shape (n_elements, 8)
        Node indices of each hexahedron (local order ``dx + 2 dy + 4 dz``).
    labels : ndarray of uint8, shape (n_elements,)
        Tissue label of each element.
    voxels : ndarray of int32, shape (n_elements, 3)
        Voxel index of each element.
    node_grid : ndarray of int32, shape (nx+1, ny+1, nz+1)
        Node index of each grid corner, -1 where no element touches it.
    shifted : ndarray of bool, shape (n_nodes,)
        True for nodes moved by the geometry adaptation.
    surface : ndarray of bool, shape (n_nodes,)
        True for nodes on the outer surface (touching air and tissue).
    affine_m : ndarray, shape (4, 4)
        Voxel index → MRI metres of the head model.
    shift : float
        Node-shift factor used (0 = regular hexahedra).
    """

    nodes: np.ndarray
    elements: np.ndarray
    labels: np.ndarray
    voxels: np.ndarray
    node_grid: np.ndarray
    shifted: np.ndarray
    surface: np.ndarray
    affine_m: np.ndarray
    shift: float

    @property
    def n_nodes(self) -> int:
        """Number of nodes."""
        return int(self.nodes.shape[0])

    @property
    def n_elements(self) -> int:
        """Number of hexahedra."""
        return int(self.elements.shape[0])

    def element_is_regular(self) -> np.ndarray:
        """True for elements none of whose nodes moved (they are congruent parallelepipeds)."""
        return ~self.shifted[self.elements].any(axis=1)

    def __repr__(self) -> str:
        return (
            f"<HexMesh | {self.n_nodes} nodes, {self.n_elements} hexahedra, "
            f"{int(self.shifted.sum())} shifted nodes (shift={self.shift:g})>"
        )


def _node_label_stats(padded: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For every grid corner: labels of its 8 voxels (8, ...) and how often each occurs there."""
    nx, ny, nz = (s - 1 for s in padded.shape)
    around = np.stack(
        [padded[dx : dx + nx, dy : dy + ny, dz : dz + nz] for dx, dy, dz in CORNERS]
    )  # (8, nx, ny, nz) with nx.. the corner-grid shape
    counts = np.zeros(around.shape, dtype=np.uint8)
    for a in range(8):
        counts += around == around[a : a + 1]
    return around, counts


def node_shifts(labels: np.ndarray, shift: float) -> np.ndarray:
    """Geometry-adaptation displacement (voxel units) of every grid corner, (nx+1, ny+1, nz+1, 3).

    Parameters
    ----------
    labels : ndarray of uint8, shape (nx, ny, nz)
        Label volume (0 = air).
    shift : float
        Fraction in [0, 0.5) of the distance to the minority-label centroid.
    """
    padded = np.pad(labels, 1, mode="constant", constant_values=0)
    # corner (i, j, k) of the unpadded grid is surrounded by padded voxels (i+dx, j+dy, k+dz)
    around, counts = _node_label_stats(padded)
    big = np.uint8(9)
    masked = np.where(counts > 0, counts, big)
    cmin = masked.min(axis=0)  # (nx+1, ny+1, nz+1)
    is_min = counts == cmin[None]
    # label of the first minority position; unique if every minority position has that label
    first = np.argmax(is_min, axis=0)
    lab_min = np.take_along_axis(around, first[None], axis=0)[0]
    minority = is_min & (around == lab_min[None])
    unique = (is_min == minority).all(axis=0)
    active = unique & (cmin < 8)
    # centroid of the minority voxels relative to the corner: voxel centre offset = corner - 0.5
    offs = CORNERS.astype(float) - 0.5  # (8, 3)
    m = minority.reshape(8, -1).astype(np.float32)
    cnt = m.sum(axis=0)
    cnt[cnt == 0] = 1.0
    cen = (offs.T @ m) / cnt  # (3, n)
    cen = cen.T.reshape(*cmin.shape, 3)
    cen[~active] = 0.0
    return shift * cen


def make_hex_mesh(
    head: HeadModel, *, geometry_adapted: bool = True, shift: float = 0.45
) -> HexMesh:
    """Build the hexahedral mesh of a head model.

    Parameters
    ----------
    head : HeadModel
        The volume conductor; every voxel with a non-zero label becomes an element.
    geometry_adapted : bool
        Shift nodes at tissue boundaries (see module docstring). False gives regular hexahedra.
    shift : float
        Node-shift factor in [0, 0.5): 0.45 by default (Wolters et al. 2007 use 0.1-0.49).

    Returns
    -------
    HexMesh
    """
    if not isinstance(head, HeadModel):
        raise TypeError(f"head must be a HeadModel, got {type(head).__name__}.")
    shift = float(shift)
    if not 0.0 <= shift < 0.5:
        raise ValueError(f"shift must be in [0, 0.5) so elements stay convex, got {shift}.")
    if not geometry_adapted:
        shift = 0.0
    labels = head.labels
    nx, ny, nz = labels.shape
    vox = np.argwhere(labels > 0).astype(np.int32)  # C order
    # which grid corners are used
    used = np.zeros((nx + 1, ny + 1, nz + 1), dtype=bool)
    for dx, dy, dz in CORNERS:
        used[vox[:, 0] + dx, vox[:, 1] + dy, vox[:, 2] + dz] = True
    node_grid = np.full(used.shape, -1, dtype=np.int32)
    corner_ijk = np.argwhere(used)
    node_grid[used] = np.arange(len(corner_ijk), dtype=np.int32)
    elements = np.empty((len(vox), 8), dtype=np.int32)
    for loc, (dx, dy, dz) in enumerate(CORNERS):
        elements[:, loc] = node_grid[vox[:, 0] + dx, vox[:, 1] + dy, vox[:, 2] + dz]

    # surface: corners with both air and tissue around them
    padded = np.pad(labels, 1, mode="constant", constant_values=0)
    air_any = np.zeros(used.shape, dtype=bool)
    for dx, dy, dz in CORNERS:
        air_any |= padded[dx : dx + nx + 1, dy : dy + ny + 1, dz : dz + nz + 1] == 0
    surface = air_any[used]

    pos_idx = corner_ijk.astype(float) - 0.5  # corner index → voxel-index coordinates
    shifted = np.zeros(len(corner_ijk), dtype=bool)
    if shift > 0:
        disp = node_shifts(labels, shift)[used]
        shifted = np.any(disp != 0, axis=1)
        pos_idx = pos_idx + disp
    aff = head.affine_m
    nodes = pos_idx @ aff[:3, :3].T + aff[:3, 3]
    return HexMesh(
        nodes=nodes,
        elements=elements,
        labels=labels[vox[:, 0], vox[:, 1], vox[:, 2]],
        voxels=vox,
        node_grid=node_grid,
        shifted=shifted,
        surface=surface,
        affine_m=aff,
        shift=shift,
    )
