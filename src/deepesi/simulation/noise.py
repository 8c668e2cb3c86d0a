"""Noise as real recordings have it: segments of the recording itself, and brain background.

A noise covariance describes the second moments of the noise and nothing else: real sensor noise
also has temporal structure (alpha, drifts, line residue), non-Gaussian bursts and a spatial
pattern that the estimated covariance only approximates. Training a network on covariance noise
alone teaches it a noise that no recording has. Two further sources make the training noise
realistic:

- :class:`NoiseBank` (:func:`make_noise_bank`): windows of real data without the response,
  from the pre-stimulus baseline of Epochs or an Evoked, or from Raw segments (an empty-room
  recording, a resting stretch). The simulator draws windows of ``n_times`` samples at random
  offsets, with a random sign, channels matched by name;
- :func:`brain_noise`: the background activity of the brain, many distributed dipoles at random
  points with random orientations and ``1/f^β`` time courses, projected through the lead field:
  it is spatially correlated exactly as sources are, which covariance noise is not.

:class:`~deepesi.simulation.SimulationConfig` mixes them into the sensor noise
(``bank_noise_fraction``, ``brain_noise_fraction``); the SNR is then set on the mixture, on
whitened data when ``snr_space='whitened'``, as before.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._io import atomic_path, check_overwrite
from .._logging import logger, verbose
from .._validation import check_file, check_random_state, validate_type

__all__ = ["NoiseBank", "brain_noise", "make_noise_bank", "pink_noise", "read_noise_bank"]

NOISE_BANK_FORMAT = "deepesi-noise-bank"


@dataclass
class NoiseBank:
    """Windows of real sensor noise to draw training noise from.

    Parameters
    ----------
    segments : list of ndarray, each (n_channels, n_samples)
        Noise-only stretches of data in SI units (V, T, T/m), rows in ``ch_names`` order. Each
        must be at least as long as the windows that will be drawn.
    ch_names : list of str
        The channels of the rows.
    sfreq : float
        Sampling rate of the segments (Hz).
    description : str
        Where the segments came from (kept in the model files of nets trained on them).

    Notes
    -----
    Draws (:meth:`draw`) pick a segment with probability proportional to the number of windows it
    holds, a uniform offset in it and a random sign. Channel means are removed per segment (the
    DC offset of a raw recording is not noise a network sees after baseline correction).
    """

    segments: list[np.ndarray]
    ch_names: list[str]
    sfreq: float
    description: str = ""
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.ch_names = [str(c) for c in self.ch_names]
        if len(set(self.ch_names)) != len(self.ch_names):
            raise ValueError("NoiseBank: channel names must be unique.")
        segs = []
        for k, s in enumerate(self.segments):
            s = np.asarray(s, dtype=np.float64)
            if s.ndim != 2 or s.shape[0] != len(self.ch_names) or s.shape[1] < 1:
                raise ValueError(
                    f"NoiseBank segment {k} has shape {s.shape}; expected "
                    f"({len(self.ch_names)}, n_samples >= 1)."
                )
            if not np.isfinite(s).all():
                raise ValueError(f"NoiseBank segment {k} contains NaN or Inf.")
            segs.append(s - s.mean(axis=1, keepdims=True))
        if not segs:
            raise ValueError("NoiseBank needs at least one segment of noise.")
        self.segments = segs
        self.sfreq = float(self.sfreq)
        if not self.sfreq > 0:
            raise ValueError(f"NoiseBank sfreq must be > 0 Hz, got {self.sfreq}.")

    @property
    def n_samples(self) -> int:
        """Total number of samples over the segments."""
        return int(sum(s.shape[1] for s in self.segments))

    def n_windows(self, n_times: int) -> int:
        """How many distinct windows of ``n_times`` samples the bank holds."""
        return int(sum(max(s.shape[1] - n_times + 1, 0) for s in self.segments))

    def covariance(self) -> np.ndarray:
        """The (n_ch, n_ch) covariance of the segments (means removed), pooled."""
        x = np.concatenate(self.segments, axis=1)
        return x @ x.T / max(x.shape[1] - len(self.segments), 1)

    def rows_for(self, ch_names: list[str]) -> np.ndarray:
        """Row index of each of ``ch_names`` (ValueError naming the missing channels)."""
        where = {c: i for i, c in enumerate(self.ch_names)}
        missing = [c for c in ch_names if c not in where]
        if missing:
            raise ValueError(
                f"the noise bank lacks {len(missing)} channel(s) of the lead field: "
                f"{missing[:6]}{' ...' if len(missing) > 6 else ''}; build it from a recording "
                "with these channels (make_noise_bank)."
            )
        return np.array([where[c] for c in ch_names])

    def draw(self, n: int, n_times: int, rows: np.ndarray | None = None,
             rng: int | np.random.Generator | None = None) -> np.ndarray:
        """``n`` noise windows, shape (n, n_rows, n_times).

        Parameters
        ----------
        n : int
            Number of windows.
        n_times : int
            Samples per window.
        rows : ndarray of int | None
            Rows to return (:meth:`rows_for` of the lead field's channels); None: all.
        rng : int | numpy.random.Generator | None
            Random stream.
        """
        rng = check_random_state(rng)
        rows = np.arange(len(self.ch_names)) if rows is None else np.asarray(rows)
        counts = np.array([max(s.shape[1] - n_times + 1, 0) for s in self.segments], float)
        if counts.sum() == 0:
            longest = max(s.shape[1] for s in self.segments)
            raise ValueError(
                f"the noise bank's segments ({longest} samples at most) are shorter than the "
                f"{n_times}-sample windows asked for; give longer noise (a longer baseline, or "
                "raw segments)."
            )
        seg = rng.choice(len(self.segments), size=n, p=counts / counts.sum())
        start = np.floor(rng.random(n) * counts[seg]).astype(int)
        sign = rng.choice([-1.0, 1.0], size=n)
        out = np.empty((n, len(rows), n_times))
        for i in range(n):
            out[i] = sign[i] * self.segments[seg[i]][rows, start[i] : start[i] + n_times]
        return out

    def save(self, fname: str | os.PathLike, overwrite: bool = False) -> Path:
        """Write the bank to ``fname`` (``.npz``, atomically)."""
        fname = Path(fname)
        check_overwrite(fname, overwrite)
        arrays = {f"segment_{k}": s for k, s in enumerate(self.segments)}
        with atomic_path(fname, overwrite=overwrite) as tmp, open(tmp, "wb") as fid:
            np.savez_compressed(
                fid, format=NOISE_BANK_FORMAT, ch_names=np.array(self.ch_names),
                sfreq=self.sfreq, description=self.description, n_segments=len(self.segments),
                **arrays,
            )
        return fname

    def __repr__(self) -> str:
        return (f"<NoiseBank | {len(self.ch_names)} channels, {len(self.segments)} segments, "
                f"{self.n_samples} samples at {self.sfreq:g} Hz | {self.description}>")


def read_noise_bank(fname: str | os.PathLike) -> NoiseBank:
    """Read a :class:`NoiseBank` written by :meth:`NoiseBank.save`."""
    fname = check_file(fname, "noise bank")
    with np.load(fname, allow_pickle=False) as z:
        if "format" not in z or str(z["format"]) != NOISE_BANK_FORMAT:
            raise ValueError(f"{fname} is not a deepesi noise bank (NoiseBank.save writes one).")
        segs = [z[f"segment_{k}"] for k in range(int(z["n_segments"]))]
        return NoiseBank(segs, [str(c) for c in z["ch_names"]], float(z["sfreq"]),
                         str(z["description"]))


@verbose
def make_noise_bank(
    inst: Any,
    *,
    tmin: float | None = None,
    tmax: float | None = None,
    picks: list[str] | None = None,
    max_seconds: float = 300.0,
    verbose: bool | str | int | None = None,
) -> NoiseBank:
    """A noise bank from the noise-only part of a recording.

    Parameters
    ----------
    inst : mne.Epochs | mne.Evoked | mne.io.Raw
        - Epochs: each epoch's ``[tmin, tmax]`` (default: start to 0 s, the pre-stimulus
          baseline) with the average over epochs of that window removed, one segment per epoch:
          single-trial noise with its real spatial and temporal structure;
        - Evoked: its ``[tmin, tmax]`` (default: start to 0 s), one segment (the residual noise
          of the average; few samples, but the very noise the localized data carry);
        - Raw: ``[tmin, tmax]`` (default: all, at most ``max_seconds``), one segment; an
          empty-room recording of the same system, or a stretch without the response.
    tmin, tmax : float | None
        The noise window (s).
    picks : list of str | None
        Channel names to keep (default: all good EEG and MEG channels).
    max_seconds : float
        Longest stretch kept from a Raw (memory: 300 s × 306 channels × 1 kHz is 0.7 GB).
    verbose : bool | str | int | None
        Log level for the call.

    Returns
    -------
    NoiseBank
    """
    import mne

    validate_type(inst, (mne.BaseEpochs, mne.Evoked, mne.io.BaseRaw), "inst",
                  "mne.Epochs, mne.Evoked or mne.io.Raw")
    names = [inst.ch_names[k] for k in mne.pick_types(inst.info, meg=True, eeg=True,
                                                       exclude="bads")]
    if picks is not None:
        unknown = [c for c in picks if c not in set(names)]
        if unknown:
            raise ValueError(f"make_noise_bank: picks not among the good EEG/MEG channels: "
                             f"{unknown[:6]}.")
        names = list(picks)
    if not names:
        raise ValueError("make_noise_bank: the recording has no good EEG/MEG channel.")
    sfreq = float(inst.info["sfreq"])
    if isinstance(inst, mne.io.BaseRaw):
        t0 = inst.times[0] if tmin is None else tmin
        t1 = min(inst.times[-1] if tmax is None else tmax, t0 + max_seconds)
        start, stop = inst.time_as_index([t0, t1])
        data = inst.get_data(picks=names, start=int(start), stop=int(stop) + 1)
        segments, what = [data], f"raw {t0:g}-{t1:g} s"
    else:
        times = inst.times
        t0 = times[0] if tmin is None else tmin
        t1 = 0.0 if tmax is None else tmax
        sel = np.flatnonzero((times >= t0 - 1e-9) & (times <= t1 + 1e-9))
        if len(sel) < 2:
            raise ValueError(
                f"the noise window {t0:g}-{t1:g} s holds {len(sel)} sample(s) of this "
                f"recording ({times[0]:g}-{times[-1]:g} s); give tmin/tmax of a noise-only "
                "stretch (e.g. the pre-stimulus baseline)."
            )
        if isinstance(inst, mne.Evoked):
            segments = [inst.copy().pick(names).data[:, sel]]
            what = f"evoked baseline {times[sel[0]]:g}-{times[sel[-1]]:g} s (nave {inst.nave})"
        else:
            x = inst.copy().pick(names).get_data()[:, :, sel]
            x = x - x.mean(axis=0, keepdims=True)  # the response (if any) out, noise stays
            segments = list(x)
            what = f"epochs baseline {times[sel[0]]:g}-{times[sel[-1]]:g} s ({len(x)} epochs)"
    bank = NoiseBank(segments, names, sfreq, description=what)
    logger.info("Noise bank: %s", bank)
    return bank


# ============================================================================ brain noise
def pink_noise(shape: tuple[int, ...], exponent: float,
               rng: np.random.Generator) -> np.ndarray:
    """Gaussian noise with a ``1/f^exponent`` power spectrum along the last axis, unit variance.

    Generated in the frequency domain on twice the length (and cut) so that the windows are not
    periodic; the DC bin is zero.
    """
    n = int(shape[-1])
    m = max(2 * n, 16)
    spec = rng.standard_normal((*shape[:-1], m // 2 + 1)) + 1j * rng.standard_normal(
        (*shape[:-1], m // 2 + 1))
    f = np.arange(m // 2 + 1, dtype=float)
    f[0] = np.inf
    spec *= f ** (-exponent / 2.0)
    x = np.fft.irfft(spec, n=m, axis=-1)[..., :n]
    sd = x.std(axis=-1, keepdims=True)
    return x / np.where(sd > 0, sd, 1.0)


def brain_noise(gain_flat: np.ndarray, n: int, n_times: int, *, n_sources: int,
                exponent: float, rng: np.random.Generator) -> np.ndarray:
    """Background activity of the brain at the sensors, shape (n, n_ch, n_times).

    ``n_sources`` dipoles per sample at uniformly drawn points with isotropic random
    orientations and independent ``1/f^exponent`` time courses of equal variance, projected
    through ``gain_flat`` (3·n_points, n_ch) (the simulator's gain: referenced and projected).
    The overall scale is irrelevant (the SNR sets it).
    """
    from scipy import sparse

    n_pts = gain_flat.shape[0] // 3
    m = n * n_sources
    pts = rng.integers(n_pts, size=m)
    ori = rng.standard_normal((m, 3))
    ori /= np.linalg.norm(ori, axis=1, keepdims=True)
    dip = sparse.csr_matrix(
        (ori.ravel(), (np.repeat(np.arange(m), 3), (3 * pts[:, None] + np.arange(3)).ravel())),
        shape=(m, gain_flat.shape[0]),
    )
    topo = np.asarray(dip @ gain_flat).reshape(n, n_sources, -1)  # (n, S, n_ch)
    wave = pink_noise((n, n_sources, n_times), exponent, rng)
    return np.einsum("nsc,nst->nct", topo, wave)
