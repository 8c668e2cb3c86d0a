"""Common base of deepesi's source-imaging nets: input scaling, geometry, (re)construction."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..forward.leadfield import LeadField
from .topomap import interpolation_matrix, sensor_groups


def sensor_positions(leadfield: LeadField) -> np.ndarray:
    """Channel positions (n_ch, 3) in MNE's head frame from ``leadfield.info``."""
    info = leadfield.info
    if info is None:
        raise ValueError(
            "the lead field has no mne.Info, so sensor positions are unknown; the topographic "
            "input layer needs them. Build the lead field with an Info (make_forward does) "
            "or pass positions=... explicitly."
        )
    index = {ch["ch_name"]: ch for ch in info["chs"]}
    missing = [n for n in leadfield.ch_names if n not in index]
    if missing:
        raise ValueError(f"lead field channels missing from its Info: {missing[:5]}.")
    pos = np.array([index[n]["loc"][:3] for n in leadfield.ch_names], float)
    if not np.isfinite(pos).all() or np.allclose(pos, 0):
        raise ValueError("the lead field's Info has no valid channel positions (NaN or all zero).")
    return pos


def type_scales(leadfield: LeadField) -> dict[str, float]:
    """Per-sensor-type scale: RMS of the type's gain, so that EEG, mag and grad are commensurate."""
    types = np.asarray(leadfield.ch_types)
    return {
        t: float(np.sqrt(np.mean(leadfield.gain[types == t] ** 2)))
        for t in dict.fromkeys(leadfield.ch_types)
    }


class SourceNet(nn.Module):
    """Base class: normalised sensor data (batch, n_ch, n_times) → maps (batch, n_src) ≥ 0.

    Subclasses set :attr:`name` and implement ``_forward``. ``init_kwargs`` holds everything needed
    to rebuild the module (JSON-serialisable): a saved model is ``(name, init_kwargs, state_dict)``.
    """

    name = "base"
    #: Output activations: 'relu' (rectified pre-activation, nets trained with the map loss) or
    #: 'softmax' (softmax divided by its maximum, i.e. ``exp(z - max z)``, nets trained with the
    #: cross-entropy loss). Set by :func:`deepesi.training.train_model` and saved with the model.
    OUTPUTS = ("relu", "softmax")

    def __init__(self, n_channels: int, n_sources: int, n_times: int = 1) -> None:
        super().__init__()
        if n_channels < 1 or n_sources < 1 or n_times < 1:
            raise ValueError(
                "n_channels, n_sources, n_times must be >= 1, got "
                f"{n_channels}, {n_sources}, {n_times}."
            )
        self.n_channels, self.n_sources, self.n_times = (
            int(n_channels),
            int(n_sources),
            int(n_times),
        )
        self.init_kwargs: dict = {}
        self.output = "relu"

    def forward(self, x: torch.Tensor, rectify: bool = True) -> torch.Tensor:
        """``x``: (batch, n_channels, n_times) normalised sensor data → (batch, n_sources) ≥ 0.

        ``rectify=False`` returns the output layer's pre-activation (logits), which training uses:
        a ReLU output trained with MSE on sparse maps lets the units of rarely active sources die,
        and the cross-entropy loss takes logits. With ``rectify=True`` the map is the rectified
        pre-activation (``output='relu'``) or ``exp(z - max z)`` (``output='softmax'``): the
        softmax scaled so that its peak is 1, like the normalised training targets.
        """
        if x.ndim == 2:
            x = x.unsqueeze(-1)
        if x.shape[1] != self.n_channels or x.shape[2] != self.n_times:
            raise ValueError(
                f"{self.name} expects input (batch, {self.n_channels}, {self.n_times}), got "
                f"{tuple(x.shape)}."
            )
        out = self._forward(x).float()  # float32 maps, also under bfloat16 autocast
        if not rectify:
            return out
        if self.output == "softmax":
            if torch.is_grad_enabled():
                return torch.exp(out - out.amax(dim=1, keepdim=True))
            return out.sub_(out.amax(dim=1, keepdim=True)).exp_()  # in place: inference speed
        return torch.relu(out)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        """Output-layer pre-activation (batch, n_sources)."""
        raise NotImplementedError

    def n_parameters(self) -> int:
        """Number of learnable parameters."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)


def topo_kwargs(leadfield: LeadField, positions: np.ndarray | None, size: int) -> dict:
    """Geometry arguments (positions and groups) for the topographic input layer."""
    pos = sensor_positions(leadfield) if positions is None else np.asarray(positions, float)
    if pos.shape != (leadfield.n_channels, 3):
        raise ValueError(f"positions must have shape ({leadfield.n_channels}, 3), got {pos.shape}.")
    groups = sensor_groups(leadfield.ch_names, leadfield.ch_types)
    return {"positions": pos.round(7).tolist(), "groups": groups, "image_size": int(size)}


def build_topomap(positions, groups, image_size):
    """The fixed interpolation matrix and the number of image channels per time sample."""
    mat = interpolation_matrix(np.asarray(positions, float), groups, image_size)
    return mat, len(groups)
