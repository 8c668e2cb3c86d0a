"""The mismatched test forward: how a network is evaluated on a head it was not trained on.

A network trained on data simulated with one lead field and tested on data simulated with the
*same* lead field is tested on the inverse crime. deepesi's evaluations (the shipped models'
``*-evaluation.json``, the template and sample benchmarks) simulate the test data instead with a
forward that differs the way a real head differs from its model:

- :func:`perturbed_conductivities`: every tissue conductivity scaled by an independent factor in
  ``[1 - max_rel, 1 + max_rel]`` (±20 % by default, about the spread of the literature values);
- :func:`off_grid_sources`: every source point moved by up to half a grid step along each axis,
  staying in its tissue and region, so the true sources are not on the training grid;
- the test lead field is solved on a finer FEM mesh, where :func:`snap_into_tissue` moves the
  few points that the resampled segmentation puts outside the source tissues back into them.

``scripts/build_pretrained.py`` draws both perturbations from ``numpy.random.default_rng(
20241104)``, conductivities first: the same seed gives the same test forward, bit for bit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from .._validation import check_random_state
from ..sources import SourceSpace

if TYPE_CHECKING:
    from ..anatomy.headmodel import HeadModel

__all__ = [
    "REALISTIC_SHIFT",
    "REALISTIC_SKULL",
    "SOURCE_TISSUES",
    "off_grid_sources",
    "perturbed_conductivities",
    "realistic_conductivities",
    "snap_into_tissue",
]

#: The realistic mismatch's skull (S/m): compact / spongy bone 0.005 / 0.040 instead of the
#: default 0.008 / 0.025 (×0.6 and ×1.6: thin, dense and thick, porous skulls are both common).
REALISTIC_SKULL = {"Compact_bone": 0.005, "Spongy_bone": 0.040}
#: The realistic mismatch's soft tissues: GM, WM, CSF and scalp each shifted by a relative amount
#: drawn in this range, with a random sign.
REALISTIC_SHIFT = (0.08, 0.20)

#: Tissues a source point may lie in (the brain tissues of the source space, with CSF for the
#: points a coarser grid puts in a sulcus).
SOURCE_TISSUES = ("WM", "GM", "CSF")


def perturbed_conductivities(
    head: HeadModel, rng: int | np.random.Generator | None, max_rel: float = 0.2
) -> dict[str, float]:
    """Every tissue's conductivity times a factor drawn uniformly in [1 - max_rel, 1 + max_rel].

    Parameters
    ----------
    head : HeadModel
        Gives the tissues and their conductivities (S/m).
    rng : int | numpy.random.Generator | None
        Random stream (one uniform draw per tissue, in ``head.tissues`` order).
    max_rel : float
        Largest relative change, in [0, 1).

    Returns
    -------
    dict
        Tissue name → perturbed conductivity (S/m), for ``head.with_conductivities``.
    """
    if not 0.0 <= float(max_rel) < 1.0:
        raise ValueError(f"max_rel must be in [0, 1), got {max_rel!r}.")
    rng = check_random_state(rng)
    return {t.name: t.conductivity * rng.uniform(1 - max_rel, 1 + max_rel) for t in head.tissues}


def realistic_conductivities(
    head: HeadModel, rng: int | np.random.Generator | None,
    shift: tuple[float, float] = REALISTIC_SHIFT,
) -> dict[str, float]:
    """The conductivities of the realistic-mismatch test forward.

    The bone tissues take :data:`REALISTIC_SKULL` (an undifferentiated ``Bone`` the compact
    value's factor, 0.625); GM, WM, CSF and Scalp are each multiplied by ``1 ± u``, ``u``
    uniform in ``shift``, random sign (two draws per tissue, in this order). With electrodes
    moved (:func:`deepesi.forward.ensemble.jitter_electrodes`), a finer FEM mesh and off-grid
    sources this is the "realistic mismatch" scenario of ``docs/benchmarks.md``.
    """
    rng = check_random_state(rng)
    lo, hi = (float(v) for v in shift)
    if not 0.0 <= lo <= hi < 1.0:
        raise ValueError(f"shift must satisfy 0 <= min <= max < 1, got {shift!r}.")
    out: dict[str, float] = {}
    for t in head.tissues:
        if t.name in REALISTIC_SKULL:
            out[t.name] = REALISTIC_SKULL[t.name]
        elif t.name == "Bone":
            out[t.name] = float(t.conductivity) * 0.625
    for name in ("GM", "WM", "CSF", "Scalp"):
        if head.has_tissue(name):
            sign = 1.0 if rng.random() < 0.5 else -1.0
            out[name] = float(head.tissues[name].conductivity) * (1 + sign * rng.uniform(lo, hi))
    return out


def off_grid_sources(
    src: SourceSpace, head: HeadModel, rng: int | np.random.Generator | None, n_tries: int = 20
) -> SourceSpace:
    """Move every source by up to half a grid step, keeping it in the same tissue and region.

    Each point draws a displacement uniform in ``[-spacing/2, spacing/2]`` along each axis; a
    draw whose voxel (on ``head``'s grid) has another tissue label or region than the point's
    own is rejected and redrawn, up to ``n_tries`` times (the point stays put if none fits).

    Parameters
    ----------
    src : SourceSpace
        The training source space.
    head : HeadModel
        The head it was made from (labels and regions).
    rng : int | numpy.random.Generator | None
        Random stream (``n_tries`` draws of shape ``(n_sources, 3)``).
    n_tries : int
        Draws per point.

    Returns
    -------
    SourceSpace
        The same points (regions, normals, orientation model, neighbour graph) at the moved
        positions, named ``<name>-offgrid``, with ``meta['moved_fraction']`` the fraction of
        points moved.
    """
    rng = check_random_state(rng)
    lab = head.labels
    reg = head.regions
    new = src.pos.copy()
    ijk0 = np.round(head.mri_to_voxel(src.pos)).astype(int)
    for _ in range(int(n_tries)):
        trial = src.pos + rng.uniform(-0.5, 0.5, size=src.pos.shape) * src.spacing
        ijk = np.round(head.mri_to_voxel(trial)).astype(int)
        ijk = np.clip(ijk, 0, np.array(head.shape) - 1)
        ok = (lab[tuple(ijk.T)] == lab[tuple(ijk0.T)]) & (reg[tuple(ijk.T)] == reg[tuple(ijk0.T)])
        todo = np.all(new == src.pos, axis=1) & ok
        new[todo] = trial[todo]
    moved = float(np.mean(np.any(new != src.pos, axis=1)))
    return replace(src, pos=new, name=f"{src.name}-offgrid", meta={"moved_fraction": moved})


def snap_into_tissue(
    head: HeadModel, pos: np.ndarray, tissues: Sequence[str] = SOURCE_TISSUES
) -> tuple[np.ndarray, int]:
    """Move positions whose voxel (on ``head``'s grid) is not in ``tissues`` to the nearest voxel
    centre that is.

    A coarser (or finer) FEM grid than the one the source space was made on can put a point of a
    thin gyrus in a neighbouring tissue, where a dipole is not defined.

    Parameters
    ----------
    head : HeadModel
        The head the forward is solved on.
    pos : ndarray, shape (n, 3)
        Source positions (MRI frame, m).
    tissues : sequence of str
        Tissue names a source may lie in.

    Returns
    -------
    pos : ndarray, shape (n, 3)
        The positions, moved where needed (the input array itself when none is).
    n_moved : int
        How many were moved.
    """
    from scipy.spatial import cKDTree

    allowed = head.tissue_mask(*tissues)
    idx = np.clip(np.floor(head.mri_to_voxel(pos) + 0.5).astype(int), 0, np.array(head.shape) - 1)
    bad = ~allowed[tuple(idx.T)]
    if not bad.any():
        return pos, 0
    centres = head.voxel_to_mri(np.argwhere(allowed))
    _, nearest = cKDTree(centres).query(pos[bad])
    out = pos.copy()
    out[bad] = centres[nearest]
    return out, int(bad.sum())
