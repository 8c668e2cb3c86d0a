"""Pretrained networks shipped inside the package (no download: they live in ``deepesi/data``).

Each pretrained model is three files in ``deepesi/data/models``: the network (``<name>.pt``),
the source space it predicts on (``<name>-src.npz``) and the training lead field
(``<name>-fwd.npz``, float16, enough for simulation and the classical methods), built by
``scripts/build_pretrained.py``. A variant trained on the same forward (e.g. a window model)
names its base in ``"shares"`` and ships only its network and evaluation.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np

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
    """Paths of the files of pretrained model ``name`` (checked to exist)."""
    if name not in PRETRAINED:
        raise ValueError(f"unknown pretrained model {name!r}; available: {sorted(PRETRAINED)}.")
    base = PRETRAINED[name].get("shares", name)  # a variant reuses its base's source space/forward
    files = {
        "model": MODELS_DIR / f"{name}.pt",
        "source_space": MODELS_DIR / f"{base}-src.npz",
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
    """Load a shipped pretrained model with its source space and training lead field.

    Returns
    -------
    model : deepesi.training.TrainedModel
    leadfield : deepesi.forward.LeadField
        The training lead field (float16 precision), with sensors registered to the template.
    """
    from .anatomy.template import load_template
    from .forward.leadfield import LeadField
    from .sensors import make_eeg_sensors
    from .sources import SourceSpace
    from .training import load_model

    files = pretrained_files(name)
    spec = PRETRAINED[name]
    src = SourceSpace.load(files["source_space"])
    with np.load(files["leadfield"], allow_pickle=False) as data:
        gain = data["gain"].astype(np.float64)
        ch_names = [str(c) for c in data["ch_names"]]
        ch_types = [str(c) for c in data["ch_types"]]
        meta = json.loads(str(data["meta"]))
    sensors = make_eeg_sensors(load_template(), spec["layout"])
    if sensors.eeg_names != ch_names:
        raise ValueError(f"pretrained {name!r}: its channels differ from layout {spec['layout']}.")
    lf = LeadField(gain, ch_names, ch_types, src, info=sensors.info, trans=sensors.trans,
                   meta=meta)
    model = load_model(files["model"])
    return model, lf
