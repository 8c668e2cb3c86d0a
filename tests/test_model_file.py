"""A trained model carries its source space, sensor Info and head -> MRI transform: model-file
round trips, older files, the shipped models, and the lead fields they are used with."""

from __future__ import annotations

import io
import json

import mne
import numpy as np
import pytest
import torch

from deepesi.simulation import SimulationConfig, read_work_leadfield, simulate_batch
from deepesi.simulation.sphere import helmet_info, make_sphere_leadfield
from deepesi.training import evaluate_single_sources, read_model, train_model
from deepesi.training._modelfile import info_from_state, info_to_state

TINY = dict(net_kwargs={"image_size": 8, "channels": (4, 8), "hidden": 32}, batch_size=16,
            batches_per_epoch=2, n_val=16, verbose=False, seed=3, epochs=1)


@pytest.fixture(scope="module")
def lf():
    torch.set_num_threads(1)
    return make_sphere_leadfield()


@pytest.fixture(scope="module")
def trained(lf, tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "m.pt"
    return train_model(lf, SimulationConfig(), path, **TINY), path


def _same_source_space(a, b) -> None:
    assert a.hash() == b.hash()
    for name in ("pos", "region_ids", "normals", "free_ori"):
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype and np.array_equal(x, y), name
    assert (a.adjacency != b.adjacency).nnz == 0 and a.adjacency.dtype == b.adjacency.dtype
    assert (a.spacing, a.loose, a.head_hash, a.name, a.meta) == (
        b.spacing, b.loose, b.head_hash, b.name, b.meta)
    assert (a.mri_to_mni is None) == (b.mri_to_mni is None)
    if a.mri_to_mni is not None:
        np.testing.assert_array_equal(a.mri_to_mni, b.mri_to_mni)


def test_model_file_carries_source_space_info_trans(lf, trained):
    model, path = trained
    assert model.source_space is lf.source_space
    # the sensors' Info: the lead field's channels, without acquisition records (HPI fits)
    assert model.info["ch_names"] == list(lf.ch_names)
    assert mne.utils.object_diff(model.info, lf.info) == ""  # nothing to drop in this one
    np.testing.assert_array_equal(model.trans, lf.trans["trans"])
    raw = torch.load(path, weights_only=True)  # stored in weights_only-safe types
    assert {"source_space", "info", "trans"} <= set(raw)
    back = read_model(path, lf)
    _same_source_space(back.source_space, lf.source_space)
    assert mne.utils.object_diff(back.info, lf.info) == ""  # exact, float64 positions included
    assert back.trans.dtype == np.float64 and np.array_equal(back.trans, lf.trans["trans"])
    # what the model file carries is enough to localize (inverse.apply_network's default)
    x = simulate_batch(lf, 3, seed=0).data[:, :, 0].T
    np.testing.assert_array_equal(back.predict(x), model.predict(x))
    for kw in ({"half": True}, {"int8": True}):  # quantised files carry them too
        again = read_model(back.save(path.with_name(f"{next(iter(kw))}.pt"), **kw))
        assert again.source_space.hash() == lf.source_space.hash()
        assert mne.utils.object_diff(again.info, lf.info) == ""


def test_older_model_files_still_load(lf, trained, tmp_path):
    model, path = trained
    d = torch.load(path, weights_only=True)
    for key in ("source_space", "info", "trans", "whitener"):
        d.pop(key)
    torch.save(d, tmp_path / "old.pt")
    old = read_model(tmp_path / "old.pt", lf)
    assert old.source_space is None and old.info is None and old.trans is None
    assert all(torch.equal(a, b) for a, b in zip(old.net.state_dict().values(),
                                                  model.net.state_dict().values(), strict=True))
    # a damaged source space is refused rather than used
    d = torch.load(path, weights_only=True)
    d["source_space"]["pos"][0, 0] += 0.01
    torch.save(d, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="does not match its hash"):
        read_model(tmp_path / "bad.pt")


def _round_trip(info):
    buf = io.BytesIO()
    torch.save(info_to_state(info), buf)
    buf.seek(0)
    return info_from_state(torch.load(buf, weights_only=True))


def test_info_round_trip_is_exact(lf, tmp_path):
    from deepesi.forward.io import read_forward, write_forward

    meg = helmet_info(np.eye(4), eeg_names=lf.ch_names[:3],
                      eeg_pos_head=np.array([c["loc"][:3] for c in lf.info["chs"][:3]]))
    raw = mne.io.RawArray(np.zeros((lf.n_channels, 10)), lf.info.copy(), verbose=False)
    with_proj = raw.set_eeg_reference(projection=True, verbose=False).info
    with_proj["bads"] = [lf.ch_names[1]]
    assert len(with_proj["projs"]) == 1
    # a forward solution's reduced Info (keys missing, extra keys)
    fwd_info = read_forward(write_forward(lf, tmp_path / "x-fwd.fif")).info
    for info in (lf.info, meg, with_proj, fwd_info):
        assert mne.utils.object_diff(info, _round_trip(info)) == ""
    assert info_to_state(None) is None and info_from_state(None) is None


def test_shipped_models_carry_what_they_were_trained_for(monkeypatch):
    from deepesi import pretrained, sensors

    def no_registration(*args, **kwargs):
        raise AssertionError("load_pretrained must not register a montage")

    monkeypatch.setattr(sensors, "make_eeg_sensors", no_registration)
    pretrained.load_pretrained.cache_clear()
    try:
        for name in ("template-eeg64", "template-eeg64-w5"):
            files = pretrained.pretrained_files(name)
            assert files["model"].stat().st_size <= 8_000_000
            model, leadfield = pretrained.load_pretrained(name)
            assert leadfield.source_space is model.source_space
            assert leadfield.info is model.info and leadfield.ch_names == model.info.ch_names
            assert model.source_space.hash() == model.source_space_hash
            assert model.source_space.n_sources == model.n_sources == 8092
            np.testing.assert_array_equal(leadfield.trans["trans"], model.trans)
            assert leadfield.trans["from"] == mne.io.constants.FIFF.FIFFV_COORD_HEAD
            assert len(model.info["dig"]) == 67  # 3 fiducials + the 64 electrodes
    finally:
        pretrained.load_pretrained.cache_clear()


def test_work_folder_leadfield_and_evaluation(lf, trained, tmp_path):
    """read_work_leadfield reads what build_pretrained's forward stage writes;
    evaluate_single_sources scores a model on it."""
    from deepesi.pretrained import load_pretrained

    model, plf = load_pretrained("template-eeg64")
    np.save(tmp_path / "train-gain.npy", plf.gain.astype(np.float32))
    (tmp_path / "train-gain.json").write_text(json.dumps(
        {"layout": "standard_1010_64", "voxel_mm": 2.0, "ch_names": plf.ch_names}))
    plf.source_space.save(tmp_path / "train-src.npz")
    work_lf = read_work_leadfield(tmp_path, "train")
    assert work_lf.hash() == plf.hash() and work_lf.meta == {"fem_voxel_mm": 2.0}
    # the same registration (to rounding: numpy/scipy builds differ in the last bits)
    assert work_lf.info.ch_names == plf.info.ch_names
    for a, b in ((work_lf.info["chs"], plf.info["chs"]), (work_lf.info["dig"], plf.info["dig"])):
        key = "loc" if "loc" in a[0] else "r"
        np.testing.assert_allclose([x[key] for x in a], [x[key] for x in b], rtol=0, atol=1e-12)
    np.testing.assert_allclose(work_lf.trans["trans"], plf.trans["trans"], atol=0)
    with pytest.raises(FileNotFoundError):
        read_work_leadfield(tmp_path, "test")
    # the shipped model on its own (training) forward, 40 sources at 10 dB
    res = evaluate_single_sources(model, plf, work_lf, 40, seed=1)
    assert res["all"]["n"] == 40 == res["cortical"]["n"] + res["subcortical"]["n"]
    assert res["all"]["median_mm"] < 10 and 0 <= res["all"]["within_10mm"] <= 1
    # on its own forward at 10 dB the shipped net rarely puts a peak in the wrong compartment
    assert 0 <= res["cortical"]["confusion"] <= 0.2 and 0 <= res["subcortical"]["confusion"] <= 0.2
    small, _ = trained  # a window of 5 samples on the sphere
    res = evaluate_single_sources(small, lf, lf, 10, seed=2, n_times=5)
    assert res["n"] == 10 and set(res) == {"n", "snr_db", "subcortical", "cortical", "all"}


def test_load_leadfield(lf, tmp_path):
    from deepesi.forward.io import write_forward
    from deepesi.simulation import load_leadfield

    fname = write_forward(lf, tmp_path / "s-fwd.fif")
    assert load_leadfield(fname).hash() == lf.hash()
    with pytest.raises(ValueError, match="not both"):
        load_leadfield(fname, head="template")
    with pytest.raises(ValueError, match="no forward model"):
        load_leadfield()
    with pytest.raises(ValueError, match="spacing"):
        load_leadfield(head="template", spacing_mm=0)


def test_model_info_leaves_out_acquisition_records(lf, sample_dir):
    """A Neuromag recording's Info holds ~3 MB of HPI fits; the model keeps the sensors only."""
    from deepesi.forward.leadfield import LeadField
    from deepesi.training.loop import _sensor_info

    info = mne.io.read_info(sample_dir / "MEG" / "sample" / "sample_audvis-auditory-ave.fif",
                            verbose=False)
    picks = mne.pick_types(info, meg=True, eeg=False)
    names = [info["ch_names"][i] for i in picks]
    gain = np.random.default_rng(0).standard_normal((len(names), lf.n_sources, 3))
    meg = LeadField(gain, names, [mne.channel_type(info, i) for i in picks], lf.source_space,
                    info=info, trans=lf.trans)
    lean = _sensor_info(meg)
    assert lean["ch_names"] == names and lean["hpi_results"] == [] and lean["hpi_meas"] == []
    np.testing.assert_array_equal(lean["dev_head_t"]["trans"], info["dev_head_t"]["trans"])
    for a, b in zip(lean["chs"], [info["chs"][i] for i in picks], strict=True):
        np.testing.assert_array_equal(a["loc"], b["loc"])
        assert a["coil_type"] == b["coil_type"]
    sizes = []
    for i in (info, lean):
        buf = io.BytesIO()
        torch.save(info_to_state(i), buf)
        sizes.append(len(buf.getvalue()))
    assert sizes[0] > 2_000_000 and sizes[1] < 200_000


def test_read_model_names_and_damaged_files(tmp_path):
    """A shipped name reads in Python; unknown names list the shipped ones; damaged files get
    deepesi's own message, not torch's."""
    from deepesi.pretrained import PRETRAINED

    model = read_model("template-eeg64")
    assert model.n_sources > 1000
    with pytest.raises(FileNotFoundError, match=r"pretrained models: .*template-eeg64"):
        read_model("template-eeg65")
    text = tmp_path / "notes.pt"
    text.write_text("not a model")
    with pytest.raises(ValueError, match="not a deepesi model file") as err:
        read_model(text)
    assert "weights_only" not in str(err.value)
    net = model.net
    with torch.no_grad():
        next(iter(net.parameters())).fill_(float("nan"))
    model.save(tmp_path / "nan.pt")
    with pytest.raises(ValueError, match="weights contain NaN"):
        read_model(tmp_path / "nan.pt")
    assert "template-eeg64" in PRETRAINED
