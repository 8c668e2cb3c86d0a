"""The registry of the networks shipped in the package: names, what each was trained for, and
where its files are (no training code, so that :func:`deepesi.training.read_model` can resolve a
shipped name; :mod:`deepesi.pretrained` loads them)."""

from __future__ import annotations

from pathlib import Path

__all__ = ["MODELS_DIR", "PRETRAINED", "SCALP_LEADFIELD", "pretrained_files"]

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
    "template-eeg": {
        "head": "template",
        "layout": "any",
        "cap_free": True,
        "leadfield": "template-scalp-fwd.npz",
        "description": (
            "embedded template head, any EEG cap (trained on random electrode sets of 16-256 "
            "channels read through a fixed virtual layout), 5 mm cortical + subcortical grid"
        ),
    },
    "template-eeg-w5": {
        "head": "template",
        "layout": "any",
        "cap_free": True,
        "leadfield": "template-scalp-fwd.npz",
        "description": (
            "as template-eeg (any EEG cap), but the net reads a 5-sample window centred on each "
            "time sample (evoked responses and other smooth time courses; 250 Hz-like sampling); "
            "the default for EEG recordings"
        ),
    },
    "template-meg306": {
        "head": "template",
        "layout": "neuromag306",
        "modality": "meg",
        "system": "neuromag306",
        "head_positions_rms": (8.0, 6.0),
        "description": (
            "embedded template head, MEGIN/Neuromag 306 MEG (102 magnetometers, 204 planar "
            "gradiometers), trained over head positions in the helmet (RMS 8 mm / 6 deg); the "
            "recording's dev_head_t places the sensors for the fit; 5 mm cortical + "
            "subcortical grid"
        ),
    },
}

#: The dense scalp lead field of the template (any electrode set's EEG gain).
SCALP_LEADFIELD = "template-scalp-fwd.npz"

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
        float16 gain of the base model; none for a template MEG model, whose forward is
        computed for the recording's head position) and ``'evaluation'`` (JSON; may be
        absent).
    """
    if name not in PRETRAINED:
        raise ValueError(f"unknown pretrained model {name!r}; available: {sorted(PRETRAINED)}.")
    entry = PRETRAINED[name]
    base = entry.get("shares", name)  # a variant reuses its base's forward
    files = {
        "model": MODELS_DIR / f"{name}.pt",
        "leadfield": MODELS_DIR / entry.get("leadfield", f"{base}-fwd.npz"),
        "evaluation": MODELS_DIR / f"{name}-evaluation.json",
    }
    if entry.get("modality") == "meg":  # its forward is computed for the recording's head
        del files["leadfield"]
    missing = [str(p) for k, p in files.items() if k != "evaluation" and not p.is_file()]
    if missing:
        raise FileNotFoundError(
            f"pretrained model {name!r} is incomplete in this installation (missing "
            f"{', '.join(missing)}); rebuild it with scripts/build_pretrained.py."
        )
    return files
