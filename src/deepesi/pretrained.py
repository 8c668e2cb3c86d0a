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
from typing import Any

import numpy as np

__all__ = ["MODELS_DIR", "PRETRAINED", "describe_pretrained", "load_pretrained",
           "load_scalp_leadfield",
           "pretrained_files", "save_leadfield_npz", "template_meg_forward"]

from ._registry import MODELS_DIR, PRETRAINED, SCALP_LEADFIELD, pretrained_files


def load_scalp_leadfield(source_space):
    """The shipped dense scalp lead field of the template
    (:class:`~deepesi.forward.scalp.ScalpLeadField`) for ``source_space`` (the shipped models'
    5 mm grid; checked by hash)."""
    from .forward.scalp import read_scalp_leadfield

    path = MODELS_DIR / SCALP_LEADFIELD
    if not path.is_file():
        raise FileNotFoundError(f"the template's scalp lead field is missing ({path}); rebuild "
                                "it with scripts/build_scalp_leadfield.py --ship.")
    return read_scalp_leadfield(path, source_space)


def template_meg_forward(model: Any, info: Any = None, *, scaling: Any = None,
                         cache_dir: Any = None) -> Any:
    """The forward of a template MEG model: its system's sensors around the template, placed by
    ``info['dev_head_t']`` (the recording's head position; None: the model's nominal one) and,
    with ``scaling`` (a :class:`~deepesi.sensors.scaling.HeadScaling` of the template to the
    subject), relative to the template scaled to the subject's head; on the model's source
    space, with the one-layer BEM it was trained with.

    Computed by :func:`deepesi.forward.make_forward` (about 15 s) and cached on disk by content.

    Returns
    -------
    LeadField
        The model's channels, in the model's order.
    """
    from .anatomy.template import load_template
    from .forward import make_forward
    from .sensors.helmet import template_meg_sensors

    if getattr(model, "info", None) is None or getattr(model, "source_space", None) is None:
        raise ValueError("the model carries no sensor Info or source space; a template MEG "
                         "model is read with deepesi.pretrained.load_pretrained.")
    head = load_template()
    dev_head = (model.info if info is None else info)["dev_head_t"]
    if dev_head is None:
        raise ValueError("the recording has no dev_head_t (device → head transform): its head "
                         "position in the helmet is needed to place the sensors.")
    sensors = template_meg_sensors(head, model.info, dev_head, scaling=scaling)
    lf = make_forward(head, sensors, model.source_space, meg=True, cache_dir=cache_dir,
                      verbose="WARNING")
    return lf.pick(list(model.ch_names))


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
    leadfield : deepesi.forward.LeadField | deepesi.forward.scalp.ScalpLeadField
        The training lead field (float16 precision), with the sensors as registered to the
        template when the model was built; for a montage-independent model (``'template-eeg'``)
        the template's dense scalp lead field, which gives the lead field of any cap; for a
        template MEG model (``'template-meg306'``) its system's forward at the nominal head
        position, computed on first use (~15 s) and cached
        (:func:`template_meg_forward`; :func:`deepesi.inverse.helmet.bind_meg_recording`
        computes it at a recording's).
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
    if PRETRAINED[name].get("cap_free"):
        return model, load_scalp_leadfield(model.source_space)
    if PRETRAINED[name].get("modality") == "meg":  # at the nominal head position (cached)
        return model, template_meg_forward(model)
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


def describe_pretrained() -> list[dict]:
    """One row per shipped model: name, description, channels, source points, file size,
    whether its files are installed, and its evaluation (the ``-evaluation.json`` shipped with
    it: single-source errors on held-out simulations), as ``deepesi models`` prints them."""
    rows = []
    for name, spec in PRETRAINED.items():
        row = {"name": name, "description": spec["description"], "head": spec["head"],
               "installed": True, "n_sources": None, "model_mb": 0.0}
        try:
            files = pretrained_files(name)
        except FileNotFoundError:
            row["installed"] = False
            files = {"model": MODELS_DIR / f"{name}.pt",
                     "evaluation": MODELS_DIR / f"{name}-evaluation.json"}
        if spec.get("cap_free"):
            row["channels"] = "any EEG cap (by the recording's electrode positions)"
        elif spec.get("modality") == "meg":
            row["channels"] = f"MEG system {spec['system']}"
        else:
            row["channels"] = f"EEG layout {spec['layout']}"
        if row["installed"]:
            from .training import read_model

            model = read_model(files["model"])
            row["n_sources"] = model.n_sources
            if not spec.get("cap_free"):
                row["channels"] += f" ({len(model.ch_names)} channels)"
            row["model_mb"] = files["model"].stat().st_size / 1e6
        if files["evaluation"].is_file():
            row["evaluation"] = json.loads(files["evaluation"].read_text())
        rows.append(row)
    return rows
