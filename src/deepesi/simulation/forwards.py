"""The lead field to simulate on: read from an MNE forward file, computed for a head model and
an EEG montage, or read from the work folder of ``scripts/build_pretrained.py``."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from .._logging import logger, verbose
from .._validation import check_dir, check_file, validate_type
from ..forward.leadfield import LeadField

__all__ = ["fem_eeg_gain", "load_forward_ensemble", "load_leadfield", "read_work_ensemble",
           "read_work_leadfield"]

#: EEG layout of the build_pretrained work folders that do not record theirs.
WORK_LAYOUT = "standard_1010_64"


@verbose
def load_leadfield(
    forward: str | os.PathLike | None = None,
    *,
    head: str | os.PathLike | None = None,
    montage: str = "standard_1020",
    spacing_mm: float = 5.0,
    cache_dir: str | os.PathLike | None = None,
    verbose: bool | str | int | None = None,
) -> LeadField:
    """The lead field from a forward file, or computed (and cached) for a head and a montage.

    This is what ``deepesi simulate`` and ``deepesi train`` do with their ``--forward`` or
    ``--head/--montage/--spacing`` options.

    Parameters
    ----------
    forward : path-like | None
        An MNE ``-fwd.fif`` file (or a deepesi forward file), read with
        :func:`deepesi.forward.io.read_forward`. Give either this or ``head``.
    head : str | path-like | None
        A head model for :func:`deepesi.anatomy.load.load_head` ('template', a head folder or a
        segmentation): its source space (``spacing_mm``), the EEG sensors of ``montage``
        registered to it and the FEM lead field (:func:`deepesi.forward.api.make_forward`,
        cached) are made.
    montage : str
        EEG montage name (MNE's, or a deepesi layout) for ``head``.
    spacing_mm : float
        Source grid spacing (mm) for ``head``.
    cache_dir : path-like | None
        Lead-field cache folder for ``head`` (None: the default cache).
    verbose : bool | str | int | None
        Log level for the call (progress bars at INFO).

    Returns
    -------
    LeadField
    """
    if forward is not None and head is not None:
        raise ValueError("give either a forward file (--forward) or a head (--head), not both.")
    if forward is not None:
        validate_type(forward, "path-like", "forward")
        from ..forward.io import read_forward

        lf = read_forward(forward)
        validate_type(lf, LeadField, "read_forward's result", "a LeadField")
        return lf
    if head is None:
        raise ValueError("no forward model: pass --forward FWD.fif or --head HEAD --montage NAME.")
    if not spacing_mm > 0:
        raise ValueError(f"--spacing must be > 0 mm, got {spacing_mm}.")
    from ..anatomy.load import load_head
    from ..forward.api import make_forward
    from ..sensors import make_eeg_sensors
    from ..sources import make_source_space

    head_model = load_head(head)
    sources = make_source_space(head_model, spacing=spacing_mm * 1e-3)
    sensors = make_eeg_sensors(head_model, montage)
    return make_forward(head_model, sensors, sources, meg=False, cache_dir=cache_dir)


def read_work_leadfield(work: str | os.PathLike, name: str) -> LeadField:
    """A lead field written by the ``forward`` stage of ``scripts/build_pretrained.py``.

    The work folder holds, for ``name`` ``'train'`` (the training forward) or ``'test'`` (the
    mismatched test forward, :mod:`deepesi.simulation.mismatch`): ``<name>-gain.npy`` (float32
    gain, channels × sources × 3, average reference), ``<name>-gain.json`` (layout, FEM voxel
    size, channel names, conductivities) and ``<name>-src.npz`` (the source space). The sensors
    are those of the recorded layout registered to the embedded template head.

    Parameters
    ----------
    work : path-like
        The work folder (``--work`` of the script).
    name : str
        Which lead field: ``'train'`` or ``'test'``.

    Returns
    -------
    LeadField
        With the template's sensor Info and head → MRI transform, ``meta['fem_voxel_mm']``.
    """
    from ..anatomy.template import load_template
    from ..sensors import make_eeg_sensors
    from ..sources import SourceSpace

    work = check_dir(work, "build_pretrained work folder")
    info = json.loads(check_file(work / f"{name}-gain.json", "work-folder gain file").read_text())
    src = SourceSpace.load(work / f"{name}-src.npz")
    gain = np.load(Path(work) / f"{name}-gain.npy").astype(float)
    layout = info.get("layout", WORK_LAYOUT)
    sensors = make_eeg_sensors(load_template(), layout)
    if sensors.eeg_names != info["ch_names"]:
        raise ValueError(f"{name}-gain.json channels differ from {layout}; rerun the forward.")
    return LeadField(gain, info["ch_names"], ["eeg"] * len(info["ch_names"]), src,
                     info=sensors.info, trans=sensors.trans,
                     meta={"fem_voxel_mm": info["voxel_mm"]})


@verbose
def fem_eeg_gain(head: Any, sensors: Any, src: Any, voxel_mm: float, *,
                 verbose: bool | str | int | None = None) -> tuple[np.ndarray, float, int]:
    """EEG gain (n_eeg, n_src, 3) of ``src`` on ``head`` resampled to ``voxel_mm`` (FEM,
    average reference): the lead fields of the shipped models' work folders.

    Source points that the resampled segmentation puts outside the brain tissues are moved into
    them first (:func:`deepesi.simulation.mismatch.snap_into_tissue`). Returns the gain, the
    seconds it took and the number of points moved.
    """
    import time

    from ..forward.eeg import make_eeg_transfer
    from .mismatch import SOURCE_TISSUES, snap_into_tissue

    fem_head = head.resample(voxel_mm) if voxel_mm != float(head.voxel_size[0]) else head
    pos, n_moved = snap_into_tissue(fem_head, src.pos)
    t0 = time.perf_counter()
    transfer = make_eeg_transfer(
        fem_head, sensors.eeg_pos_mri, ch_names=sensors.eeg_names,
        source_tissues=SOURCE_TISSUES, max_snap_mm=max(5.0, 3 * voxel_mm),
    )
    return transfer.leadfield(pos), time.perf_counter() - t0, n_moved


@verbose
def load_forward_ensemble(head: str | os.PathLike, *, montage: str = "standard_1020",
                          spacing_mm: float = 5.0, n_members: int = 4, seed: int = 0,
                          cache_dir: str | os.PathLike | None = None,
                          verbose: bool | str | int | None = None) -> Any:
    """The forward ensemble of a head and an EEG montage (``deepesi train --ensemble``):
    :func:`deepesi.forward.ensemble.make_forward_ensemble` on the head's source space
    (``spacing_mm``) and the montage registered to it, every member cached."""
    if not spacing_mm > 0:
        raise ValueError(f"--spacing must be > 0 mm, got {spacing_mm}.")
    from ..anatomy.load import load_head
    from ..forward.ensemble import make_forward_ensemble
    from ..sensors import make_eeg_sensors
    from ..sources import make_source_space

    head_model = load_head(head)
    sources = make_source_space(head_model, spacing=spacing_mm * 1e-3)
    sensors = make_eeg_sensors(head_model, montage)
    return make_forward_ensemble(head_model, sensors, sources, n_members, seed=seed,
                                 meg=False, cache_dir=cache_dir)


@verbose
def read_work_ensemble(work: str | os.PathLike, leadfield: LeadField, n_members: int, *,
                       seed: int = 0, layout: str = WORK_LAYOUT,
                       verbose: bool | str | int | None = None) -> Any:
    """The forward ensemble of a ``scripts/build_pretrained.py`` work folder: the nominal
    ``leadfield`` and ``n_members - 1`` members drawn by
    :func:`deepesi.forward.ensemble.draw_member` on the template head (conductivities, the skull
    x0.5-2, electrodes moved 5 mm RMS), solved on the nominal lead field's FEM grid and cached
    in the work folder as ``ens<seed>-<k>-gain.npy`` (the same seed gives the same members)."""
    from ..anatomy.template import load_template
    from ..forward.ensemble import ForwardEnsemble, draw_member
    from ..sensors import make_eeg_sensors

    validate_type(n_members, int, "n_members")
    if n_members < 1:
        raise ValueError(f"n_members must be >= 1, got {n_members}.")
    work = check_dir(work, "work folder")
    head = load_template()
    sensors = make_eeg_sensors(head, layout)
    members, draws = [leadfield], [{"nominal": True}]
    for k in range(1, n_members):
        fname = work / f"ens{seed}-{k}-gain.npy"
        h, s, draw = draw_member(head, sensors, k, seed=seed)
        if fname.exists():
            gain = np.load(fname).astype(float)
        else:
            gain, secs, _ = fem_eeg_gain(h, s, leadfield.source_space,
                                         leadfield.meta.get("fem_voxel_mm", 2.0))
            np.save(fname, gain.astype(np.float32))
            logger.info(
                "ensemble member %d: %.0f s, electrodes moved %.1f mm RMS", k, secs,
                draw["electrode_shift_mm"])
        if gain.shape != leadfield.gain.shape:
            raise ValueError(f"{fname} has shape {gain.shape}, the lead field "
                             f"{leadfield.gain.shape}: delete it to recompute it.")
        members.append(LeadField(gain, leadfield.ch_names, leadfield.ch_types,
                                 leadfield.source_space, leadfield.info, leadfield.trans))
        draws.append(draw)
    return ForwardEnsemble(members, draws, {"seed": seed, "n_members": n_members,
                                            "work": str(work)})
