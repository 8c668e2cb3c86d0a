"""A small EEG lead field on MNE's multi-shell sphere model, for tests of the simulator and nets.

Source points lie on a regular grid inside the sphere: an outer shell of "cortical" points
with fixed radial orientation (regions ``ctx-lh/rh-*`` by hemisphere) and an inner ball of "deep"
points with free orientation (thalamus left/right, brain stem below), using the FreeSurfer ids of
:mod:`deepesi.anatomy.regions`. The neighbour graph is the 26-neighbourhood restricted to points of
the same compartment (cortical with cortical, each deep structure with itself).
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
from scipy import sparse

from deepesi.forward.leadfield import LeadField
from deepesi.sources import SourceSpace


def make_sphere_source_space(
    spacing: float = 0.012, r_cortex=(0.050, 0.068), r_deep: float = 0.030, centre=(0.0, 0.0, 0.04)
) -> SourceSpace:
    """Grid points in a cortical shell and a deep ball, in metres (head frame = MRI frame)."""
    n = int(np.ceil(r_cortex[1] / spacing))
    g = (np.arange(-n, n + 1) + 0.5) * spacing  # no point at the sphere centre
    xyz = np.stack(np.meshgrid(g, g, g, indexing="ij"), axis=-1).reshape(-1, 3)
    r = np.linalg.norm(xyz, axis=1)
    cortical = (r >= r_cortex[0]) & (r <= r_cortex[1])
    deep = r <= r_deep
    keep = cortical | deep
    xyz, r, cortical = xyz[keep], r[keep], cortical[keep]
    region = np.where(xyz[:, 0] < 0, 1101, 2101)
    region[xyz[:, 2] < 0] += 2  # temporal-ish lower half
    deep_region = np.where(xyz[:, 0] < 0, 10, 49)
    deep_region[xyz[:, 2] < -spacing] = 16
    region = np.where(cortical, region, deep_region)
    normals = np.where(cortical[:, None], xyz / np.maximum(r, 1e-12)[:, None], 0.0)
    # 26-neighbourhood within a compartment (cortex together; each deep structure alone)
    d = np.linalg.norm(xyz[:, None] - xyz[None], axis=-1)
    comp = np.where(cortical, -1, region)
    adj = (d > 0) & (d <= np.sqrt(3) * spacing * 1.001) & (comp[:, None] == comp[None])
    return SourceSpace(
        pos=xyz + np.asarray(centre),
        region_ids=region,
        normals=normals,
        free_ori=~cortical,
        adjacency=sparse.csr_matrix(adj),
        spacing=spacing,
        name="sphere-test",
    )


@functools.lru_cache(maxsize=8)
def make_sphere_leadfield(
    spacing: float = 0.012,
    n_channels: int = 64,
    conductivity_scale: float = 1.0,
    jitter: float = 0.0,
) -> LeadField:
    """EEG lead field (average reference) of MNE's 4-shell sphere for the grid source space.

    ``conductivity_scale`` multiplies the shell conductivities' relative values (brain/skull/scalp)
    and ``jitter`` (m) moves the source points randomly, to make a *different* forward for testing.
    """
    import mne

    name = (
        "colin27_1020" if "colin27_1020" in mne.channels.get_builtin_montages() else "standard_1020"
    )
    montage = mne.channels.make_standard_montage(name)
    every = [n for n in montage.ch_names if not n.startswith(("T3", "T4", "T5", "T6"))]
    # an evenly spread subset (the montage lists channels front to back)
    pick = np.unique(np.linspace(0, len(every) - 1, n_channels).round().astype(int))
    names = [every[i] for i in pick]
    info = mne.create_info(names, 1000.0, "eeg")
    info.set_montage(montage, verbose=False)
    centre = (0.0, 0.0, 0.04)
    src = make_sphere_source_space(spacing, centre=centre)
    pos = src.pos
    if jitter:  # off-grid sources: the source space moves with them
        pos = pos + np.random.default_rng(0).normal(0, jitter, pos.shape)
        src = dataclasses.replace(src, pos=pos)
    sphere = mne.make_sphere_model(
        r0=centre,
        head_radius=0.09,
        relative_radii=(0.90, 0.92, 0.97, 1.0),
        sigmas=tuple(
            np.array((0.33, 1.0, 0.004, 0.33))
            * np.array((conductivity_scale, 1.0, 1.0 / conductivity_scale, 1.0))
        ),
        verbose=False,
    )
    mne_src = mne.setup_volume_source_space(
        pos=dict(rr=pos, nn=np.tile([0.0, 0.0, 1.0], (len(pos), 1))), verbose=False
    )
    fwd = mne.make_forward_solution(info, None, mne_src, sphere, meg=False, eeg=True, verbose=False)
    gain = fwd["sol"]["data"].reshape(len(names), -1, 3)
    gain = gain - gain.mean(axis=0, keepdims=True)
    trans = mne.transforms.Transform("head", "mri")  # identity: head frame = MRI frame here
    return LeadField(gain, names, ["eeg"] * len(names), src, info=info, trans=trans)
