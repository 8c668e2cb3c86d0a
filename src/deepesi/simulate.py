"""Deprecated: the simulator moved to :mod:`deepesi.simulation`, its torch dataset to
:mod:`deepesi.training`.

===========================================  ==================================================
old (``deepesi.simulate``)                   new
===========================================  ==================================================
``SimulationConfig``, ``WAVEFORMS``          ``deepesi.simulation`` (``.config``)
``SimulatedBatch``, ``load_simulation``      ``deepesi.simulation`` (``.batch``;
                                             ``read_simulation``, ``load_simulation`` alias)
``Simulator``, ``simulate_batch``,           ``deepesi.simulation`` (``.simulator``)
``batch_seed``, ``simulate_to_hdf5``
``SimulatedDataset``, ``smoothing_kernel``,  ``deepesi.training`` (``.dataset``)
``smooth_target``
===========================================  ==================================================

``simulate_to_hdf5(progress=...)`` became ``verbose=``.
"""

from __future__ import annotations

import warnings

from .simulation import (
    FORMAT_VERSION,
    WAVEFORMS,
    SimulatedBatch,
    SimulationConfig,
    Simulator,
    batch_seed,
    load_simulation,
    read_simulation,
    simulate_batch,
    simulate_to_hdf5,
)
from .training.dataset import SimulatedDataset, smooth_target, smoothing_kernel

warnings.warn(
    "deepesi.simulate is deprecated; use deepesi.simulation (and deepesi.training for "
    "SimulatedDataset, smoothing_kernel, smooth_target)",
    DeprecationWarning,
    stacklevel=2,
)

__all__ = [
    "FORMAT_VERSION",
    "WAVEFORMS",
    "SimulatedBatch",
    "SimulatedDataset",
    "SimulationConfig",
    "Simulator",
    "batch_seed",
    "load_simulation",
    "read_simulation",
    "simulate_batch",
    "simulate_to_hdf5",
    "smooth_target",
    "smoothing_kernel",
]
