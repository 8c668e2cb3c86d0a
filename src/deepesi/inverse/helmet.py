"""A template MEG network on a recording: the recording's channels matched to the system the
net was trained for, its head position compared with the trained range, and the template's
forward computed where the recording's ``dev_head_t`` puts the sensors.

A template MEG net (``template-meg306``) was trained on one system's helmet around the
template head over a range of head positions (``scripts/build_template_meg.py``). A recording
of the same system gives the data in the same channels; its own ``dev_head_t`` places the
sensors for the forward that refits the map on the data (goodness of fit, refinement, source
sets), so that fit is made with the geometry of this recording, not with the nominal one.
"""

from __future__ import annotations

import re
from typing import Any

import mne
import numpy as np

from .._logging import logger
from .._validation import validate_type

__all__ = ["TRAINED_RANGE_FACTOR", "bind_meg_recording", "meg_system", "system_family"]

#: A recording's head is "outside the trained range" when its shift or rotation from the
#: nominal position exceeds this many times the RMS the training positions were drawn with.
TRAINED_RANGE_FACTOR = 2.0

_NEUROMAG_COILS = {3012, 3013, 3014, 3022, 3023, 3024}
_CTF_COILS = {5001}


def _key(name: str) -> str:
    return re.sub(r"\s+", "", str(name)).upper()


def meg_system(info: mne.Info) -> str | None:
    """The MEG system of a recording, from its MEG channels' coil types and count:
    'neuromag306', 'neuromag' (MEGIN/Neuromag coils, another count), 'ctf275' (CTF axial
    gradiometers, 240 or more: the 275-channel helmet with a few channels switched off),
    'ctf151' (120-180), 'ctf' (another count), 'other', or None (no MEG channels)."""
    picks = mne.pick_types(info, meg=True, ref_meg=False, exclude=())
    if not len(picks):
        return None
    coils = {int(info["chs"][i]["coil_type"]) for i in picks}
    if coils <= _NEUROMAG_COILS:
        return "neuromag306" if len(picks) == 306 else "neuromag"
    if coils <= _CTF_COILS:
        return "ctf275" if len(picks) >= 240 else "ctf151" if 120 <= len(picks) <= 180 else "ctf"
    return "other"


def system_family(system: str | None) -> str | None:
    """The shipped-model system a recording's system is read by ('neuromag' → 'neuromag306':
    channels of the same helmet, a few missing)."""
    return "neuromag306" if system == "neuromag" else system


def _scaling_for(head: Any, info: mne.Info, scaling: str) -> Any:
    """The template fitted to the recording's digitization (None: the rigid fiducial
    placement), by ``scaling`` as :func:`bind_meg_recording` documents."""
    from ..sensors.scaling import fit_head_scaling, resolve_placement

    scaling = resolve_placement(info, scaling)  # a scaling needs a head shape to fit
    if scaling == "fiducials":
        return None
    return fit_head_scaling(head, info, mode=scaling)


def bind_meg_recording(inst: Any, model: Any, *, trained_rms: tuple[float, float] | None = None,
                       scaling: str = "auto", map_to_nominal: bool = True,
                       cache_dir: Any = None) -> tuple[Any, Any, Any, dict]:
    """Match a recording to a template MEG model, place its sensors and compute its forward.

    Parameters
    ----------
    inst : mne.io.Raw | mne.Epochs | mne.Evoked
        A recording of the model's MEG system (channel names may differ in spacing:
        ``'MEG0113'`` and ``'MEG 0113'`` are the same channel).
    model : TrainedModel
        A template MEG model (its ``info`` holds the system at the nominal head position).
    trained_rms : (shift_mm, rotation_deg) | None
        RMS of the head positions the model was trained over; with it, a warning when the
        recording's head is beyond :data:`TRAINED_RANGE_FACTOR` times that.
    scaling : {'auto', '3-axis', 'uniform', 'fiducials'}
        How the recording's sensors are placed around the template: 'fiducials', rigidly by
        the head frame (the recording's ``dev_head_t``); '3-axis' / 'uniform', relative to
        the template scaled to the subject's fiducials and head-shape points
        (:func:`deepesi.sensors.scaling.fit_head_scaling`; needs at least 20 head-shape
        points). 'auto': '3-axis' with at least 20 head-shape points, else 'fiducials'.
    map_to_nominal : bool
        Read the data through the field the model's nominal geometry would have measured
        (:func:`deepesi.inverse.fieldmap.field_mapping_matrix` from this recording's forward
        to the nominal one): the returned model is then a
        :class:`~deepesi.inverse.fieldmap.MappedInputModel`.
    cache_dir
        Passed to :func:`deepesi.pretrained.template_meg_forward`.

    Returns
    -------
    inst : same type
        The recording, or a copy of it with the model's channel names where they are spelled
        differently (the input is never modified).
    model : TrainedModel | MappedInputModel
        The model to apply to ``inst``.
    forward : LeadField
        At the recording's head position (and scaling): for the fit, the source sets and the
        classical methods.
    report : dict
        ``system``, ``head_shift_mm`` and ``head_rotation_deg`` (the recording's
        ``dev_head_t`` against the nominal one), ``outside_trained_range``, ``n_renamed``,
        ``scaling`` (None or the fit's summary), ``mapped_to_nominal``.
    """
    from ..anatomy.template import load_template
    from ..sensors.helmet import head_position_change

    info = getattr(inst, "info", None)
    validate_type(info, mne.Info, "inst.info", "an MNE recording (Raw, Epochs or Evoked)")
    system = meg_system(info)
    want = meg_system(model.info)
    if system is None:
        raise ValueError("the recording has no MEG channels; this model is a template MEG "
                         f"model ({want}). Use an EEG model for EEG (--model auto).")
    keys = {_key(n): n for n in info["ch_names"]}
    found = [n for n in model.ch_names if _key(n) in keys]
    if system_family(system) != system_family(want) or len(found) < 0.9 * len(model.ch_names):
        raise ValueError(
            f"the recording's MEG system ({system}, {len(found)} of the model's "
            f"{len(model.ch_names)} channels by name) is not the model's ({want}); no "
            "template model is shipped for it: compute its forward (deepesi forward --meg) "
            "and train one (deepesi train).")
    if info["dev_head_t"] is None:
        raise ValueError("the recording has no dev_head_t (device → head transform): its head "
                         "position in the helmet is needed.")
    rename = {keys[_key(n)]: n for n in found if keys[_key(n)] != n}
    if rename:  # a renamed copy; the recording itself is never modified
        inst = inst.copy()
        inst.rename_channels(rename)
    shift, angle = head_position_change(model.info["dev_head_t"], info["dev_head_t"])
    report = {"system": system, "head_shift_mm": shift, "head_rotation_deg": angle,
              "n_renamed": len(rename), "outside_trained_range": False}
    if trained_rms is not None:
        lim_shift, lim_rot = (TRAINED_RANGE_FACTOR * float(v) for v in trained_rms)
        if shift > lim_shift or angle > lim_rot:
            report["outside_trained_range"] = True
            logger.warning(
                "the head sits %.1f mm / %.1f deg from the model's nominal position, beyond the "
                "range it was trained over (%.0f mm / %.0f deg): expect larger errors.",
                shift, angle, lim_shift, lim_rot)
    fit = _scaling_for(load_template(), info, scaling)
    report["scaling"] = None if fit is None else fit.to_dict()
    from ..pretrained import template_meg_forward

    forward = template_meg_forward(model, info, scaling=fit, cache_dir=cache_dir)
    logger.info("head position: %.1f mm, %.1f deg from the nominal one; template %s",
                shift, angle, "rigid" if fit is None else f"scaled ({fit.mode})")
    report["mapped_to_nominal"] = bool(map_to_nominal)
    if map_to_nominal:
        from .fieldmap import MappedInputModel, field_mapping_matrix

        nominal = template_meg_forward(model, cache_dir=cache_dir)
        scale = np.asarray(model.channel_scale, float)
        model = MappedInputModel(model, field_mapping_matrix(forward.gain, nominal.gain,
                                                             scale, scale))
    return inst, model, forward, report
