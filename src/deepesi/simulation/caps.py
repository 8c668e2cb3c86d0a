"""Training on any EEG cap: random electrode sets read through one fixed virtual layout.

A montage-independent network sees every recording through the same *virtual* channels: fixed
positions spread over the whole covered scalp (:func:`virtual_leadfield`), which a cap's
electrodes reach by the tapered spherical splines of :mod:`deepesi.sensors.virtual`.

Training draws, per sample, an electrode set from a pool (:func:`training_caps`: MNE's built-in
montages with channels dropped, and random caps of 16–256 electrodes over a random part of the
scalp), computes the signal at the electrodes' *true* positions (jittered on the scalp) from the
dense scalp lead field, adds sensor noise there at the drawn SNR and average-references it, then
maps it to the virtual channels from the *nominal* positions, as at run time
(:class:`CapFreeSimulator`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import sparse
from scipy.spatial import cKDTree

from .._validation import check_random_state
from ..sensors.virtual import cap_to_virtual, spline_matrix, template_sensors
from .batch import SimulatedBatch
from .config import SimulationConfig
from .simulator import Simulator

__all__ = ["Cap", "CapFreeSimulator", "CapPool", "cap_to_virtual", "make_cap",
           "make_cap_pool", "spline_matrix", "template_sensors", "training_caps",
           "virtual_leadfield"]

#: Built-in montages drawn as training caps (with channels dropped at random).
TRAINING_MONTAGES = (
    "standard_1020", "standard_1005", "biosemi16", "biosemi32", "biosemi64", "biosemi128",
    "biosemi256", "easycap-M1", "easycap-M10", "EGI_256", "GSN-HydroCel-32",
    "GSN-HydroCel-64_1.0", "GSN-HydroCel-128", "GSN-HydroCel-256", "mgh60", "mgh70",
    "brainproducts-RNP-BA-128", "standard_1010_64", "standard_1005_128",
)


@dataclass(frozen=True, eq=False)
class Cap:
    """One electrode set on the template: where its signal comes from and how it is read.

    Attributes
    ----------
    name : str
    true_weights : scipy.sparse.csr_matrix, shape (n, N)
        Dense scalp positions → the electrodes' true (jittered) positions.
    to_virtual : ndarray, shape (n_virtual, n)
        The electrodes, at their nominal positions, → the virtual channels.
    """

    name: str
    true_weights: sparse.csr_matrix
    to_virtual: np.ndarray

    @property
    def n_electrodes(self) -> int:
        """Number of electrodes."""
        return self.to_virtual.shape[1]


def make_cap(name: str, nominal_pos: np.ndarray, scalp_lf: Any, virtual_pos: np.ndarray,
             true_pos: np.ndarray | None = None) -> Cap:
    """A :class:`Cap` of electrodes at ``nominal_pos`` (MRI, m, on the template's scalp),
    their signal taken at ``true_pos`` (default the nominal positions)."""
    true_pos = nominal_pos if true_pos is None else true_pos
    return Cap(name, scalp_lf.weights(true_pos),
               cap_to_virtual(nominal_pos, virtual_pos, scalp_lf.centre).astype(np.float32))


def _jitter_on_scalp(pos: np.ndarray, dense_pos: np.ndarray, centre: np.ndarray, sd: float,
                     rng: np.random.Generator) -> np.ndarray:
    """Positions moved tangentially by ``sd`` (m, per axis) and put back on the scalp at the
    radius of the nearest dense position."""
    moved = pos + rng.normal(0.0, sd, pos.shape)
    r_dir = (moved - centre) / np.linalg.norm(moved - centre, axis=1, keepdims=True)
    _, idx = cKDTree(dense_pos).query(moved)
    radius = np.linalg.norm(dense_pos[idx] - centre, axis=1)
    return centre + r_dir * radius[:, None]


def training_caps(scalp_lf: Any, virtual_pos: np.ndarray, head: Any, *, n_random: int = 400,
                  n_montage: int = 200, n_range: tuple[int, int] = (16, 256),
                  jitter_mm: float = 4.0, drop: tuple[float, float] = (0.0, 0.15),
                  seed: int = 0, montages: tuple[str, ...] = TRAINING_MONTAGES,
                  mri_fiducials: dict | None = None) -> list[Cap]:
    """The pool of electrode sets a montage-independent net is trained on.

    ``n_montage`` caps from :data:`TRAINING_MONTAGES` (registered to ``head``; a fraction
    ``drop`` of their channels dropped at random) and ``n_random`` random caps: ``n`` electrodes
    (log-uniform in ``n_range``) by farthest-point sampling of the dense positions above a
    random lowest row (whole head down to the neck, or a cap that stops above the ears). Every
    electrode's true position is jittered by ``jitter_mm`` on the scalp. ``mri_fiducials``
    places the montages on a head without an MNI transform (see
    :func:`~deepesi.sensors.make_eeg_sensors`).
    """
    from .._logging import use_log_level
    from ..forward.scalp import farthest_points
    from ..sensors import make_eeg_sensors

    rng = check_random_state(seed)
    dense, centre = scalp_lf.positions, scalp_lf.centre
    with use_log_level("ERROR"):
        placed = [(name, make_eeg_sensors(head, name, mri_fiducials=mri_fiducials).eeg_pos_mri)
                  for name in montages]
    caps = []
    for i in range(n_montage):
        name, pos = placed[i % len(placed)]
        keep = rng.random(len(pos)) >= rng.uniform(*drop)
        if keep.sum() < 8:
            keep[:] = True
        pos = pos[keep]
        caps.append(make_cap(f"{name}-{i}", pos, scalp_lf, virtual_pos,
                             _jitter_on_scalp(pos, dense, centre, jitter_mm * 1e-3 / np.sqrt(2),
                                              rng)))
    z = dense[:, 2] - centre[2]
    lo, hi = np.log(n_range[0]), np.log(n_range[1])
    for i in range(n_random):
        n = round(np.exp(rng.uniform(lo, hi)))
        lowest = rng.uniform(z.min(), np.quantile(z, 0.5))
        pool = dense[z >= lowest]
        start = int(rng.integers(len(pool)))
        idx = np.arange(len(pool)) if len(pool) <= n else farthest_points(pool, start, n=n)
        pos = pool[idx]
        caps.append(make_cap(f"random{n}-{i}", pos, scalp_lf, virtual_pos,
                             _jitter_on_scalp(pos, dense, centre, jitter_mm * 1e-3 / np.sqrt(2),
                                              rng)))
    return caps


class CapFreeSimulator:
    """Samples on random caps, read through the virtual channels of ``leadfield``.

    Parameters
    ----------
    leadfield : LeadField
        The virtual channels' lead field (its rows: the virtual layout; only its source space,
        channel names and types are used: the signal comes from ``scalp_lf``).
    config : SimulationConfig
        What to simulate. White sensor noise only (no noise covariance, noise bank, brain
        noise, projectors or bad channels: a cap's missing channels are its own).
    scalp_lf : ScalpLeadField
        Gain at the dense scalp positions.
    caps : list of Cap
        The pool; each sample draws one.
    """

    def __init__(self, leadfield: Any, config: SimulationConfig, scalp_lf: Any,
                 caps: list[Cap]) -> None:
        from ..forward.leadfield import LeadField

        unsupported = [name for name, on in (
            ("noise_cov", config.noise_cov is not None),
            ("noise_bank", config.noise_bank is not None),
            ("brain_noise_fraction", config.brain_noise_fraction[1] > 0),
            ("projs", bool(config.projs)),
            ("bad_channel_prob", config.bad_channel_prob > 0)) if on]
        if unsupported:
            raise ValueError(f"training on random caps takes white sensor noise only; unset "
                             f"{', '.join(unsupported)} in the SimulationConfig.")
        if not caps:
            raise ValueError("the cap pool is empty.")
        dense = LeadField(scalp_lf.dense_gain(np.float64), [f"D{i:04d}" for i in
                                                             range(scalp_lf.n_positions)],
                          ["eeg"] * scalp_lf.n_positions, leadfield.source_space)
        self._sim = Simulator(dense, config)
        self.config = config
        self.caps = caps
        self.ch_names = list(leadfield.ch_names)
        self.ch_types = list(leadfield.ch_types)
        n_virtual = len(self.ch_names)
        if any(c.to_virtual.shape[0] != n_virtual for c in caps):
            raise ValueError("the caps map to another virtual layout than the lead field's.")

    def precompute_patches(self) -> None:
        """Warm the source patches (as :meth:`Simulator.precompute_patches`)."""
        self._sim.precompute_patches()

    def simulate(self, n: int, seed: Any = None, map_samples=None, *,
                 sparse_maps: bool = False) -> SimulatedBatch:
        """``n`` samples, each on a cap drawn from the pool (see :meth:`Simulator.simulate`)."""
        rng = check_random_state(seed)
        signal, fields = self._sim.signal(n, rng, map_samples, sparse_maps=sparse_maps)
        which = rng.integers(len(self.caps), size=n)
        snr = rng.uniform(*self.config.snr_db, size=n).astype(np.float32)
        out = np.zeros((n, len(self.ch_names), signal.shape[2]), np.float32)
        for k in np.unique(which):
            rows = np.flatnonzero(which == k)
            cap = self.caps[k]
            sub = signal[rows]  # (m, N, T) → the cap's electrodes (m, n_c, T)
            flat = cap.true_weights @ sub.transpose(1, 0, 2).reshape(sub.shape[1], -1)
            s = np.asarray(flat).reshape(-1, len(rows), sub.shape[2]).transpose(1, 0, 2)
            s -= s.mean(axis=1, keepdims=True)
            noise = rng.standard_normal(s.shape)
            noise -= noise.mean(axis=1, keepdims=True)
            ps = np.sum(s**2, axis=(1, 2))
            pn = np.sum(noise**2, axis=(1, 2))
            scale = np.sqrt(ps / np.maximum(pn, 1e-300) / 10 ** (snr[rows] / 10.0))
            x = s + noise * scale[:, None, None]
            out[rows] = np.einsum("vc,nct->nvt", cap.to_virtual, x)
        return SimulatedBatch(data=out, snr_db=snr, good=np.ones((n, len(self.ch_names)), bool),
                              ch_names=self.ch_names, ch_types=self.ch_types, **fields)


def virtual_leadfield(scalp_lf: Any, head: Any, spacing: float = 12e-3,
                      mri_fiducials: dict | None = None) -> Any:
    """The virtual layout of a montage-independent net and its lead field: the dense scalp
    positions thinned to about ``spacing`` (farthest-point sampling from the vertex), named
    ``V001``, ... (average reference)."""
    from ..forward.scalp import farthest_points

    dense = scalp_lf.positions
    start = int(np.argmax(dense[:, 2]))
    idx = np.sort(farthest_points(dense, start, spacing=spacing))
    names = [f"V{i + 1:03d}" for i in range(len(idx))]
    sensors = template_sensors(head, dense[idx], names, mri_fiducials)
    return scalp_lf.leadfield(sensors)


@dataclass(frozen=True, eq=False)
class CapPool:
    """The electrode sets a montage-independent net trains on, and the scalp lead field their
    signal comes from (the ``caps=`` of :func:`deepesi.training.train_model`)."""

    scalp_lf: Any
    caps: list[Cap]
    meta: dict

    def hash(self) -> str:
        """sha256 of every cap's weights and mapping."""
        import hashlib

        h = hashlib.sha256()
        for cap in self.caps:
            h.update(cap.name.encode())
            for arr in (cap.true_weights.data, cap.true_weights.indices, cap.to_virtual):
                h.update(np.ascontiguousarray(arr).tobytes())
        return h.hexdigest()

    def describe(self) -> dict:
        """What the model records of its training caps."""
        sizes = [c.n_electrodes for c in self.caps]
        return {"n_caps": len(self.caps), "electrodes": [int(min(sizes)), int(max(sizes))],
                "hash": self.hash(), **self.meta}

    def simulator(self, leadfield: Any, config: SimulationConfig) -> CapFreeSimulator:
        """The simulator of training samples on these caps, read through ``leadfield``'s
        virtual channels."""
        return CapFreeSimulator(leadfield, config, self.scalp_lf, self.caps)


def make_cap_pool(scalp_lf: Any, head: Any, virtual_lf: Any, **options: Any) -> CapPool:
    """:func:`training_caps` on ``virtual_lf``'s layout, as a :class:`CapPool`."""
    from .._io import to_jsonable
    from ..sensors.virtual import layout_positions

    virtual_pos = layout_positions(virtual_lf.info, virtual_lf.trans["trans"])
    caps = training_caps(scalp_lf, virtual_pos, head, **options)
    return CapPool(scalp_lf, caps, {"options": to_jsonable(options),
                                    "virtual_spline": "spherical, m=4, 50 terms, reg 1e-7"})
