"""Sensor values → 2-D topographic images: a fixed, linear interpolation layer shared by the nets.

Sensors are projected onto a plane with an azimuthal-equidistant projection about the +z axis
(vertex) of the head frame, from the centre of the sphere fitted to their positions; then each pixel
is a Gaussian-kernel weighted average of the nearby sensors of one *group* (EEG; magnetometers;
planar gradiometers, split by orientation for Neuromag-style pairs ``MEGxxx2`` / ``MEGxxx3``).
Pixels farther than the kernel reach from every sensor are zero. The layer is a constant matrix (no
learnable weights), stored with the model.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


def sensor_groups(ch_names: list[str], ch_types: list[str]) -> list[list[int]]:
    """Channel indices per image: EEG, magnetometers, gradiometers (Neuromag pairs: two images)."""
    groups: list[list[int]] = []
    for t in ("eeg", "mag"):
        idx = [i for i, ct in enumerate(ch_types) if ct == t]
        if idx:
            groups.append(idx)
    grads = [i for i, ct in enumerate(ch_types) if ct == "grad"]
    if grads:
        last = {ch_names[i][-1] for i in grads}
        if last == {"2", "3"}:
            groups.extend([[i for i in grads if ch_names[i][-1] == d] for d in ("2", "3")])
        else:
            groups.append(grads)
    return groups


def _fit_sphere(pos: np.ndarray) -> np.ndarray:
    """Least-squares sphere centre of points (n, 3)."""
    a = np.c_[2 * pos, np.ones(len(pos))]
    b = (pos**2).sum(1)
    sol, *_ = np.linalg.lstsq(a, b, rcond=None)
    return sol[:3]


def project_sensors(pos: np.ndarray) -> np.ndarray:
    """Azimuthal-equidistant 2-D coordinates (n, 2) of sensor positions (n, 3), head frame."""
    pos = np.asarray(pos, float)
    if len(pos) >= 4:
        centre = _fit_sphere(pos)
        if not np.isfinite(centre).all() or np.linalg.norm(centre - pos.mean(0)) > 0.2:
            centre = pos.mean(0)
    else:
        centre = pos.mean(0)
    u = pos - centre
    u /= np.maximum(np.linalg.norm(u, axis=1, keepdims=True), 1e-12)
    # MNE's head frame: +z up (vertex), +x right (RPA), +y front (nasion)
    vertex, ex, ey = np.eye(3)[2], np.eye(3)[0], np.eye(3)[1]
    theta = np.arccos(np.clip(u @ vertex, -1, 1))
    px, py = u @ ex, u @ ey
    norm = np.maximum(np.hypot(px, py), 1e-12)
    return np.c_[theta * px / norm, theta * py / norm]


def interpolation_matrix(pos: np.ndarray, groups: list[list[int]], size: int = 24) -> np.ndarray:
    """Matrix (n_groups * size * size, n_ch) mapping sensor values to topographic images."""
    pos = np.asarray(pos, float)
    n_ch = len(pos)
    mats = []
    for idx in groups:
        xy = project_sensors(pos[idx]) if len(idx) >= 3 else np.zeros((len(idx), 2))
        lo, hi = xy.min(0), xy.max(0)
        span = max((hi - lo).max(), 1e-6)
        mid = (lo + hi) / 2
        grid = np.linspace(-0.5, 0.5, size) * span * (1 + 2.0 / size)
        gx, gy = np.meshgrid(grid + mid[0], grid + mid[1], indexing="xy")
        pix = np.c_[gx.ravel(), gy.ravel()]
        if len(idx) > 1:
            d_nn = np.sort(np.linalg.norm(xy[:, None] - xy[None], axis=-1), axis=1)[:, 1]
            sigma = max(float(np.median(d_nn)), span / size)
        else:
            sigma = span
        d2 = ((pix[:, None, :] - xy[None, :, :]) ** 2).sum(-1)
        w = np.exp(-0.5 * d2 / sigma**2)
        w[d2 > (2.5 * sigma) ** 2] = 0.0
        s = w.sum(1, keepdims=True)
        w = np.divide(w, s, out=np.zeros_like(w), where=s > 1e-3)
        full = np.zeros((size * size, n_ch))
        full[:, idx] = w
        mats.append(full)
    return np.concatenate(mats, axis=0)


class TopoMap(nn.Module):
    """Fixed layer: sensor values (batch, n_ch, n_times) → (batch, n_groups·n_times, size, size)."""

    def __init__(self, matrix: np.ndarray | torch.Tensor, n_groups: int, size: int) -> None:
        super().__init__()
        self.register_buffer("matrix", torch.as_tensor(np.asarray(matrix), dtype=torch.float32))
        self.n_groups, self.size = int(n_groups), int(size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, t = x.shape
        img = torch.einsum("pc,bct->btp", self.matrix, x)
        return img.reshape(b, t * self.n_groups, self.size, self.size)
