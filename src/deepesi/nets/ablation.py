"""Networks for the ablation study: a learned linear inverse and a ConvDip-style network.

- :class:`LinearNet`: one fully connected layer from sensors to sources with a ReLU
  (a learned linear inverse operator, rectified to give non-negative maps).
- :class:`ConvDip`: after Hecker et al. (Front. Neurosci. 2021): topographic image, one
  convolution (8 filters 3×3) + ReLU, a fully connected layer (512) + ReLU, and the output layer
  + ReLU. Their 7×11 image is replaced by our S×S TopoMap so that all nets see the same input.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .base import SourceNet, build_topomap
from .topomap import TopoMap


class LinearNet(SourceNet):
    """Linear baseline: ReLU(W x + b) with x the flattened (n_ch · n_t) input."""

    name = "linear"

    def __init__(self, n_channels: int, n_sources: int, n_times: int = 1, **_ignored) -> None:
        super().__init__(n_channels, n_sources, n_times)
        self.fc = nn.Linear(n_channels * n_times, n_sources)
        self.init_kwargs = {"n_times": n_times}

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.flatten(1))


class ConvDip(SourceNet):
    """ConvDip-style network (Hecker et al. 2021) on the shared topographic input."""

    name = "convdip"

    def __init__(
        self,
        n_channels: int,
        n_sources: int,
        positions,
        groups,
        n_times: int = 1,
        image_size: int = 16,
        filters: int = 8,
        hidden: int = 512,
    ) -> None:
        super().__init__(n_channels, n_sources, n_times)
        mat, n_groups = build_topomap(positions, groups, image_size)
        self.topo = TopoMap(mat, n_groups, image_size)
        self.conv = nn.Conv2d(n_groups * n_times, int(filters), 3, padding=1)
        self.fc1 = nn.Linear(int(filters) * image_size**2, int(hidden))
        self.fc2 = nn.Linear(int(hidden), n_sources)
        self.init_kwargs = {
            "positions": positions,
            "groups": groups,
            "n_times": n_times,
            "image_size": image_size,
            "filters": int(filters),
            "hidden": int(hidden),
        }

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.conv(self.topo(x)))
        h = F.relu(self.fc1(h.flatten(1)))
        return self.fc2(h)
