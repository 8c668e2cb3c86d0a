"""Synthetic MEG helmets for tests that must run without recorded data."""

from __future__ import annotations

import numpy as np


def helmet_info(trans_head_to_mri: np.ndarray, *, radius: float = 0.115, grade: int = 2,
                centre=(0.0, 0.0, 0.0), eeg_names=(), eeg_pos_head=None):
    """An mne.Info with magnetometers and planar gradiometers on a hemisphere (MRI frame).

    Sensors sit at ``radius`` (m) from ``centre`` (MRI frame) on the upper hemisphere of an
    icosphere, normals radial; their positions in the Info are in the head frame given by
    ``trans_head_to_mri`` (4x4). Optional EEG channels at ``eeg_pos_head`` (head frame).
    """
    import mne

    from deepesi.forward.surfaces import icosphere

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
