"""Pretrained networks shipped inside the package (no download: they live in ``deepesi/data``).

Each pretrained model is two files in ``deepesi/data/models``: the network (``<name>.pt``, which
carries its source space, the channels' ``mne.Info`` and the head → MRI transform) and the
training lead field's gain (``<name>-fwd.npz``, float16, enough for simulation and the classical
methods), built by ``scripts/build_pretrained.py``. A variant trained on the same forward (e.g. a
window model) names its base in ``"shares"`` and ships only its network and evaluation.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np

__all__ = ["MODELS_DIR", "PRETRAINED", "load_pretrained", "pretrained_files", "save_leadfield_npz"]

#: The pretrained models and what each was trained for.
PRETRAINED = {
    "template-eeg64": {
        "head": "template",
        "layout": "standard_1010_64",
        "description": (
            "embedded template head, 64-channel 10-10 EEG, 5 mm cortical + subcortical grid"
        ),
    },
    "template-eeg64-w5": {
        "head": "template",
        "layout": "standard_1010_64",
        "shares": "template-eeg64",
        "description": (
            "as template-eeg64, but the net reads a 5-sample window centred on each time sample "
            "(for evoked responses and other smooth time courses; 250 Hz-like sampling)"
        ),
    },
}

MODELS_DIR = Path(__file__).parent / "data" / "models"


def pretrained_files(name: str = "template-eeg64") -> dict[str, Path]:
    """Paths of the files of pretrained model ``name`` (checked to exist).

    Parameters
    ----------
    name : str
        A key of :data:`PRETRAINED`.

    Returns
    -------
    dict
        ``'model'`` (the network, with its source space and sensor Info), ``'leadfield'`` (the
        float16 gain of the base model) and ``'evaluation'`` (JSON; may be absent).
    """
    if name not in PRETRAINED:
        raise ValueError(f"unknown pretrained model {name!r}; available: {sorted(PRETRAINED)}.")
    base = PRETRAINED[name].get("shares", name)  # a variant reuses its base's forward
    files = {
        "model": MODELS_DIR / f"{name}.pt",
        "leadfield": MODELS_DIR / f"{base}-fwd.npz",
        "evaluation": MODELS_DIR / f"{name}-evaluation.json",
    }
    missing = [str(p) for k, p in files.items() if k != "evaluation" and not p.is_file()]
    if missing:
        raise FileNotFoundError(
            f"pretrained model {name!r} is incomplete in this installation (missing "
            f"{', '.join(missing)}); rebuild it with scripts/build_pretrained.py."
        )
    return files


def save_leadfield_npz(leadfield, path: Path) -> None:
    """Write a lead field's gain (float16) and channels for shipping with a pretrained model."""
    np.savez_compressed(
        path, gain=leadfield.gain.astype(np.float16), ch_names=np.array(leadfield.ch_names),
        ch_types=np.array(leadfield.ch_types), meta=json.dumps(leadfield.meta),
    )


@lru_cache(maxsize=2)
def load_pretrained(name: str = "template-eeg64"):
    """Load a shipped pretrained model with its training lead field.

    The lead field is the shipped float16 gain on the source space, sensor Info and head → MRI
    transform that the model file carries (no montage is registered again).

    Parameters
    ----------
    name : str
        A key of :data:`PRETRAINED`.

    Returns
    -------
    model : deepesi.training.TrainedModel
    leadfield : deepesi.forward.LeadField
        The training lead field (float16 precision), with the sensors as registered to the
        template when the model was built.
    """
    from mne.transforms import Transform

    from .forward.leadfield import LeadField
    from .training import read_model

    files = pretrained_files(name)
    model = read_model(files["model"])
    missing = [a for a in ("source_space", "info", "trans") if getattr(model, a) is None]
    if missing:
        raise ValueError(
            f"pretrained {name!r}: the model file lacks its {', '.join(missing)}; rebuild it "
            "with scripts/build_pretrained.py --stage ship."
        )
    with np.load(files["leadfield"], allow_pickle=False) as data:
        gain = data["gain"].astype(np.float64)
        ch_names = [str(c) for c in data["ch_names"]]
        ch_types = [str(c) for c in data["ch_types"]]
        meta = json.loads(str(data["meta"]))
    if ch_names != list(model.ch_names) or model.info.ch_names != ch_names:
        raise ValueError(f"pretrained {name!r}: the model's channels differ from its lead field.")
    lf = LeadField(gain, ch_names, ch_types, model.source_space, info=model.info,
                   trans=Transform("head", "mri", model.trans), meta=meta)
    return model, lf
