"""LeadField → ``mne.Forward`` and ``-fwd.fif`` files (the writing half of :mod:`.io`).

Conventions (frames, provenance in ``fwd['info']['command_line']``, the source-space sidecar) are
described in :mod:`deepesi.forward.io`, which reads these files back and re-exports everything
here. This module does not import :class:`~deepesi.forward.leadfield.LeadField`, so that
:meth:`LeadField.save` can call :func:`write_forward` without an import cycle.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from .._io import atomic_path, check_overwrite, to_jsonable
from ..sensors.container import check_trans
from ..sources import SourceSpace

#: Prefix of the deepesi provenance JSON in ``fwd['info']['command_line']``.
PROVENANCE_PREFIX = "deepesi "


def sidecar_path(fname: str | os.PathLike) -> Path:
    """Source-space sidecar of a forward file (``X-fwd.fif`` → ``X-fwd.deepesi.npz``)."""
    fname = Path(fname)
    name = fname.name
    for ext in (".fif.gz", ".fif"):
        if name.endswith(ext):
            name = name[: -len(ext)]
            break
    return fname.with_name(name + ".deepesi.npz")


def _mne_src(source_space: SourceSpace):
    """MNE discrete source space (MRI frame) of a SourceSpace; uses ``to_mne`` when it exists."""
    to_mne = getattr(source_space, "to_mne", None)
    if callable(to_mne):
        src = to_mne()
        if len(src) == 1 and src[0]["nuse"] == source_space.n_sources:
            return src
    from .meg import discrete_source_space

    return discrete_source_space(source_space.pos, source_space.normals)


def _provenance(lf: Any) -> dict:
    return {
        "format": "deepesi-forward",
        "leadfield_hash": lf.hash(),
        "source_space_hash": lf.source_space.hash(),
        "head_hash": lf.meta.get("head_hash", lf.source_space.head_hash),
        "sensors_hash": lf.meta.get("sensors_hash", ""),
        "eeg_reference": lf.eeg_reference,
        "ch_names": lf.ch_names,
        "ch_types": lf.ch_types,
        "meta": lf.meta,
    }


def leadfield_to_forward(lf: Any):
    """Convert a LeadField to a free-orientation :class:`mne.Forward`.

    Parameters
    ----------
    lf : LeadField
        Must carry ``info`` (channels with positions, head frame) and ``trans`` (head→MRI).

    Returns
    -------
    fwd : mne.Forward
        Accepted by ``mne.minimum_norm.make_inverse_operator``, ``mne.beamformer.make_lcmv``,
        ``mne.apply_forward`` and ``mne.write_forward_solution``. EEG rows are as in the lead
        field (average-referenced by default); MNE applies the average-reference projector of the
        data's info on top, which leaves average-referenced rows unchanged.
    """
    import mne
    from mne.io.constants import FIFF
    from mne.transforms import apply_trans, invert_transform

    if not all(hasattr(lf, a) for a in ("gain", "ch_names", "source_space", "info", "trans")):
        raise TypeError(f"expected a LeadField, got {type(lf).__name__}.")
    if lf.info is None or lf.trans is None:
        raise ValueError(
            "this lead field has no info/trans; an mne.Forward needs the channel info (head "
            "frame) and the head→MRI transform. Make it with make_forward(head, sensors, ...)."
        )
    trans = check_trans(lf.trans)
    mri_head_t = invert_transform(trans)
    missing = [n for n in lf.ch_names if n not in lf.info["ch_names"]]
    if missing:
        raise ValueError(f"channels {missing[:10]} of the lead field are not in its info.")
    picks = [lf.info["ch_names"].index(n) for n in lf.ch_names]
    chinfo = mne.pick_info(lf.info, picks, verbose=False)
    info = mne.Info(
        chs=chinfo["chs"], comps=[],
        dev_head_t=chinfo["dev_head_t"], mri_file="", mri_id=None, meas_file="",
        meas_id=None, working_dir=os.getcwd(),
        command_line=PROVENANCE_PREFIX + json.dumps(to_jsonable(_provenance(lf))),
        bads=[b for b in chinfo["bads"] if b in lf.ch_names], mri_head_t=mri_head_t,
    )
    info._update_redundant()
    info._check_consistency()

    src = _mne_src(lf.source_space)
    for s in src:
        s["rr"] = apply_trans(mri_head_t, s["rr"])
        s["nn"] = apply_trans(mri_head_t, s["nn"], move=False)
        s["coord_frame"] = FIFF.FIFFV_COORD_HEAD
    rr_head = src[0]["rr"][src[0]["vertno"]]
    # G_head = G_mri R_{head→mri}: a head-frame dipole q_h is the MRI-frame dipole R q_h
    g_head = lf.gain @ np.asarray(trans["trans"], float)[:3, :3]
    data = g_head.reshape(lf.n_channels, 3 * lf.n_sources)
    sol = dict(data=data, nrow=lf.n_channels, ncol=3 * lf.n_sources,
               row_names=list(lf.ch_names), col_names=[])
    fwd = mne.Forward(
        sol=sol, source_ori=FIFF.FIFFV_MNE_FREE_ORI, nsource=lf.n_sources,
        coord_frame=FIFF.FIFFV_COORD_HEAD, sol_grad=None, nchan=lf.n_channels,
        _orig_source_ori=FIFF.FIFFV_MNE_FREE_ORI, _orig_sol=data.copy(), _orig_sol_grad=None,
        info=info, src=src, source_nn=np.tile(np.eye(3), (lf.n_sources, 1)),
        source_rr=rr_head, surf_ori=False, mri_head_t=mri_head_t,
    )
    return fwd


def write_forward(lf: Any, fname: str | os.PathLike, overwrite: bool = False) -> Path:
    """Write a LeadField as an MNE ``-fwd.fif`` file plus its deepesi sidecar (atomically).

    Parameters
    ----------
    lf : LeadField
        The lead field (needs ``info`` and ``trans``).
    fname : path-like
        Must end with ``-fwd.fif`` or ``_fwd.fif`` (MNE's naming convention).
    overwrite : bool
        Replace existing files.

    Returns
    -------
    Path
        ``fname``. The gain is stored in float32 (MNE's format): relative error ~1e-7.
    """
    import mne

    fname = Path(fname)
    if not fname.name.endswith(("-fwd.fif", "_fwd.fif", "-fwd.fif.gz", "_fwd.fif.gz")):
        raise ValueError(f"forward file names must end with -fwd.fif (MNE convention): {fname}.")
    check_overwrite(fname, overwrite)
    side = sidecar_path(fname)
    check_overwrite(side, overwrite)
    fwd = leadfield_to_forward(lf)
    with atomic_path(side, overwrite=overwrite) as tmp:
        lf.source_space.save(tmp)
    with atomic_path(fname, overwrite=overwrite) as tmp:
        mne.write_forward_solution(tmp, fwd, overwrite=True, verbose=False)
    return fname
