"""Peer solvers for the benchmark: invertmeeg's, run on the same samples and forward.

invertmeeg (``pip install invertmeeg``, or ``pip install -e ".[peers]"``) is GPL-3: it is an
optional benchmark extra, imported here only, never by the deepesi package. Each solver becomes
an outside method of :func:`deepesi.benchmark.run_benchmark` (``external_methods=``): made once
per sensor set from the ``mne.Forward`` of the model lead field (the one every method inverts
with), applied per sample to an ``mne.Evoked`` that carries the average EEG reference
projector, like the classical methods' data. Data-dependent solvers (Champagne and its
variants) build their operator from the sample itself, as their authors intend; the learned
``covcnn`` trains its network once per sensor set on invertmeeg's own simulations of that
forward (``epochs`` below), which is its recipe, not ours.

Usage (through ``benchmark_template.py``)::

    python benchmarks/benchmark_template.py ... --peers flex-nl-champagne champagne covcnn
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import numpy as np

#: The learned solvers' training data (invertmeeg's simulator): 1-3 sources, 0-15 dB, 20
#: samples, batches of 256 (its default batch of 1,284 would not fit the 2-core budget).
LEARNED_SIMULATION = {"batch_size": 256, "n_sources": (1, 3), "snr_range": (0.0, 15.0),
                      "n_timepoints": 20}
#: invertmeeg solver name → keyword arguments of its ``make_inverse_operator``.
PEER_OPTIONS: dict[str, dict] = {
    "flex-nl-champagne": {},
    "champagne": {},
    "covcnn": {"epochs": 30, "patience": 10},
}


def peer_methods(names: list[str]) -> dict[str, Callable]:
    """``{'invertmeeg-<name>': factory}`` for :func:`deepesi.benchmark.run_benchmark`.

    Parameters
    ----------
    names : list of str
        invertmeeg solver names (``invert.Solver(name)``).
    """
    try:
        from invert import Solver
    except ImportError as err:
        raise SystemExit("the peers need invertmeeg (GPL-3, an optional benchmark extra): "
                         "pip install invertmeeg") from err
    logging.getLogger("invert").setLevel(logging.ERROR)
    out = {}
    for name in names:
        opts = PEER_OPTIONS.get(name, {})
        out[f"invertmeeg-{name}"] = _factory(Solver, name, opts)
    return out


def _factory(solver_cls, name: str, opts: dict) -> Callable:
    def make(forward, info, noise_cov):
        import mne

        learned = name.startswith("covcnn")
        trained = {}

        def apply(evoked):
            evoked = evoked.copy()
            if "eeg" in evoked and not any(p["desc"] == "Average EEG reference"
                                           for p in evoked.info["projs"]):
                evoked.set_eeg_reference(projection=True, verbose=False)
            if learned:
                if "solver" not in trained:  # trained once per sensor set
                    t0 = time.perf_counter()
                    from invert.simulate.config import SimulationConfig

                    solver = solver_cls(name)
                    sim = SimulationConfig(**LEARNED_SIMULATION)
                    solver.make_inverse_operator(forward, sim, **opts)
                    trained.update(solver=solver, seconds=time.perf_counter() - t0)
                solver = trained["solver"]
            else:
                solver = solver_cls(name)
                solver.make_inverse_operator(forward, evoked, **opts)
            with mne.utils.use_log_level("ERROR"):
                stc = solver.apply_inverse_operator(evoked)
            return np.asarray(stc.data, float)

        return apply

    return make
