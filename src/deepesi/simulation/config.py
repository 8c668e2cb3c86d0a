"""What to simulate: :class:`SimulationConfig`, the distribution of the training/test samples.

The amplitude model (cortical moment density per area, deep-structure density per volume) is
described in :mod:`deepesi.simulation`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from .._validation import check_option
from ..whitening import DEFAULT_REG

__all__ = ["WAVEFORMS", "SimulationConfig"]

#: Fields holding objects, described (not stored) by :meth:`SimulationConfig.to_dict`.
_OBJECT_FIELDS = ("noise_cov", "projs", "noise_bank")

#: Time-course families a source can be drawn from (``SimulationConfig.waveforms``).
WAVEFORMS = ("evoked", "oscillatory", "noise")


def _range(value, name: str, lo: float = -np.inf, hi: float = np.inf) -> tuple[float, float]:
    """Validate a (min, max) pair (a scalar means a fixed value)."""
    if np.isscalar(value):
        value = (value, value)
    try:
        a, b = (float(v) for v in value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a number or a (min, max) pair, got {value!r}.") from None
    if not (lo <= a <= b <= hi) or not np.isfinite([a, b]).all():
        raise ValueError(f"{name} must satisfy {lo} <= min <= max <= {hi}, got ({a}, {b}).")
    return a, b


@dataclass
class SimulationConfig:
    """What to simulate. All ranges are (min, max), drawn uniformly per sample or per source.

    Parameters
    ----------
    n_sources : (int, int)
        Number of simultaneously active sources per sample (default 1..3).
    deep_fraction : float
        Probability that a sample contains at least one deep-structure source (its first source is
        then placed in a deep structure chosen uniformly among the structures present, so that small
        nuclei are as frequent as large ones). Further sources are placed uniformly over all points,
        so the realised fraction is at least ``deep_fraction``. Default 0.4.
    extent_mm : (float, float)
        Patch radius in mm, measured along the neighbour graph (edge length = Euclidean distance).
        0 gives a single point. Patches do not cross from cortex into a deep structure or between
        deep structures.
    cortical_density : (float, float)
        Cortical current-dipole-moment density, A·m/m² (1 nA·m/mm² = 1e-3 A·m/m²).
    cortical_thickness : float
        Cortical thickness in metres used to convert a grid point's volume to cortical area.
    deep_density : (float, float)
        Deep-structure moment density, A·m/m³ (1 nA·m/mm³ = 1 A·m/m³).
    loose : float | None
        Loose-orientation weight for cortical points (0 = strictly along the normal); None uses the
        source space's own ``loose``.
    n_times : int
        Samples per simulated window (1 = a single time sample, the 4LCNN default).
    sfreq : float
        Sampling frequency (Hz) of the window.
    waveforms : tuple of str
        Time-course families drawn per source when ``n_times > 1``: 'evoked' (Gaussian bump),
        'oscillatory' (4–30 Hz sinusoid under a Hann envelope), 'noise' (band-limited noise).
    evoked_width_s : (float, float) | None
        Standard deviation (s) of the 'evoked' bumps on a physical time scale, e.g. (0.005,
        0.05), centred anywhere from one width before the window to one after it: what a short
        window of a real average sampled fast holds (a ramp, a plateau, a flank). None
        (default, the shipped window nets' training): 5–25 % of the window, centred in its
        middle half.
    snr_db : (float, float)
        Signal-to-noise ratio in dB (power summed over channels and time; see ``snr_space``).
    snr_space : {'sensor', 'whitened'}
        Where the SNR is measured. 'sensor': per sensor type, on the data in its own units (each
        type gets the drawn SNR). 'whitened': over all channels together after whitening with
        ``noise_cov`` (:mod:`deepesi.whitening`), the definition of the benchmark and of MNE's
        whitened data; needs ``noise_cov``. Use it for nets that whiten their input.
    colored_noise_fraction : (float, float)
        Fraction of the noise power drawn from ``noise_cov`` (rest is white); ignored without one.
    noise_cov : mne.Covariance | ndarray | None
        Sensor noise covariance (channels matched by name for an mne.Covariance; an array must
        follow the lead field's channel order).
    noise_reg : float
        Diagonal loading of ``noise_cov`` per sensor type, as a fraction of that type's mean
        variance, for whitening (the 'whitened' SNR, and nets trained with ``whiten``); 0 for a
        covariance that is already regularised. The noise itself is drawn from ``noise_cov``.
    average_reference : bool
        Re-reference EEG to the average of the good EEG channels (default True).
    projs : list of mne.Projection | ndarray | None
        The recording's SSP projectors (``info['projs']``, e.g. the Neuromag PCA vectors of the
        MNE sample data), or an (n_ch, n_ch) projector in the lead field's channel order. Signal
        and noise are projected like the recording, and the whitener removes the same
        directions (:func:`deepesi.whitening.ssp_projector`), so a net never learns from field
        components the real data cannot have. None (default): no projection.
    bad_channel_prob : float
        Probability that a sample has bad/missing channels.
    bad_channel_fraction : (float, float)
        Fraction of channels marked bad in such a sample; bad channels are zeroed and reported in
        the mask.
    noise_bank : NoiseBank | None
        Real noise (:func:`deepesi.simulation.make_noise_bank`: the recording's pre-stimulus
        baseline, raw or empty-room segments) to draw part of the sensor noise from, windows of
        ``n_times`` samples with their temporal structure; channels matched by name.
    bank_noise_fraction : (float, float)
        Fraction of the noise power drawn from ``noise_bank`` (ignored without one).
    brain_noise_fraction : (float, float)
        Fraction of the noise power that is background brain activity
        (:func:`deepesi.simulation.noise.brain_noise`: ``brain_noise_sources`` random dipoles with
        ``1/f^brain_noise_exponent`` time courses through the lead field). Default (0, 0): none.
    brain_noise_sources : int
        Background dipoles per sample.
    brain_noise_exponent : float
        Spectral exponent β of the background time courses (power ∝ 1/f^β; 1 is pink).
    """

    n_sources: tuple[int, int] = (1, 3)
    deep_fraction: float = 0.4
    extent_mm: tuple[float, float] = (0.0, 30.0)
    cortical_density: tuple[float, float] = (0.25e-3, 1.0e-3)
    cortical_thickness: float = 2.5e-3
    deep_density: tuple[float, float] = (0.025, 0.1)
    loose: float | None = None
    n_times: int = 1
    sfreq: float = 250.0
    waveforms: tuple[str, ...] = WAVEFORMS
    evoked_width_s: tuple[float, float] | None = None
    snr_db: tuple[float, float] = (0.0, 20.0)
    snr_space: str = "sensor"
    colored_noise_fraction: tuple[float, float] = (0.0, 0.5)
    noise_cov: object | None = field(default=None, repr=False)
    noise_reg: float = DEFAULT_REG
    average_reference: bool = True
    projs: object | None = field(default=None, repr=False)
    bad_channel_prob: float = 0.0
    bad_channel_fraction: tuple[float, float] = (0.0, 0.1)
    noise_bank: object | None = field(default=None, repr=False)
    bank_noise_fraction: tuple[float, float] = (0.5, 1.0)
    brain_noise_fraction: tuple[float, float] = (0.0, 0.0)
    brain_noise_sources: int = 100
    brain_noise_exponent: float = 1.0

    def __post_init__(self) -> None:
        lo, hi = _range(self.n_sources, "n_sources", 1, 100)
        if lo != int(lo) or hi != int(hi):
            raise ValueError(f"n_sources must be integers, got {self.n_sources}.")
        self.n_sources = (int(lo), int(hi))
        if not 0.0 <= float(self.deep_fraction) <= 1.0:
            raise ValueError(f"deep_fraction must be in [0, 1], got {self.deep_fraction}.")
        self.deep_fraction = float(self.deep_fraction)
        self.extent_mm = _range(self.extent_mm, "extent_mm", 0.0, 200.0)
        self.cortical_density = _range(self.cortical_density, "cortical_density", 0.0)
        self.deep_density = _range(self.deep_density, "deep_density", 0.0)
        if not float(self.cortical_thickness) > 0:
            raise ValueError(f"cortical_thickness must be > 0 m, got {self.cortical_thickness}.")
        if self.loose is not None and not 0.0 <= float(self.loose) <= 1.0:
            raise ValueError(f"loose must be None or in [0, 1], got {self.loose}.")
        if int(self.n_times) < 1:
            raise ValueError(f"n_times must be >= 1, got {self.n_times}.")
        self.n_times = int(self.n_times)
        if not float(self.sfreq) > 0:
            raise ValueError(f"sfreq must be > 0 Hz, got {self.sfreq}.")
        self.waveforms = tuple(self.waveforms)
        bad = sorted(set(self.waveforms) - set(WAVEFORMS))
        if bad or not self.waveforms:
            raise ValueError(f"waveforms must be a non-empty subset of {WAVEFORMS}, got {bad}.")
        if self.evoked_width_s is not None:
            self.evoked_width_s = _range(self.evoked_width_s, "evoked_width_s", 1e-4, 10.0)
        self.snr_db = _range(self.snr_db, "snr_db", -40.0, 100.0)
        if not (np.isfinite(self.noise_reg) and self.noise_reg >= 0):
            raise ValueError(f"noise_reg must be >= 0, got {self.noise_reg!r}.")
        self.noise_reg = float(self.noise_reg)
        check_option("snr_space", self.snr_space, ("sensor", "whitened"))
        self.colored_noise_fraction = _range(
            self.colored_noise_fraction, "colored_noise_fraction", 0.0, 1.0
        )
        if not 0.0 <= float(self.bad_channel_prob) <= 1.0:
            raise ValueError(f"bad_channel_prob must be in [0, 1], got {self.bad_channel_prob}.")
        self.bad_channel_fraction = _range(
            self.bad_channel_fraction, "bad_channel_fraction", 0, 0.9
        )
        if self.noise_bank is not None:
            from .noise import NoiseBank

            if not isinstance(self.noise_bank, NoiseBank):
                raise TypeError(
                    "noise_bank must be a deepesi NoiseBank (deepesi.simulation.make_noise_bank),"
                    f" got {type(self.noise_bank).__name__}."
                )
        self.bank_noise_fraction = _range(
            self.bank_noise_fraction, "bank_noise_fraction", 0.0, 1.0
        )
        self.brain_noise_fraction = _range(
            self.brain_noise_fraction, "brain_noise_fraction", 0.0, 1.0
        )
        if int(self.brain_noise_sources) < 1:
            raise ValueError(
                f"brain_noise_sources must be >= 1, got {self.brain_noise_sources!r}."
            )
        self.brain_noise_sources = int(self.brain_noise_sources)
        if not (np.isfinite(self.brain_noise_exponent) and 0 <= self.brain_noise_exponent <= 3):
            raise ValueError(
                f"brain_noise_exponent must be in [0, 3], got {self.brain_noise_exponent!r}."
            )
        self.brain_noise_exponent = float(self.brain_noise_exponent)

    def to_dict(self) -> dict:
        """Plain-Python description (for model files and HDF5 attributes; ``noise_cov`` omitted)."""
        out = {}
        for f in dataclasses.fields(self):
            if f.name in _OBJECT_FIELDS:
                obj = getattr(self, f.name)
                out[f.name] = None if obj is None else getattr(obj, "description", "") or "given"
                continue
            val = getattr(self, f.name)
            out[f.name] = list(val) if isinstance(val, tuple) else val
        return out

    @classmethod
    def from_dict(cls, d: dict) -> SimulationConfig:
        """Inverse of :meth:`to_dict` (``noise_cov``, ``projs``, ``noise_bank`` not restored)."""
        names = {f.name for f in dataclasses.fields(cls)} - set(_OBJECT_FIELDS)
        unknown = sorted(set(d) - names - set(_OBJECT_FIELDS))
        if unknown:
            raise ValueError(f"unknown SimulationConfig field(s): {unknown}.")
        return cls(
            **{k: tuple(v) if isinstance(v, list) else v for k, v in d.items() if k in names}
        )
