"""MEG sensors around a template head: a system's helmet (from any recording's ``mne.Info``)
placed by a device → head transform, and how far its coils are from the scalp.

A template MEG network is trained for one system (its channels and coil geometry, in the
device frame) over a range of head positions in the helmet; at localization the recording's own
``dev_head_t`` places its sensors around the template (:func:`template_meg_sensors`), which is
where the forward of that recording is computed. The head frame of a recording and of the
template are both defined by the fiducials (nasion, LPA, RPA), so the recording's device → head
transform applies to the template as it is.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._validation import validate_type
from .container import Sensors, apply_transform
from .registration import template_head_to_mri

__all__ = ["coil_clearance_mm", "draw_head_positions", "head_position_change",
           "random_rigid_motion", "template_head_to_mri", "template_meg_sensors"]


def _as_matrix(t: Any) -> np.ndarray:
    """The 4x4 matrix of an ``mne.transforms.Transform`` (or of a matrix)."""
    return np.asarray(t["trans"] if hasattr(t, "keys") else t, float)


def template_meg_sensors(head: Any, info: Any, dev_head_t: Any = None, *,
                         scaling: Any = None) -> Sensors:
    """The MEG sensors of ``info`` around ``head``, placed by ``dev_head_t``.

    Parameters
    ----------
    head : HeadModel
        A head with known fiducials (the template).
    info : mne.Info
        A recording's measurement info: its MEG channels (and CTF reference channels) give the
        system's coils in the device frame; EEG and other channels are dropped.
    dev_head_t : mne.transforms.Transform | ndarray (4, 4) | None
        Device → head transform; None: the one ``info`` carries.
    scaling : HeadScaling | None
        The template fitted to the subject's digitization
        (:func:`deepesi.sensors.scaling.fit_head_scaling`): the coils are then placed where the
        subject's head puts them relative to the template scaled to its size (positions by the
        fitted map, coil axes by its linear part, re-orthonormalised), written in the template's
        head frame with an identity ``dev_head_t``. None: the rigid placement by the fiducials.

    Returns
    -------
    Sensors
        MEG channels only, head → MRI transform of the template.
    """
    import mne

    from .info import sensors_from_info

    validate_type(info, mne.Info, "info", "an mne.Info (a recording's measurement info)")
    if not len(mne.pick_types(info, meg=True, ref_meg=False, exclude=())):
        raise ValueError("info has no MEG channels; a template MEG model needs a recording "
                         "with MEG sensors (and its dev_head_t).")
    info = info.copy()
    if dev_head_t is not None:
        mat = _as_matrix(dev_head_t)
        if mat.shape != (4, 4) or not np.allclose(mat[3], [0, 0, 0, 1]):
            raise ValueError(f"dev_head_t must be a 4x4 rigid transform, got shape {mat.shape}.")
        with info._unlock():
            info["dev_head_t"] = mne.transforms.Transform("meg", "head", mat)
    trans = template_head_to_mri(head)
    if scaling is not None:
        if info["dev_head_t"] is None:
            raise ValueError("info has no dev_head_t: the coils cannot be placed.")
        info = _scaled_coils(info, scaling, np.asarray(trans["trans"], float))
    return sensors_from_info(info, trans, head, picks=("meg",))


def _scaled_coils(info: Any, scaling: Any, head_to_mri: np.ndarray) -> Any:
    """``info`` with its MEG coils mapped by ``scaling`` into the template's head frame
    (device frame = head frame)."""
    import mne

    dev_head = _as_matrix(info["dev_head_t"])
    mri_to_head = np.linalg.inv(head_to_mri)
    linear = mri_to_head[:3, :3] @ (np.diag(1.0 / np.asarray(scaling.scale, float))
                                    @ scaling.rotation) @ dev_head[:3, :3]
    info = info.copy()
    picks = mne.pick_types(info, meg=True, ref_meg=True, exclude=())
    with info._unlock():
        for i in picks:
            loc = info["chs"][i]["loc"]
            pos_head = apply_transform(dev_head, loc[None, :3])
            pos = apply_transform(mri_to_head, scaling.to_template(pos_head))[0]
            ez = linear @ loc[9:12]
            ez /= np.linalg.norm(ez)
            ex = linear @ loc[3:6]
            ex -= ez * (ex @ ez)
            ex /= np.linalg.norm(ex)
            ey = np.cross(ez, ex)
            loc[:] = np.r_[pos, ex, ey, ez]
        info["dev_head_t"] = mne.transforms.Transform("meg", "head", np.eye(4))
    return info


def _signed_distance(head: Any):
    """Interpolator of the signed distance (mm) to the head's outer surface, in voxel indices
    offset by the padding (cached on the head object: the transforms take seconds)."""
    from scipy import ndimage
    from scipy.interpolate import RegularGridInterpolator

    cached = getattr(head, "_deepesi_signed_distance", None)
    if cached is not None:
        return cached
    pad = 80  # voxels around the volume, so that coils above a cropped head are measured
    mask = np.pad(head.labels > 0, pad)
    vox = np.abs(np.diag(head.affine_m[:3, :3])) * 1e3
    outside = ndimage.distance_transform_edt(~mask, sampling=vox)
    outside -= ndimage.distance_transform_edt(mask, sampling=vox)
    signed = (RegularGridInterpolator([np.arange(n) for n in mask.shape], outside,
                                      bounds_error=False, fill_value=np.inf), pad)
    object.__setattr__(head, "_deepesi_signed_distance", signed)
    return signed


def coil_clearance_mm(head: Any, sensors: Sensors) -> np.ndarray:
    """Distance (mm) of each MEG coil centre to the head's outer surface (any tissue).

    Negative where a coil lies inside the head: a head position that no helmet allows.
    """
    import mne

    picks = mne.pick_types(sensors.info, meg=True, ref_meg=False, exclude=())
    dev_head = np.asarray(sensors.info["dev_head_t"]["trans"], float)
    coils_dev = np.array([sensors.info["chs"][i]["loc"][:3] for i in picks], float)
    coils_mri = apply_transform(np.asarray(sensors.trans["trans"], float) @ dev_head, coils_dev)
    signed, pad = _signed_distance(head)
    return signed(apply_transform(np.linalg.inv(head.affine_m), coils_mri) + pad)


def head_position_change(dev_head_a: Any, dev_head_b: Any) -> tuple[float, float]:
    """How far apart two device → head transforms put the head: the shift (mm) of the head
    origin in the device frame and the rotation angle (degrees) between them."""
    a, b = _as_matrix(dev_head_a), _as_matrix(dev_head_b)
    origin_a = np.linalg.inv(a)[:3, 3]  # head origin in the device frame
    origin_b = np.linalg.inv(b)[:3, 3]
    rot = a[:3, :3] @ b[:3, :3].T
    angle = np.degrees(np.arccos(np.clip((np.trace(rot) - 1) / 2, -1.0, 1.0)))
    return float(np.linalg.norm(origin_a - origin_b) * 1e3), float(angle)


def random_rigid_motion(rng: np.random.Generator, shift_mm: float,
                        rotation_deg: float) -> np.ndarray:
    """A 4x4 rigid motion drawn from ``rng``: an isotropic Gaussian rotation vector of RMS
    angle ``rotation_deg`` (drawn first), then an isotropic Gaussian shift of RMS length
    ``shift_mm`` (metres in the matrix): the head moving in the helmet, rotating about the head
    origin, applied to a device → head transform as ``motion @ dev_head_t``."""
    from scipy.spatial.transform import Rotation

    move = np.eye(4)
    rotvec = rng.standard_normal(3) * np.deg2rad(rotation_deg) / np.sqrt(3.0)
    move[:3, :3] = Rotation.from_rotvec(rotvec).as_matrix()
    move[:3, 3] = rng.standard_normal(3) * shift_mm * 1e-3 / np.sqrt(3.0)
    return move


def draw_head_positions(
    head: Any,
    info: Any,
    n: int,
    *,
    seed: int = 0,
    shift_mm: float = 8.0,
    rotation_deg: float = 6.0,
    min_clearance_mm: float = 10.0,
    max_tries: int = 100,
) -> list[np.ndarray]:
    """Random head positions in a helmet around the nominal ``info['dev_head_t']``.

    Position ``k`` is a rigid motion of the sensors in the head frame (rotation about the head
    origin with RMS angle ``rotation_deg``, then a shift with RMS length ``shift_mm``, both
    isotropic Gaussian), drawn from ``numpy.random.default_rng([seed, k, attempt])`` and drawn
    again while a coil would come closer than ``min_clearance_mm`` to the head's surface (a
    head cannot go through the helmet). The same seed gives the same positions.

    Returns
    -------
    list of ndarray (4, 4)
        Device → head transforms.
    """
    nominal = _as_matrix(info["dev_head_t"])
    out = []
    for k in range(int(n)):
        for attempt in range(int(max_tries)):
            rng = np.random.default_rng([int(seed), k, attempt])
            dev_head = random_rigid_motion(rng, shift_mm, rotation_deg) @ nominal
            placed = template_meg_sensors(head, info, dev_head)
            if coil_clearance_mm(head, placed).min() >= min_clearance_mm:
                out.append(dev_head)
                break
        else:
            raise RuntimeError(f"no head position with {min_clearance_mm} mm clearance in "
                               f"{max_tries} draws; lower shift_mm or min_clearance_mm.")
    return out
