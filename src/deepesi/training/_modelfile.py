"""How a model file stores what the model was trained for besides its weights: the source space,
the channels' ``mne.Info`` and the head → MRI transform, in types that
``torch.load(weights_only=True)`` accepts (tensors, str, numbers, lists, dicts, None).

- Source space: every field of :class:`~deepesi.sources.SourceSpace`, arrays as tensors, the
  neighbour graph as its CSR arrays, ``meta`` as JSON; restored exactly (checked by hash).
- Info: the bytes of the FIF file :func:`mne.io.write_info` writes, as a uint8 tensor, read back
  with :func:`mne.io.read_info`. FIF stores positions, transforms and projector vectors in
  float32, so their float64 values are stored beside it and put back: the Info read back equals
  the original (``mne.utils.object_diff`` finds nothing), channel scan numbers included. A
  reduced Info (that of a forward solution) is completed with defaults for writing, and the
  added keys are removed again on reading.
- Transform: a float64 (4, 4) head → MRI matrix.
"""

from __future__ import annotations

import copy
import json
import os
import tempfile
from typing import Any

import numpy as np
import torch
from scipy import sparse

from .._io import to_jsonable
from .._logging import logger
from ..sources import SourceSpace

_TRANSFORMS = ("dev_head_t", "ctf_head_t", "dev_ctf_t")


def _tensor(arr: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(arr).copy())


def _array(t: torch.Tensor | None) -> np.ndarray | None:
    return None if t is None else t.numpy()


# ---------------------------------------------------------------------------- source space
def source_space_to_state(src: SourceSpace | None) -> dict | None:
    """The source space as a dict of tensors and plain values (None stays None)."""
    if src is None:
        return None
    adj = sparse.csr_matrix(src.adjacency)
    ones = bool(np.all(adj.data == 1))
    return {
        "pos": _tensor(src.pos),
        "region_ids": _tensor(src.region_ids),
        "normals": _tensor(src.normals),
        "free_ori": _tensor(src.free_ori),
        "adj_indptr": _tensor(adj.indptr.astype(np.int32)),
        "adj_indices": _tensor(adj.indices.astype(np.int32)),
        "adj_data": None if ones else _tensor(adj.data),
        "spacing": float(src.spacing),
        "loose": float(src.loose),
        "head_hash": str(src.head_hash),
        "mri_to_mni": None if src.mri_to_mni is None else _tensor(
            np.asarray(src.mri_to_mni, float)
        ),
        "name": str(src.name),
        "meta": json.dumps(to_jsonable(src.meta)),
        "hash": src.hash(),
    }


def source_space_from_state(d: dict | None) -> SourceSpace | None:
    """Inverse of :func:`source_space_to_state`; ValueError if the hash does not match."""
    if d is None:
        return None
    n = int(d["pos"].shape[0])
    indices = d["adj_indices"].numpy()
    data = np.ones(len(indices), np.float32) if d["adj_data"] is None else d["adj_data"].numpy()
    adj = sparse.csr_matrix((data, indices, d["adj_indptr"].numpy()), shape=(n, n))
    src = SourceSpace(
        pos=d["pos"].numpy(),
        region_ids=d["region_ids"].numpy(),
        normals=d["normals"].numpy(),
        free_ori=d["free_ori"].numpy(),
        adjacency=adj,
        spacing=float(d["spacing"]),
        loose=float(d["loose"]),
        head_hash=str(d["head_hash"]),
        mri_to_mni=_array(d["mri_to_mni"]),
        name=str(d["name"]),
        meta=json.loads(d["meta"]),
    )
    if d.get("hash") and src.hash() != d["hash"]:
        raise ValueError(
            "the source space stored in this model file does not match its hash (file damaged "
            "or written by an incompatible deepesi); pass the source space explicitly."
        )
    return src


# ---------------------------------------------------------------------------- mne.Info
def info_to_state(info: Any) -> dict | None:
    """The Info as FIF bytes plus the float64 values FIF would round (None stays None)."""
    if info is None:
        return None
    import mne

    complete, missing = _completed(info)
    with tempfile.TemporaryDirectory() as tmp:
        fname = os.path.join(tmp, "model-info.fif")
        mne.io.write_info(fname, complete)
        with open(fname, "rb") as fid:
            raw = np.frombuffer(fid.read(), np.uint8)
    return {
        "fif": _tensor(raw),
        "chs_loc": _tensor(np.array([ch["loc"] for ch in info["chs"]], float).reshape(-1, 12)),
        "dig_r": None if not complete["dig"] else _tensor(
            np.array([d["r"] for d in complete["dig"]], float).reshape(-1, 3)
        ),
        "transforms": {
            key: _tensor(np.asarray(info[key]["trans"], float))
            for key in _TRANSFORMS if info.get(key) is not None
        },
        "projs": [_tensor(np.asarray(p["data"]["data"], float)) for p in complete["projs"]],
        "scanno": [int(ch["scanno"]) for ch in info["chs"]],
        "has_ids": [info.get("file_id") is not None, info.get("meas_id") is not None],
        "missing": missing,
        "extra": _extras(info, _unwritten(complete)),
    }


def _extras(info: Any, keys: set[str]) -> dict:
    """The entries ``keys`` of ``info`` in plain form (one that cannot be stored is left out,
    with a warning: it is metadata the model does not need)."""
    out = {}
    for key in sorted(keys & set(info)):
        try:
            out[key] = _plain(info[key])
        except TypeError as err:
            logger.warning("model file: Info entry %r not stored (%s)", key, err)
    return out


def _unwritten(info: Any) -> set[str]:
    """Keys of ``info`` that :func:`mne.io.write_info` does not write (the extras of a forward
    solution's Info: 'command_line', 'mri_head_t', ...)."""
    import mne

    return set(info) - set(mne.create_info(["x"], 1000.0, "eeg"))


def _plain(value: Any) -> Any:
    """``value`` in weights_only-safe types (arrays as tensors, a Transform tagged)."""
    from mne.transforms import Transform

    if isinstance(value, Transform):
        return {"__transform__": [int(value["from"]), int(value["to"])],
                "trans": _tensor(np.asarray(value["trans"], float))}
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return _tensor(value)
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise TypeError(f"cannot store an Info entry of type {type(value).__name__} in a model file.")


def _unplain(value: Any) -> Any:
    """Inverse of :func:`_plain`."""
    from mne.transforms import Transform

    if isinstance(value, dict) and "__transform__" in value:
        fr, to = value["__transform__"]
        return Transform(fr, to, value["trans"].numpy().copy())
    if isinstance(value, dict):
        return {k: _unplain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unplain(v) for v in value]
    if isinstance(value, torch.Tensor):
        return value.numpy().copy()
    return value


def _completed(info: Any) -> tuple[Any, list[str]]:
    """``info`` with the keys a full Info has and it lacks (the reduced Info of a forward
    solution has no 'events', 'sfreq', ...) filled with defaults, for writing; and those keys."""
    import mne

    template = mne.create_info(["x"], 1000.0, "eeg")
    missing = [key for key in template if key not in info]
    if not missing:
        return info, []
    info = info.copy()
    with info._unlock():
        for key in missing:
            info[key] = copy.deepcopy(template[key])
    return info, missing


def info_from_state(d: dict | None) -> Any:
    """Inverse of :func:`info_to_state`: the Info, float64 values restored."""
    if d is None:
        return None
    import mne

    with tempfile.TemporaryDirectory() as tmp:
        fname = os.path.join(tmp, "model-info.fif")
        with open(fname, "wb") as fid:
            fid.write(d["fif"].numpy().tobytes())
        info = mne.io.read_info(fname, verbose=False)
    loc = d["chs_loc"].numpy()
    with info._unlock():
        for ch, row, scanno in zip(info["chs"], loc, d["scanno"], strict=True):
            ch["loc"] = row.copy()
            ch["scanno"] = scanno
        if d["dig_r"] is not None:
            for point, r in zip(info["dig"], d["dig_r"].numpy(), strict=True):
                point["r"] = r.copy()
        for key, t in d["transforms"].items():
            info[key]["trans"] = t.numpy().copy()
        for proj, data in zip(info["projs"], d["projs"], strict=True):
            proj["data"]["data"] = data.numpy().copy()
        for key, had in zip(("file_id", "meas_id"), d["has_ids"], strict=True):
            if not had:
                info[key] = None
        for key in d.get("missing", []):  # filled in for writing only
            info.pop(key, None)
        for key, value in d.get("extra", {}).items():  # not in the FIF ('maxshield', ...)
            info[key] = _unplain(value)
    return info


# ---------------------------------------------------------------------------- transform
def trans_matrix(trans: Any) -> np.ndarray | None:
    """Head → MRI (4, 4) float64 matrix of an mne Transform (either direction), an array or
    None."""
    if trans is None:
        return None
    if isinstance(trans, np.ndarray):
        mat = np.asarray(trans, float)
    else:
        from mne.io.constants import FIFF
        from mne.transforms import invert_transform

        if trans["from"] == FIFF.FIFFV_COORD_MRI:
            trans = invert_transform(trans)
        mat = np.asarray(trans["trans"], float)
    if mat.shape != (4, 4):
        raise ValueError(f"trans must be a (4, 4) head → MRI matrix, got shape {mat.shape}.")
    return mat.copy()
