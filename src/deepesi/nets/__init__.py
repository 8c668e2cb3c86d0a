"""Source-imaging networks: the 4LCNN and the ablation nets (:mod:`~deepesi.nets.ablation`),
plus their construction.

Every net maps normalised sensor data ``(batch, n_channels, n_times)`` to a non-negative map
``(batch, n_sources)``; see ``docs/network.md`` for the input representation and normalisation.
"""

from __future__ import annotations

import numpy as np

from ..forward.leadfield import LeadField
from .ablation import ConvDip, LinearNet
from .base import SourceNet, topo_kwargs, type_scales
from .ensemble import ENSEMBLE_RULES, EnsembleNet
from .fourlayer import FourLayerCNN

#: Network name → class.
NETS: dict[str, type[SourceNet]] = {c.name: c for c in (FourLayerCNN, ConvDip, LinearNet)}


def build_net(
    name: str,
    leadfield: LeadField,
    *,
    n_times: int = 1,
    positions: np.ndarray | None = None,
    **kwargs,
) -> SourceNet:
    """A fresh (untrained) network for ``leadfield``'s channels and sources.

    Parameters
    ----------
    name : {'4lcnn', 'convdip', 'linear'}
        Architecture.
    leadfield : LeadField
        Gives the channels (and their positions, from ``leadfield.info``) and the number of sources.
    n_times : int
        Input window length in samples.
    positions : ndarray, shape (n_ch, 3) | None
        Sensor positions (head frame, m) if the lead field has no Info.
    **kwargs
        Architecture options (see the classes).
    """
    if name not in NETS:
        raise ValueError(f"unknown network {name!r}; choose one of {sorted(NETS)}.")
    cls = NETS[name]
    if cls is not LinearNet:
        kwargs = {**topo_kwargs(leadfield, positions, kwargs.pop("image_size", 16)), **kwargs}
    return cls(leadfield.n_channels, leadfield.n_sources, n_times=n_times, **kwargs)


def net_from_spec(name: str, n_channels: int, n_sources: int, init_kwargs: dict) -> SourceNet:
    """Rebuild a network from its saved ``(name, n_channels, n_sources, init_kwargs)``
    (a seed ensemble, :class:`EnsembleNet`, included)."""
    if name == EnsembleNet.name:
        kwargs = dict(init_kwargs)
        members = []
        for spec in kwargs.pop("members"):
            if spec["name"] == EnsembleNet.name:
                raise ValueError("model file holds an ensemble inside an ensemble; combine "
                                 "single nets.")
            member = net_from_spec(spec["name"], n_channels, n_sources, spec["init_kwargs"])
            member.output = spec.get("output", "relu")
            members.append(member)
        return EnsembleNet(n_channels, n_sources, members, **kwargs)
    if name not in NETS:
        raise ValueError(f"model file names an unknown network {name!r}; known: {sorted(NETS)}.")
    return NETS[name](n_channels, n_sources, **init_kwargs)


__all__ = [
    "ENSEMBLE_RULES",
    "NETS",
    "ConvDip",
    "EnsembleNet",
    "FourLayerCNN",
    "LinearNet",
    "SourceNet",
    "build_net",
    "net_from_spec",
    "type_scales",
]
