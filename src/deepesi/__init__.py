"""deepesi: deep-learning electrophysiological source imaging, cortical and subcortical.

The public API is organised by stage of the data flow (see ``docs/design.md``):

- :mod:`deepesi.anatomy`: 10-tissue head conductivity models from templates and segmentations;
- :mod:`deepesi.sources`: cortical + subcortical source spaces;
- :mod:`deepesi.sensors`: EEG montages and MEG sensors registered to a head;
- :mod:`deepesi.forward`: finite-element forward models and their MNE interchange;
- :mod:`deepesi.simulation`, :mod:`deepesi.nets`, :mod:`deepesi.training`: the 4LCNN and its
  training data;
- :mod:`deepesi.inverse`: one inverse API, network (``apply_network``) and classical methods
  (``apply_classical``), both returning a ``SourceMap``;
- :mod:`deepesi.metrics`, :mod:`deepesi.benchmark`, :mod:`deepesi.viz`: scores, benchmarks,
  pictures and reports.

Messages and progress bars follow one package logger: :func:`set_log_level`, or ``verbose=`` on
the functions that take it.
"""

from __future__ import annotations

from ._logging import set_log_level

__version__ = "0.1.0.dev0"

__all__ = ["__version__", "set_log_level"]
