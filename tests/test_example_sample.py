"""Building blocks of examples/sample_auditory.py (the real-data example on the MNE sample subject).

The full example (FEM forward, three trained networks) takes tens of minutes; these tests check
the pieces that decide its numbers: the label-distance score on known geometry and the hemisphere
peaks (:mod:`deepesi.references`), the preparation of the combined auditory evoked response
(:mod:`deepesi.datasets.mne_sample`), and the example's table.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from deepesi import references as ref
from deepesi.datasets import mne_sample as ms

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "sample_auditory.py"


@pytest.fixture(scope="module")
def ex():
    spec = importlib.util.spec_from_file_location("sample_auditory_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses need the module registered
    spec.loader.exec_module(module)
    return module


# ---------------------------------------------------------------- label distance, known geometry
def _cube(edge_m: float = 0.01) -> np.ndarray:
    return np.array([[x, y, z] for x in (0, edge_m) for y in (0, edge_m) for z in (0, edge_m)])


def test_label_distance_inside_is_zero():
    cube = _cube()
    inside = np.array([[0.005, 0.005, 0.005], [0.001, 0.009, 0.002], [0.01, 0.005, 0.005]])
    assert np.array_equal(ref.label_distance_mm(inside, cube), [0.0, 0.0, 0.0])


def test_label_distance_outside_is_nearest_vertex():
    cube = _cube()
    pts = np.array([[0.02, 0.0, 0.0], [-0.003, -0.004, 0.0], [0.013, 0.014, 0.01]])
    # nearest vertices (0.01,0,0), (0,0,0), (0.01,0.01,0.01): 10, 5, 5 mm
    np.testing.assert_allclose(ref.label_distance_mm(pts, cube), [10.0, 5.0, 5.0], atol=1e-9)
    assert ref.label_distance_mm(np.array([0.0, 0.0, 0.03]), cube) == pytest.approx(20.0)


def test_label_distance_flat_label_and_nan():
    flat = np.array([[0, 0, 0], [0.01, 0, 0], [0, 0.01, 0], [0.01, 0.01, 0]], float)
    # no volume: the distance to the nearest vertex only, even above the patch's middle
    d = ref.label_distance_mm(np.array([[0.005, 0.005, 0.0], [np.nan, 0, 0]]), flat)
    assert d[0] == pytest.approx(np.hypot(5, 5))
    assert np.isnan(d[1])


def test_label_distance_rejects_mm():
    with pytest.raises(ValueError, match="millimetres"):
        ref.label_distance_mm(np.zeros(3), _cube(10.0))
    with pytest.raises(ValueError, match="label_pos"):
        ref.label_distance_mm(np.zeros(3), np.zeros((0, 3)))


def test_markdown_table_marks_missing_peaks(ex):
    row = {"modality": "MEG", "method": "dipole_scan", "dist_lh_mm": None, "dist_rh_mm": 3.24,
           "peak_lh_mni_mm": None, "peak_rh_mni_mm": [50.0, -10.2, 4.0],
           "peak_lh_region": None, "peak_rh_region": "ctx-rh-temporal"}
    table = ex.markdown_table([row, {"modality": "EEG", "method": "LCMV", "error": "boom"}])
    lines = table.strip().splitlines()
    assert len(lines) == 4
    want = ("| MEG | dipole_scan | — | 3.2 | — | — | — | — | — | (50, -10, 4) | — | "
            "ctx-rh-temporal |")
    assert want in lines
    assert "failed: boom" in lines[3]
    warned = ex.markdown_table([row], {"lh": {"usable": False, "in_brain_fraction": 0.3},
                                       "rh": {"usable": True, "in_brain_fraction": 0.95}})
    assert warned.startswith("**Warning**: Aud-lh is not usable") and "30%" in warned
    assert "Aud-rh is not" not in warned
    assert "| MEG | dipole_scan | n/a | 3.2 |" in warned


def test_auditory_box_distance():
    box = ref.AUDITORY_MNI_BOX["rh"]
    assert ref.box_distance_mm([50.0, -20.0, 5.0], box) == 0.0  # inside
    assert ref.box_distance_mm([60.0, -15.0, 15.0], box) == 0.0  # on a corner
    assert ref.box_distance_mm([65.0, -20.0, 5.0], box) == pytest.approx(5.0)  # off one face
    assert ref.box_distance_mm([63.0, -11.0, 5.0], box) == pytest.approx(5.0)  # off an edge: 3-4-5
    assert ref.box_distance_mm([-50.0, -20.0, 5.0], box) == pytest.approx(90.0)  # other side
    assert ref.box_distance_mm([-50.0, -20.0, 5.0], ref.AUDITORY_MNI_BOX["lh"]) == 0.0
    with pytest.raises(ValueError, match="3-vector"):
        ref.box_distance_mm([1.0, 2.0], box)


def test_auditory_peak_scores():
    """Peaks of a map and of a source list per hemisphere, scored against the box and xfit."""
    peaks = {"lh": np.array([-50.0, -20.0, 5.0]), "rh": np.array([65.0, -20.0, 5.0])}
    row = ref.score_auditory_peaks(peaks, xfit_mm=np.array([62.0, -16.0, 5.0]))
    assert row["box_lh_mm"] == 0.0 and row["box_rh_mm"] == pytest.approx(5.0)
    assert row["xfit_rh_mm"] == pytest.approx(5.0) and row["peak_rh_mm"] == [65.0, -20.0, 5.0]
    assert ref.score_auditory_peaks({})["box_lh_mm"] is None
    rows = [{"x_mm": 50.0, "y_mm": 0.0, "z_mm": 0.0, "gof_share": 0.2},
            {"x_mm": 40.0, "y_mm": 1.0, "z_mm": 2.0, "gof_share": 0.5},
            {"x_mm": -45.0, "y_mm": 3.0, "z_mm": 4.0, "gof_share": 0.1}]
    found = ref.source_set_peaks(rows)
    assert found["rh"].tolist() == [40.0, 1.0, 2.0] and found["lh"].tolist() == [-45.0, 3.0, 4.0]


def test_missing_data_folder(ex, tmp_path):
    with pytest.raises(FileNotFoundError, match="MNE sample data"):
        ms.data_paths(tmp_path)
    assert ex.main(["--data", str(tmp_path), "-o", str(tmp_path / "out"), "--quick"]) == 2


# ---------------------------------------------------------------- shared sample data
def test_auditory_evoked(sample_dir):
    import mne

    paths = ms.data_paths(sample_dir)
    ev = ms.load_auditory_evoked(paths["evoked"])
    left, right = mne.read_evokeds(paths["evoked"], condition=["Left Auditory", "Right Auditory"],
                                   verbose=False)
    assert ev.nave == left.nave + right.nave == 9
    types = ev.get_channel_types()
    assert (types.count("eeg"), types.count("mag"), types.count("grad")) == (60, 102, 204)
    name = ev.ch_names[10]
    base = ev.times < 0
    a, b = (e.get_data(picks=[name])[0] for e in (left, right))
    want = (3 * a + 6 * b) / 9
    want = want - want[base].mean()  # baseline-corrected on the pre-stimulus interval
    np.testing.assert_allclose(ev.get_data(picks=[name])[0], want, rtol=1e-6, atol=1e-16)
    assert np.abs(ev.get_data(picks="eeg")[:, base].mean(axis=1)).max() < 1e-12
    win = ms.load_auditory_evoked(paths["evoked"], ms.WINDOW)
    assert win.times[0] >= 0.09 - 1e-3 and win.times[-1] <= 0.11 + 1e-3
    assert 10 <= len(win.times) <= 14  # 600.6 Hz
    # the N100m: magnetometer field power in the window well above the baseline's (low SNR:
    # nave 9), and the EEG's too once the offsets are removed
    in_win = (ev.times >= 0.09) & (ev.times <= 0.11)
    for kind, ratio in (("mag", 2.5), ("eeg", 1.5)):
        rms = np.sqrt((ev.get_data(picks=kind) ** 2).mean(axis=0))
        assert rms[in_win].mean() > ratio * rms[base].mean(), kind
    with pytest.raises(ValueError, match="window"):
        ms.load_auditory_evoked(paths["evoked"], (0.11, 0.09))


def test_hemisphere_peaks_and_scores_on_sample(sample_dir):
    import mne

    from deepesi.anatomy.freesurfer import read_freesurfer_subject
    from deepesi.sources import make_source_space

    paths = ms.data_paths(sample_dir)
    head = read_freesurfer_subject("sample", paths["subjects_dir"], voxel_size=3.0,
                                   verbose=False)
    src = make_source_space(head, 10e-3)
    labels = {h: mne.read_label(paths[f"label_{h}"]).pos for h in ("lh", "rh")}
    masks = ref.hemisphere_masks(src)
    assert not (masks["lh"] & masks["rh"]).any()
    cortex = ~src.is_subcortical
    # region-based hemispheres agree with the side of the midline for cortical points
    assert (src.pos[masks["lh"] & cortex, 0] <= 1e-6).all()
    assert (src.pos[masks["rh"] & cortex, 0] >= -1e-6).all()
    # a map peaking at the source point nearest each label's centroid
    near = {h: int(np.argmin(np.linalg.norm(src.pos - labels[h].mean(0), axis=1)))
            for h in ("lh", "rh")}
    amp = np.full(src.n_sources, 0.1)
    amp[near["lh"]], amp[near["rh"]] = 1.0, 0.5
    assert ref.hemisphere_peaks(amp, src) == near
    row = ref.score_map(amp, src, labels)
    assert row["peak_lh_rel"] == 1.0 and row["peak_rh_rel"] == 0.5
    for h in ("lh", "rh"):
        expected = ref.label_distance_mm(src.pos[near[h]], labels[h])
        assert row[f"dist_{h}_mm"] == pytest.approx(expected, abs=0.05)
        assert row[f"dist_{h}_mm"] < 10.0  # within one grid step of auditory cortex
    # the left peak scored against the right label: across the head
    assert ref.label_distance_mm(src.pos[near["lh"]], labels["rh"]) > 40.0
    # a map that is zero in one hemisphere has no peak there
    only_rh = np.where(masks["rh"], amp, 0.0)
    assert ref.hemisphere_peaks(only_rh, src)["lh"] is None
    assert ref.score_map(only_rh, src, labels)["dist_lh_mm"] is None
    assert ref.score_map(only_rh, src, labels)["aud_mni_lh_mm"] is None
    for h in ("lh", "rh"):  # the MNI box distance is that of the peak's MNI position
        expected = ref.box_distance_mm(src.pos_mni()[near[h]], ref.AUDITORY_MNI_BOX[h])
        assert row[f"aud_mni_{h}_mm"] == pytest.approx(expected, abs=0.05)
    with pytest.raises(ValueError, match="expected"):
        ref.hemisphere_peaks(amp[:-1], src)
    # a source set at the same points scores as the map's peaks (issue 14), off-grid too
    rows = [{"x_mm": v[0], "y_mm": v[1], "z_mm": v[2], "amplitude_nAm": a}
            for v, a in ((src.pos[near["lh"]] * 1e3, 20.0), (src.pos[near["rh"]] * 1e3, 10.0))]
    srow = ref.score_sources(rows, src, labels)
    for key in ("dist_lh_mm", "dist_rh_mm", "aud_mni_lh_mm", "aud_mni_rh_mm", "peak_rh_rel"):
        assert srow[key] == pytest.approx(row[key], abs=0.05)
    moved = [dict(rows[0], x_mm=rows[0]["x_mm"] - 2.0)]
    srow = ref.score_sources(moved, src, labels)
    assert srow["peak_rh_mri_mm"] is None and srow["n_sources"] == 1
    assert srow["peak_lh_mri_mm"][0] == pytest.approx(rows[0]["x_mm"] - 2.0, abs=0.05)
    # a hemisphere's source is the one that explains the most, not the largest moment (a
    # moment grows where the sensors are insensitive)
    weak_big = dict(rows[1], y_mm=rows[1]["y_mm"] - 30.0, amplitude_nAm=500.0, gof_share=0.02)
    strong = dict(rows[1], gof_share=0.10)
    srow = ref.score_sources([dict(rows[0], gof_share=0.2), weak_big, strong], src, labels)
    assert srow["peak_rh_mri_mm"][1] == pytest.approx(rows[1]["y_mm"], abs=0.05)
    assert ref.source_set_peaks([weak_big, strong])["rh"][1] == pytest.approx(rows[1]["y_mm"])


def test_label_check_and_positions(ex, sample_dir, tmp_path):
    import mne

    from deepesi.anatomy.freesurfer import read_freesurfer_subject
    from deepesi.sources import make_source_space

    paths = ms.data_paths(sample_dir)
    head = read_freesurfer_subject("sample", paths["subjects_dir"], voxel_size=3.0,
                                   verbose=False)
    src = make_source_space(head, 10e-3)
    masks = ref.hemisphere_masks(src)
    cortex = np.isin(src.region_ids, [1101, 1102, 1103, 1104, 1105, 1106, 3])
    # positive control: points of the left cerebral cortex are on it, not on the right one
    lh_pts = src.pos[masks["lh"] & cortex]
    assert ref.label_in_brain_fraction(lh_pts, head, "lh") == 1.0
    assert ref.label_in_brain_fraction(lh_pts, head, "rh") < 0.2
    # the shared data's labels carry coordinates that are not on this subject's cortex
    for h in ("lh", "rh"):
        pos, where = ref.label_positions(paths[f"label_{h}"], paths["subjects_dir"])
        assert where == "label file" and pos.shape[1] == 3
        assert ref.label_in_brain_fraction(pos, head, h) < ex.MIN_LABEL_IN_BRAIN
    with pytest.raises(ValueError, match="hemi"):
        ref.label_in_brain_fraction(lh_pts, head, "left")
    # with a white surface, positions come from it by vertex number
    surf = tmp_path / "sample" / "surf"
    surf.mkdir(parents=True)
    rr = np.arange(30, dtype=float).reshape(10, 3)  # mm
    mne.write_surface(surf / "lh.white", rr, np.array([[0, 1, 2]]), overwrite=True)
    label = mne.Label(vertices=np.array([2, 5]), pos=np.zeros((2, 3)), hemi="lh")
    label.save(tmp_path / "test-lh.label")
    pos, where = ref.label_positions(tmp_path / "test-lh.label", tmp_path)
    assert where == "white surface"
    np.testing.assert_allclose(pos, rr[[2, 5]] / 1000.0)
