"""MEG helmets around the template: placement by dev_head_t, coil clearance, head-position
draws, system detection and the binding of a recording to a template MEG model."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import mne
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from deepesi.anatomy.template import load_template
from deepesi.inverse.helmet import bind_meg_recording, meg_system
from deepesi.sensors.helmet import (
    coil_clearance_mm,
    draw_head_positions,
    head_position_change,
    template_head_to_mri,
    template_meg_sensors,
)
from deepesi.simulation.sphere import helmet_info


@pytest.fixture(scope="module")
def template():
    return load_template()


@pytest.fixture(scope="module")
def helmet(template):
    """A synthetic helmet of 12 cm radius around the template's head centre (MRI frame); the
    device frame is the head frame (dev_head_t = identity)."""
    from deepesi.anatomy.masks import head_centre

    trans = np.asarray(template_head_to_mri(template)["trans"])
    info = helmet_info(trans, radius=0.12, centre=head_centre(template), grade=1)
    with info._unlock():
        info["dev_head_t"] = mne.transforms.Transform("meg", "head", np.eye(4))
    return info


def _motion(rotvec_deg, shift_mm) -> np.ndarray:
    move = np.eye(4)
    move[:3, :3] = Rotation.from_rotvec(np.deg2rad(rotvec_deg)).as_matrix()
    move[:3, 3] = np.asarray(shift_mm, float) * 1e-3
    return move


def test_head_position_change_of_a_known_motion():
    shift, angle = head_position_change(np.eye(4), _motion([0, 0, 10], [3, 0, 4]))
    assert shift == pytest.approx(5.0, abs=1e-9)
    assert angle == pytest.approx(10.0, abs=1e-9)
    assert head_position_change(np.eye(4), np.eye(4)) == (0.0, 0.0)


def test_sensors_are_placed_by_dev_head_t_and_clearance_follows(template, helmet):
    base = template_meg_sensors(template, helmet)
    assert base.n_meg == len(helmet["ch_names"]) and base.n_eeg == 0
    clear = coil_clearance_mm(template, base)
    assert np.all(np.isfinite(clear)) and clear.min() > 5  # a helmet outside the head
    # the head 15 mm lower in the helmet = the sensors 15 mm higher in the head frame
    up = template_meg_sensors(template, helmet, _motion([0, 0, 0], [0, 0, 15]))
    mri = np.asarray(up.trans["trans"])
    top = int(np.argmax([c["loc"][2] for c in helmet["chs"]]))  # the coil above the vertex
    assert coil_clearance_mm(template, up)[top] == pytest.approx(clear[top] + 15, abs=2.0)
    assert np.allclose(mri, base.trans["trans"])
    # a helmet smaller than the head: coils inside it have a negative clearance
    from deepesi.anatomy.masks import head_centre

    small = helmet_info(mri, radius=0.05, centre=head_centre(template), grade=1)
    with small._unlock():
        small["dev_head_t"] = mne.transforms.Transform("meg", "head", np.eye(4))
    assert coil_clearance_mm(template, template_meg_sensors(template, small)).max() < 0


def test_scaled_placement(template, helmet):
    """An identity scaling places the coils as the rigid placement does; a subject 10 % smaller
    than the template puts them 10 % farther out relative to the template."""
    from deepesi.sensors.scaling import HeadScaling

    trans = np.asarray(template_head_to_mri(template)["trans"])
    identity = HeadScaling(trans[:3, :3], trans[:3, 3], np.ones(3), "uniform")
    rigid = template_meg_sensors(template, helmet)
    same = template_meg_sensors(template, helmet, scaling=identity)

    def coils(sensors):
        t = np.asarray(sensors.trans["trans"]) @ np.asarray(sensors.info["dev_head_t"]["trans"])
        locs = np.array([c["loc"] for c in sensors.info["chs"]])
        return locs[:, :3] @ t[:3, :3].T + t[:3, 3], locs[:, 9:12] @ t[:3, :3].T

    (p0, n0), (p1, n1) = coils(rigid), coils(same)
    np.testing.assert_allclose(p1, p0, atol=1e-9)
    np.testing.assert_allclose(n1, n0, atol=1e-9)
    smaller = HeadScaling(trans[:3, :3], trans[:3, 3], np.full(3, 0.9), "uniform")
    p2, n2 = coils(template_meg_sensors(template, helmet, scaling=smaller))
    np.testing.assert_allclose(p2, p0 / 0.9, atol=1e-9)  # about the MRI origin
    np.testing.assert_allclose(np.linalg.norm(n2, axis=1), 1.0, atol=1e-9)


def test_head_position_draws_are_reproducible_and_keep_clear(template, helmet):
    a = draw_head_positions(template, helmet, 3, seed=4, shift_mm=8, rotation_deg=6,
                            min_clearance_mm=15.0)
    b = draw_head_positions(template, helmet, 3, seed=4, shift_mm=8, rotation_deg=6,
                            min_clearance_mm=15.0)
    c = draw_head_positions(template, helmet, 3, seed=5, shift_mm=8, rotation_deg=6,
                            min_clearance_mm=15.0)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not np.allclose(a[0], c[0])
    for dev_head in a:
        shift, angle = head_position_change(helmet["dev_head_t"], dev_head)
        assert 0 < shift < 30 and 0 < angle < 25
        placed = template_meg_sensors(template, helmet, dev_head)
        assert coil_clearance_mm(template, placed).min() >= 15.0
    with pytest.raises(RuntimeError, match="clearance"):
        draw_head_positions(template, helmet, 1, min_clearance_mm=200.0, max_tries=3)


def test_meg_system_from_coil_types():
    info = mne.create_info(["MEG0111", "MEG0112"], 1000.0, ["mag", "grad"])
    assert meg_system(info) == "neuromag"
    with info._unlock():
        for ch in info["chs"]:
            ch["coil_type"] = 5001  # CTF axial gradiometer
    assert meg_system(info) == "ctf"
    assert meg_system(mne.create_info(["Cz"], 1000.0, "eeg")) is None


def test_bind_meg_recording(template, helmet, caplog):
    from deepesi.sources import make_source_space

    src = make_source_space(template, 0.025)
    names = list(helmet["ch_names"])
    spaced = [n[:3] + " " + n[3:] for n in names]  # 'MAG000' -> 'MAG 000', as older systems
    model_info = helmet.copy()
    mne.rename_channels(model_info, dict(zip(names, spaced, strict=True)))
    model = SimpleNamespace(ch_names=spaced, info=model_info, source_space=src,
                            channel_scale=np.where(
                                np.array([n.startswith("MAG") for n in names]), 1e-13, 1e-11))
    # a recording of the same system, names without the model's spacing, head 6 mm lower
    rec_info = helmet.copy()
    with rec_info._unlock():
        rec_info["dev_head_t"] = mne.transforms.Transform(
            "meg", "head", _motion([0, 4, 0], [0, 0, 6]))
    ev = mne.EvokedArray(np.zeros((len(names), 3)), rec_info, verbose=False)
    bound, net, fwd, report = bind_meg_recording(ev, model, trained_rms=(8.0, 6.0),
                                                 cache_dir=False)
    assert bound.ch_names == model.ch_names and ev.ch_names == names  # a renamed copy
    assert report["n_renamed"] == len(names) and not report["outside_trained_range"]
    assert report["head_shift_mm"] == pytest.approx(6.0, abs=1e-6)
    assert report["head_rotation_deg"] == pytest.approx(4.0, abs=1e-6)
    assert fwd.ch_names == model.ch_names and fwd.n_sources == src.n_sources
    # the forward follows the head: the nominal position's gain differs
    nominal = template_meg_sensors(template, helmet)
    from deepesi.forward import make_forward

    g0 = make_forward(template, nominal, src, meg=True, cache_dir=False,
                      verbose="WARNING").gain
    rel = np.linalg.norm(fwd.gain - g0) / np.linalg.norm(g0)
    assert 0.05 < rel < 1.0
    # the data are read through the field the nominal position would have measured
    assert report["mapped_to_nominal"] and net.ch_names == model.ch_names
    scale = model.channel_scale[:, None]
    cols = np.arange(0, fwd.gain.reshape(len(names), -1).shape[1], 7)
    here = fwd.gain.reshape(len(names), -1)[:, cols]
    there = g0.reshape(len(names), -1)[:, cols]
    mapped_rel = np.linalg.norm((net.matrix @ here - there) / scale) / np.linalg.norm(
        there / scale)
    assert mapped_rel < 0.7 * np.linalg.norm((here - there) / scale) / np.linalg.norm(
        there / scale)  # 0.11 vs 0.19 (50 coils, 25 mm sources, the 10 dB regularisation)
    # far outside the trained range: a warning
    with rec_info._unlock():
        rec_info["dev_head_t"] = mne.transforms.Transform(
            "meg", "head", _motion([0, 0, 0], [0, 0, 30]))
    far = mne.EvokedArray(np.zeros((len(names), 3)), rec_info, verbose=False)
    with caplog.at_level(logging.WARNING, logger="deepesi"):
        _, _, _, report = bind_meg_recording(far, model, trained_rms=(8.0, 6.0),
                                             cache_dir=False, map_to_nominal=False)
    assert report["outside_trained_range"] and "beyond the range" in caplog.text
    # another system, and no MEG at all: one clear line each
    ctf = ev.copy()
    with ctf.info._unlock():
        for ch in ctf.info["chs"]:
            ch["coil_type"] = 5001
    with pytest.raises(ValueError, match="is not the model's"):
        bind_meg_recording(ctf, model)
    eeg = mne.EvokedArray(np.zeros((2, 3)), mne.create_info(["Cz", "Pz"], 1000.0, "eeg"))
    with pytest.raises(ValueError, match="no MEG channels"):
        bind_meg_recording(eeg, model)


def test_auto_scaling_needs_a_head_shape(template, helmet):
    """'auto': 3-axis with >= 20 head-shape points; fiducials alone (or nothing) → the rigid
    placement; an unknown mode is one clear line."""
    from deepesi.forward.scalp import coverage_positions
    from deepesi.inverse.helmet import _scaling_for
    from deepesi.sensors import mri_fiducials_of

    to_head = np.linalg.inv(np.asarray(template_head_to_mri(template)["trans"]))
    fid = {k: v @ to_head[:3, :3].T + to_head[:3, 3]
           for k, v in mri_fiducials_of(template).items()}
    info = helmet.copy()
    with info._unlock():
        info["dig"] = mne.channels.make_dig_montage(coord_frame="head", **fid).dig
    assert _scaling_for(template, info, "auto") is None
    scalp = coverage_positions(template)[::25]  # the template's own scalp: a scale of ~1
    shape = scalp @ to_head[:3, :3].T + to_head[:3, 3]
    assert len(shape) >= 20
    with info._unlock():
        info["dig"] = mne.channels.make_dig_montage(coord_frame="head", hsp=shape, **fid).dig
    fit = _scaling_for(template, info, "auto")
    assert fit is not None and fit.mode == "3-axis"
    np.testing.assert_allclose(fit.scale, 1.0, atol=0.05)
    with pytest.raises(ValueError, match="scaling must be"):
        _scaling_for(template, info, "affine")
