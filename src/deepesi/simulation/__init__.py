"""Simulated EEG/MEG of cortical and deep sources: the training and test data of the networks.

A sample is one to ``K`` extended sources (patches grown along the source space's neighbour
graph), each with a physiologically scaled dipole moment, an orientation that follows the source
model, optionally a time course, and sensor noise scaled to a requested SNR; everything is seeded
(:mod:`deepesi.simulation.simulator` describes the amplitude model).

- :mod:`~deepesi.simulation.config`: :class:`SimulationConfig`, what to simulate;
- :mod:`~deepesi.simulation.simulator`: :class:`Simulator`, :func:`simulate_batch`,
  :func:`batch_seed`, :func:`simulate_to_hdf5`;
- :mod:`~deepesi.simulation.batch`: :class:`SimulatedBatch` and its HDF5 file
  (:func:`read_simulation`);
- :mod:`~deepesi.simulation.mismatch`: the mismatched test forward of every evaluation
  (perturbed conductivities, off-grid sources);
- :mod:`~deepesi.simulation.noise`: real noise (:class:`NoiseBank` from a recording's baseline,
  raw or empty-room segments) and background brain activity;
- :mod:`~deepesi.simulation.forwards`: the lead field to simulate on (:func:`load_leadfield`);
- :mod:`~deepesi.simulation.sphere`: an analytic sphere source space, lead field and MEG helmet
  for tests and benchmarks.

This package needs numpy/scipy only (h5py for the files); the torch dataset that streams
simulated batches to training is :class:`deepesi.training.SimulatedDataset`.
"""

from __future__ import annotations

from .batch import FORMAT_VERSION, SimulatedBatch, load_simulation, read_simulation
from .config import WAVEFORMS, SimulationConfig
from .forwards import load_leadfield, read_work_leadfield
from .mismatch import SOURCE_TISSUES, off_grid_sources, perturbed_conductivities, snap_into_tissue
from .noise import NoiseBank, brain_noise, make_noise_bank, read_noise_bank
from .simulator import Simulator, batch_seed, simulate_batch, simulate_to_hdf5

__all__ = [
    "FORMAT_VERSION",
    "SOURCE_TISSUES",
    "WAVEFORMS",
    "NoiseBank",
    "SimulatedBatch",
    "SimulationConfig",
    "Simulator",
    "batch_seed",
    "brain_noise",
    "load_leadfield",
    "load_simulation",
    "make_noise_bank",
    "off_grid_sources",
    "perturbed_conductivities",
    "read_noise_bank",
    "read_simulation",
    "read_work_leadfield",
    "simulate_batch",
    "simulate_to_hdf5",
    "snap_into_tissue",
]
