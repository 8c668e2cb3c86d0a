"""The four-layered convolutional network (4LCNN) for cortical + subcortical source imaging.

Architecture (our design; Yokoyama et al., APL Bioeng 2024, publish only the abstract)::

    sensor data (n_ch, n_t), per-type scaled and divided by its max |value|
      └─ TopoMap (fixed, not learned): one S×S topographic image per sensor group and time sample
    1  Conv2d(G·n_t → c1, 3×3, stride 2, pad 1) + ReLU        → (c1, S/2, S/2)
    2  Conv2d(c1 → c2, 3×3, stride 2, pad 1) + ReLU           → (c2, S/4, S/4)
    3  Linear(c2·(S/4)² → hidden) + ReLU
    4  Linear(hidden → n_src) + ReLU                          → non-negative map over the sources

Defaults S = 16, c1 = 32, c2 = 64, hidden = 512: four learnable layers, convolutional at the core;
the only layer that grows with the source space is the last (hidden × n_src), which dominates the
cost (≈ 0.9 M MACs + 512·n_src per sample). Wider convolutions (32/64 rather than 16/32) gave a
lower loss per batch for ~6 % more training time (docs/network.md). Training uses the last
layer's pre-activation (see :meth:`SourceNet.forward`); inference rectifies it.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .base import SourceNet, build_topomap
from .topomap import TopoMap


class FourLayerCNN(SourceNet):
    """4LCNN: topographic images → 2 convolutions → 2 fully connected layers → source map.

    Parameters
    ----------
    n_channels, n_sources : int
        Sensor channels in, source points out.
    positions : list of [x, y, z]
        Channel positions (head frame, m), for the topographic input layer.
    groups : list of list of int
        Channel indices of each sensor group (one image per group).
    n_times : int
        Time samples per input window (1 = single sample).
    image_size : int
        Side of the topographic images (multiple of 4).
    channels : (int, int)
        Feature maps of the two convolutions.
    hidden : int
        Width of the hidden fully connected layer.
    """

    name = "4lcnn"

    def __init__(
        self,
        n_channels: int,
        n_sources: int,
        positions,
        groups,
        n_times: int = 1,
        image_size: int = 16,
        channels=(32, 64),
        hidden: int = 512,
    ) -> None:
        super().__init__(n_channels, n_sources, n_times)
        if image_size % 4 or image_size < 8:
            raise ValueError(f"image_size must be a multiple of 4 and >= 8, got {image_size}.")
        mat, n_groups = build_topomap(positions, groups, image_size)
        self.topo = TopoMap(mat, n_groups, image_size)
        c1, c2 = (int(c) for c in channels)
        self.conv1 = nn.Conv2d(n_groups * n_times, c1, 3, stride=2, padding=1)
        self.conv2 = nn.Conv2d(c1, c2, 3, stride=2, padding=1)
        self.fc1 = nn.Linear(c2 * (image_size // 4) ** 2, int(hidden))
        self.fc2 = nn.Linear(int(hidden), n_sources)
        self.init_kwargs = {
            "positions": positions,
            "groups": groups,
            "n_times": n_times,
            "image_size": image_size,
            "channels": [c1, c2],
            "hidden": int(hidden),
        }

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.topo(x)
        h = F.relu(self.conv1(h))
        h = F.relu(self.conv2(h))
        h = F.relu(self.fc1(h.flatten(1)))
        return self.fc2(h)
