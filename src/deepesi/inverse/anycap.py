"""A montage-independent network read through one recording's electrodes.

A model trained on random caps (``meta['cap_free']``, :mod:`deepesi.simulation.caps`) has
*virtual* channels. :func:`bind_recording` registers the recording's EEG electrodes to the head
the model was trained on (by their fiducials, scaled to the head, projected onto its scalp, as
:func:`deepesi.sensors.make_eeg_sensors` does for a montage), builds the same spline map to the
virtual channels that training used, and the electrodes' lead field from the dense scalp lead
field. The returned :class:`CapBoundModel` has the recording's channel names, so
:func:`deepesi.inverse.apply_network` treats it like any other model.
"""

from __future__ import annotations

from typing import Any

import mne
import numpy as np

from .._logging import logger

__all__ = ["CapBoundModel", "bind_recording", "is_cap_free"]


def is_cap_free(model: Any) -> bool:
    """Whether ``model`` was trained on random caps (reads any EEG electrode set) and is not
    yet bound to one (:class:`CapBoundModel`)."""
    from .fieldmap import MappedInputModel

    while isinstance(model, MappedInputModel):  # a linear map in front: look at the net
        model = model.base
    if isinstance(model, CapBoundModel):
        return False
    return bool((getattr(model, "meta", None) or {}).get("cap_free"))


class CapBoundModel:
    """A montage-independent :class:`~deepesi.training.TrainedModel` bound to one electrode
    set: ``ch_names`` are the recording's electrodes, :meth:`predict` maps their
    (average-referenced) data to the virtual channels and runs the network.

    Attributes
    ----------
    base : TrainedModel
        The network with its virtual channels.
    sensors : Sensors
        The recording's electrodes as placed on the model's head.
    to_virtual : ndarray, shape (n_virtual, n_electrodes)
    """

    def __init__(self, base: Any, sensors: Any, centre: np.ndarray) -> None:
        from ..sensors.virtual import cap_to_virtual, layout_positions

        self.base = base
        self.sensors = sensors
        virtual = layout_positions(base.info, base.trans)
        self.to_virtual = cap_to_virtual(sensors.eeg_pos_mri, virtual, centre)
        self.ch_names = list(sensors.eeg_names)
        self.ch_types = ["eeg"] * len(self.ch_names)
        self.channel_scale = np.full(len(self.ch_names), float(base.channel_scale[0]))
        self.whitener = None
        self.info = sensors.info
        self.trans = np.asarray(sensors.trans["trans"])
        self.source_space = base.source_space
        self.source_space_hash = base.source_space_hash
        self.leadfield_hash = None
        self.sim_config = base.sim_config
        self.meta = {**base.meta, "bound_to": {"n_electrodes": len(self.ch_names),
                                               **{k: sensors.meta.get(k) for k in
                                                  ("scale", "projection_mm",
                                                   "fiducial_residual_mm", "scaling")}}}

    @property
    def n_sources(self) -> int:
        """Number of source points."""
        return self.base.n_sources

    def predict(self, data: np.ndarray, *, ch_names: list[str] | None = None,
                **kwargs: Any) -> np.ndarray:
        """Maps (n_sources, n_times) of data (n_electrodes, n_times) in the order of
        :attr:`ch_names` (or of ``ch_names``, matched by name); other keywords go to the base
        model's ``predict``."""
        x = np.asarray(data, float)
        squeeze = x.ndim == 1
        x = x[:, None] if squeeze else x
        if ch_names is not None:
            index = {n: i for i, n in enumerate(ch_names)}
            missing = [n for n in self.ch_names if n not in index]
            if missing or len(ch_names) != len(x):
                raise ValueError(f"data rows do not match the bound electrodes (missing "
                                 f"{missing[:5]}); bind the model to this recording.")
            x = x[[index[n] for n in self.ch_names]]
        if len(x) != len(self.ch_names):
            raise ValueError(f"data has {len(x)} rows, the bound model {len(self.ch_names)} "
                             "electrodes.")
        x = x - x.mean(axis=0, keepdims=True)
        out = self.base.predict(self.to_virtual @ x, **kwargs)
        return out[:, 0] if squeeze else out

    def __repr__(self) -> str:
        return (f"<CapBoundModel | {len(self.ch_names)} electrodes → "
                f"{len(self.base.ch_names)} virtual channels, {self.n_sources} sources>")


def _with_positions(montage: Any, names: list[str]) -> list[str]:
    """The channels a montage gives a finite, non-zero position."""
    if montage is None:
        return []
    pos = montage.get_positions()["ch_pos"]
    return [n for n in names
            if n in pos and np.all(np.isfinite(pos[n])) and np.any(pos[n] != 0)]


def _left_out(names: list[str], kept: list[str], why: str) -> None:
    if len(kept) < len(names):
        logger.warning("%d EEG channel(s) %s are left out: %s", len(names) - len(kept), why,
                       ", ".join(n for n in names if n not in kept))


def _standard_montage(names: list[str]) -> tuple[Any, list[str]]:
    """MNE's 10-05 positions for the channels named by the 10-05 system (case-insensitive);
    returns the montage (with its fiducials) and the names it places."""
    from ..sensors.montages import resolve_montage

    std, _ = resolve_montage("standard_1005")
    pos = std.get_positions()
    lower = {k.lower(): k for k in pos["ch_pos"]}
    found = {n: pos["ch_pos"][lower[n.lower()]] for n in names if n.lower() in lower}
    montage = mne.channels.make_dig_montage(ch_pos=found, nasion=pos["nasion"], lpa=pos["lpa"],
                                            rpa=pos["rpa"], coord_frame="head")
    return montage, list(found)


def _recording_montage(info: mne.Info, names: list[str]) -> tuple[Any, list[str]]:
    """The recording's electrode positions with its fiducials, as a head-frame montage, and
    the channels it places; by the 10-05 names when the recording has no positions."""
    montage = info.get_montage()
    placed = _with_positions(montage, names)
    if len(placed) < max(8, 0.8 * len(names)):  # no usable positions: the 10-05 names
        montage, placed = _standard_montage(names)
        if len(placed) < max(8, 0.8 * len(names)):
            unknown = [n for n in names if n not in placed]
            raise ValueError(
                f"the recording's EEG channels have no positions and {len(unknown)} of "
                f"{len(names)} are not 10-05 names ({unknown[:5]}); set the montage "
                "(raw.set_montage('GSN-HydroCel-128'), the digitized one, ...; CLI: "
                "--montage NAME).")
        _left_out(names, placed, "without a position and a 10-05 name")
        logger.info("no electrode positions in the recording: %d placed by their 10-05 names",
                    len(placed))
        return montage, placed
    _left_out(names, placed, "without a position")
    pos = montage.get_positions()
    missing = [k for k in ("nasion", "lpa", "rpa") if pos.get(k) is None]
    if missing:
        raise ValueError(
            f"the recording's montage has no {', '.join(missing)}: a montage-independent net "
            "places the electrodes on its template by the fiducials. Set a montage that has "
            "them (MNE's standard montages do: raw.set_montage('standard_1005')).")
    return montage, placed


def _scaled_sensors(head: Any, info: mne.Info, montage: Any, names: list[str], mode: str,
                    mri_fiducials: dict | None) -> Any:
    """The electrodes placed on ``head`` by a scaling fitted to the digitization."""
    from dataclasses import replace

    from ..sensors.scaling import fit_head_scaling
    from ..sensors.scalp import place_on_scalp
    from ..sensors.virtual import template_sensors

    fit = fit_head_scaling(head, info, mode=mode, mri_fiducials=mri_fiducials)
    pos = montage.get_positions()["ch_pos"]
    el = fit.to_template(np.array([pos[n] for n in names], float))
    placed, dist, _ = place_on_scalp(head, el, names, 0.01, "scaled electrodes")
    sensors = template_sensors(head, placed, names, mri_fiducials)
    return replace(sensors, meta={**sensors.meta, "source": f"scaled to the digitization "
                                  f"({mode})", "scale": fit.scale.tolist(),
                                  "scaling": fit.to_dict(),
                                  "projection_mm": {"median": float(np.median(dist) * 1e3),
                                                    "max": float(dist.max() * 1e3)}})


def bind_recording(model: Any, info: mne.Info, scalp_lf: Any = None, *,
                   head: Any = None, mri_fiducials: dict | None = None,
                   scaling: str = "auto") -> tuple[CapBoundModel, Any]:
    """Bind a montage-independent model to a recording's EEG electrodes.

    Parameters
    ----------
    model : TrainedModel
        Trained on random caps (:func:`is_cap_free`).
    info : mne.Info
        The recording's measurement info: EEG channels with positions and fiducials (head
        frame). Bad channels are left out.
    scalp_lf : ScalpLeadField | None
        The dense scalp lead field of the model's head (gives the electrodes' lead field). None:
        the shipped template's, when the model is for the template.
    head : HeadModel | None
        The model's head (default the template).
    mri_fiducials : dict | None
        The head's fiducials (MRI frame, m), for a head without an MNI transform.
    scaling : {'auto', '3-axis', 'uniform', 'fiducials'}
        How the electrodes reach the head: '3-axis' / 'uniform' fit the head to the
        recording's fiducials and head shape first (:func:`deepesi.sensors.scaling.
        fit_head_scaling`, as MNE's coregistration scales fsaverage; the fit and its
        residuals are in ``model.meta['bound_to']['scaling']``); 'fiducials' registers by the
        fiducials with one scale fitted to the electrodes' radii
        (:func:`deepesi.sensors.make_eeg_sensors`). 'auto': '3-axis' when the digitization
        has at least 20 head-shape points, else 'fiducials'.

    Returns
    -------
    model : CapBoundModel
    leadfield : LeadField | None
        The electrodes' lead field (average reference), from ``scalp_lf``.
    """
    from ..anatomy.template import load_template
    from ..sensors import make_eeg_sensors

    if not is_cap_free(model):
        raise ValueError("this model reads a fixed channel set; bind_recording is for "
                         "montage-independent models (trained with caps=).")
    head = load_template() if head is None else head
    picks = mne.pick_types(info, meg=False, eeg=True, exclude="bads")
    names = [info["ch_names"][i] for i in picks]
    if len(names) < 8:
        raise ValueError(f"the recording has {len(names)} good EEG channels; the "
                         "montage-independent net needs at least 8.")
    montage, names = _recording_montage(info, names)
    from ..sensors.scaling import resolve_placement

    scaling = resolve_placement(info, scaling)
    if scaling == "fiducials":
        sensors = make_eeg_sensors(head, montage, ch_names=names, mri_fiducials=mri_fiducials)
    else:
        sensors = _scaled_sensors(head, info, montage, names, scaling, mri_fiducials)
    if scalp_lf is None:
        from ..pretrained import load_scalp_leadfield

        scalp_lf = load_scalp_leadfield(model.source_space)
    bound = CapBoundModel(model, sensors, scalp_lf.centre)
    logger.info("montage-independent net: %d electrodes placed on the head (%s, scale %s, "
                "projection median %.1f mm)", len(names), sensors.meta.get("source"),
                np.round(sensors.meta.get("scale", 1.0), 3),
                sensors.meta["projection_mm"]["median"])
    return bound, scalp_lf.leadfield(sensors)
