"""deepesi.inverse with a network: data preparation, apply_network with a stand-in model, peaks,
saving and reading a SourceMap."""

from __future__ import annotations

import json

import mne
import nibabel as nib
import numpy as np
import pytest

from deepesi.inverse import (
    SourceMap,
    activity_grid,
    apply_network,
    find_peaks,
    peak_centroids,
    prepare_data,
    read_source_map,
)
from deepesi.inverse import network as network_module
from deepesi.inverse import result as result_module
from localize_helpers import (
    CH_NAMES,
    MNI_SHIFT,
    SFREQ,
    StandInModel,
    grid_source_space,
    make_evoked,
)

SOURCE = 9  # a left (thalamus) point at x = -5 mm
PEAK_SAMPLE = 25


def localize(inst, model, src, **kwargs):
    return apply_network(inst, model, source_space=src, **kwargs)


@pytest.fixture(scope="module")
def src():
    return grid_source_space()


@pytest.fixture(scope="module")
def model(src):
    return StandInModel(src)


@pytest.fixture(scope="module")
def result(model, src):
    return localize(make_evoked(model, SOURCE), model, src)


# ----------------------------------------------------------------------------- localize
def test_localize_finds_the_source(result, src):
    assert result.amplitudes.shape == (src.n_sources, 41)
    stc = result.to_stc()
    assert isinstance(stc, mne.VolSourceEstimate)
    np.testing.assert_array_equal(stc.vertices[0], np.arange(src.n_sources))
    np.testing.assert_allclose(stc.data, result.amplitudes)
    assert stc.tmin == pytest.approx(-0.1)
    assert stc.tstep == pytest.approx(1 / SFREQ)
    assert result.peak_time == pytest.approx(-0.1 + PEAK_SAMPLE / SFREQ)
    assert result.method == "deepesi" and result.units.startswith("relative")
    table = result.peaks(n=3)
    top = table[0]
    assert top["rank"] == 1 and top["source"] == SOURCE
    assert top["region"] == "Left-Thalamus"
    mri = src.pos[SOURCE] * 1000
    assert (top["x_mri"], top["y_mri"], top["z_mri"]) == pytest.approx(tuple(mri))
    assert (top["x_mni"], top["y_mni"], top["z_mni"]) == pytest.approx(tuple(mri + MNI_SHIFT))
    assert top["time"] == pytest.approx(result.peak_time)
    amps = table.column("amplitude")
    assert amps == sorted(amps, reverse=True)
    assert len(table) <= 3


def test_average_reference_removes_common_offset(model, src):
    ev = make_evoked(model, SOURCE)
    data, times, info = prepare_data(ev, model.ch_names, model.ch_types)
    np.testing.assert_allclose(data.mean(axis=0), 0, atol=1e-18)
    # the offset is gone; the source's topography is intact
    expected = model.gain[:, SOURCE] * 10.0 * 1.0  # waveform is 1 at the peak
    np.testing.assert_allclose(data[:, PEAK_SAMPLE], expected, rtol=1e-10)
    assert info["ch_names"] == model.ch_names
    assert len(times) == 41


def test_channels_matched_by_name_extra_dropped(model, src, result):
    ev = make_evoked(model, SOURCE)
    order = list(reversed(CH_NAMES))
    ev.reorder_channels(order)
    extra = mne.EvokedArray(
        np.ones((2, len(ev.times))) * 1e-6, mne.create_info(["EOG1", "X1"], SFREQ, ["eog", "eeg"]),
        tmin=ev.tmin, verbose=False,
    )
    ev.add_channels([extra], force_update_info=True)
    again = localize(ev, model, src)
    # X1 is an extra EEG channel: dropped before the average reference, so nothing changes
    np.testing.assert_allclose(again.amplitudes, result.amplitudes, rtol=1e-9)


def test_missing_channels_error_lists_them(model, src):
    ev = make_evoked(model, SOURCE)
    ev.drop_channels(["Cz", "O2"])
    ev.rename_channels({"Fp1": "FP1"})
    with pytest.raises(ValueError, match=r"missing") as err:
        localize(ev, model, src)
    msg = str(err.value)
    for name in ("Cz", "O2", "rename_channels"):
        assert name in msg
    assert "Fp1" not in msg  # FP1 is the model's Fp1 after name normalisation


def test_wrong_channel_type(model, src):
    ev = make_evoked(model, SOURCE)
    ev.set_channel_types({"Cz": "misc"}, on_unit_change="ignore", verbose=False)
    with pytest.raises(ValueError, match=r"Cz .misc, model: eeg."):
        prepare_data(ev, model.ch_names, model.ch_types)


def test_bad_channel_interpolated(model, src, result):
    ev = make_evoked(model, SOURCE, montage=True)
    ev.data[CH_NAMES.index("C3")] = 1.0  # broken: 1 V
    ev.info["bads"] = ["C3"]
    data, _, info = prepare_data(ev, model.ch_names, model.ch_types)
    assert info["bads"] == []
    assert np.abs(data).max() < 1e-3  # the 1 V value is gone
    assert "C3" in info["ch_names"]
    # a random-gain topography is not smooth, but the peak source still wins
    res = localize(ev, model, src)
    assert res.peaks(1)[0]["source"] == SOURCE


def test_bad_channel_without_positions_refused(model):
    ev = make_evoked(model, SOURCE, montage=False)
    ev.info["bads"] = ["C3"]
    with pytest.raises(ValueError, match=r"no sensor positions.*set_montage"):
        prepare_data(ev, model.ch_names, model.ch_types)


def test_bad_channel_outside_model_ignored(model):
    ev = make_evoked(model, SOURCE, montage=False)
    extra = mne.EvokedArray(np.full((1, 41), np.nan), mne.create_info(["X9"], SFREQ, "eeg"),
                            tmin=ev.tmin, verbose=False)
    ev.add_channels([extra], force_update_info=True)
    ev.info["bads"] = ["X9"]
    data, _, _ = prepare_data(ev, model.ch_names, model.ch_types)
    assert np.isfinite(data).all()


def test_nan_and_inf_refused(model):
    ev = make_evoked(model, SOURCE)
    ev.data[CH_NAMES.index("Pz"), 3] = np.nan
    ev.data[CH_NAMES.index("O1"), 5] = np.inf
    with pytest.raises(ValueError, match=r"2 NaN/Inf.*Pz, O1"):
        prepare_data(ev, model.ch_names, model.ch_types)


def test_flat_channel_refused_or_interpolated(model):
    """A flat channel (a recorded reference) is interpolated from the others; without channel
    adaptation, or when every channel is flat, it is refused."""
    ev = make_evoked(model, SOURCE)
    ev.data[CH_NAMES.index("Fz")] = 0.0
    with pytest.raises(ValueError, match=r"flat channel.*Fz"):
        prepare_data(ev, model.ch_names, model.ch_types, adapt_channels=False)
    report: dict = {}
    data, _, _ = prepare_data(ev, model.ch_names, model.ch_types, channel_report=report)
    assert report["flat"] == ["Fz"] and report["positions_from"] in ("recording", "standard names")
    assert np.abs(data[CH_NAMES.index("Fz")]).max() > 0


def test_microvolts_stored_as_volts_refused(model):
    ev = make_evoked(model, SOURCE)
    ev.data *= 1e6
    with pytest.raises(ValueError, match=r"eeg amplitudes look wrong.*µV"):
        prepare_data(ev, model.ch_names, model.ch_types)


def test_femtotesla_stored_as_tesla_refused():
    info = mne.create_info(["MEG0111", "MEG0121", "MEG0131"], SFREQ, "mag")
    rng = np.random.default_rng(0)
    raw = mne.io.RawArray(rng.standard_normal((3, 100)) * 100.0, info, verbose=False)  # fT
    with pytest.raises(ValueError, match=r"mag amplitudes look wrong.*fT"):
        prepare_data(raw, info["ch_names"], ["mag"] * 3)
    raw._data *= 1e-15  # now T: accepted
    data, _, _ = prepare_data(raw, info["ch_names"], ["mag"] * 3)
    assert data.shape == (3, 100)


def test_time_window(model, src):
    ev = make_evoked(model, SOURCE)
    data, times, _ = prepare_data(ev, model.ch_names, model.ch_types, tmin=0.0, tmax=0.05)
    assert times[0] == pytest.approx(0.0) and times[-1] == pytest.approx(0.05)
    assert data.shape[1] == 11
    with pytest.raises(ValueError, match=r"empty time window.*holds no sample"):
        prepare_data(ev, model.ch_names, model.ch_types, tmin=5.0, tmax=6.0)
    with pytest.raises(ValueError, match=r"empty time window.*before tmin"):
        prepare_data(ev, model.ch_names, model.ch_types, tmin=0.1, tmax=0.0)
    # a single sample is fine (no flatness check possible)
    res = localize(ev, model, src, tmin=0.025, tmax=0.025)
    assert res.amplitudes.shape == (src.n_sources, 1)
    assert res.peaks(1)[0]["source"] == SOURCE


def test_raw_and_epochs_inputs(model, src, result):
    ev = make_evoked(model, SOURCE)
    raw = mne.io.RawArray(ev.data, ev.info, first_samp=0, verbose=False)
    res = localize(raw, model, src)
    assert res.peaks(1)[0]["source"] == SOURCE
    epochs = mne.EpochsArray(np.stack([ev.data] * 3), ev.info, tmin=ev.tmin, verbose=False)
    res = localize(epochs, model, src)
    np.testing.assert_allclose(res.amplitudes, result.amplitudes, rtol=1e-5)
    with pytest.raises(TypeError, match=r"mne.io.Raw, mne.Epochs or mne.Evoked"):
        localize(ev.data, model, src)


def test_model_source_space_mismatch(model, src):
    ev = make_evoked(model, SOURCE)
    smaller = src.subset(np.arange(src.n_sources - 1))
    with pytest.raises(ValueError, match=r"predicts 48 source points.*47"):
        localize(ev, model, smaller)
    shifted = type(src)(
        pos=src.pos + 0.001, region_ids=src.region_ids, normals=src.normals,
        free_ori=src.free_ori, adjacency=src.adjacency, spacing=src.spacing,
    )
    with pytest.raises(ValueError, match=r"model/source-space mismatch: the model was trained"):
        localize(ev, model, shifted)
    with pytest.raises(TypeError, match=r"SourceSpace"):
        localize(ev, model, "src.npz")


def test_model_output_shape_checked(model, src):
    class Broken(StandInModel):
        def predict(self, data):
            return super().predict(data)[:-1]

    with pytest.raises(ValueError, match=r"returned maps of shape"):
        localize(make_evoked(model, SOURCE), Broken(src), src)


# ----------------------------------------------------------------------------- peaks
def test_find_peaks_two_blobs(src):
    amp = np.zeros(src.n_sources)
    pos_mm = src.pos * 1000
    a = int(np.argmin(np.linalg.norm(pos_mm - (-15, -15, 0), axis=1)))
    b = int(np.argmin(np.linalg.norm(pos_mm - (15, 15, 20), axis=1)))
    amp += 2.0 * np.exp(-np.linalg.norm(pos_mm - pos_mm[a], axis=1) ** 2 / 200)
    amp += 1.0 * np.exp(-np.linalg.norm(pos_mm - pos_mm[b], axis=1) ** 2 / 200)
    peaks = find_peaks(amp, src, n_max=5)
    assert peaks.tolist() == [a, b]
    flat = np.ones(src.n_sources)  # a plateau gives one peak, the lowest index
    assert find_peaks(flat, src, n_max=5).tolist() == [0]
    assert find_peaks(np.zeros(src.n_sources), src).size == 0


def test_find_peaks_strongest_equal_the_full_search():
    """The n_max strongest peaks come from a search near the top of the map: the same peaks,
    in the same order, as the whole map's peaks cut to n_max (ties and plateaus included)."""
    from scipy import sparse

    from deepesi.sources import SourceSpace

    rng = np.random.default_rng(3)
    g = np.stack(np.meshgrid(*[np.arange(14)] * 3, indexing="ij"), -1).reshape(-1, 3) * 5e-3
    space = SourceSpace(pos=g, region_ids=np.zeros(len(g), int), normals=np.zeros_like(g),
                        free_ori=np.ones(len(g), bool),
                        adjacency=sparse.csr_matrix((len(g), len(g))), spacing=5e-3)
    for trial in range(40):
        centres = g[rng.choice(len(g), size=rng.integers(1, 12))]
        amp = sum(rng.uniform(0.2, 1.0) * np.exp(-np.sum((g - c) ** 2, axis=1) / (2 * 0.008**2))
                  for c in centres) + rng.uniform(0, 0.05, len(g))
        if trial % 2:
            amp = np.round(amp * 8) / 8  # plateaus and ties
        full = find_peaks(amp, space)
        for k in (1, 3, 6, 20):
            assert find_peaks(amp, space, n_max=k).tolist() == full[:k].tolist()
        assert (find_peaks(amp, space, n_max=6, rel_threshold=0.5).tolist()
                == find_peaks(amp, space, rel_threshold=0.5)[:6].tolist())


def test_peak_centroids_off_grid(src):
    pos_mm = src.pos * 1000
    spacing_mm = float(src.spacing) * 1000
    inner = np.linalg.norm(pos_mm - pos_mm.mean(axis=0), axis=1)
    a = int(np.argmin(inner))  # an interior grid point: its neighbourhood is symmetric
    # a blob centred on a grid point: the centroid is that point (symmetry)
    blob = np.exp(-np.linalg.norm(pos_mm - pos_mm[a], axis=1) ** 2 / (2 * spacing_mm**2))
    got = peak_centroids(blob, src, np.array([a]))
    assert np.linalg.norm(got[0] - src.pos[a]) * 1000 < 1e-6
    # a one-hot map stays on its grid point, whatever the radius
    one = np.zeros(src.n_sources)
    one[a] = 1.0
    assert np.allclose(peak_centroids(one, src, [a], radius=0.05), src.pos[a])
    # a blob between grid points: the centroid is nearer the true centre than the peak point
    centre = pos_mm[a] + np.array([0.4, -0.3, 0.2]) * spacing_mm
    blob = np.exp(-np.linalg.norm(pos_mm - centre, axis=1) ** 2 / (2 * spacing_mm**2))
    peak = find_peaks(blob, src, n_max=1)
    on_grid = np.linalg.norm(pos_mm[peak[0]] - centre)
    off_grid = np.linalg.norm(peak_centroids(blob, src, peak, power=1.0)[0] * 1000 - centre)
    assert off_grid < 0.6 * on_grid
    with pytest.raises(ValueError, match="radius"):
        peak_centroids(blob, src, peak, radius=-1.0)
    with pytest.raises(ValueError, match="power"):
        peak_centroids(blob, src, peak, power=0.0)
    with pytest.raises(ValueError, match="peak indices"):
        peak_centroids(blob, src, [src.n_sources])


def test_peaks_subgrid_coordinates(result):
    grid = result.peaks(2)
    sub = result.peaks(2, subgrid=True)
    k = result.sample(None)
    expected = peak_centroids(result.amplitudes[:, k], result.source_space,
                              grid.column("source")) * 1000
    assert sub.column("source") == grid.column("source")
    assert sub.column("region") == grid.column("region")
    assert np.allclose(np.array([sub.column(c) for c in ("x_mri", "y_mri", "z_mri")]).T,
                       expected)


def test_peaks_at_given_time(result):
    t = result.times[5]
    table = result.peaks(n=2, time=t)
    assert table[0]["time"] == pytest.approx(t)
    with pytest.raises(ValueError, match=r"outside"):
        result.peaks(time=10.0)
    with pytest.raises(ValueError, match=r"n must be"):
        result.peaks(n=0)


def test_peaks_without_mni(model):
    src = grid_source_space()
    nomni = type(src)(
        pos=src.pos, region_ids=src.region_ids, normals=src.normals, free_ori=src.free_ori,
        adjacency=src.adjacency, spacing=src.spacing, mri_to_mni=None,
    )
    res = SourceMap.from_amplitudes(np.eye(src.n_sources)[:, :1] + 0, [0.0], nomni)
    row = res.peaks(1)[0]
    assert row["source"] == 0 and np.isnan(row["x_mni"])
    assert "n/a" in res.peaks(1).to_tsv()


def test_from_amplitudes_validation(src):
    with pytest.raises(ValueError, match=r"shape"):
        SourceMap.from_amplitudes(np.ones((3, 2)), [0, 1], src)
    with pytest.raises(ValueError, match=r"non-negative"):
        SourceMap.from_amplitudes(-np.ones((src.n_sources, 1)), [0], src)
    with pytest.raises(ValueError, match=r"NaN"):
        SourceMap.from_amplitudes(np.full((src.n_sources, 1), np.nan), [0], src)


def test_region_time_courses(result):
    tc = result.region_time_courses()
    assert set(tc) == {"Left-Thalamus", "ctx-rh-frontal"}
    assert int(np.argmax(tc["Left-Thalamus"])) == PEAK_SAMPLE
    assert tc["Left-Thalamus"].max() >= tc["ctx-rh-frontal"].max()


# ----------------------------------------------------------------------------- volume
def test_activity_grid_places_points(src):
    amp = np.arange(src.n_sources, dtype=float)
    vol, affine = activity_grid(src, amp)
    assert vol.ndim == 3 and np.count_nonzero(vol) == src.n_sources - 1  # point 0 has value 0
    ijk = np.rint(nib.affines.apply_affine(np.linalg.inv(affine), src.pos * 1000)).astype(int)
    np.testing.assert_array_equal(vol[tuple(ijk.T)], amp)
    np.testing.assert_allclose(np.diag(affine)[:3], 10.0)


# ----------------------------------------------------------------------------- save
def test_save_writes_everything(result, src, tmp_path):
    out = result.save(tmp_path / "res")
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(
        ["sources-vl.stc", "activity.nii.gz", "peaks.tsv", "source_space.npz",
         "localization.json"]
    )
    stc = mne.read_source_estimate(out / "sources-vl.stc")
    np.testing.assert_allclose(stc.data, result.amplitudes, rtol=1e-6)
    np.testing.assert_array_equal(stc.vertices[0], np.arange(src.n_sources))
    img = nib.load(out / "activity.nii.gz")
    assert img.shape[3] == len(result.times)
    assert img.header.get_zooms()[3] == pytest.approx(1 / SFREQ)
    vol = np.asarray(img.dataobj)
    ijk = np.unravel_index(np.argmax(vol[..., PEAK_SAMPLE]), vol.shape[:3])
    xyz = nib.affines.apply_affine(img.affine, ijk)
    np.testing.assert_allclose(xyz, src.pos[SOURCE] * 1000, atol=1e-6)
    lines = (out / "peaks.tsv").read_text().splitlines()
    assert lines[0].split("\t")[:3] == ["rank", "source", "region"]
    assert lines[1].split("\t")[1:3] == [str(SOURCE), "Left-Thalamus"]
    info = json.loads((out / "localization.json").read_text())
    assert info["source_space_hash"] == src.hash()
    assert info["peak_time_s"] == pytest.approx(result.peak_time)
    # no stray temporary folders
    assert [p.name for p in tmp_path.iterdir()] == ["res"]
    # and it reads back: same map (float32 in the .stc), times, source space, peak time
    back = read_source_map(out)
    np.testing.assert_allclose(back.amplitudes, result.amplitudes, rtol=1e-6)
    np.testing.assert_allclose(back.times, result.times, atol=1e-9)
    assert back.source_space.hash() == src.hash()
    assert back.peak_time == pytest.approx(result.peak_time)
    assert (back.method, back.units) == (result.method, result.units)
    assert back.peaks(1)[0]["source"] == SOURCE
    with pytest.raises(FileNotFoundError, match=r"not a folder written by SourceMap\.save"):
        read_source_map(tmp_path)


def test_save_extra_files_in_the_same_atomic_folder(result, tmp_path):
    out = result.save(tmp_path / "res", extra_files={"note.txt": lambda p: p.write_text("hi")})
    assert (out / "note.txt").read_text() == "hi"

    def fail(path):
        raise RuntimeError("report failed")

    with pytest.raises(RuntimeError, match="report failed"):
        result.save(tmp_path / "res2", extra_files={"report.html": fail})
    assert not (tmp_path / "res2").exists()


def test_save_overwrite_rules(result, tmp_path):
    out = tmp_path / "res"
    result.save(out)
    with pytest.raises(FileExistsError, match=r"overwrite"):
        result.save(out)
    result.save(out, overwrite=True)
    other = tmp_path / "mine"
    other.mkdir()
    (other / "thesis.tex").write_text("precious")
    with pytest.raises(FileExistsError, match=r"not a deepesi localization folder"):
        result.save(other, overwrite=True)
    assert (other / "thesis.tex").read_text() == "precious"
    empty = tmp_path / "empty"
    empty.mkdir()
    result.save(empty)
    assert (empty / "peaks.tsv").is_file()


def test_save_is_atomic(result, tmp_path, monkeypatch):
    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(result_module.nib, "save", boom)
    with pytest.raises(OSError, match=r"disk full"):
        result.save(tmp_path / "res")
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------- real data
def test_sample_evoked_units_and_interpolation(sample_dir):
    """Real Vectorview + EEG data pass the unit checks; a good EEG channel marked bad is
    interpolated close to what was recorded."""
    fname = sample_dir / "MEG" / "sample" / "sample_audvis-auditory-ave.fif"
    ev = mne.read_evokeds(fname, condition="Left Auditory", verbose=False)
    picks = mne.pick_types(ev.info, meg=True, eeg=True, exclude=[])
    names = [ev.ch_names[i] for i in picks]
    types = ev.get_channel_types(picks=picks)
    data, times, _ = prepare_data(ev, names, types, tmin=0.05, tmax=0.15)
    assert data.shape == (366, len(times)) and len(times) == 61
    eeg = np.asarray(types) == "eeg"
    expected = data[names.index("EEG 010")].copy()
    ev.info["bads"] = ["EEG 010"]
    data2, _, info2 = prepare_data(ev, names, types, tmin=0.05, tmax=0.15)
    assert info2["bads"] == []
    got = data2[names.index("EEG 010")]
    assert np.corrcoef(got, expected)[0, 1] > 0.75  # 0.81 measured (spherical splines, 60 EEG)
    np.testing.assert_allclose(data2[~eeg], data[~eeg])  # MEG untouched


def test_too_long_recording_refused(model, src, monkeypatch):
    monkeypatch.setattr(network_module, "MAX_VALUES", src.n_sources * 40)
    with pytest.raises(ValueError, match=r"41 time samples x 48 sources.*tmin/tmax"):
        localize(make_evoked(model, SOURCE), model, src)
    assert localize(make_evoked(model, SOURCE), model, src, tmax=0.09).amplitudes.shape[1] == 39


def test_recording_ssp_unknown_to_the_model_is_warned(model, src, caplog):
    from deepesi.inverse import warn_untrained_ssp

    ev = make_evoked(model, 3)
    u = np.random.default_rng(0).standard_normal(len(model.ch_names))
    data = dict(kind=1, desc="PCA-v1", nrow=1, ncol=len(u), row_names=None,
                col_names=list(model.ch_names), data=(u / np.linalg.norm(u))[None])
    ssp = mne.Projection(data=data, kind=1, desc="PCA-v1", active=False, explained_var=None)
    ev.set_eeg_reference("average", projection=True, verbose=False)
    assert not warn_untrained_ssp(ev.info, model)  # the average reference alone is fine
    ev.add_proj([ssp], verbose=False)
    with caplog.at_level("WARNING", logger="deepesi"):
        localize(ev, model, src)
    assert "SSP projector(s)" in caplog.text and "PCA-v1" in caplog.text
    model.sim_config = {"projs": "given"}
    try:
        assert not warn_untrained_ssp(ev.info, model)
    finally:
        del model.sim_config


def test_reference_meg_channels_ignored_and_raw_window_times():
    """Issue 16 (#9): CTF/KIT reference sensors are in no forward and are left out, not refused;
    a Raw window reports its times on the recording's axis (a cropped Raw restarts at 0)."""
    from deepesi.inverse import prepare_data, prepare_evoked

    names = [f"EEG{k:03d}" for k in range(8)]
    refs = [f"BG{k}-606" for k in range(3)]
    info = mne.create_info(names + refs, 250.0, ["eeg"] * 8 + ["ref_meg"] * 3)
    rng = np.random.default_rng(0)
    x = np.cumsum(rng.standard_normal((11, 100)), axis=1)
    x[:8] *= 1e-7
    x[8:] *= 1e-12
    ev = mne.EvokedArray(x, info, tmin=-0.1, verbose=False)
    out = prepare_evoked(ev, names, names)
    assert out.ch_names == names
    raw = mne.io.RawArray(x, info, verbose=False)
    data, times, _ = prepare_data(raw, names, ["eeg"] * 8, tmin=0.0272, tmax=0.1,
                                  adapt_channels=False)
    assert times[0] == pytest.approx(0.028) and times[-1] == pytest.approx(0.1)
    assert data.shape == (8, len(times))
    win = prepare_evoked(raw, names, names, tmin=0.0272, tmax=0.1)
    assert win.times[0] == pytest.approx(0.028)


def test_baseline_removes_offsets_and_measurement_info_of_other_formats(tmp_path):
    """Issue 16 (#9): --baseline subtracts DC offsets (Raw and Evoked alike); the sensors of a
    non-FIF recording are read through mne.io.read_raw, a folder that is no recording is one
    clear line."""
    from deepesi.inverse.prepare import subtract_baseline
    from deepesi.sensors.info import read_measurement_info

    info = mne.create_info(["A", "B"], 100.0, "eeg")
    x = np.vstack([np.full(50, 1.7e-4), np.linspace(0, 1e-5, 50)])
    raw = mne.io.RawArray(x, info, verbose=False)
    out = subtract_baseline(raw, (0.0, 0.1))
    np.testing.assert_allclose(out.get_data()[0], 0.0, atol=1e-18)
    assert raw.get_data()[0, 0] == 1.7e-4  # the input is not changed
    ev = mne.EvokedArray(x, info, tmin=-0.2, verbose=False)
    np.testing.assert_allclose(subtract_baseline(ev, (-0.2, 0.0)).data[0], 0.0, atol=1e-18)
    with pytest.raises(ValueError, match="holds no sample"):
        subtract_baseline(ev, (5.0, 6.0))
    mne.export.export_raw(tmp_path / "r.vhdr", raw, fmt="brainvision", verbose=False)
    assert read_measurement_info(tmp_path / "r.vhdr")["ch_names"] == ["A", "B"]
    (tmp_path / "x.ds").mkdir()
    with pytest.raises(ValueError, match=r"cannot read the sensors of x\.ds"):
        read_measurement_info(tmp_path / "x.ds")


def test_trials_end_to_end_become_epochs(tmp_path):
    """Issue 16 (#9): an epoched CTF .ds, which MNE reads as one Raw of its trials end to end,
    is read as epochs with the trigger at each trial's pre-trigger sample."""
    from deepesi.inverse.reading import _ctf_trials, split_trials

    info = mne.create_info(["A", "B"], 250.0, "eeg")
    x = np.random.default_rng(0).standard_normal((2, 300)) * 1e-6
    raw = mne.io.RawArray(x, info, verbose=False)
    epochs = split_trials(raw, 100, 20)
    assert len(epochs) == 3 and epochs.times[0] == pytest.approx(-0.08)
    np.testing.assert_array_equal(epochs.get_data()[1], x[:, 100:200])
    assert split_trials(raw, 0) is raw
    raw._raw_extras = [{"block_size": 100, "n_samp": 300}]
    (tmp_path / "rec.ds").mkdir()
    assert _ctf_trials(raw, tmp_path / "rec.ds") == (100, 0)  # no res4: t = 0 at the start
    raw._raw_extras = [{"block_size": 300}]
    assert _ctf_trials(raw, tmp_path / "rec.ds") == (0, 0)  # one continuous trial
