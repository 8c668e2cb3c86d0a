"""Deprecated: the ablation networks moved to :mod:`deepesi.nets.ablation` (``LinearNet``,
``ConvDip``; also importable from :mod:`deepesi.nets`)."""

from __future__ import annotations

import warnings

from .ablation import ConvDip, LinearNet

warnings.warn(
    "deepesi.nets.baselines is deprecated; use deepesi.nets.ablation",
    DeprecationWarning,
    stacklevel=2,
)

__all__ = ["ConvDip", "LinearNet"]
