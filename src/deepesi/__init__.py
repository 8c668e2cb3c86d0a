"""deepesi: deep-learning electrophysiological source imaging, cortical and subcortical.

The public API is organised by stage of the data flow (see ``docs/design.md``):

- :mod:`deepesi.anatomy`: 10-tissue head conductivity models from templates and segmentations;
- :mod:`deepesi.sources`: cortical + subcortical source spaces;
- :mod:`deepesi.sensors`: EEG montages and MEG sensors registered to a head;
- :mod:`deepesi.forward`: finite-element forward models and their MNE interchange;
- :mod:`deepesi.simulate`, :mod:`deepesi.nets`, :mod:`deepesi.training`: the 4LCNN and its data;
- :mod:`deepesi.localize`, :mod:`deepesi.baselines`, :mod:`deepesi.metrics`: localization and
  evaluation.
"""

from __future__ import annotations

__version__ = "0.1.0.dev0"

__all__ = ["__version__"]
