"""A template head scaled to a subject from the digitization alone (no MRI).

As MNE's coregistration scales fsaverage to a subject (``mne coreg``, scale mode 'uniform' or
'3-axis'), :func:`fit_head_scaling` fits a rigid motion and a scaling of the template to the
subject's fiducials and head-shape points (extra points, EEG electrodes, HPI coils): it
minimises the distance of every digitized point to the scaled template's scalp, with the
fiducials pulled onto the template's own fiducials. The fit maps the subject's head frame
into the template's MRI frame (:meth:`HeadScaling.to_template`), so a recording's sensors can
be placed on the template, where the shipped networks and lead fields live; source positions
on the template go back to the subject's scaled space by :meth:`HeadScaling.to_subject`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.optimize import least_squares
from scipy.spatial import cKDTree
from scipy.spatial.transform import Rotation

from .._logging import logger

__all__ = ["MIN_HEAD_SHAPE_POINTS", "PLACEMENTS", "HeadScaling", "digitized_points",
           "fit_head_scaling", "resolve_placement"]

SCALE_MODES = ("uniform", "3-axis")


def digitized_points(info: Any) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Head-shape points (n, 3; head frame, m: extra points, EEG electrodes, HPI coils) and
    the fiducials of a recording's digitization."""
    from mne.io.constants import FIFF

    pts, fid = [], {}
    names = {FIFF.FIFFV_POINT_NASION: "nasion", FIFF.FIFFV_POINT_LPA: "lpa",
             FIFF.FIFFV_POINT_RPA: "rpa"}
    for d in info.get("dig") or []:
        if d["coord_frame"] != FIFF.FIFFV_COORD_HEAD:
            continue
        if d["kind"] == FIFF.FIFFV_POINT_CARDINAL:
            fid[names.get(d["ident"], str(d["ident"]))] = np.asarray(d["r"], float)
        elif d["kind"] in (FIFF.FIFFV_POINT_EXTRA, FIFF.FIFFV_POINT_EEG, FIFF.FIFFV_POINT_HPI):
            pts.append(d["r"])
    return np.asarray(pts, float).reshape(-1, 3), fid


@dataclass(frozen=True)
class HeadScaling:
    """A subject's head frame mapped into a template's MRI frame: ``q = R p + t`` then divided
    by ``scale`` per MRI axis (about the MRI origin).

    Attributes
    ----------
    rotation : ndarray, shape (3, 3)
    translation : ndarray, shape (3,)
        Metres.
    scale : ndarray, shape (3,)
        Template → subject size ratio per MRI axis (x, y, z); equal for 'uniform'.
    mode : str
    residual_mm : dict
        Distance of the head-shape points to the template scalp (median, 90th percentile, max)
        after the fiducial registration alone and after this fit, and of each fiducial to the
        template's.
    """

    rotation: np.ndarray
    translation: np.ndarray
    scale: np.ndarray
    mode: str
    residual_mm: dict = field(default_factory=dict)

    def to_template(self, pos_head: np.ndarray) -> np.ndarray:
        """Subject head-frame positions (n, 3) → the template's MRI frame (m)."""
        p = np.asarray(pos_head, float).reshape(-1, 3)
        return (p @ self.rotation.T + self.translation) / self.scale

    def to_subject(self, pos_template: np.ndarray) -> np.ndarray:
        """Template MRI positions (n, 3) → the subject's head frame (m)."""
        q = np.asarray(pos_template, float).reshape(-1, 3) * self.scale
        return (q - self.translation) @ self.rotation

    def to_dict(self) -> dict:
        """JSON-ready summary."""
        return {"mode": self.mode, "scale": self.scale.tolist(),
                "rotation_deg": float(np.degrees(Rotation.from_matrix(self.rotation)
                                                 .magnitude())),
                "translation_mm": (self.translation * 1e3).tolist(),
                "residual_mm": self.residual_mm}


#: How a recording's sensors may be placed on a template: by the fiducials alone, or relative
#: to the template scaled to the digitization; 'auto' chooses.
PLACEMENTS = ("auto", "3-axis", "uniform", "fiducials")

#: Head-shape points a scaling needs (:func:`fit_head_scaling`); 'auto' scales from here on.
MIN_HEAD_SHAPE_POINTS = 20


def resolve_placement(info: Any, scaling: str) -> str:
    """The placement ``scaling`` stands for on ``info``: 'auto' → '3-axis' with at least
    :data:`MIN_HEAD_SHAPE_POINTS` digitized head-shape points, else 'fiducials'; the others as
    given (checked against :data:`PLACEMENTS`)."""
    if scaling not in PLACEMENTS:
        raise ValueError(f"scaling must be 'auto', '3-axis', 'uniform' or 'fiducials', got "
                         f"{scaling!r}.")
    if scaling == "auto":
        return ("3-axis" if len(digitized_points(info)[0]) >= MIN_HEAD_SHAPE_POINTS
                else "fiducials")
    return scaling


def _stats(d: np.ndarray) -> dict:
    d = np.asarray(d) * 1e3
    return {"median": float(np.median(d)), "p90": float(np.percentile(d, 90)),
            "max": float(d.max())}


def fit_head_scaling(head: Any, info: Any, *, mode: str = "3-axis",
                     fiducial_weight: float = 3.0, min_points: int = MIN_HEAD_SHAPE_POINTS,
                     mri_fiducials: dict | None = None) -> HeadScaling:
    """Fit the template ``head`` to a recording's digitization (fiducials + head shape).

    Parameters
    ----------
    head : HeadModel
        The template (or any head with known fiducials).
    info : mne.Info
        The recording's measurement info, with its digitization (``info['dig']``).
    mode : {'3-axis', 'uniform'}
        One scale factor per MRI axis, or one for all.
    fiducial_weight : float
        Weight of each fiducial's distance to the template's fiducial against one head-shape
        point's distance to the scalp.
    min_points : int
        Fewest head-shape points to fit a scaling to.
    mri_fiducials : dict | None
        The head's fiducials (MRI, m); default from its MNI transform.

    Returns
    -------
    HeadScaling
    """
    from ..anatomy.masks import boundary_faces, head_mask
    from .registration import fiducial_frame, mri_fiducials_of

    if mode not in SCALE_MODES:
        raise ValueError(f"mode must be one of {SCALE_MODES}, got {mode!r}.")
    pts, fid = digitized_points(info)
    missing = [k for k in ("nasion", "lpa", "rpa") if k not in fid]
    if missing:
        raise ValueError(f"the digitization has no {', '.join(missing)}; the template is "
                         "scaled to the fiducials and the head shape.")
    if len(pts) < min_points:
        raise ValueError(f"the digitization has {len(pts)} head-shape points, fewer than "
                         f"{min_points}: too few to scale the template to (digitize the head "
                         "shape, or place the sensors by the fiducials alone).")
    mfid = mri_fiducials_of(head) if mri_fiducials is None else {
        k: np.asarray(mri_fiducials[k], float) for k in ("nasion", "lpa", "rpa")}
    tree = cKDTree(boundary_faces(head_mask(head), head.affine_m))
    # start: the head frames of both fiducial triangles identified (registration, no scaling)
    head_to_mri = np.linalg.inv(fiducial_frame(mfid["nasion"], mfid["lpa"], mfid["rpa"]))
    r0, t0 = head_to_mri[:3, :3], head_to_mri[:3, 3]
    fid_s = np.array([fid[k] for k in ("nasion", "lpa", "rpa")])
    fid_t = np.array([mfid[k] for k in ("nasion", "lpa", "rpa")])

    def unpack(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        rot = Rotation.from_rotvec(x[:3]).as_matrix() @ r0
        trans = t0 + x[3:6]
        scale = np.exp(x[6:9]) if mode == "3-axis" else np.full(3, np.exp(x[6]))
        return rot, trans, scale

    def residuals(x: np.ndarray) -> np.ndarray:
        rot, trans, scale = unpack(x)
        q = (pts @ rot.T + trans) / scale
        d, _ = tree.query(q)
        qf = (fid_s @ rot.T + trans) / scale
        return np.concatenate([d, np.sqrt(fiducial_weight) * np.linalg.norm(qf - fid_t, axis=1)])

    before, _ = tree.query(pts @ r0.T + t0)
    x0 = np.zeros(9 if mode == "3-axis" else 7)
    fit = least_squares(residuals, x0, loss="soft_l1", f_scale=0.005, diff_step=1e-4,
                        max_nfev=400)
    rot, trans, scale = unpack(fit.x)
    after, _ = tree.query((pts @ rot.T + trans) / scale)
    qf = (fid_s @ rot.T + trans) / scale
    res = {"n_points": len(pts), "before_fiducials_only": _stats(before), "after": _stats(after),
           "fiducials": {k: float(np.linalg.norm(qf[i] - fid_t[i]) * 1e3)
                         for i, k in enumerate(("nasion", "lpa", "rpa"))}}
    if not np.all((scale > 0.7) & (scale < 1.4)):
        raise ValueError(f"the fitted scaling {np.round(scale, 3).tolist()} is implausible; "
                         "check that the digitization is in metres and in the head frame.")
    logger.info("template scaled to the digitization (%s): scale %s, head-shape distance "
                "median %.1f → %.1f mm (%d points)", mode, np.round(scale, 3).tolist(),
                res["before_fiducials_only"]["median"], res["after"]["median"], len(pts))
    return HeadScaling(rot, trans, scale, mode, res)
