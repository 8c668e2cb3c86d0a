"""Seed ensembles: several trained nets of one forward read as one (:class:`EnsembleNet`).

Nets trained from different seeds agree on simulations and can disagree by centimetres on a
real recording, which lies outside what they were trained on: each extrapolates in its own way.
The average of their posteriors (a *deep ensemble*, Lakshminarayanan et al., NeurIPS 2017) is
less variable than any one of them, and how much the members disagree is a measure of how far
the recording is from the training data (:func:`deepesi.inverse.network.apply_network` reports
it).

Combination rules, on each member's normalised map ``p_k`` (a softmax posterior for nets trained
with the cross-entropy loss; a rectified map divided by its sum for the 'map' loss):

- ``'mean'``: the mixture ``mean_k p_k`` (the posterior of the ensemble as a mixture model);
  a point the majority of the members support wins;
- ``'geometric'``: ``exp(mean_k log p_k)`` renormalised (a product of experts): a point wins
  only if every member gives it mass. Softmax nets only.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .base import SourceNet

__all__ = ["ENSEMBLE_RULES", "EnsembleNet"]

#: Combination rules of :class:`EnsembleNet`.
ENSEMBLE_RULES = ("mean", "geometric")


class EnsembleNet(SourceNet):
    """Several nets of the same channels, sources and window, whose maps are combined.

    Parameters
    ----------
    n_channels, n_sources : int
        Shared by every member.
    members : list of SourceNet
        The member nets (single nets, with their ``output`` set); :func:`deepesi.nets.
        net_from_spec` rebuilds them from the specs a model file stores in ``init_kwargs``.
    n_times : int
        Input window (samples), shared by every member.
    rule : {'mean', 'geometric'}
        How the members' maps are combined (module docstring).
    """

    name = "ensemble"

    def __init__(self, n_channels: int, n_sources: int, members: list[SourceNet],
                 n_times: int = 1, rule: str = "mean") -> None:
        super().__init__(n_channels, n_sources, n_times)
        if rule not in ENSEMBLE_RULES:
            raise ValueError(f"rule must be one of {ENSEMBLE_RULES}, got {rule!r}.")
        if len(members) < 2:
            raise ValueError(f"an ensemble needs at least 2 members, got {len(members)}.")
        for net in members:
            if not isinstance(net, SourceNet) or isinstance(net, EnsembleNet):
                raise ValueError("ensemble members must be single nets (SourceNet, not "
                                 f"{type(net).__name__}); combine the single nets.")
            if (net.n_channels, net.n_sources, net.n_times) != (n_channels, n_sources,
                                                                  self.n_times):
                raise ValueError(
                    f"an ensemble member reads {net.n_channels} channels x {net.n_times} "
                    f"samples into {net.n_sources} sources, the ensemble {n_channels} x "
                    f"{self.n_times} into {n_sources}; combine nets of one forward and window.")
        outputs = {n.output for n in members}
        if len(outputs) != 1:
            raise ValueError(f"ensemble members have different outputs {sorted(outputs)}; "
                             "combine nets trained with the same loss.")
        self.output = outputs.pop()
        if rule == "geometric" and self.output != "softmax":
            raise ValueError("rule='geometric' needs nets trained with the cross-entropy loss "
                             "(softmax output); use rule='mean'.")
        self.members = nn.ModuleList(members)
        self.rule = rule
        self.init_kwargs = {
            "members": [{"name": n.name, "init_kwargs": n.init_kwargs, "output": n.output}
                        for n in members],
            "n_times": self.n_times,
            "rule": rule,
        }

    @property
    def n_members(self) -> int:
        """Number of member nets."""
        return len(self.members)

    def member(self, index: int) -> SourceNet:
        """Member net ``index`` (0-based), in eval mode like the ensemble."""
        if not 0 <= int(index) < self.n_members:
            raise ValueError(f"member must be in 0..{self.n_members - 1}, got {index!r}.")
        return self.members[int(index)]

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        """The combined map's pre-activation: the log of the combined posterior (softmax
        members; the base class's ``exp(z - max z)`` then gives it with a peak of 1) or the
        mean of the members' maps normalised to sum 1 ('relu' members)."""
        if self.output == "softmax":
            logp = torch.stack([F.log_softmax(m._forward(x).float(), dim=1)
                                for m in self.members])
            if self.rule == "geometric":
                return logp.mean(dim=0)
            return torch.logsumexp(logp, dim=0) - math.log(self.n_members)
        maps = []
        for m in self.members:
            p = torch.relu(m._forward(x).float())
            maps.append(p / torch.clamp(p.sum(dim=1, keepdim=True),
                                        min=torch.finfo(p.dtype).tiny))
        return torch.stack(maps).mean(dim=0)
