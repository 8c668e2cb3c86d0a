"""A real recording's EEG channels fitted to the shipped model: names, reference, missing."""

from __future__ import annotations

import mne
import numpy as np
import pytest

from deepesi.demo import simulate_demo_recording
from deepesi.inverse import apply_network
from deepesi.inverse.channels import canonical_name
from deepesi.pretrained import load_pretrained

mne.set_log_level("WARNING")


def test_canonical_names():
    assert canonical_name("EEG Fp1-Ref") == "FP1"
    assert canonical_name("EEG T3-REF") == "T7" and canonical_name("t6") == "P8"
    assert canonical_name("Cz") == "CZ" and canonical_name("A1") == "A1"
    assert canonical_name("EEG_O2-AVG") == "O2"
    assert canonical_name("FCz") == "FCZ" and canonical_name("EEG CPz-Cz") == "CPZ"


@pytest.fixture(scope="module")
def shipped():
    model, lf = load_pretrained("template-eeg64")
    evoked, cov, _ = simulate_demo_recording(lf, snr_db=20.0, seed=3)
    return model, lf, evoked, cov


def _peak(res):
    return int(res.peaks(1)[0]["source"])


def test_edf_style_names_missing_and_reference_are_handled(shipped):
    model, lf, evoked, cov = shipped
    ref = apply_network(evoked, model, noise_cov=cov)
    ev = evoked.copy()
    ev.del_proj()
    rename = {n: f"EEG {n}-Ref" for n in ev.ch_names}
    rename.update({"T7": "EEG T3-Ref", "P8": "EEG T6-Ref"})
    ev.rename_channels(rename)
    ev.drop_channels(["EEG Oz-Ref", "EEG F5-Ref", "EEG PO4-Ref"])  # a cap with fewer electrodes
    ev.data[ev.ch_names.index("EEG FCz-Ref")] = 0.0  # the reference electrode, recorded flat
    res = apply_network(ev, model, noise_cov=None)
    report = res.meta["channels"]
    assert report["renamed"]["EEG T3-Ref"] == "T7" and len(report["renamed"]) == 61
    assert sorted(report["filled"]) == ["F5", "Oz", "PO4"] and report["flat"] == ["FCz"]
    assert report["positions_from"] == "recording"
    # filling 4 of 64 electrodes moves the peak by at most one grid diagonal here
    d = np.linalg.norm(lf.source_space.pos[_peak(res)] - lf.source_space.pos[_peak(ref)])
    assert d * 1e3 <= 10.0, d * 1e3


def test_too_many_missing_is_one_clear_error(shipped):
    model, _, evoked, _ = shipped
    ev = evoked.copy().pick(evoked.ch_names[:30])
    with pytest.raises(ValueError, match="34 of them are missing"):
        apply_network(ev, model)
