"""Shared fixtures: small synthetic heads, and access to ../shared/data when CI provides it."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

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


def make_sphere_labels(
    shape: int = 40, voxel_mm: float = 4.0, radii_mm=(72.0, 66.0, 60.0, 56.0), labels=(5, 4, 3, 2)
) -> tuple[np.ndarray, np.ndarray]:
    """Concentric spheres of labels (outermost first) on a cubic grid; returns labels, affine."""
    ijk = np.indices((shape,) * 3).reshape(3, -1).T
    centre = (shape - 1) / 2.0
    r = np.linalg.norm((ijk - centre) * voxel_mm, axis=1).reshape((shape,) * 3)
    vol = np.zeros((shape,) * 3, np.uint8)
    for rad, lab in zip(radii_mm, labels, strict=True):
        vol[r <= rad] = lab
    affine = np.diag([voxel_mm, voxel_mm, voxel_mm, 1.0])
    affine[:3, 3] = -centre * voxel_mm
    return vol, affine


@pytest.fixture
def sphere_head():
    """A 4-shell spherical HeadModel (scalp, bone, CSF, GM) at 4 mm."""
    from deepesi.anatomy import HeadModel

    vol, affine = make_sphere_labels()
    return HeadModel(vol, affine, name="sphere")
