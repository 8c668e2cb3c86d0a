"""Anatomical references for localizations of real recordings: distances of a map's peaks to a
cortical label or to an MNI box, per hemisphere.

A FreeSurfer label is a patch of cortical-surface vertices (surface RAS = the MRI frame). The
distance of a peak position ``p`` to a label is the distance from ``p`` to the nearest label
vertex, in mm, and **0 when ``p`` lies inside the label's extent**, defined as the convex hull of
the label's vertices (the patch and the volume it folds around: grey matter between the banks of a
sulcus, which a 5 mm grid samples, lies inside it). :func:`label_in_brain_fraction` checks that a
label's coordinates are positions on the subject's cortex at all (labels saved from
``mne_analyze`` may carry inflated-surface coordinates). :data:`AUDITORY_MNI_BOX` is an MNI
reference that needs no label.
"""

from __future__ import annotations

import os
from pathlib import Path

import mne
import numpy as np
from scipy.spatial import Delaunay, QhullError, cKDTree

from .anatomy.regions import CORTICAL_REGIONS, hemisphere, region_name

__all__ = [
    "AUDITORY_MNI_BOX",
    "box_distance_mm",
    "hemisphere_masks",
    "hemisphere_peaks",
    "label_distance_mm",
    "label_in_brain_fraction",
    "label_positions",
    "score_auditory_peaks",
    "score_map",
    "score_sources",
    "source_set_peaks",
    "template_map_peaks",
]

#: Approximate MNI extent (mm) of the auditory cortex, Heschl's gyrus and planum temporale
#: (x = ±40…60, y = −35…−15, z = 0…15): the reference when the Aud labels are not usable. A
#: peak's distance to it is 0 inside, else to the box's nearest face, edge or corner.
AUDITORY_MNI_BOX: dict[str, tuple[tuple[float, float], ...]] = {
    "lh": ((-60.0, -40.0), (-35.0, -15.0), (0.0, 15.0)),
    "rh": ((40.0, 60.0), (-35.0, -15.0), (0.0, 15.0)),
}


def label_distance_mm(points: np.ndarray, label_pos: np.ndarray) -> np.ndarray:
    """Distance (mm) of points to a cortical label: 0 inside its extent, else to the nearest vertex.

    Parameters
    ----------
    points : ndarray, shape (n, 3) or (3,)
        Positions, metres, in the label's frame (MRI / surface RAS).
    label_pos : ndarray, shape (n_vertices, 3)
        The label's vertex positions, metres (``mne.Label.pos``).

    Returns
    -------
    ndarray, shape (n,) (or a float for one point)
        Millimetres. The label's extent is the convex hull of its vertices; a point inside it
        (or on its boundary) gets 0. NaN points give NaN.

    Notes
    -----
    With fewer than 4 affinely independent vertices there is no volume and only the distance to
    the nearest vertex is used.
    """
    pts = np.asarray(points, dtype=float)
    single = pts.ndim == 1
    pts = np.atleast_2d(pts)
    lab = np.asarray(label_pos, dtype=float)
    if pts.shape[-1] != 3 or lab.ndim != 2 or lab.shape[1] != 3 or len(lab) == 0:
        raise ValueError(
            f"points must be (n, 3) and label_pos (n_vertices>0, 3), got {pts.shape} and "
            f"{lab.shape}."
        )
    if np.abs(lab).max() > 1.0:
        raise ValueError("label_pos look like millimetres; pass metres (mne.Label.pos is in m).")
    dist = np.full(len(pts), np.nan)
    ok = np.isfinite(pts).all(axis=1)
    if ok.any():
        d, _ = cKDTree(lab).query(pts[ok])
        try:
            inside = Delaunay(lab).find_simplex(pts[ok]) >= 0
        except QhullError:  # flat or tiny label: no volume
            inside = np.zeros(int(ok.sum()), bool)
        dist[ok] = np.where(inside, 0.0, d * 1000.0)
    return float(dist[0]) if single else dist


def label_positions(label_file: str | os.PathLike, subjects_dir: str | os.PathLike | None = None,
                    subject: str = "sample") -> tuple[np.ndarray, str]:
    """Vertex positions (m, surface RAS) of a FreeSurfer label.

    A label file stores, for each vertex, the coordinates of the surface it was drawn on, which is
    not always the white surface: labels saved from ``mne_analyze`` (such as the sample data's
    ``Aud-lh.label``) may carry *inflated*-surface coordinates, which are not positions in the
    head. When ``<subjects_dir>/<subject>/surf/<hemi>.white`` exists the positions are therefore
    taken from the white surface by vertex number; otherwise the file's coordinates are used
    (check them with :func:`label_in_brain_fraction`).

    Returns
    -------
    pos : ndarray, shape (n_vertices, 3)
        Metres.
    source : str
        'white surface' or 'label file'.
    """
    label = mne.read_label(label_file, subject=subject)
    if subjects_dir is not None:
        white = Path(subjects_dir) / subject / "surf" / f"{label.hemi}.white"
        if white.is_file():
            rr = mne.read_surface(white, verbose=False)[0] / 1000.0
            if label.vertices.max() >= len(rr):
                raise ValueError(f"{label_file} has vertex numbers beyond {white} "
                                 f"({len(rr)} vertices): another subject's label?")
            return rr[label.vertices], "white surface"
    return np.asarray(label.pos, float), "label file"


def label_in_brain_fraction(label_pos: np.ndarray, head, hemi: str,
                            margin_mm: float = 3.0) -> float:
    """Fraction of a label's vertices within ``margin_mm`` of the head's cerebral cortex.

    Cerebral cortex of hemisphere ``hemi`` ('lh' or 'rh'): voxels whose region is one of that
    hemisphere's :data:`~deepesi.anatomy.regions.CORTICAL_REGIONS`. A label on the subject's
    white or pial surface scores close to 1; a label in another frame (another subject, scanner
    RAS, an inflated surface) scores far lower.
    """
    from scipy import ndimage

    if hemi not in ("lh", "rh"):
        raise ValueError(f"hemi must be 'lh' or 'rh', got {hemi!r}.")
    if head.regions is None:
        raise ValueError("the head model has no region volume; cannot check the label.")
    ids = [r for r in CORTICAL_REGIONS if hemisphere(r) == hemi]
    cortex = np.isin(head.regions, ids)
    vox = float(np.mean(np.abs(np.diag(head.affine)[:3])))
    cortex = ndimage.binary_dilation(cortex, iterations=max(1, round(margin_mm / vox)))
    ijk = np.rint(_apply_affine(np.linalg.inv(head.affine), np.asarray(label_pos) * 1000.0))
    ijk = ijk.astype(int)
    ok = ((ijk >= 0) & (ijk < np.array(cortex.shape))).all(axis=1)
    hits = np.zeros(len(ijk), bool)
    hits[ok] = cortex[tuple(ijk[ok].T)]
    return float(hits.mean())


def box_distance_mm(point_mm, box) -> float:
    """Distance (mm) of a point (mm) to an axis-aligned box ``((xlo, xhi), (ylo, yhi), (zlo,
    zhi))``: 0 inside or on it."""
    p = np.asarray(point_mm, dtype=float)
    lo, hi = np.array([b[0] for b in box], float), np.array([b[1] for b in box], float)
    if p.shape != (3,) or not (lo <= hi).all():
        raise ValueError(f"need a 3-vector and a box with lo <= hi, got {p.shape} and {box}.")
    return float(np.linalg.norm(np.maximum(lo - p, 0.0) + np.maximum(p - hi, 0.0)))


def _apply_affine(affine: np.ndarray, xyz: np.ndarray) -> np.ndarray:
    return xyz @ affine[:3, :3].T + affine[:3, 3]


def hemisphere_masks(source_space) -> dict[str, np.ndarray]:
    """Boolean masks of the left- and right-hemisphere source points (by their region).

    Points of midline regions (brainstem, unknown) belong to neither. Regions are the head
    model's (aseg for deep structures and cerebellum, atlas lobes for the cortex).
    """
    hemi = np.array([hemisphere(int(r)) for r in source_space.region_ids])
    return {"lh": hemi == "lh", "rh": hemi == "rh"}


def hemisphere_peaks(amp_map: np.ndarray, source_space) -> dict[str, int | None]:
    """Index of the strongest point of each hemisphere in a map (None if all zero there)."""
    amp = np.asarray(amp_map, dtype=float)
    if amp.shape != (source_space.n_sources,):
        raise ValueError(f"map has shape {amp.shape}, expected ({source_space.n_sources},).")
    out: dict[str, int | None] = {}
    for h, mask in hemisphere_masks(source_space).items():
        idx = np.flatnonzero(mask)
        if idx.size == 0 or not (amp[idx] > 0).any():
            out[h] = None
        else:
            out[h] = int(idx[np.argmax(amp[idx])])
    return out


def template_map_peaks(amplitudes: np.ndarray, source_space) -> dict[str, np.ndarray]:
    """Each hemisphere's strongest point (mm, the source space's MRI frame) of a map averaged
    over its time samples, (n_sources,) or (n_sources, n_times); hemispheres without one are
    left out."""
    amp = np.asarray(amplitudes, float)
    peaks = hemisphere_peaks(amp.mean(axis=1) if amp.ndim == 2 else amp, source_space)
    return {h: source_space.pos[i] * 1e3 for h, i in peaks.items() if i is not None}


def source_set_peaks(sources: list[dict]) -> dict[str, np.ndarray]:
    """Each hemisphere's source (mm) of a source list (``SourceMap.sources`` rows), by the
    sign of x (MNI-like frames), the one with the largest share of the fit."""
    out = {}
    for h, sign in (("lh", -1), ("rh", 1)):
        rows = [r for r in sources if np.sign(r["x_mm"]) == sign]
        if rows:
            best = max(rows, key=lambda r: r.get("gof_share", 0.0))
            out[h] = np.array([best["x_mm"], best["y_mm"], best["z_mm"]])
    return out


def score_auditory_peaks(points_mm: dict, xfit_mm: np.ndarray | None = None) -> dict:
    """Distances (mm) of hemisphere peaks (mm, MNI frame: the template's MRI) to the MNI
    auditory box (``box_lh_mm``, ``box_rh_mm``; None for a missing peak), the peaks themselves
    (``peak_lh_mm``, ``peak_rh_mm``) and, with ``xfit_mm`` (the xfit dipole in the same
    frame), the right peak's distance to it (``xfit_rh_mm``)."""
    row: dict = {}
    for h in ("lh", "rh"):
        p = points_mm.get(h)
        row[f"box_{h}_mm"] = (None if p is None
                              else round(box_distance_mm(p, AUDITORY_MNI_BOX[h]), 1))
        row[f"peak_{h}_mm"] = None if p is None else [round(float(v), 1) for v in p]
    if xfit_mm is not None and points_mm.get("rh") is not None:
        row["xfit_rh_mm"] = round(float(np.linalg.norm(points_mm["rh"] - xfit_mm)), 1)
    return row


def read_xfit_dipole(fname: str | os.PathLike, trans) -> dict:
    """An equivalent current dipole fitted by Elekta/MEGIN xfit (``.dip`` file), in MRI.

    Parameters
    ----------
    fname : path-like
        The ``.dip`` file (head frame, as xfit writes it); the first dipole is used.
    trans : str | path-like | mne.transforms.Transform
        Head → MRI transform of the recording (``-trans.fif``).

    Returns
    -------
    dict
        ``pos_mri_m`` (3,), ``time_s``, ``gof_percent``, ``amplitude_nAm``, ``hemi`` ('lh' or
        'rh', from the sign of x in MRI).
    """
    import warnings

    from .sensors import read_trans

    with warnings.catch_warnings():  # xfit's extra columns (noise, prob) are not MNE's
        warnings.simplefilter("ignore", RuntimeWarning)
        dip = mne.read_dipole(str(fname), verbose=False)
    t = trans if isinstance(trans, mne.transforms.Transform) else read_trans(trans)
    if t["from"] == mne.io.constants.FIFF.FIFFV_COORD_MRI:
        t = mne.transforms.invert_transform(t)
    pos = mne.transforms.apply_trans(t, dip.pos[:1])[0]
    return {"pos_mri_m": pos, "time_s": float(dip.times[0]), "gof_percent": float(dip.gof[0]),
            "amplitude_nAm": float(dip.amplitude[0] * 1e9),
            "hemi": "rh" if pos[0] > 0 else "lh"}


def _no_peak(h: str) -> dict:
    """The score columns of a hemisphere without a peak."""
    return dict.fromkeys((f"dist_{h}_mm", f"peak_{h}_mri_mm", f"peak_{h}_mni_mm",
                          f"aud_mni_{h}_mm", f"peak_{h}_region", f"peak_{h}_rel"))


def _dipole_distance(row: dict, dipole: dict) -> float | None:
    """mm from the peak in the dipole's hemisphere to the dipole (None without a peak)."""
    pk = row.get(f"peak_{dipole['hemi']}_mri_mm")
    return None if pk is None else round(float(np.linalg.norm(
        np.asarray(pk) / 1000 - np.asarray(dipole["pos_mri_m"])) * 1000), 1)


def score_map(amp_map: np.ndarray, source_space, labels: dict[str, np.ndarray],
              dipole: dict | None = None) -> dict:
    """Hemisphere peaks of a map and their distances to the auditory labels.

    Parameters
    ----------
    amp_map : ndarray, shape (n_sources,)
        Non-negative amplitudes (e.g. averaged over the window).
    source_space : SourceSpace
        The map's points.
    labels : dict
        ``{'lh': pos, 'rh': pos}``, label vertex positions (m, MRI frame).
    dipole : dict | None
        An independent dipole (:func:`read_xfit_dipole`): adds ``dist_dipole_mm``, the
        distance from the map's peak in the dipole's hemisphere to it.

    Returns
    -------
    dict
        Per hemisphere: ``dist_<h>_mm``, ``peak_<h>_mri_mm`` and ``peak_<h>_mni_mm`` (x, y, z),
        ``aud_mni_<h>_mm`` (distance to :data:`AUDITORY_MNI_BOX`; None without an MNI
        transform), ``peak_<h>_region``, ``peak_<h>_rel`` (its amplitude relative to the map's
        maximum); None where the map is zero in that hemisphere.
    """
    amp = np.asarray(amp_map, dtype=float)
    top = float(amp.max()) if amp.size else 0.0
    mni = source_space.pos_mni() if source_space.mri_to_mni is not None else None
    row: dict = {}
    for h, i in hemisphere_peaks(amp, source_space).items():
        if i is None:
            row.update(_no_peak(h))
            continue
        pos = source_space.pos[i]
        row[f"dist_{h}_mm"] = round(float(label_distance_mm(pos, labels[h])), 1)
        row[f"peak_{h}_mri_mm"] = [round(float(v), 1) for v in pos * 1000]
        row[f"peak_{h}_mni_mm"] = (None if mni is None
                                   else [round(float(v), 1) for v in mni[i]])
        row[f"aud_mni_{h}_mm"] = (None if mni is None else
                                  round(box_distance_mm(mni[i], AUDITORY_MNI_BOX[h]), 1))
        row[f"peak_{h}_region"] = region_name(int(source_space.region_ids[i]))
        row[f"peak_{h}_rel"] = round(float(amp[i] / top), 3) if top > 0 else None
    if dipole is not None:
        row["dist_dipole_mm"] = _dipole_distance(row, dipole)
    return row


def score_sources(sources: list[dict], source_space, labels: dict[str, np.ndarray],
                  dipole: dict | None = None) -> dict:
    """:func:`score_map` for a fitted source set (:attr:`deepesi.inverse.SourceMap.sources`):
    the strongest source of each hemisphere (by its nearest grid point's region) stands in for
    the map's peak, at its own off-grid position.

    "Strongest" is the source with the largest share of the fit (``gof_share``), as
    :func:`source_set_peaks` reads it, not the largest moment: a fitted moment grows where the
    sensors are insensitive (deep or, for MEG, radial sources), so the largest moment is often
    a weak, badly determined source. Rows without ``gof_share`` are ranked by moment.

    Parameters
    ----------
    sources : list of dict
        Rows with ``x_mm``, ``y_mm``, ``z_mm`` (MRI) and ``amplitude_nAm``.
    source_space : SourceSpace
        The grid the sources were fitted on (regions, MNI transform).
    labels : dict
        ``{'lh': pos, 'rh': pos}``, label vertex positions (m, MRI frame).
    dipole : dict | None
        An independent dipole (:func:`read_xfit_dipole`).

    Returns
    -------
    dict
        The keys of :func:`score_map` (``peak_<h>_rel`` relative to the strongest source) and
        ``n_sources``.
    """
    from scipy.spatial import cKDTree

    pos = np.array([[r["x_mm"], r["y_mm"], r["z_mm"]] for r in sources], float).reshape(-1, 3)
    pos = pos / 1000.0
    amp = np.array([r["amplitude_nAm"] for r in sources], float)
    has_share = all("gof_share" in r for r in sources)
    strength = np.array([r["gof_share"] for r in sources], float) if has_share else amp
    masks = hemisphere_masks(source_space)
    nearest = cKDTree(source_space.pos).query(pos)[1] if len(pos) else np.zeros(0, int)
    top = float(amp.max()) if amp.size else 0.0
    row: dict = {"n_sources": len(sources)}
    for h, mask in masks.items():
        mine = np.flatnonzero(mask[nearest]) if len(pos) else np.zeros(0, int)
        if mine.size == 0:
            row.update(_no_peak(h))
            continue
        j = int(mine[np.argmax(strength[mine])])
        p = pos[j]
        mni = None
        if source_space.mri_to_mni is not None:
            t = np.asarray(source_space.mri_to_mni, float)
            mni = (p * 1000.0) @ t[:3, :3].T + t[:3, 3]
        row[f"dist_{h}_mm"] = round(float(label_distance_mm(p, labels[h])), 1)
        row[f"peak_{h}_mri_mm"] = [round(float(v), 1) for v in p * 1000]
        row[f"peak_{h}_mni_mm"] = None if mni is None else [round(float(v), 1) for v in mni]
        row[f"aud_mni_{h}_mm"] = (None if mni is None else
                                  round(box_distance_mm(mni, AUDITORY_MNI_BOX[h]), 1))
        row[f"peak_{h}_region"] = region_name(int(source_space.region_ids[nearest[j]]))
        row[f"peak_{h}_rel"] = round(float(amp[j] / top), 3) if top > 0 else None
    if dipole is not None:
        row["dist_dipole_mm"] = _dipole_distance(row, dipole)
    return row
