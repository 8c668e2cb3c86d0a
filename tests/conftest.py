"""Shared fixtures: small synthetic heads, and access to ../shared/data when CI provides it."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from deepesi.simulation.sphere import make_sphere_labels

os.environ.setdefault("MPLBACKEND", "Agg")


def shared_data_dir() -> Path | None:
    """The development data folder (DEEPESI_SHARED_DATA), or None."""
    env = os.environ.get("DEEPESI_SHARED_DATA")
    if env and Path(env).is_dir():
        return Path(env)
    return None


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Path of ../shared/data; skips the test when DEEPESI_SHARED_DATA is not set."""
    path = shared_data_dir()
    if path is None:
        pytest.skip(
            "needs the development data: set DEEPESI_SHARED_DATA to ../shared/data "
            "(.ci/run does this)"
        )
    return path


@pytest.fixture(scope="session")
def sample_dir(shared_data: Path) -> Path:
    """The MNE 'sample' subject folder of the development data."""
    return shared_data / "mne-sample"


@pytest.fixture
def sphere_head():
    """A 4-shell spherical HeadModel (scalp, bone, CSF, GM) at 4 mm."""
    from deepesi.anatomy import HeadModel

    vol, affine = make_sphere_labels()
    return HeadModel(vol, affine, name="sphere")


# deep structures painted into the synthetic head: id -> (centre mm, radius mm, tissue label)
DEEP_BALLS = {
    10: ((-10.0, -12.0, 5.0), 9.0, 1),  # Left-Thalamus, labelled WM as in BrainWeb
    49: ((10.0, -12.0, 5.0), 9.0, 1),  # Right-Thalamus, WM
    12: ((-25.0, 5.0, 0.0), 6.0, 2),  # Left-Putamen, GM
    11: ((-25.0, 5.0, 12.0), 6.0, 2),  # Left-Caudate, GM, touching the putamen
    17: ((-25.0, -9.0, 0.0), 6.0, 2),  # Left-Hippocampus, GM, 2 mm from the putamen
    26: ((-8.9, 13.1, -7.3), 2.5, 2),  # Left-Accumbens-area: falls between 5 mm grid points
}
RADII = {"scalp": 80.0, "bone": 74.0, "csf": 68.0, "gm": 64.0, "wm": 57.0}


def synthetic_head(voxel_mm: float = 2.0, n: int = 84, regions: bool = True):
    """Nested spheres (scalp, bone, CSF, GM, WM) with lobes on GM and deep structures inside.

    Cortex: GM shell 57-64 mm, lobes by octant (frontal y > 20, occipital y < -30, parietal
    z > 20, else temporal), left for x < 0. Deep: the balls of DEEP_BALLS plus a brainstem
    cylinder (radius 8 mm around x=0, y=-20, -50 < z < -20) labelled WM.
    """
    from deepesi.anatomy import HeadModel

    c = (n - 1) / 2.0
    ijk = np.indices((n,) * 3).astype(float)
    x, y, z = ((ijk[a] - c) * voxel_mm for a in range(3))
    r = np.sqrt(x**2 + y**2 + z**2)
    lab = np.zeros((n,) * 3, np.uint8)
    for key, tissue in (("scalp", 5), ("bone", 4), ("csf", 3), ("gm", 2), ("wm", 1)):
        lab[r <= RADII[key]] = tissue
    reg = np.zeros(lab.shape, np.uint16)
    gm = lab == 2
    lobe = np.where(y > 20, 1, np.where(y < -30, 4, np.where(z > 20, 2, 3)))
    reg[gm] = np.where(x[gm] < 0, 1100, 2100) + lobe[gm]
    for rid, (centre, rad, tissue) in DEEP_BALLS.items():
        ball = (x - centre[0]) ** 2 + (y - centre[1]) ** 2 + (z - centre[2]) ** 2 <= rad**2
        reg[ball] = rid
        lab[ball] = tissue
    stem = (x**2 + (y + 20) ** 2 <= 64) & (z > -50) & (z < -20)
    reg[stem] = 16
    aff = np.diag([voxel_mm] * 3 + [1.0])
    aff[:3, 3] = -c * voxel_mm
    return HeadModel(lab, aff, regions=reg if regions else None, name="synthetic")


@pytest.fixture(scope="session")
def small_synthetic_head():
    """:func:`synthetic_head` at 4 mm (42^3 voxels), shared by the drawing and CLI tests."""
    return synthetic_head(voxel_mm=4.0, n=42)


#: Fiducials of :func:`synthetic_head` (MRI frame, m), for heads without an MNI transform.
SYNTHETIC_FID = {"nasion": [0.0, 0.08, 0.0], "lpa": [-0.08, 0.0, 0.0], "rpa": [0.08, 0.0, 0.0]}


@pytest.fixture(scope="session")
def small_scalp_leadfield(small_synthetic_head):
    """The dense scalp lead field of the 4 mm synthetic head (8 mm spacing over the region of
    a registered biosemi64 cap; 10 mm sources), with the FEM of biosemi32 solved alongside:
    ``(slf, cap_sensors, direct_gain_at_its_nodes, cap_node_positions)``."""
    from deepesi.anatomy.masks import head_centre
    from deepesi.forward.eeg import make_eeg_transfer
    from deepesi.forward.scalp import ScalpLeadField, dense_scalp_positions
    from deepesi.sensors import make_eeg_sensors
    from deepesi.sources import make_source_space

    head = small_synthetic_head
    src = make_source_space(head, 10e-3)
    cover = make_eeg_sensors(head, "biosemi64", mri_fiducials=SYNTHETIC_FID).eeg_pos_mri
    dense = dense_scalp_positions(head, 8e-3, cover=cover)
    cap = make_eeg_sensors(head, "biosemi32", mri_fiducials=SYNTHETIC_FID)
    tr = make_eeg_transfer(head, np.concatenate([dense, cap.eeg_pos_mri]), verbose=False)
    gain = tr.leadfield(src.pos, reference=tr.ch_names[0])
    # the FEM's potentials are those of the scalp nodes the electrodes are attached to
    nodes = tr.mesh.nodes[tr.electrode_nodes]
    slf = ScalpLeadField.from_gain(nodes[: len(dense)], gain[: len(dense)], src,
                                   head_centre(head), rel_error=1e-4)
    direct = gain[len(dense):]
    return slf, cap, direct - direct.mean(0), nodes[len(dense):]


@pytest.fixture(scope="session")
def sphere_leadfield():
    """The default 4-shell sphere lead field (:func:`make_sphere_leadfield`), made once."""
    import torch

    from deepesi.simulation.sphere import make_sphere_leadfield

    torch.set_num_threads(1)
    return make_sphere_leadfield()
