"""Seed ensembles: :func:`combine_models` reads several trained nets of one forward as one model,
:func:`train_seed_ensemble` trains them (one seed each) and combines them.

Why (measured in ``docs/network.md``, "Seed ensembles"): on a real recording, nets trained by
the same command with different seeds put their peaks centimetres apart, while they agree on
simulations. The combined posterior (:class:`deepesi.nets.EnsembleNet`) varies less from one
set of seeds to another, and the members' disagreement is reported with every localization.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .._io import check_overwrite
from .._logging import logger, verbose
from .._validation import check_option, validate_type
from ..forward.leadfield import LeadField
from ..nets import ENSEMBLE_RULES, EnsembleNet
from ..simulation import SimulationConfig
from .loop import train_or_load
from .model import TrainedModel, read_model

__all__ = ["check_seeds", "combine_models", "member_path", "train_seed_ensemble"]


def _as_model(model: Any, index: int) -> TrainedModel:
    validate_type(model, (TrainedModel, "path-like"), f"models[{index}]",
                  "a TrainedModel or a model file path")
    return model if isinstance(model, TrainedModel) else read_model(model)


def _same(a: np.ndarray | None, b: np.ndarray | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    a, b = np.asarray(a, float), np.asarray(b, float)
    return a.shape == b.shape and np.allclose(a, b, rtol=1e-6, atol=0.0)


def _check_compatible(first: TrainedModel, other: TrainedModel, index: int) -> None:
    """One clear line when ``other`` cannot be read together with ``first``."""
    checks = (
        ("channels", list(first.ch_names) == list(other.ch_names)
         and list(first.ch_types) == list(other.ch_types)),
        ("source space", first.source_space_hash == other.source_space_hash),
        ("training lead field", first.leadfield_hash == other.leadfield_hash),
        ("input window", first.net.n_times == other.net.n_times),
        ("output (loss)", first.net.output == other.net.output),
        ("per-channel input scale", _same(first.channel_scale, other.channel_scale)),
        ("input whitener", _same(first.whitener, other.whitener)),
    )
    for what, ok in checks:
        if not ok:
            raise ValueError(
                f"models[{index}] differs from models[0] in its {what}: an ensemble combines "
                "nets trained for the same forward and input (the same command with other "
                "seeds); retrain it with the others' settings."
            )


def combine_models(models: Sequence[Any], *, rule: str = "mean") -> TrainedModel:
    """One model that reads several trained nets of the same forward together.

    Parameters
    ----------
    models : sequence of TrainedModel or path-like
        At least two nets trained for the same channels, source space, lead field and input
        (typically the same command with different seeds). Single nets only.
    rule : {'mean', 'geometric'}
        'mean' (default): the mixture of the members' posteriors; 'geometric': their
        normalised geometric mean (softmax nets only). See :mod:`deepesi.nets.ensemble`.

    Returns
    -------
    TrainedModel
        Predicts the combined maps (``predict(..., member=k)``: member ``k``'s own); saved and
        read like any model file; ``meta['ensemble']`` lists the members (seed, epochs, best
        validation loss, weights hash).
    """
    if isinstance(models, (str, os.PathLike, TrainedModel)) or not isinstance(models, Sequence):
        raise TypeError("models must be a list of TrainedModel objects or model files.")
    if len(models) < 2:
        raise ValueError(f"an ensemble needs at least 2 models, got {len(models)}.")
    check_option("rule", rule, ENSEMBLE_RULES)  # before any file is read
    loaded = [_as_model(m, i) for i, m in enumerate(models)]
    for i, m in enumerate(loaded):
        if m.n_members > 1:
            raise ValueError(f"models[{i}] is already an ensemble of {m.n_members} nets; "
                             "combine the single nets.")
    first = loaded[0]
    for i, m in enumerate(loaded[1:], start=1):
        _check_compatible(first, m, i)
    net = EnsembleNet(first.net.n_channels, first.net.n_sources,
                      [copy.deepcopy(m.net) for m in loaded],  # the inputs stay independent
                      n_times=first.net.n_times, rule=rule)
    net.eval()
    members = [{"seed": m.meta.get("seed"), "epochs_run": m.meta.get("epochs_run"),
                "best_val_loss": m.meta.get("best_val_loss"),
                "weights_hash": m.weights_hash()} for m in loaded]
    seeds = [s["seed"] for s in members]
    if None not in seeds and len(set(seeds)) < len(seeds):
        logger.warning("combine_models: members share seeds %s: identical nets add nothing "
                       "to an ensemble.", seeds)
    meta = {k: v for k, v in first.meta.items() if k not in ("seed", "epochs_run",
                                                                "best_val_loss")}
    meta["ensemble"] = {"rule": rule, "members": members}
    return TrainedModel(
        net, list(first.ch_names), list(first.ch_types), np.asarray(first.channel_scale),
        first.leadfield_hash, first.source_space_hash, dict(first.sim_config), history=[],
        meta=meta, whitener=first.whitener, source_space=first.source_space,
        info=first.info, trans=first.trans,
    )


def check_seeds(seeds: Sequence[int]) -> list[int]:
    """The seeds of an ensemble as ints; ValueError unless at least 2, all different."""
    seeds = [int(s) for s in seeds]
    if len(seeds) < 2 or len(set(seeds)) != len(seeds):
        raise ValueError(f"a seed ensemble needs at least 2 different seeds (one net each), got "
                         f"{seeds}; one net is trained with seed=... (CLI --seed).")
    return seeds


def member_path(out_path: str | os.PathLike, seed: int) -> Path:
    """The file of the member trained with ``seed`` of the ensemble written to ``out_path``:
    ``<stem>-seed<seed>.pt`` beside it."""
    out_path = Path(out_path)
    return out_path.with_name(f"{out_path.stem}-seed{int(seed)}{out_path.suffix or '.pt'}")


@verbose
def train_seed_ensemble(
    leadfield: LeadField,
    config: SimulationConfig | None,
    out_path: str | os.PathLike,
    *,
    seeds: Sequence[int] = (0, 1, 2),
    rule: str = "mean",
    overwrite: bool = False,
    verbose: bool | str | int | None = None,
    **train_kwargs: Any,
) -> TrainedModel:
    """Train one net per seed with the same settings and save their ensemble.

    Each member is trained by :func:`~deepesi.training.train_model` (``seed=s``, every other
    setting shared) into ``<stem>-seed<s>.pt`` beside ``out_path`` (:func:`member_path`), with
    its checkpoint: an interrupted run resumes, and a member whose file exists is read, not
    retrained. The members are combined by :func:`combine_models` into ``out_path``.

    Parameters
    ----------
    leadfield : LeadField
        The forward model the nets are for.
    config : SimulationConfig | None
        Training-data distribution (as :func:`~deepesi.training.train_model`).
    out_path : path-like
        The ensemble's model file.
    seeds : sequence of int
        One member per seed (at least 2, all different). The budget of each member is that of
        ``train_kwargs`` (epochs × batches), so the ensemble costs ``len(seeds)`` trainings.
    rule : {'mean', 'geometric'}
        Combination rule (:func:`combine_models`).
    overwrite : bool
        Replace an existing ``out_path`` (member files that exist are reused either way).
    verbose : bool | str | int | None
        Log level (and progress bars).
    **train_kwargs
        Passed to :func:`~deepesi.training.train_model` (``seed`` excluded).

    Returns
    -------
    TrainedModel
        The ensemble (also written to ``out_path``).
    """
    seeds = check_seeds(seeds)
    if "seed" in train_kwargs:
        raise TypeError("train_seed_ensemble takes seeds=[...], not seed=...")
    check_option("rule", rule, ENSEMBLE_RULES)
    out_path = Path(out_path)
    check_overwrite(out_path, overwrite)
    members = []
    for i, seed in enumerate(seeds):
        logger.info("seed ensemble: member %d of %d (seed %d)", i + 1, len(seeds), seed)
        members.append(train_or_load(leadfield, config, member_path(out_path, seed), seed=seed,
                                     **train_kwargs))
    model = combine_models(members, rule=rule)
    model.save(out_path, overwrite=overwrite)
    logger.info("seed ensemble of %d nets written to %s", len(seeds), out_path)
    return model
