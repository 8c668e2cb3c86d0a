"""Registration of an EEG montage to a head model, and :func:`make_eeg_sensors`.

The montage's fiducials (nasion, LPA, RPA) and the head's fiducials (from
:data:`MNI_FIDUCIALS` through the head's MRI → MNI affine, or given) each define MNE's head
frame (:func:`fiducial_frame`); identifying the two registers the montage to the head. The
montage is then scaled to the head's size and every electrode projected onto the scalp
(:func:`deepesi.sensors.scalp.place_on_scalp`).
"""

from __future__ import annotations

import numpy as np

from .._logging import logger
from .._validation import check_option
from ..anatomy.masks import head_mask, radial_boundary
from .container import EEG_REFERENCES, Sensors, apply_transform, check_trans
from .info import eeg_info
from .montages import montage_channels
from .scalp import check_positions, place_on_scalp

__all__ = ["MNI_FIDUCIALS", "fiducial_frame", "make_eeg_sensors", "mri_fiducials_of"]

#: MNI305 (fsaverage MRI) coordinates of the fiducials, metres, from MNE-Python's
#: ``mne/data/fsaverage/fsaverage-fiducials.fif``. Used to register montages to heads whose MRI
#: frame is MNI (the template) or that carry an MRI→MNI affine.
MNI_FIDUCIALS = {
    "nasion": np.array([0.00146763, 0.08506715, -0.03483611]),
    "lpa": np.array([-0.08061612, -0.02908875, -0.04131077]),
    "rpa": np.array([0.08436285, -0.02850276, -0.04127743]),
}


def fiducial_frame(nasion: np.ndarray, lpa: np.ndarray, rpa: np.ndarray) -> np.ndarray:
    """4x4 map from the frame the fiducials are given in to MNE's head (Neuromag) frame."""
    from mne.transforms import get_ras_to_neuromag_trans

    return get_ras_to_neuromag_trans(nasion, lpa, rpa)


def mri_fiducials_of(head) -> dict[str, np.ndarray]:
    """Fiducials of a head model in its MRI frame (metres), from known MNI coordinates.

    Uses the head's ``mri_to_mni`` affine (identity for the template) to map
    :data:`MNI_FIDUCIALS` into the head's MRI frame; raises if the head has none.

    Parameters
    ----------
    head : HeadModel
        The head.

    Returns
    -------
    dict
        'nasion', 'lpa', 'rpa' → ndarray (3,), MRI frame, metres.
    """
    if head.mri_to_mni is None:
        raise ValueError(
            f"head model {head.name!r} has no MRI→MNI transform, so its fiducials are unknown. "
            "Pass trans= (head→MRI, from mne coreg) or mri_fiducials={'nasion':..., 'lpa':..., "
            "'rpa':...} (MRI frame, metres)."
        )
    inv = np.linalg.inv(head.mri_to_mni)
    return {k: apply_transform(inv, v[None] * 1000.0)[0] / 1000.0
            for k, v in MNI_FIDUCIALS.items()}


def template_head_to_mri(head, mri_fiducials: dict | None = None):
    """Head → MRI transform (``mne.transforms.Transform``) of a head whose fiducials are known:
    its own (:func:`mri_fiducials_of`, the template's from its MNI fiducials) or
    ``mri_fiducials`` (MRI frame, m): the head frame of those fiducials."""
    import mne

    fid = mri_fiducials_of(head) if mri_fiducials is None else {
        k: np.asarray(mri_fiducials[k], float) for k in ("nasion", "lpa", "rpa")}
    mri_to_head = fiducial_frame(fid["nasion"], fid["lpa"], fid["rpa"])
    return mne.transforms.Transform("head", "mri", np.linalg.inv(mri_to_head))


def make_eeg_sensors(
    head,
    montage="standard_1020",
    *,
    ch_names: list[str] | None = None,
    trans=None,
    mri_fiducials: dict | None = None,
    scale: str | float | None = "auto",
    max_distance: float = 0.01,
    reference: str = "average",
) -> Sensors:
    """Place an EEG montage on the scalp of a head model.

    Parameters
    ----------
    head : HeadModel
        The head (MRI frame).
    montage : str | mne.channels.DigMontage
        A named layout (:data:`EEG_LAYOUTS`, e.g. 'standard_1010_64'), a built-in MNE montage
        name ('standard_1020', 'standard_1005', 'easycap-M1',
        'biosemi64', 'biosemi128', 'GSN-HydroCel-128', 'GSN-HydroCel-256', ...; see
        ``mne.channels.get_builtin_montages()``) or a montage with nasion, LPA and RPA.
    ch_names : list of str | None
        Subset of the montage's channels to use (in this order); default all.
    trans : path-like | mne.transforms.Transform | None
        Head → MRI transform, if known (then no fiducial registration or scaling is done and
        the montage must be in the head frame, i.e. a digitisation of this subject).
    mri_fiducials : dict | None
        Nasion, LPA and RPA of the head in its MRI frame (metres). Default: the MNI
        coordinates of MNE's fsaverage fiducials (:data:`MNI_FIDUCIALS`) mapped through
        ``head.mri_to_mni`` (identity for the template).
    scale : 'auto' | float | None
        Isotropic scaling of the montage about the head-frame origin (between the ears) to
        fit the head's size: 'auto' fits it (median over electrodes of scalp radius / electrode
        radius), a float fixes it, None keeps 1. Only used when ``trans`` is None.
    max_distance : float
        Largest median distance (m) between the registered electrodes and the scalp before
        projection; no electrode may be further than ``4 * max_distance``. Larger distances mean
        a wrong transform, wrong units or a montage that does not fit this head.
    reference : 'average' | 'none'
        EEG reference of the lead field; 'average' also adds an average-reference projector to
        ``info``.

    Returns
    -------
    Sensors
        With ``meta['fiducial_residual_mm']`` (distance of each montage fiducial to the head's
        fiducial after registration), ``meta['scale']`` and ``meta['projection_mm']``.

    Notes
    -----
    Registration defines MNE's head frame from the montage's fiducials and from the head's
    fiducials and identifies the two (a rigid map); the residual is the mismatch of the
    fiducial triangles. Electrodes are then projected onto the scalp (outer boundary of the
    label volume) along the ray from the centroid of the intracranial space.
    """

    check_option("reference", reference, EEG_REFERENCES)
    if not max_distance > 0:
        raise ValueError(f"max_distance must be > 0 (metres), got {max_distance}.")
    names, el, fids, coord_frame, montage_name = montage_channels(montage, ch_names)
    check_positions(names, el, "electrode")
    meta: dict = {"montage": montage_name, "source": "montage"}
    mask = head_mask(head)

    if trans is not None:
        trans = check_trans(trans)
        if coord_frame != "head":
            raise ValueError(
                "with trans= the montage must be in the head frame (a digitisation of this "
                f"subject); montage {montage_name!r} is in the {coord_frame!r} frame. "
                "Drop trans= to register the montage by its fiducials."
            )
        el_head = el
        fid_head = fids
        meta["scale"] = 1.0
    else:
        el_head, fid_head, trans, reg_meta = _register_by_fiducials(
            head, el, fids, montage_name, mri_fiducials, scale, mask
        )
        meta.update(reg_meta)

    head_to_mri = np.asarray(trans["trans"])
    el_mri, dist, at_edge = place_on_scalp(head, apply_transform(head_to_mri, el_head), names,
                                           max_distance, "electrodes", mask)
    meta["at_volume_edge"] = at_edge
    meta["projection_mm"] = {"median": float(np.median(dist) * 1000),
                             "max": float(dist.max() * 1000)}
    el_head_proj = apply_transform(np.linalg.inv(head_to_mri), el_mri)
    info = eeg_info(names, el_head_proj, fid_head, reference)
    logger.info(
        "EEG: %d electrodes of %s on head %r (scale %.3f, projection median %.1f mm, max %.1f mm)",
        len(names), montage_name, head.name, meta["scale"], meta["projection_mm"]["median"],
        meta["projection_mm"]["max"],
    )
    return Sensors(names, ["eeg"] * len(names), info, trans, el_mri, reference, meta)


def _register_by_fiducials(
    head, el: np.ndarray, fids: dict, montage_name: str, mri_fiducials: dict | None,
    scale: str | float | None, mask: np.ndarray,
):
    """Register montage electrodes to the head by the fiducials, scaled to the head's size.

    Returns the electrodes and fiducials in the head frame (scaled), the head → MRI transform
    and the registration meta (scale, fiducial residuals, the head's fiducials).
    """
    import mne

    missing = [k for k, v in fids.items() if v is None or not np.all(np.isfinite(v))]
    if missing:
        raise ValueError(
            f"montage {montage_name!r} has no {', '.join(missing)} fiducial(s); they are "
            "needed to register it to the head. Add them (make_dig_montage(nasion=..., "
            "lpa=..., rpa=...)) or pass trans=."
        )
    mfid = mri_fiducials_of(head) if mri_fiducials is None else {
        k: np.asarray(mri_fiducials[k], float) for k in ("nasion", "lpa", "rpa")
    }
    to_head_mon = fiducial_frame(fids["nasion"], fids["lpa"], fids["rpa"])
    mri_to_head = fiducial_frame(mfid["nasion"], mfid["lpa"], mfid["rpa"])
    el_head = apply_transform(to_head_mon, el)
    fid_head = {k: apply_transform(to_head_mon, v[None])[0] for k, v in fids.items()}
    trans = mne.transforms.Transform("head", "mri", np.linalg.inv(mri_to_head))
    s = _montage_scale(head, el_head, np.asarray(trans["trans"]), scale, mask)
    el_head = el_head * s
    fid_head = {k: v * s for k, v in fid_head.items()}
    mfid_head = {k: apply_transform(mri_to_head, v[None])[0] for k, v in mfid.items()}
    meta = {
        "scale": s,
        "fiducial_residual_mm": {
            k: float(np.linalg.norm(fid_head[k] - mfid_head[k]) * 1000) for k in fid_head
        },
        "mri_fiducials": {k: v.tolist() for k, v in mfid.items()},
    }
    return el_head, fid_head, trans, meta


def _montage_scale(head, el_head: np.ndarray, head_to_mri: np.ndarray,
                   scale: str | float | None, mask: np.ndarray) -> float:
    """The isotropic scale of the montage about the head-frame origin ('auto': fit the scalp)."""
    if scale == "auto":
        origin = head_to_mri[:3, 3]
        vec = apply_transform(head_to_mri, el_head) - origin
        r = np.linalg.norm(vec, axis=1)
        r_scalp = radial_boundary(mask, head.affine_m, origin, vec / r[:, None])
        ok = np.isfinite(r_scalp)
        if not ok.any():
            raise ValueError("the montage does not overlap the head at all; check units.")
        s = float(np.median(r_scalp[ok] / r[ok]))
    elif scale is None:
        s = 1.0
    else:
        s = float(scale)
        if not s > 0:
            raise ValueError(f"scale must be > 0, 'auto' or None, got {scale!r}.")
    if not 0.5 < s < 2.0:
        raise ValueError(
            f"the montage would have to be scaled by {s:.2f} to fit head {head.name!r}; its "
            "positions are probably not in metres, or the head fiducials are wrong."
        )
    return s
