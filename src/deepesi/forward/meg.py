"""MEG lead field: MNE's boundary-element method on the inner-skull compartment of a head model.

Method
------
Outside a piecewise-homogeneous conductor the magnetic field of a current dipole depends on the
volume currents, but the contribution of the poorly conducting skull shields the outer tissues so
well that a single compartment bounded by the inner skull reproduces the MEG field of a
three-layer model to within a few percent (Hämäläinen & Sarvas 1989, IEEE TBME 36:165-171). We
therefore:

1. extract the inner-skull surface from the label volume (intracranial space = WM ∪ GM ∪ CSF,
   closed, holes filled) as a star-shaped icosahedral mesh
   (:func:`deepesi.forward.surfaces.mask_surface`), pushed outwards where needed so every
   source point lies at least ``margin`` inside it;
2. build a one-layer BEM with ``mne.make_bem_model`` and solve it with ``mne.make_bem_solution``
   (linear collocation; the conductivity value does not affect MEG for one layer);
3. compute the forward with ``mne.make_forward_solution(meg=True, eeg=False)`` on a discrete
   source space of the source points (free orientation), with MNE's coil definitions
   (accurate integration, CTF compensation when the info has it);
4. rotate the dipole components from MNE's head frame to the MRI frame.

What it does not model: conductivity differences *inside* the skull (CSF vs brain,
anisotropic white matter), which the FEM EEG model does include; holes in the skull (they
matter little for MEG); the outer tissues (irrelevant for MEG to the same approximation).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from .._deprecate import progress_to_verbose
from .._logging import logger, verbose
from ..anatomy.masks import head_centre, intracranial_mask
from .surfaces import enclose_points, mask_surface

#: Conductivity used for the single BEM compartment (S/m); MEG does not depend on it.
_BEM_CONDUCTIVITY = 0.3


def discrete_source_space(pos_m: np.ndarray, normals: np.ndarray | None = None):
    """An MNE discrete source space (MRI frame) at ``pos_m`` (n, 3) metres."""
    import mne

    pos_m = np.asarray(pos_m, float)
    nn = np.zeros_like(pos_m)
    if normals is not None:
        nn = np.asarray(normals, float).copy()
    zero = np.linalg.norm(nn, axis=1) == 0
    nn[zero] = [0.0, 0.0, 1.0]
    return mne.setup_volume_source_space(
        subject=None, pos=dict(rr=pos_m, nn=nn), mri=None, verbose=False
    )


def make_inner_skull_bem(head, source_pos_m: np.ndarray | None = None, *, grade: int = 4,
                         margin: float = 0.002):
    """One-layer BEM solution (``mne.bem.ConductorModel``) on the head's inner skull.

    Parameters
    ----------
    head : HeadModel
        The head model.
    source_pos_m : ndarray, shape (n, 3) | None
        Source points (MRI, m) the surface must enclose with ``margin`` (m) to spare.
    grade : int
        Icosahedron subdivision of the surface (4: 5120 triangles; 3: 1280).

    Returns
    -------
    bem : mne.bem.ConductorModel
        The solved BEM, MRI frame.
    surface : Surface
        The inner-skull surface used.
    """
    import mne

    surf = mask_surface(intracranial_mask(head), head.affine_m, centre=head_centre(head),
                        grade=grade, name="inner_skull")
    if source_pos_m is not None:
        surf = enclose_points(surf, source_pos_m, margin=margin)
    with tempfile.TemporaryDirectory(prefix="deepesi-bem-") as tmp:
        bem_dir = Path(tmp) / "head" / "bem"
        bem_dir.mkdir(parents=True)
        mne.write_surface(bem_dir / "inner_skull.surf", surf.rr * 1000.0, surf.tris,
                          overwrite=True)
        model = mne.make_bem_model("head", ico=None, conductivity=(_BEM_CONDUCTIVITY,),
                                   subjects_dir=tmp, verbose=False)
    bem = mne.make_bem_solution(model, verbose=False)
    return bem, surf


@progress_to_verbose
@verbose
def compute_meg_leadfield(
    head, sensors, source_pos_m: np.ndarray, *, grade: int = 4, margin: float = 0.002,
    bem: Any = None, verbose: bool | str | int | None = None,
) -> tuple[np.ndarray, list[str], list[str], dict]:
    """MEG gain of the source points, dipoles along the MRI x, y, z axes.

    Parameters
    ----------
    head : HeadModel
        The head model (MRI frame).
    sensors : Sensors
        Must hold MEG channels (:func:`deepesi.sensors.sensors_from_info`).
    source_pos_m : ndarray, shape (n_sources, 3)
        Source positions, MRI frame, metres.
    grade : int
        Icosahedron subdivision of the inner-skull BEM surface.
    margin : float
        Minimum distance (m) of every source point to the inner-skull surface.
    bem : tuple | None
        ``(bem, surface)`` from :func:`make_inner_skull_bem` for these source points, to reuse
        one BEM for several sensor placements (e.g. head positions); None builds it.
    verbose : bool | str | int | None
        Log level for the call (:func:`deepesi.set_log_level`); the steps are logged at INFO.

    Returns
    -------
    gain : ndarray, shape (n_meg, n_sources, 3)
        T/(A·m) for magnetometers, T/m/(A·m) for gradiometers.
    ch_names, ch_types : list of str
        MEG channel names and types ('mag'/'grad') in row order.
    meta : dict
        Method, surface size, timing.
    """
    import mne

    if sensors.n_meg == 0:
        raise ValueError("these sensors have no MEG channels; use sensors_from_info with MEG data.")
    pos = np.asarray(source_pos_m, float)
    if pos.ndim != 2 or pos.shape[1] != 3 or not len(pos):
        raise ValueError(f"source positions must have shape (n, 3), got {pos.shape}.")
    t0 = time.perf_counter()
    bem, surf = bem if bem is not None else make_inner_skull_bem(head, pos, grade=grade,
                                                                 margin=margin)
    logger.info("MEG: one-layer BEM on the inner skull (%d triangles) in %.1f s",
                len(surf.tris), time.perf_counter() - t0)
    info = sensors.info
    meg = mne.pick_types(info, meg=True, ref_meg=True, exclude=())
    info = mne.pick_info(info, meg, verbose=False)
    src = discrete_source_space(pos)
    fwd = mne.make_forward_solution(info, sensors.trans, src, bem, meg=True, eeg=False,
                                    mindist=0.0, verbose=False)
    if fwd["nsource"] != len(pos):
        raise RuntimeError(
            f"MNE kept {fwd['nsource']} of {len(pos)} sources inside the inner skull; this should "
            "not happen (the surface is built to enclose them). Please report it."
        )
    names = list(fwd["sol"]["row_names"])
    order = [names.index(n) for n in sensors.meg_names]
    g_head = fwd["sol"]["data"][order].reshape(len(order), len(pos), 3)
    mri_to_head = np.linalg.inv(np.asarray(sensors.trans["trans"], float))[:3, :3]
    gain = g_head @ mri_to_head  # q_head = R q_mri  →  G_mri = G_head R
    types = [t for t in sensors.ch_types if t != "eeg"]
    meta = {
        "method": "mne-bem-1layer-inner-skull",
        "bem_triangles": len(surf.tris),
        "margin_m": float(margin),
        "seconds": time.perf_counter() - t0,
        "mne_version": mne.__version__,
    }
    logger.info("MEG: %d channels x %d sources in %.1f s", len(order), len(pos),
                meta["seconds"])
    return gain, list(sensors.meg_names), types, meta
