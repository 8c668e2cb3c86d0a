"""Analytic test geometry: a sphere source space, its EEG lead field, a synthetic MEG helmet.

Small, fast and needing no recorded data, these stand in for a real head in tests and
benchmarks of the simulator, the nets and the inverse methods.

- :func:`make_sphere_source_space`: points on a regular grid inside a sphere, an outer shell of
  "cortical" points with fixed radial orientation (regions ``ctx-lh/rh-*`` by hemisphere) and an
  inner ball of "deep" points with free orientation (thalamus left/right, brain stem below), with
  the FreeSurfer ids of :mod:`deepesi.anatomy.regions`. The neighbour graph is the
  26-neighbourhood restricted to points of the same compartment (cortical with cortical, each
  deep structure with itself).
- :func:`make_sphere_leadfield`: the EEG lead field of that grid on MNE's 4-shell sphere model.
- :func:`helmet_info`: an ``mne.Info`` with magnetometers and planar gradiometers on a
  hemisphere.
- :func:`make_sphere_labels`: a label volume of concentric spheres, for a spherical
  :class:`~deepesi.anatomy.HeadModel`.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence

import numpy as np
from scipy import sparse

from ..forward.leadfield import LeadField
from ..sources import SourceSpace

__all__ = [
    "helmet_info",
    "make_sphere_labels",
    "make_sphere_leadfield",
    "make_sphere_source_space",
]


def make_sphere_source_space(
    spacing: float = 0.012,
    r_cortex: tuple[float, float] = (0.050, 0.068),
    r_deep: float = 0.030,
    centre: Sequence[float] = (0.0, 0.0, 0.04),
) -> SourceSpace:
    """Grid points in a cortical shell and a deep ball, in metres (head frame = MRI frame).

    Parameters
    ----------
    spacing : float
        Grid spacing (m).
    r_cortex : (float, float)
        Inner and outer radius of the cortical shell (m).
    r_deep : float
        Radius of the deep ball (m).
    centre : sequence of 3 float
        Centre of the sphere (m).

    Returns
    -------
    SourceSpace
        Named ``'sphere-test'``.
    """
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

    The electrodes are an evenly spread subset of MNE's ``colin27_1020`` (or ``standard_1020``)
    montage; the head frame is the MRI frame (identity ``trans``). Results are cached: treat the
    returned object as read-only.

    Parameters
    ----------
    spacing : float
        Grid spacing of :func:`make_sphere_source_space` (m).
    n_channels : int
        Number of electrodes.
    conductivity_scale : float
        Multiplies the brain/skull conductivity contrast (brain × s, skull ÷ s): a *different*
        forward for testing.
    jitter : float
        Standard deviation (m) of a seeded random displacement of every source point (the source
        space moves with them): off-grid sources for testing.

    Returns
    -------
    LeadField
        With its ``info`` and an identity head → MRI ``trans``.
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


def helmet_info(
    trans_head_to_mri: np.ndarray,
    *,
    radius: float = 0.115,
    grade: int = 2,
    centre: Sequence[float] = (0.0, 0.0, 0.0),
    eeg_names: Sequence[str] = (),
    eeg_pos_head: np.ndarray | None = None,
):
    """An mne.Info with magnetometers and planar gradiometers on a hemisphere (MRI frame).

    Sensors sit at ``radius`` (m) from ``centre`` (MRI frame) on the upper hemisphere of an
    icosphere, normals radial; their positions in the Info are in the head frame given by
    ``trans_head_to_mri``. Channels are named ``MAG000, ...`` and ``GRD000, ...``; the device
    frame is the head frame.

    Parameters
    ----------
    trans_head_to_mri : ndarray, shape (4, 4)
        Head → MRI transform.
    radius : float
        Helmet radius (m).
    grade : int
        Icosphere subdivision (2: 162 vertices, about 90 sensor sites of each type).
    centre : sequence of 3 float
        Helmet centre, MRI frame (m).
    eeg_names : sequence of str
        Optional EEG channels, listed first.
    eeg_pos_head : ndarray, shape (n_eeg, 3) | None
        Their positions (head frame, m).

    Returns
    -------
    mne.Info
    """
    import mne

    from ..forward.surfaces import icosphere

    units, _ = icosphere(grade)
    units = units[units[:, 2] > -0.1]
    n = len(units)
    eeg_names = list(eeg_names)
    names = eeg_names + [f"MAG{i:03d}" for i in range(n)] + [f"GRD{i:03d}" for i in range(n)]
    types = ["eeg"] * len(eeg_names) + ["mag"] * n + ["grad"] * n
    info = mne.create_info(names, 1000.0, types)
    m2h = np.linalg.inv(trans_head_to_mri)
    rot, shift = m2h[:3, :3], m2h[:3, 3]
    for k in range(len(eeg_names)):
        info["chs"][k]["loc"][:3] = eeg_pos_head[k]
    for k, ch in enumerate(info["chs"][len(eeg_names):]):
        nrm = units[k % n]
        ex = np.cross(nrm, [0.0, 0.0, 1.0]) if abs(nrm[2]) < 0.99 else np.array([1.0, 0, 0])
        ex /= np.linalg.norm(ex)
        ey = np.cross(nrm, ex)
        ch["loc"][:3] = rot @ (np.asarray(centre) + radius * nrm) + shift
        ch["loc"][3:6], ch["loc"][6:9], ch["loc"][9:12] = rot @ ex, rot @ ey, rot @ nrm
    with info._unlock():
        info["dev_head_t"] = mne.transforms.Transform("meg", "head", np.eye(4))
    return info


def make_sphere_labels(
    shape: int = 40,
    voxel_mm: float = 4.0,
    radii_mm: Sequence[float] = (72.0, 66.0, 60.0, 56.0),
    labels: Sequence[int] = (5, 4, 3, 2),
) -> tuple[np.ndarray, np.ndarray]:
    """Concentric spheres of labels (outermost first) on a cubic grid centred on the origin.

    Parameters
    ----------
    shape : int
        Voxels along each axis.
    voxel_mm : float
        Voxel size (mm).
    radii_mm : sequence of float
        Sphere radii (mm), outermost first.
    labels : sequence of int
        Label of each sphere (the default: scalp, bone, CSF, GM of the 10-tissue scheme).

    Returns
    -------
    labels : ndarray of uint8, shape (shape, shape, shape)
    affine : ndarray, shape (4, 4)
        Voxel → MRI (mm) affine.
    """
    ijk = np.indices((shape,) * 3).reshape(3, -1).T
    centre = (shape - 1) / 2.0
    r = np.linalg.norm((ijk - centre) * voxel_mm, axis=1).reshape((shape,) * 3)
    vol = np.zeros((shape,) * 3, np.uint8)
    for rad, lab in zip(radii_mm, labels, strict=True):
        vol[r <= rad] = lab
    affine = np.diag([voxel_mm, voxel_mm, voxel_mm, 1.0])
    affine[:3, 3] = -centre * voxel_mm
    return vol, affine
