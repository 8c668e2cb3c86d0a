"""Forward ensembles: several lead fields of one source space and one channel set, each with the
head drawn from the uncertainty a real head model has.

A network trained on one lead field learns that forward exactly, and a real head differs from
any model of it: the skull conductivity is uncertain by a factor of 2 or more between subjects
and studies (compact bone ~0.004–0.02 S/m, spongy ~0.02–0.06 S/m in the reviews of McCann et al.
2019 and Vorwerk et al. 2019), brain, CSF and scalp by 10–40 %; electrodes sit a few millimetres
from where the montage says; an MEG head sits in the helmet where its digitization and the
co-registration put it, give or take a few mm and degrees. :func:`make_forward_ensemble` draws
such heads and computes their lead fields (each cached by :func:`make_forward`'s content hash),
and training draws one member per sample (:class:`deepesi.simulation.Simulator`), so the net
learns what holds across them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from .._logging import logger, verbose
from .._progress import progress
from .._validation import validate_type
from ..anatomy.headmodel import HeadModel
from ..anatomy.tissues import SKULL_TISSUES
from ..sensors import Sensors
from ..sources import SourceSpace
from .api import make_forward
from .leadfield import LeadField

__all__ = [
    "CONDUCTIVITY_FACTORS",
    "ForwardEnsemble",
    "draw_member",
    "jitter_electrodes",
    "make_forward_ensemble",
]

#: Default range (min, max) of the factor each tissue's conductivity is multiplied by, drawn
#: log-uniformly and independently per tissue: a factor of 2 each way for the bone tissues, less
#: for the soft tissues, after the spread of the published values (module docstring). Tissues
#: not listed keep their conductivity.
CONDUCTIVITY_FACTORS: dict[str, tuple[float, float]] = {
    **{name: (0.5, 2.0) for name in SKULL_TISSUES},
    "GM": (0.8, 1.25),
    "WM": (0.8, 1.25),
    "CSF": (0.85, 1.15),
    "Scalp": (0.7, 1.4),
}


@dataclass
class ForwardEnsemble:
    """Lead fields of the same source space and channels, under drawn head uncertainties.

    Attributes
    ----------
    members : list of LeadField
        The lead fields; ``members[0]`` is the nominal one when the ensemble was made with
        ``include_nominal=True``.
    draws : list of dict
        Per member, what was drawn: ``conductivities`` (S/m per tissue), ``electrode_shift_mm``
        (RMS over the electrodes), ``head_shift_mm`` and ``head_rotation_deg`` (MEG).
    meta : dict
        The settings the ensemble was drawn with.
    """

    members: list[LeadField]
    draws: list[dict] = field(default_factory=list)
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.members:
            raise ValueError("a ForwardEnsemble needs at least one lead field.")
        for k, lf in enumerate(self.members):
            validate_type(lf, LeadField, f"members[{k}]", "a deepesi LeadField")
        first = self.members[0]
        src_hash = first.source_space.hash()
        for k, lf in enumerate(self.members[1:], start=1):
            if list(lf.ch_names) != list(first.ch_names) or list(lf.ch_types) != list(
                first.ch_types
            ):
                raise ValueError(f"ensemble member {k} has other channels than member 0.")
            if lf.source_space.hash() != src_hash:
                raise ValueError(f"ensemble member {k} has another source space than member 0.")
            if lf.eeg_reference != first.eeg_reference:
                raise ValueError(f"ensemble member {k} has another EEG reference than member 0.")

    def __len__(self) -> int:
        return len(self.members)

    def __getitem__(self, k: int) -> LeadField:
        return self.members[k]

    @property
    def nominal(self) -> LeadField:
        """The first member (the nominal forward when ``include_nominal``)."""
        return self.members[0]

    @property
    def ch_names(self) -> list[str]:
        return list(self.members[0].ch_names)

    def hash(self) -> str:
        """Content hash (sha256 hex) of the members' hashes, in order."""
        h = hashlib.sha256()
        for lf in self.members:
            h.update(lf.hash().encode())
        return h.hexdigest()

    def spread(self) -> dict[str, float]:
        """How much the members differ from member 0: median and max relative difference
        (RDM-like, ‖g_k − g_0‖ / ‖g_0‖ over each source's gain columns)."""
        g0 = self.members[0].gain.reshape(len(self.ch_names), -1)
        rel = []
        for lf in self.members[1:]:
            g = lf.gain.reshape(len(self.ch_names), -1)
            num = np.linalg.norm(g - g0, axis=0)
            den = np.linalg.norm(g0, axis=0)
            rel.append(np.median(num[den > 0] / den[den > 0]))
        if not rel:
            return {"median_rel_diff": 0.0, "max_rel_diff": 0.0}
        return {"median_rel_diff": float(np.median(rel)), "max_rel_diff": float(np.max(rel))}

    def pick(self, names: Sequence[str]) -> ForwardEnsemble:
        """The ensemble restricted to channels ``names`` (each member picked alike)."""
        return ForwardEnsemble([lf.pick(list(names)) for lf in self.members], list(self.draws),
                               dict(self.meta))

    def pick_types(self, types: Sequence[str]) -> ForwardEnsemble:
        """The ensemble restricted to the channels of ``types`` ('eeg', 'mag', 'grad')."""
        return ForwardEnsemble([lf.pick_types(list(types)) for lf in self.members],
                               list(self.draws), dict(self.meta))

    def __repr__(self) -> str:
        return (f"<ForwardEnsemble | {len(self)} members, {len(self.ch_names)} channels x "
                f"{self.members[0].n_sources} sources>")


def _log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def _draw_conductivities(head: HeadModel, factors: Mapping[str, tuple[float, float]],
                         rng: np.random.Generator) -> dict[str, float]:
    out = {}
    for t in head.tissues:  # one draw per listed tissue, in the table's order
        if t.name in factors:
            lo, hi = factors[t.name]
            out[t.name] = float(t.conductivity) * _log_uniform(rng, lo, hi)
    return out


def jitter_electrodes(head: HeadModel, sensors: Sensors, rms_mm: float,
                       rng: np.random.Generator) -> tuple[Sensors, float]:
    """Electrodes moved tangentially (RMS ``rms_mm``) and projected back onto the scalp."""
    from ..anatomy.masks import head_mask
    from ..sensors.scalp import place_on_scalp, tangent_frames

    pos = sensors.eeg_pos_mri
    if len(pos) == 0 or rms_mm <= 0:
        return sensors, 0.0
    centre = pos.mean(axis=0)
    normal = pos - centre
    normal /= np.linalg.norm(normal, axis=1, keepdims=True)
    e1, e2 = tangent_frames(normal)
    g = rng.standard_normal((len(pos), 2)) * (rms_mm * 1e-3 / np.sqrt(2.0))
    moved = pos + g[:, :1] * e1 + g[:, 1:] * e2
    projected, _, _ = place_on_scalp(head, moved, sensors.eeg_names, 0.02,
                                     "jittered electrodes", mask=head_mask(head))
    shift = float(np.sqrt(np.mean(np.sum((projected - pos) ** 2, axis=1))) * 1e3)
    return replace(sensors, eeg_pos_mri=projected), shift


def _jitter_head_position(sensors: Sensors, shift_mm: float, rotation_deg: float,
                          rng: np.random.Generator) -> tuple[Sensors, float, float]:
    """The MEG device → head transform moved by a random rigid motion (RMS shift, rotation)."""
    from ..sensors.helmet import head_position_change, random_rigid_motion

    if sensors.n_meg == 0 or (shift_mm <= 0 and rotation_deg <= 0):
        return sensors, 0.0, 0.0
    info = sensors.info.copy()
    dev_head = np.asarray(info["dev_head_t"]["trans"], float)
    move = random_rigid_motion(rng, shift_mm, rotation_deg)
    with info._unlock():
        info["dev_head_t"]["trans"] = move @ dev_head
    _, angle = head_position_change(np.eye(4), move)
    return replace(sensors, info=info), float(np.linalg.norm(move[:3, 3]) * 1e3), angle


def draw_member(
    head: HeadModel,
    sensors: Sensors,
    k: int,
    *,
    seed: int = 0,
    conductivity_factors: Mapping[str, tuple[float, float]] | None = None,
    electrode_jitter_mm: float = 5.0,
    head_shift_mm: float = 3.0,
    head_rotation_deg: float = 2.0,
) -> tuple[HeadModel, Sensors, dict]:
    """The head and sensors of ensemble member ``k`` (drawn from ``default_rng([seed, k])``:
    conductivities, then electrodes, then head position), and what was drawn.

    :func:`make_forward_ensemble` computes each member's lead field with :func:`make_forward`;
    a pipeline with its own solver settings draws the members here and solves them itself.
    """
    factors = dict(CONDUCTIVITY_FACTORS if conductivity_factors is None else conductivity_factors)
    rng = np.random.default_rng([int(seed), int(k)])
    h = head.with_conductivities(_draw_conductivities(head, factors, rng))
    s, el_mm = jitter_electrodes(head, sensors, electrode_jitter_mm, rng)
    s, sh_mm, rot_deg = _jitter_head_position(s, head_shift_mm, head_rotation_deg, rng)
    draw = {"conductivities": {t.name: float(t.conductivity) for t in h.tissues},
            "electrode_shift_mm": el_mm, "head_shift_mm": sh_mm,
            "head_rotation_deg": rot_deg, "nominal": False}
    return h, s, draw


@verbose
def make_forward_ensemble(
    head: HeadModel,
    sensors: Sensors,
    sources: SourceSpace,
    n_members: int = 8,
    *,
    seed: int = 0,
    conductivity_factors: Mapping[str, tuple[float, float]] | None = None,
    electrode_jitter_mm: float = 5.0,
    head_shift_mm: float = 3.0,
    head_rotation_deg: float = 2.0,
    include_nominal: bool = True,
    eeg_kw: dict | None = None,
    meg: bool = True,
    meg_kw: dict | None = None,
    cache_dir: Any = None,
    verbose: bool | str | int | None = None,
) -> ForwardEnsemble:
    """Lead fields of one head under drawn conductivity, electrode and head-position errors.

    Member ``k`` draws, from ``numpy.random.default_rng([seed, k])`` in this order: each listed
    tissue's conductivity factor (log-uniform in ``conductivity_factors``), the EEG electrodes'
    tangential shifts (Gaussian, RMS ``electrode_jitter_mm``, re-projected onto the scalp) and
    the MEG head position (rigid motion of ``dev_head_t``, RMS ``head_shift_mm`` and
    ``head_rotation_deg``, which also stands for the co-registration error). The same seed gives
    the same ensemble; each member is computed by :func:`make_forward` and cached.

    Parameters
    ----------
    head : HeadModel
    sensors : Sensors
    sources : SourceSpace
        Shared by every member.
    n_members : int
        Number of lead fields, the nominal one included.
    seed : int
    conductivity_factors : mapping | None
        Tissue name → (min, max) factor; default :data:`CONDUCTIVITY_FACTORS`.
    electrode_jitter_mm, head_shift_mm, head_rotation_deg : float
        Sizes of the position errors (0 turns one off).
    include_nominal : bool
        Member 0 is the head as given (no draw).
    eeg_kw, meg, meg_kw, cache_dir
        Passed to :func:`make_forward`.
    verbose : bool | str | int | None
        Log level; a progress bar over the members is shown at INFO.

    Returns
    -------
    ForwardEnsemble
    """
    validate_type(head, HeadModel, "head", "a HeadModel")
    validate_type(sensors, Sensors, "sensors", "a deepesi Sensors")
    validate_type(sources, SourceSpace, "sources", "a SourceSpace")
    if int(n_members) < 1:
        raise ValueError(f"n_members must be >= 1, got {n_members!r}.")
    factors = dict(CONDUCTIVITY_FACTORS if conductivity_factors is None else conductivity_factors)
    for name, rng_ in factors.items():
        lo, hi = (float(v) for v in rng_)
        if not 0 < lo <= hi:
            raise ValueError(f"conductivity_factors[{name!r}] must be 0 < min <= max, got {rng_}.")
        factors[name] = (lo, hi)
    for name, val in (("electrode_jitter_mm", electrode_jitter_mm),
                      ("head_shift_mm", head_shift_mm), ("head_rotation_deg", head_rotation_deg)):
        if not (np.isfinite(val) and val >= 0):
            raise ValueError(f"{name} must be >= 0, got {val!r}.")
    members, draws = [], []
    bar = progress(total=int(n_members), desc="forward ensemble", unit="forward")
    try:
        for k in range(int(n_members)):
            if k == 0 and include_nominal:
                h, s = head, sensors
                draw = {"conductivities": {t.name: float(t.conductivity) for t in head.tissues},
                        "electrode_shift_mm": 0.0, "head_shift_mm": 0.0,
                        "head_rotation_deg": 0.0, "nominal": True}
            else:
                h, s, draw = draw_member(
                    head, sensors, k, seed=seed, conductivity_factors=factors,
                    electrode_jitter_mm=electrode_jitter_mm, head_shift_mm=head_shift_mm,
                    head_rotation_deg=head_rotation_deg,
                )
            lf = make_forward(h, s, sources, eeg_kw=eeg_kw, meg=meg, meg_kw=meg_kw,
                              cache_dir=cache_dir, verbose="WARNING")
            members.append(lf)
            draws.append(draw)
            bar.update(1)
    finally:
        bar.close()
    meta = {"seed": int(seed), "n_members": int(n_members), "include_nominal": include_nominal,
            "conductivity_factors": {k: list(v) for k, v in factors.items()},
            "electrode_jitter_mm": float(electrode_jitter_mm),
            "head_shift_mm": float(head_shift_mm), "head_rotation_deg": float(head_rotation_deg)}
    ens = ForwardEnsemble(members, draws, meta)
    logger.info("Forward ensemble: %d members, gain differs from the nominal by %s", len(ens),
                json.dumps({k: round(v, 3) for k, v in ens.spread().items()}))
    return ens
