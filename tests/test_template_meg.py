"""The shipped template MEG net (MEGIN/Neuromag 306) from the installed package: a recording of
that system is localized with no training and no MRI, its own head position placing the
sensors for the fit; ``deepesi localize`` picks the model itself."""

from __future__ import annotations

import json

import numpy as np
import pytest

from deepesi.cli import main
from deepesi.pretrained import MODELS_DIR, describe_pretrained

SHIPPED = (MODELS_DIR / "template-meg306.pt").is_file()
needs_shipped = pytest.mark.skipif(not SHIPPED, reason="template-meg306 is not installed")


@needs_shipped
def test_shipped_meg_model_and_its_nominal_forward(tmp_path):
    from deepesi.inverse.helmet import meg_system
    from deepesi.pretrained import load_pretrained, pretrained_files, template_meg_forward

    assert "leadfield" not in pretrained_files("template-meg306")  # computed, not shipped
    model, lf = load_pretrained("template-meg306")
    assert meg_system(model.info) == "neuromag306"
    assert lf.ch_names == list(model.ch_names) and lf.n_sources == model.n_sources
    assert lf.source_space.hash() == model.source_space.hash()
    # the forward where the head is 10 mm lower differs; at the nominal position it is the same
    info = model.info.copy()
    move = np.eye(4)
    move[2, 3] = 0.010
    with info._unlock():
        info["dev_head_t"]["trans"] = move @ info["dev_head_t"]["trans"]
    moved = template_meg_forward(model, info, cache_dir=tmp_path)
    rel = np.linalg.norm(moved.gain - lf.gain) / np.linalg.norm(lf.gain)
    assert 0.05 < rel < 1.0
    again = template_meg_forward(model, cache_dir=tmp_path)
    assert np.allclose(again.gain, lf.gain, rtol=1e-4, atol=1e-3 * np.abs(lf.gain).max())
    row = next(r for r in describe_pretrained() if r["name"] == "template-meg306")
    assert row["installed"] and "neuromag306" in row["channels"]
    assert row["model_mb"] <= 8.0
    ev = row["evaluation"]["test_forward"]
    assert ev["n"] >= 500 and np.isfinite(ev["all"]["median_mm"])


@needs_shipped
def test_localize_a_meg_recording_without_training(tmp_path, sample_dir, capsys):
    """The sample recording's MEG alone: --model auto picks template-meg306, the forward is
    computed at the recording's head position and the peak is refitted on the data."""
    from deepesi.datasets.mne_sample import WINDOW, load_auditory_evoked
    from deepesi.inverse import read_source_map
    from deepesi.references import AUDITORY_MNI_BOX, box_distance_mm, hemisphere_peaks

    ev = load_auditory_evoked(sample_dir / "MEG/sample/sample_audvis-auditory-ave.fif")
    fname = tmp_path / "meg-ave.fif"
    ev.pick("meg").save(fname, verbose=False)
    out = tmp_path / "res"
    rc = main(["localize", str(fname), "-o", str(out), "--tmin", str(WINDOW[0]),
               "--tmax", str(WINDOW[1])])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "model: template-meg306" in printed and "head position:" in printed
    assert "goodness of fit" in printed
    doc = json.loads((out / "localization.json").read_text())
    pos = doc["meta"]["head_position"]
    assert pos["system"] == "neuromag306" and not pos["outside_trained_range"]
    assert pos["head_shift_mm"] < 1e-6  # the model's nominal position is this recording's
    assert pos["scaling"]["mode"] == "3-axis" and doc["meta"]["ssp_restored"]
    fit = doc.get("fit") or {}
    assert 0 < fit.get("gof", 0) <= 1
    # the N100m: both auditory cortices within 15 mm of the MNI auditory box (issue 15)
    smap = read_source_map(out)
    peaks = hemisphere_peaks(smap.amplitudes.mean(axis=1), smap.source_space)
    for h in ("lh", "rh"):
        p_mm = smap.source_space.pos[peaks[h]] * 1e3
        assert box_distance_mm(p_mm, AUDITORY_MNI_BOX[h]) <= 15.0, h
