"""Sensors: EEG electrodes placed on a head model's scalp, and MEG coils from an ``mne.Info``.

Two constructors:

- :func:`make_eeg_sensors` places a standard (or any) EEG montage on a head: the montage is
  registered to the head by its fiducials (nasion, LPA, RPA), optionally scaled to the head's
  size, and each electrode is projected onto the scalp along the ray from the head centre.
- :func:`sensors_from_info` takes the digitized EEG positions and MEG coils of a recording
  (``mne.Info``) and the subject's head→MRI transform, as MNE does.

Frames follow MNE: sensor positions in :attr:`Sensors.info` are in the *head* frame
(defined by the fiducials), :attr:`Sensors.trans` maps head → MRI, and
:attr:`Sensors.eeg_pos_mri` holds the electrode positions on the scalp in the MRI frame (m).
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ._validation import check_file

logger = logging.getLogger(__name__)

#: MNI305 (fsaverage MRI) coordinates of the fiducials, metres, from MNE-Python's
#: ``mne/data/fsaverage/fsaverage-fiducials.fif``. Used to register montages to heads whose MRI
#: frame is MNI (the template) or that carry an MRI→MNI affine.
MNI_FIDUCIALS = {
    "nasion": np.array([0.00146763, 0.08506715, -0.03483611]),
    "lpa": np.array([-0.08061612, -0.02908875, -0.04131077]),
    "rpa": np.array([0.08436285, -0.02850276, -0.04127743]),
}

#: Old MNE montage names and their current equivalents (identical positions).
_MONTAGE_ALIASES = {
    "standard_1020": "colin27_1020",
    "standard_1005": "colin27_1005",
    "standard_alphabetic": "colin27_alphabetic",
    "standard_postfixed": "colin27_postfixed",
    "standard_prefixed": "colin27_prefixed",
    "standard_primed": "colin27_primed",
}

_EEG_REFERENCES = ("average", "none")

#: The 64 channels of the 10-10 system used by 64-channel caps (BioSemi/ActiCap layouts), by
#: their 10-10 names; positions are taken from MNE's 'standard_1005' (whose fiducials are real).
TEN_TEN_64 = (
    "Fp1", "AF7", "AF3", "F1", "F3", "F5", "F7", "FT7", "FC5", "FC3", "FC1", "C1", "C3", "C5",
    "T7", "TP7", "CP5", "CP3", "CP1", "P1", "P3", "P5", "P7", "P9", "PO7", "PO3", "O1", "Iz",
    "Oz", "POz", "Pz", "CPz", "Fpz", "Fp2", "AF8", "AF4", "AFz", "Fz", "F2", "F4", "F6", "F8",
    "FT8", "FC6", "FC4", "FC2", "FCz", "Cz", "C2", "C4", "C6", "T8", "TP8", "CP6", "CP4", "CP2",
    "P2", "P4", "P6", "P8", "P10", "PO8", "PO4", "O2",
)

#: 64 positions of the 10-05 system halfway between 10-10 positions (left/right pairs), added to
#: :data:`TEN_TEN_64` for a 128-channel cap in the style of 10-05 128-channel layouts: the six
#: "h" rows (AFF, FFC, FCC, CCP, CPP, PPO 1h-6h), the temporal rows (FFT, FTT, TTP, TPP 7h-10h),
#: AFp3h/4h, AFp9h/10h, PPO9h/10h, POO1/2, POO9/10 and OI1h/2h. None lies below the lowest
#: 10-10 electrode of the 64-channel set.
TEN_FIVE_EXTRA_64 = (
    *(f"{row}{k}h" for row in ("AFF", "FFC", "FCC", "CCP", "CPP", "PPO") for k in range(1, 7)),
    *(f"{row}{k}h" for row in ("FFT", "FTT", "TTP", "TPP") for k in (7, 8, 9, 10)),
    "AFp3h", "AFp4h", "AFp9h", "AFp10h", "PPO9h", "PPO10h", "POO1", "POO2", "POO9", "POO10",
    "OI1h", "OI2h",
)

#: Named channel layouts: name → (MNE montage, channel subset).
EEG_LAYOUTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "standard_1010_64": ("standard_1005", TEN_TEN_64),
    "standard_1005_128": ("standard_1005", TEN_TEN_64 + TEN_FIVE_EXTRA_64),
}


@dataclass(frozen=True, eq=False)
class Sensors:
    """EEG electrodes and/or MEG sensors registered to a head model.

    Parameters
    ----------
    ch_names : list of str
        Channel names, in lead-field row order.
    ch_types : list of str
        'eeg', 'mag' or 'grad' per channel.
    info : mne.Info
        Measurement info of the channels, positions in MNE's head frame (EEG positions are the
        scalp-projected ones). May also hold MEG reference channels (CTF compensation), which
        are not in :attr:`ch_names`.
    trans : mne.transforms.Transform
        Head → MRI (surface RAS) transform.
    eeg_pos_mri : ndarray, shape (n_eeg, 3)
        EEG electrode positions on the head model's scalp, MRI frame, metres, in the order of
        the EEG channels in :attr:`ch_names`.
    eeg_reference : str
        'average' (an average-reference projector is in ``info``; lead fields are
        average-referenced) or 'none'.
    meta : dict
        Provenance and registration quality (fiducial residuals, projection distances, scale).
    """

    ch_names: list[str]
    ch_types: list[str]
    info: object
    trans: object
    eeg_pos_mri: np.ndarray
    eeg_reference: str = "average"
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.ch_names) != len(self.ch_types):
            raise ValueError("ch_names and ch_types must have the same length.")
        if len(set(self.ch_names)) != len(self.ch_names):
            raise ValueError("channel names must be unique.")
        bad = sorted(set(self.ch_types) - {"eeg", "mag", "grad"})
        if bad:
            raise ValueError(f"unknown channel type(s) {bad}; expected 'eeg', 'mag' or 'grad'.")
        pos = np.asarray(self.eeg_pos_mri, float).reshape(-1, 3)
        if len(pos) != self.ch_types.count("eeg"):
            raise ValueError(
                f"eeg_pos_mri has {len(pos)} rows but there are {self.ch_types.count('eeg')} "
                "EEG channels."
            )
        if self.eeg_reference not in _EEG_REFERENCES:
            raise ValueError(f"eeg_reference must be one of {_EEG_REFERENCES}.")
        object.__setattr__(self, "eeg_pos_mri", pos)
        object.__setattr__(self, "ch_names", list(self.ch_names))
        object.__setattr__(self, "ch_types", list(self.ch_types))

    # ------------------------------------------------------------------ views
    @property
    def eeg_names(self) -> list[str]:
        """Names of the EEG channels."""
        return [n for n, t in zip(self.ch_names, self.ch_types, strict=True) if t == "eeg"]

    @property
    def meg_names(self) -> list[str]:
        """Names of the MEG channels (magnetometers and gradiometers)."""
        return [n for n, t in zip(self.ch_names, self.ch_types, strict=True) if t != "eeg"]

    @property
    def n_eeg(self) -> int:
        """Number of EEG channels."""
        return self.ch_types.count("eeg")

    @property
    def n_meg(self) -> int:
        """Number of MEG channels."""
        return len(self.ch_types) - self.n_eeg

    def __len__(self) -> int:
        return len(self.ch_names)

    def hash(self) -> str:
        """Content hash (sha256 hex) of channels, positions, coils, transforms and reference."""
        h = hashlib.sha256()
        h.update("|".join(self.ch_names).encode())
        h.update("|".join(self.ch_types).encode())
        h.update(np.round(self.eeg_pos_mri, 7).tobytes())
        h.update(np.round(np.asarray(self.trans["trans"], float), 7).tobytes())
        idx = {n: i for i, n in enumerate(self.info["ch_names"])}
        for name in self.meg_names:
            ch = self.info["chs"][idx[name]]
            h.update(f"{name}:{int(ch['coil_type'])}".encode())
            h.update(np.round(np.asarray(ch["loc"], float), 7).tobytes())
        if self.n_meg and self.info["dev_head_t"] is not None:
            h.update(np.round(np.asarray(self.info["dev_head_t"]["trans"], float), 7).tobytes())
        h.update(self.eeg_reference.encode())
        return h.hexdigest()

    def __repr__(self) -> str:
        kinds = {t: self.ch_types.count(t) for t in ("eeg", "mag", "grad") if t in self.ch_types}
        return f"<Sensors | {kinds} | EEG reference: {self.eeg_reference}>"


# ---------------------------------------------------------------------------- transforms
def check_trans(trans, what: str = "trans"):
    """Return a head → MRI :class:`mne.transforms.Transform` from a file name or a Transform.

    Parameters
    ----------
    trans : path-like | mne.transforms.Transform | ndarray, shape (4, 4)
        A ``-trans.fif`` file, a Transform between 'head' and 'mri' (either direction), or a
        4x4 head → MRI matrix in metres.
    """
    import mne
    from mne.transforms import Transform, invert_transform

    if trans is None:
        raise ValueError(
            f"{what} is required: pass the head→MRI transform (-trans.fif) of this subject, "
            "made with mne coreg. Without it the sensors cannot be placed on the head."
        )
    if isinstance(trans, str | os.PathLike):
        if str(trans) == "fsaverage":
            raise ValueError("'fsaverage' is not a trans file; give the -trans.fif path.")
        trans = mne.read_trans(check_file(trans, "trans file"), verbose=False)
    if isinstance(trans, np.ndarray):
        trans = Transform("head", "mri", np.asarray(trans, float))
    if not isinstance(trans, Transform):
        raise TypeError(
            f"{what} must be a file name or an mne Transform, got {type(trans).__name__}."
        )
    frames = {trans["from"], trans["to"]}
    from mne.io.constants import FIFF

    if frames != {FIFF.FIFFV_COORD_HEAD, FIFF.FIFFV_COORD_MRI}:
        raise ValueError(f"{what} must map between the 'head' and 'mri' frames, got {trans}.")
    if trans["from"] == FIFF.FIFFV_COORD_MRI:
        trans = invert_transform(trans)
    t = np.asarray(trans["trans"], float)
    if np.abs(t[:3, 3]).max() > 1.0:
        raise ValueError(
            f"{what} translates by {np.abs(t[:3, 3]).max():.1f} m; it looks like it is in "
            "millimetres. MNE transforms are in metres."
        )
    return trans


def _apply(t: np.ndarray, pts: np.ndarray) -> np.ndarray:
    return np.asarray(pts, float) @ t[:3, :3].T + t[:3, 3]


def _fiducial_frame(nasion: np.ndarray, lpa: np.ndarray, rpa: np.ndarray) -> np.ndarray:
    """4x4 map from the frame the fiducials are given in to MNE's head (Neuromag) frame."""
    from mne.transforms import get_ras_to_neuromag_trans

    return get_ras_to_neuromag_trans(nasion, lpa, rpa)


def mri_fiducials_of(head) -> dict[str, np.ndarray]:
    """Fiducials of a head model in its MRI frame (metres), from known MNI coordinates.

    Uses the head's ``mri_to_mni`` affine (identity for the template) to map
    :data:`MNI_FIDUCIALS` into the head's MRI frame; raises if the head has none.
    """
    if head.mri_to_mni is None:
        raise ValueError(
            f"head model {head.name!r} has no MRI→MNI transform, so its fiducials are unknown. "
            "Pass trans= (head→MRI, from mne coreg) or mri_fiducials={'nasion':..., 'lpa':..., "
            "'rpa':...} (MRI frame, metres)."
        )
    inv = np.linalg.inv(head.mri_to_mni)
    return {k: _apply(inv, v[None] * 1000.0)[0] / 1000.0 for k, v in MNI_FIDUCIALS.items()}


# ---------------------------------------------------------------------------- montages
def _resolve_montage(montage):
    import mne

    if isinstance(montage, mne.channels.DigMontage):
        return montage, "custom"
    if not isinstance(montage, str):
        raise TypeError(
            f"montage must be a name or an mne.channels.DigMontage, got {type(montage).__name__}."
        )
    name = _MONTAGE_ALIASES.get(montage, montage)
    available = mne.channels.get_builtin_montages()
    if name not in available:
        raise ValueError(
            f"unknown montage {montage!r}. Available: {', '.join(available)} "
            f"(and the aliases {', '.join(_MONTAGE_ALIASES)}), or pass an "
            "mne.channels.DigMontage (e.g. from mne.channels.read_custom_montage)."
        )
    return mne.channels.make_standard_montage(name), name


def _check_positions(names: list[str], pos: np.ndarray, what: str) -> None:
    bad = [n for n, p in zip(names, pos, strict=True) if not np.all(np.isfinite(p))]
    if bad:
        raise ValueError(
            f"{len(bad)} {what} position(s) are NaN/Inf: {bad[:10]}"
            f"{' ...' if len(bad) > 10 else ''}."
            " Drop these channels (ch_names=...) or fix the montage/digitisation."
        )
    zero = [n for n, p in zip(names, pos, strict=True) if np.allclose(p, 0.0)]
    if zero:
        raise ValueError(
            f"{len(zero)} {what} channel(s) have no position (all zeros): {zero[:10]}. "
            "Set a montage on the data first (raw.set_montage) or drop these channels."
        )


def _eeg_info(ch_names: list[str], pos_head: np.ndarray, fid_head: dict, reference: str):
    """An Info with EEG channels at ``pos_head`` (head frame) and the fiducials."""
    import mne

    montage = mne.channels.make_dig_montage(
        ch_pos=dict(zip(ch_names, pos_head, strict=True)), nasion=fid_head["nasion"],
        lpa=fid_head["lpa"], rpa=fid_head["rpa"], coord_frame="head",
    )
    info = mne.create_info(list(ch_names), 1000.0, "eeg")
    info.set_montage(montage, verbose=False)
    if reference == "average":
        _add_average_reference(info)
    return info


def _add_average_reference(info) -> None:
    """Append an (inactive) average EEG reference projector, as MNE's inverse requires."""
    import mne
    from mne.io.constants import FIFF

    eeg = [info["ch_names"][i] for i in mne.pick_types(info, meg=False, eeg=True, exclude=())]
    if not eeg or any(p["kind"] == FIFF.FIFFV_PROJ_ITEM_EEG_AVREF for p in info["projs"]):
        return
    data = dict(nrow=1, ncol=len(eeg), row_names=None, col_names=eeg,
                data=np.full((1, len(eeg)), 1.0 / np.sqrt(len(eeg))))
    proj = mne.Projection(data=data, desc="Average EEG reference", active=False,
                          kind=FIFF.FIFFV_PROJ_ITEM_EEG_AVREF, explained_var=None)
    with info._unlock():
        info["projs"].append(proj)


def _place_on_scalp(
    head, pos_mri: np.ndarray, names: list[str], max_distance: float, what: str,
    mask: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, list]:
    """Project electrodes onto the scalp; refuse if they are far from it before projection.

    Returns the projected positions, the distances before projection and the channels that
    landed on the edge of the volume (where the head model is cut, e.g. below the face): those
    are only warned about, whatever their distance, since the model does not reach them.
    """
    from .forward.surfaces import boundary_distance, head_centre, head_mask, project_radially

    mask = head_mask(head) if mask is None else mask
    dist = boundary_distance(pos_mri, mask, head.affine_m)
    median = float(np.median(dist))
    projected, _ = project_radially(pos_mri, mask, head.affine_m, head_centre(head))
    ijk = head.mri_to_voxel(projected)
    # the ray leaves the grid while still inside the head: the boundary found is the outermost
    # voxel layer of the grid (the head is cut there), not the scalp
    edge = (ijk < 0.25).any(axis=1) | (ijk > np.array(head.shape) - 1.25).any(axis=1)
    far = [f"{n} ({d * 1000:.0f} mm)" for n, d, e in zip(names, dist, edge, strict=True)
           if d > 4 * max_distance and not e]
    if median > max_distance or far:
        raise ValueError(
            f"the {what} are far from the scalp of head {head.name!r} after registration "
            f"(median distance {median * 1000:.1f} mm, allowed {max_distance * 1000:.1f} mm"
            + (f"; beyond {4 * max_distance * 1000:.0f} mm: {', '.join(far[:10])}" if far else "")
            + "). Check the head→MRI trans (right subject? inverted?), the position units "
            "(MNE uses metres) and the montage; or raise max_distance."
        )
    at_edge = [n for n, e in zip(names, edge, strict=True) if e]
    if at_edge:
        logger.warning(
            "%d electrode(s) lie where head %r is cut by the edge of its volume and were placed "
            "on the cut: %s. Their potentials are less accurate; consider dropping them.",
            len(at_edge), head.name, ", ".join(at_edge),
        )
    return projected, dist, at_edge


def _set_eeg_locs(info, names: list[str], pos_head: np.ndarray) -> None:
    idx = {n: i for i, n in enumerate(info["ch_names"])}
    for name, p in zip(names, pos_head, strict=True):
        loc = info["chs"][idx[name]]["loc"]
        loc[:3] = p
        loc[3:6] = 0.0  # reference position: none (we average-reference)


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
    import mne

    if reference not in _EEG_REFERENCES:
        raise ValueError(f"reference must be one of {_EEG_REFERENCES}, got {reference!r}.")
    if not max_distance > 0:
        raise ValueError(f"max_distance must be > 0 (metres), got {max_distance}.")
    if isinstance(montage, str) and montage in EEG_LAYOUTS:
        montage, layout = EEG_LAYOUTS[montage]
        ch_names = list(layout) if ch_names is None else ch_names
    montage, montage_name = _resolve_montage(montage)
    pos = montage.get_positions()
    all_names = list(pos["ch_pos"])
    if ch_names is None:
        names = all_names
    else:
        names = list(ch_names)
        unknown = [n for n in names if n not in pos["ch_pos"]]
        if unknown:
            raise ValueError(
                f"channel(s) {unknown} are not in montage {montage_name!r}. "
                f"Available ({len(all_names)}): {', '.join(all_names)}."
            )
        if len(set(names)) != len(names):
            raise ValueError("ch_names has duplicates.")
    if not names:
        raise ValueError(f"montage {montage_name!r} has no EEG channels.")
    el = np.array([pos["ch_pos"][n] for n in names], float)
    _check_positions(names, el, "electrode")
    fids = {k: pos[k] for k in ("nasion", "lpa", "rpa")}
    meta: dict = {"montage": montage_name, "source": "montage"}
    from .forward.surfaces import head_mask

    mask = head_mask(head)

    if trans is not None:
        trans = check_trans(trans)
        if pos["coord_frame"] != "head":
            raise ValueError(
                "with trans= the montage must be in the head frame (a digitisation of this "
                f"subject); montage {montage_name!r} is in the {pos['coord_frame']!r} frame. "
                "Drop trans= to register the montage by its fiducials."
            )
        el_head = el
        fid_head = fids
        meta["scale"] = 1.0
    else:
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
        to_head_mon = _fiducial_frame(fids["nasion"], fids["lpa"], fids["rpa"])
        mri_to_head = _fiducial_frame(mfid["nasion"], mfid["lpa"], mfid["rpa"])
        el_head = _apply(to_head_mon, el)
        fid_head = {k: _apply(to_head_mon, v[None])[0] for k, v in fids.items()}
        trans = mne.transforms.Transform("head", "mri", np.linalg.inv(mri_to_head))
        head_to_mri = np.asarray(trans["trans"])
        if scale == "auto":
            from .forward.surfaces import radial_boundary

            origin = head_to_mri[:3, 3]
            vec = _apply(head_to_mri, el_head) - origin
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
        el_head = el_head * s
        fid_head = {k: v * s for k, v in fid_head.items()}
        mfid_head = {k: _apply(mri_to_head, v[None])[0] for k, v in mfid.items()}
        meta["scale"] = s
        meta["fiducial_residual_mm"] = {
            k: float(np.linalg.norm(fid_head[k] - mfid_head[k]) * 1000) for k in fid_head
        }
        meta["mri_fiducials"] = {k: v.tolist() for k, v in mfid.items()}

    head_to_mri = np.asarray(trans["trans"])
    el_mri, dist, at_edge = _place_on_scalp(head, _apply(head_to_mri, el_head), names,
                                            max_distance, "electrodes", mask)
    meta["at_volume_edge"] = at_edge
    meta["projection_mm"] = {"median": float(np.median(dist) * 1000),
                             "max": float(dist.max() * 1000)}
    el_head_proj = _apply(np.linalg.inv(head_to_mri), el_mri)
    info = _eeg_info(names, el_head_proj, fid_head, reference)
    logger.info(
        "EEG: %d electrodes of %s on head %r (scale %.3f, projection median %.1f mm, max %.1f mm)",
        len(names), montage_name, head.name, meta["scale"], meta["projection_mm"]["median"],
        meta["projection_mm"]["max"],
    )
    return Sensors(names, ["eeg"] * len(names), info, trans, el_mri, reference, meta)


def sensors_from_info(
    info,
    trans,
    head,
    *,
    picks=("eeg", "meg"),
    max_distance: float = 0.01,
    reference: str = "average",
) -> Sensors:
    """Sensors of a real recording: digitized EEG electrodes and MEG coils.

    Parameters
    ----------
    info : mne.Info | path-like
        Measurement info (or a FIF file to read it from) with EEG positions (head frame) and/or
        MEG channels (MEGIN/Neuromag, CTF, ...) and ``dev_head_t``.
    trans : path-like | mne.transforms.Transform
        Head → MRI transform of the subject (``-trans.fif`` from mne coreg). Required.
    head : HeadModel
        The subject's head model (MRI frame).
    picks : sequence of {'eeg', 'meg'}
        Which modalities to keep.
    max_distance : float
        Largest median distance (m) of the EEG electrodes to the scalp after the transform
        (see :func:`make_eeg_sensors`).
    reference : 'average' | 'none'
        EEG reference of the lead field.

    Returns
    -------
    Sensors
        EEG channels first (projected onto the scalp, ``info`` updated accordingly), then MEG
        channels in ``info`` order. Bad channels are kept (a forward covers all channels).
    """
    import mne

    if isinstance(info, str | os.PathLike):
        info = mne.io.read_info(check_file(info, "measurement file"), verbose=False)
    if not isinstance(info, mne.Info):
        raise TypeError(f"info must be an mne.Info or a FIF file name, got {type(info).__name__}.")
    if reference not in _EEG_REFERENCES:
        raise ValueError(f"reference must be one of {_EEG_REFERENCES}, got {reference!r}.")
    picks = (picks,) if isinstance(picks, str) else tuple(picks)
    bad = sorted(set(picks) - {"eeg", "meg"})
    if bad or not picks:
        raise ValueError(f"picks must be a subset of ('eeg', 'meg'), got {picks}.")
    trans = check_trans(trans)
    eeg_idx = mne.pick_types(info, meg=False, eeg=True, exclude=()) if "eeg" in picks else []
    meg_idx = mne.pick_types(info, meg=True, ref_meg=False, exclude=()) if "meg" in picks else []
    ref_idx = mne.pick_types(info, meg=False, ref_meg=True, exclude=()) if len(meg_idx) else []
    if len(eeg_idx) + len(meg_idx) == 0:
        raise ValueError(f"info has no {' or '.join(picks)} channels.")
    if len(meg_idx) and info["dev_head_t"] is None:
        raise ValueError("info has MEG channels but no dev_head_t (device→head transform).")
    keep = list(eeg_idx) + list(meg_idx) + list(ref_idx)
    new = mne.pick_info(info, keep, verbose=False)
    eeg_names = [info["ch_names"][i] for i in eeg_idx]
    meg_names = [info["ch_names"][i] for i in meg_idx]
    meta: dict = {"source": "info"}
    el_mri = np.zeros((0, 3))
    if eeg_names:
        el_head = np.array([new["chs"][i]["loc"][:3] for i in range(len(eeg_names))], float)
        _check_positions(eeg_names, el_head, "EEG")
        head_to_mri = np.asarray(trans["trans"])
        el_mri, dist, at_edge = _place_on_scalp(head, _apply(head_to_mri, el_head), eeg_names,
                                                max_distance, "digitized EEG electrodes")
        meta["at_volume_edge"] = at_edge
        meta["projection_mm"] = {"median": float(np.median(dist) * 1000),
                                 "max": float(dist.max() * 1000)}
        with new._unlock():
            _set_eeg_locs(new, eeg_names, _apply(np.linalg.inv(head_to_mri), el_mri))
        if reference == "average":
            _add_average_reference(new)
    if meg_names:
        coils = np.array([new["chs"][len(eeg_names) + i]["loc"][:3] for i in range(len(meg_names))])
        _check_positions(meg_names, coils, "MEG")
    types = ["eeg"] * len(eeg_names) + [mne.channel_type(new, len(eeg_names) + i)
                                        for i in range(len(meg_names))]
    meta["n_ref_meg"] = len(ref_idx)
    return Sensors(eeg_names + meg_names, types, new, trans, el_mri, reference, meta)


def read_trans(fname: str | os.PathLike):
    """Read a head → MRI transform (``-trans.fif``): ``mne.read_trans`` with checks."""
    return check_trans(Path(fname))
