"""Shared by the window benchmarks: single point sources' fields on a test forward, given time
courses and white noise at an SNR over the window, laid end to end for one ``predict`` call."""

from __future__ import annotations

import numpy as np


def single_source_fields(test_lf, n: int, seed: int) -> tuple:
    """Noiseless fields (n, n_ch) of ``n`` single point sources (half deep) of ``test_lf``,
    their channel names, true positions (n, 3) and whether each is deep (n,)."""
    from deepesi.simulation import SimulationConfig, Simulator

    cfg = SimulationConfig(n_sources=(1, 1), extent_mm=(0.0, 0.0), snr_db=(100.0, 100.0),
                           deep_fraction=0.5, n_times=1)
    batch = Simulator(test_lf, cfg).simulate(n, seed=seed)
    centres = batch.centres[:, 0]
    return (batch.data[:, :, 0].astype(float), list(batch.ch_names),
            test_lf.source_space.pos[centres],
            np.asarray(test_lf.source_space.is_subcortical)[centres])


def average_referenced_noise(rng: np.random.Generator, shape: tuple) -> np.ndarray:
    """White noise (n, n_ch, n_times), average-referenced over channels."""
    noise = rng.standard_normal(shape)
    return noise - noise.mean(axis=1, keepdims=True)


def noisy_windows(fields: np.ndarray, courses: np.ndarray, noise: np.ndarray,
                  snr_db: float) -> np.ndarray:
    """Fields × courses (n, n_times; one shared course: (n_times,)) plus the noise scaled to
    ``snr_db`` over each window, as one (n_ch, n·n_times) array, windows end to end."""
    courses = np.broadcast_to(np.asarray(courses, float), (len(fields), noise.shape[2]))
    signal = fields[:, :, None] * courses[:, None, :]
    k = np.sqrt(np.mean(signal**2, axis=(1, 2)) / np.mean(noise**2, axis=(1, 2))
                / 10 ** (snr_db / 10))
    x = signal + noise * k[:, None, None]
    return x.transpose(1, 0, 2).reshape(fields.shape[1], -1)
