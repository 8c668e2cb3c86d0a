"""Training of the source-imaging nets on simulated data, and the trained model.

:func:`train_model` trains a network (default the 4LCNN) on batches that
:class:`SimulatedDataset` generates on the fly, validates on a fixed simulated set every epoch,
keeps the best weights, stops early, checkpoints every epoch (``resume=True`` continues
bit-for-bit), trains data-parallel under ``torchrun``, and saves a :class:`TrainedModel`: the
weights with everything needed to use them safely, its source space, channel Info and head → MRI
transform included (:func:`read_model` reads it back).

- :mod:`~deepesi.training.losses`: input/target normalisation, losses, learning-rate schedule;
- :mod:`~deepesi.training.dataset`: the torch dataset and the target smoothing;
- :mod:`~deepesi.training.model`: :class:`TrainedModel`, its file and prediction;
- :mod:`~deepesi.training.loop`: :func:`train_model`;
- :mod:`~deepesi.training.ensemble`: seed ensembles (:func:`combine_models`,
  :func:`train_seed_ensemble`);
- :mod:`~deepesi.training.evaluate`: localization error on a (mismatched) test forward.

Normalisation (shared by training and :meth:`TrainedModel.predict`)
-------------------------------------------------------------------
Input: each channel is divided by the RMS gain of its sensor type (EEG, mag, grad become
commensurate), then each sample (window) by its maximum absolute value. Target: the true map
(moment norm per source point, at the window's centre sample) divided by its maximum. The net
therefore predicts the *shape* of the map; :meth:`TrainedModel.predict` restores A·m with a small
least-squares fit on the predicted support when given the lead field.
"""

from __future__ import annotations

from .dataset import SimulatedDataset, smooth_target, smoothing_kernel
from .ensemble import combine_models, member_path, train_seed_ensemble
from .evaluate import evaluate_single_sources
from .loop import train_model, train_or_load
from .losses import LOSSES, cross_entropy_loss, map_loss, normalise_input, normalise_target
from .model import MODEL_FORMAT, MODEL_VERSION, TrainedModel, load_model, read_model

__all__ = [
    "LOSSES",
    "MODEL_FORMAT",
    "MODEL_VERSION",
    "SimulatedDataset",
    "TrainedModel",
    "combine_models",
    "cross_entropy_loss",
    "evaluate_single_sources",
    "load_model",
    "map_loss",
    "member_path",
    "normalise_input",
    "normalise_target",
    "read_model",
    "smooth_target",
    "smoothing_kernel",
    "train_model",
    "train_or_load",
    "train_seed_ensemble",
]
