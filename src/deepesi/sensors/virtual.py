"""A cap's electrodes read through a fixed *virtual* layout of EEG channels.

The montage-independent network sees every recording through the same virtual channels,
fixed positions over the whole covered scalp of its head. A cap's electrodes reach them by a
spherical-spline interpolation (Perrin et al. 1989, the interpolation of MNE's bad-channel
repair), tapered to zero where the cap has no electrode nearby (:func:`cap_to_virtual`), so a
sparse cap leaves the scalp it does not cover empty instead of extrapolated. Training
(:mod:`deepesi.simulation.caps`) and localization (:mod:`deepesi.inverse.anycap`) build the map
with the same function.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.spatial import cKDTree

__all__ = ["cap_to_virtual", "layout_positions", "spline_matrix", "template_sensors"]


def layout_positions(info: Any, head_to_mri: np.ndarray) -> np.ndarray:
    """Channel positions (n, 3) of ``info`` (head frame) in the MRI frame (m): where a
    model's or lead field's virtual channels sit on its head."""
    from .container import apply_transform

    pos_head = np.array([ch["loc"][:3] for ch in info["chs"]], float)
    return apply_transform(np.asarray(head_to_mri, float), pos_head)


def _unit_sphere(pos: np.ndarray, centre: np.ndarray) -> np.ndarray:
    v = np.asarray(pos, float) - centre
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _legendre_g(cosang: np.ndarray, stiffness: int = 4, n_terms: int = 50) -> np.ndarray:
    """Perrin's spline kernel: sum_n (2n+1) / (n(n+1))^m P_n(cos) / 4π."""
    coef = np.zeros(n_terms + 1)
    n = np.arange(1, n_terms + 1)
    coef[1:] = (2 * n + 1) / (n * (n + 1)) ** stiffness / (4 * np.pi)
    return np.polynomial.legendre.legval(np.clip(cosang, -1, 1), coef)


def spline_matrix(from_pos: np.ndarray, to_pos: np.ndarray, centre: np.ndarray, *,
                  reg: float = 1e-7) -> np.ndarray:
    """Spherical-spline interpolation matrix (n_to, n_from) about ``centre`` (positions are
    projected onto the unit sphere around it); ``reg`` is the smoothing added to the kernel."""
    a = _unit_sphere(from_pos, centre)
    b = _unit_sphere(to_pos, centre)
    n = len(a)
    gmat = np.empty((n + 1, n + 1))
    gmat[:n, :n] = _legendre_g(a @ a.T) + reg * np.eye(n)
    gmat[:n, n] = gmat[n, :n] = 1.0
    gmat[n, n] = 0.0
    rhs = np.c_[_legendre_g(b @ a.T), np.ones(len(b))]  # (n_to, n+1)
    return np.linalg.solve(gmat, rhs.T)[:n].T  # symmetric system


def cap_to_virtual(cap_pos: np.ndarray, virtual_pos: np.ndarray, centre: np.ndarray
                   ) -> np.ndarray:
    """Map (n_virtual, n_cap) from a cap's electrodes to the virtual channels: spherical
    splines, tapered from 1 within one electrode spacing of the nearest electrode to 0 at two
    (the spacing: the cap's median nearest-neighbour distance)."""
    cap_pos = np.asarray(cap_pos, float)
    if len(cap_pos) < 4:
        raise ValueError(f"a cap needs at least 4 electrodes, got {len(cap_pos)}.")
    tree = cKDTree(cap_pos)
    nn = tree.query(cap_pos, k=2)[0][:, 1]
    spacing = float(np.median(nn))
    dist, _ = tree.query(virtual_pos)
    taper = np.clip(2.0 - dist / spacing, 0.0, 1.0)
    return taper[:, None] * spline_matrix(cap_pos, virtual_pos, centre)


def template_sensors(head: Any, pos_mri: np.ndarray, ch_names: list[str],
                     mri_fiducials: dict | None = None) -> Any:
    """:class:`~deepesi.sensors.Sensors` of EEG electrodes at ``pos_mri`` (on the scalp of
    ``head``, MRI frame, m), in the head frame of the head's own fiducials (or of
    ``mri_fiducials``, MRI frame, m)."""
    from ..sensors.container import Sensors, apply_transform
    from ..sensors.info import eeg_info
    from ..sensors.registration import mri_fiducials_of, template_head_to_mri

    fid = mri_fiducials_of(head) if mri_fiducials is None else {
        k: np.asarray(mri_fiducials[k], float) for k in ("nasion", "lpa", "rpa")}
    trans = template_head_to_mri(head, fid)
    mri_to_head = np.linalg.inv(np.asarray(trans["trans"]))
    fid_head = {k: apply_transform(mri_to_head, v[None])[0] for k, v in fid.items()}
    info = eeg_info(list(ch_names), apply_transform(mri_to_head, pos_mri), fid_head, "average")
    return Sensors(list(ch_names), ["eeg"] * len(ch_names), info, trans, pos_mri, "average",
                   {"source": "virtual layout"})
