"""Scaling a template head to a digitization (fiducials + head shape), with known answers."""

from __future__ import annotations

import mne
import numpy as np
import pytest

from conftest import SYNTHETIC_FID
from deepesi.sensors.registration import fiducial_frame
from deepesi.sensors.scaling import digitized_points, fit_head_scaling


def _digitization(scale, n=120, seed=0, fid=SYNTHETIC_FID, radius=0.08):
    """The info of a subject whose head is the synthetic sphere scaled by ``scale`` per axis,
    digitized in its own head frame (points on the upper half of its scalp)."""
    rng = np.random.default_rng(seed)
    v = rng.standard_normal((4 * n, 3))
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    v = v[v[:, 2] > -0.1][:n]
    scale = np.asarray(scale, float)
    hsp_mri = radius * v * scale
    fid_mri = {k: np.asarray(p) * scale for k, p in fid.items()}
    to_head = fiducial_frame(fid_mri["nasion"], fid_mri["lpa"], fid_mri["rpa"])

    def head(p):
        return p @ to_head[:3, :3].T + to_head[:3, 3]

    montage = mne.channels.make_dig_montage(
        nasion=head(fid_mri["nasion"][None])[0], lpa=head(fid_mri["lpa"][None])[0],
        rpa=head(fid_mri["rpa"][None])[0], hsp=head(hsp_mri), coord_frame="head")
    info = mne.create_info(1, 250.0, "misc")
    with info._unlock():
        info["dig"] = montage.dig
    return info, hsp_mri, to_head


@pytest.mark.parametrize("scale", [(1.08, 0.93, 1.02), (0.95, 0.95, 0.95)])
def test_fit_recovers_a_known_scaling(small_synthetic_head, scale):
    info, hsp_mri, to_head = _digitization(scale)
    pts, fid = digitized_points(info)
    assert len(pts) == 120 and set(fid) == {"nasion", "lpa", "rpa"}
    fit = fit_head_scaling(small_synthetic_head, info, mode="3-axis", mri_fiducials=SYNTHETIC_FID)
    np.testing.assert_allclose(fit.scale, scale, atol=0.015)
    res = fit.residual_mm
    assert res["after"]["median"] < 1.5 < res["before_fiducials_only"]["median"]
    # the map into the template and back
    p_head = hsp_mri[:5] @ to_head[:3, :3].T + to_head[:3, 3]
    back = fit.to_subject(fit.to_template(p_head))
    np.testing.assert_allclose(back, p_head, atol=1e-12)
    np.testing.assert_allclose(fit.to_template(p_head), hsp_mri[:5] / np.asarray(scale),
                               atol=2.5e-3)


def test_uniform_and_clear_errors(small_synthetic_head):
    info, _, _ = _digitization((0.95, 0.95, 0.95))
    fit = fit_head_scaling(small_synthetic_head, info, mode="uniform",
                           mri_fiducials=SYNTHETIC_FID)
    assert np.ptp(fit.scale) == 0 and abs(fit.scale[0] - 0.95) < 0.015
    few, _, _ = _digitization((1.0, 1.0, 1.0), n=10)
    with pytest.raises(ValueError, match="fewer than 20"):
        fit_head_scaling(small_synthetic_head, few, mri_fiducials=SYNTHETIC_FID)
    with pytest.raises(ValueError, match="mode"):
        fit_head_scaling(small_synthetic_head, info, mode="affine")
    nofid = mne.create_info(1, 250.0, "misc")
    with pytest.raises(ValueError, match="no nasion"):
        fit_head_scaling(small_synthetic_head, nofid, mri_fiducials=SYNTHETIC_FID)
