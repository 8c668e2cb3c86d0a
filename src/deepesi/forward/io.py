"""LeadField ⇄ ``mne.Forward`` interchange and ``-fwd.fif`` files.

The :class:`mne.Forward` follows MNE's conventions for a free-orientation volume forward:
``coord_frame`` 'head', ``source_rr`` and ``src`` in the head frame (MRI on disk), columns ordered
(x, y, z) per source in the *head* frame, ``source_nn`` the identity per source, ``mri_head_t``
the inverse of the lead field's head→MRI ``trans``. Lead fields keep their dipole components in
the MRI frame, so both directions rotate them.

Provenance (head, sensor, source-space and lead-field hashes, reference, meta) is stored as JSON
in ``fwd['info']['command_line']`` (prefix ``deepesi ``; MNE writes and reads it back), and the
deepesi source space (regions, orientations, neighbours) in a sidecar file next to the FIF
(``<name>-fwd.fif`` → ``<name>-fwd.deepesi.npz``).
"""

from __future__ import annotations

import json
import os

import numpy as np
from scipy import sparse

from .._validation import check_file
from ..sources import SourceSpace, read_source_space
from .fiff import PROVENANCE_PREFIX as _PREFIX
from .fiff import leadfield_to_forward, sidecar_path, write_forward
from .leadfield import LeadField

__all__ = [
    "forward_provenance",
    "leadfield_from_forward",
    "leadfield_to_forward",
    "read_forward",
    "sidecar_path",
    "write_forward",
]


def forward_provenance(fwd) -> dict:
    """The deepesi provenance stored in a Forward ({} if it was not made by deepesi)."""
    text = fwd["info"].get("command_line") or ""
    if isinstance(text, str) and text.startswith(_PREFIX):
        try:
            return json.loads(text[len(_PREFIX):])
        except json.JSONDecodeError:
            return {}
    return {}


def _fallback_source_space(fwd) -> SourceSpace:
    """A SourceSpace from an MNE forward alone: free orientation, no regions, grid neighbours."""
    from mne.io.constants import FIFF
    from mne.transforms import apply_trans, invert_transform

    rr = np.asarray(fwd["source_rr"], float)
    if fwd["coord_frame"] == FIFF.FIFFV_COORD_HEAD:
        mri_head_t = fwd["mri_head_t"]
        if mri_head_t["from"] != FIFF.FIFFV_COORD_MRI:
            mri_head_t = invert_transform(mri_head_t)
        rr = apply_trans(invert_transform(mri_head_t), rr)
    d = np.linalg.norm(rr[:, None] - rr[None], axis=-1) if len(rr) <= 4000 else None
    if d is not None and len(rr) > 1:
        spacing = float(np.min(d + np.eye(len(rr)) * 1e9))
        adj = sparse.csr_matrix((d <= spacing * 1.01) & (d > 0))
    else:
        spacing, adj = 0.0, sparse.csr_matrix((len(rr), len(rr)))
    return SourceSpace(rr, np.zeros(len(rr), int), np.zeros_like(rr), np.ones(len(rr), bool),
                       adj, spacing, name="from-mne")


def leadfield_from_forward(fwd, source_space: SourceSpace | None = None) -> LeadField:
    """Convert an :class:`mne.Forward` (free or fixed orientation) to a LeadField.

    Parameters
    ----------
    fwd : mne.Forward
        A forward solution, e.g. from :func:`leadfield_to_forward` or ``mne.read_forward_solution``.
        Fixed-orientation forwards are not accepted (they lost the x, y, z components).
    source_space : SourceSpace | None
        The deepesi source space of the columns; its positions must match the forward's
        sources (within 0.1 mm). None builds a plain free-orientation one from ``fwd['src']``.

    Returns
    -------
    LeadField
        Gain with dipoles along the MRI x, y, z axes; ``meta`` holds the stored provenance.
    """
    import mne
    from mne.io.constants import FIFF
    from mne.transforms import apply_trans, invert_transform

    if not isinstance(fwd, mne.Forward):
        raise TypeError(f"expected an mne.Forward, got {type(fwd).__name__}.")
    if fwd["source_ori"] != FIFF.FIFFV_MNE_FREE_ORI:
        raise ValueError(
            "this forward has fixed orientations; read it with "
            "mne.read_forward_solution(fname) (free orientation) and do not convert it."
        )
    if fwd["surf_ori"]:
        fwd = mne.convert_forward_solution(fwd, surf_ori=False, force_fixed=False, verbose=False)
    prov = forward_provenance(fwd)
    n_src = fwd["nsource"]
    if source_space is None:
        source_space = _fallback_source_space(fwd)
    if source_space.n_sources != n_src:
        raise ValueError(
            f"the forward has {n_src} sources but the source space has {source_space.n_sources}; "
            "give the source space the forward was made with."
        )
    mri_head_t = fwd["mri_head_t"]
    if mri_head_t["from"] != FIFF.FIFFV_COORD_MRI:
        mri_head_t = invert_transform(mri_head_t)
    trans = invert_transform(mri_head_t)
    rr = fwd["source_rr"]
    if fwd["coord_frame"] == FIFF.FIFFV_COORD_HEAD:
        rr = apply_trans(trans, rr)
    err = np.abs(rr - source_space.pos).max()
    if err > 1e-4:
        raise ValueError(
            f"the forward's source positions differ from the source space by up to "
            f"{err * 1000:.2f} mm; give the source space the forward was made with."
        )
    data = fwd["sol"]["data"].reshape(fwd["nchan"], n_src, 3).astype(float)
    if fwd["coord_frame"] == FIFF.FIFFV_COORD_HEAD:
        # G_mri = G_head R_{mri→head}
        data = data @ np.asarray(mri_head_t["trans"], float)[:3, :3]
    names = list(fwd["sol"]["row_names"])
    stored = prov.get("ch_names")
    if stored and sorted(stored) == sorted(names) and stored != names:
        # MNE files hold MEG rows before EEG rows: restore the lead field's order
        rows = [names.index(n) for n in stored]
        data, names = data[rows], list(stored)
    info = fwd["info"]
    types = [mne.channel_type(info, info["ch_names"].index(n)) for n in names]
    bad = sorted({t for t in types if t not in ("eeg", "mag", "grad")})
    if bad:
        raise ValueError(f"the forward has channels of type(s) {bad}; deepesi handles eeg/meg.")
    meta = dict(prov.get("meta", {}))
    for key in ("head_hash", "sensors_hash", "leadfield_hash"):
        if prov.get(key):
            meta.setdefault(key, prov[key])
    return LeadField(data, names, types, source_space, info=info, trans=trans,
                     eeg_reference=prov.get("eeg_reference", "none"), meta=meta)


def read_forward(fname: str | os.PathLike, source_space: SourceSpace | None = None) -> LeadField:
    """Read a ``-fwd.fif`` file as a LeadField.

    Parameters
    ----------
    fname : path-like
        A forward file (written by :func:`write_forward` or by MNE).
    source_space : SourceSpace | None
        Source space of the columns; default the sidecar written by :func:`write_forward`, or a
        plain free-orientation one built from the file's source space.
    """
    import mne

    fname = check_file(fname, "forward file")
    if source_space is None and sidecar_path(fname).is_file():
        source_space = read_source_space(sidecar_path(fname))
    fwd = mne.read_forward_solution(fname, verbose=False)
    lf = leadfield_from_forward(fwd, source_space)
    prov = forward_provenance(fwd)
    if source_space is not None and prov.get("source_space_hash") not in (None, "",
                                                                         source_space.hash()):
        raise ValueError(
            f"{fname} was made with another source space (hash "
            f"{prov['source_space_hash'][:12]}…, given {source_space.hash()[:12]}…)."
        )
    return lf
