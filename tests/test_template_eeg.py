"""The shipped montage-independent net and the template's scalp lead field, from the installed
package: any cap, no training, no MRI; ``deepesi localize`` picks the model itself."""

from __future__ import annotations

import json

import mne
import numpy as np
import pytest

from deepesi.cli import main
from deepesi.pretrained import MODELS_DIR, PRETRAINED, describe_pretrained

SHIPPED = (MODELS_DIR / "template-eeg.pt").is_file()
needs_shipped = pytest.mark.skipif(not SHIPPED, reason="template-eeg is not installed")


@pytest.fixture(scope="module", params=["template-eeg", "template-eeg-w5"])
def template(request):
    """Each shipped montage-independent net (single samples, 5-sample windows) with the dense
    scalp lead field."""
    from deepesi.pretrained import load_pretrained

    return load_pretrained(request.param)


def test_shipped_scalp_leadfield_matches_the_shipped_64_channel_fem():
    """The 10-10 64 layout's lead field interpolated from the shipped scalp lead field against
    the shipped template-eeg64 lead field (the direct FEM, float16)."""
    from deepesi.pretrained import load_pretrained, load_scalp_leadfield

    _, lf64 = load_pretrained("template-eeg64")
    slf = load_scalp_leadfield(lf64.source_space)
    assert slf.source_space.hash() == lf64.source_space.hash()
    pos_head = np.array([ch["loc"][:3] for ch in lf64.info["chs"]])
    t = np.asarray(lf64.trans["trans"])
    gain = slf.gain_at(pos_head @ t[:3, :3].T + t[:3, 3]).reshape(64, -1)
    direct = lf64.gain.reshape(64, -1)
    keep = np.linalg.norm(direct, axis=0) > 0
    rdm = np.linalg.norm(gain[:, keep] / np.linalg.norm(gain[:, keep], axis=0)
                         - direct[:, keep] / np.linalg.norm(direct[:, keep], axis=0), axis=0)
    assert np.median(rdm) < 0.02, np.median(rdm)  # 1.5 % measured (electrode positions)
    mag = np.linalg.norm(gain[:, keep], axis=0) / np.linalg.norm(direct[:, keep], axis=0)
    assert abs(np.median(np.log(mag))) < 0.01


def _recording(montage: str, names=None, source=(0.05, -0.02, 0.05)):
    """An evoked on a standard montage with a dipole's field (from the shipped lead field)."""
    from deepesi.pretrained import load_pretrained
    from deepesi.sensors import make_eeg_sensors

    _, slf = load_pretrained("template-eeg")
    from deepesi.anatomy.template import load_template

    sensors = make_eeg_sensors(load_template(), montage, ch_names=names)
    lf = slf.leadfield(sensors)
    src = lf.source_space
    k = int(np.argmin(np.linalg.norm(src.pos - np.array(source), axis=1)))
    wave = np.sin(np.linspace(0, np.pi, 20))
    data = (lf.gain[:, k, :] @ np.array([0.0, 0.0, 2e-8]))[:, None] * wave[None]
    rng = np.random.default_rng(0)
    data += 0.05 * np.abs(data).max() * rng.standard_normal(data.shape)
    info = mne.create_info(list(sensors.eeg_names), 250.0, "eeg")
    from deepesi.sensors.montages import resolve_montage

    mont, _ = resolve_montage(montage if montage != "standard_1010_64" else "standard_1005")
    info.set_montage(mont, on_missing="ignore")
    return mne.EvokedArray(data, info, tmin=-0.04, verbose=False), src.pos[k]


@needs_shipped
@pytest.mark.parametrize("montage,names", [
    ("standard_1020", ["Fp1", "Fp2", "F7", "F3", "Fz", "F4", "F8", "T7", "C3", "Cz", "C4", "T8",
                       "P7", "P3", "Pz", "P4", "P8", "O1", "O2"]),  # 10-20, 19 channels
    ("biosemi32", None),
    ("biosemi64", None),
    ("GSN-HydroCel-128", None),  # EGI
    ("GSN-HydroCel-256", None),
    ("brainproducts-RNP-BA-128", None),  # BrainVision positions
])
def test_any_layout_localizes_without_training(template, montage, names):
    from deepesi.inverse import apply_network

    model, slf = template
    ev, true = _recording(montage, names)
    res = apply_network(ev, model, forward=slf, verbose=False)
    peak = res.peaks(n=1).table[0] if hasattr(res.peaks(n=1), "table") else None
    k = int(np.argmax(res.amplitudes[:, np.argmin(np.abs(ev.times - res.peak_time))]))
    err = np.linalg.norm(res.source_space.pos[k] - true) * 1e3
    assert err < 25, (montage, err)  # a superficial source at high SNR; medians are in docs
    assert res.meta["n_channels"] == len(ev.ch_names)
    assert res.fit and np.isfinite(res.fit["gof"])
    assert peak is None or peak


@needs_shipped
def test_cli_picks_the_model_and_models_lists_it(tmp_path, capsys):
    ev, _ = _recording("biosemi32")
    fname = tmp_path / "rec-ave.fif"
    ev.save(fname, verbose=False)
    assert main(["localize", str(fname), "-o", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "model: template-eeg-w5 (chosen for an EEG recording with 32 good electrodes" in out
    assert (tmp_path / "out").is_dir()
    assert main(["models"]) == 0
    listing = capsys.readouterr().out
    assert "template-eeg\n" in listing and "template-eeg-w5\n" in listing
    assert "any EEG cap" in listing
    assert main(["models", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["name"] for r in rows} == set(PRETRAINED)


@needs_shipped
def test_brainvision_files_without_positions_through_the_cli(tmp_path, capsys):
    """BrainVision files carry no fiducials: 10-05 names place themselves, other names need
    --montage."""
    out = tmp_path / "out"
    for montage, by_name in (("brainproducts-RNP-BA-128", True), ("GSN-HydroCel-128", False)):
        ev, _ = _recording(montage)
        raw = mne.io.RawArray(np.tile(ev.data, 3), mne.create_info(ev.ch_names, 250.0, "eeg"),
                              verbose=False)
        fname = tmp_path / f"{montage}.vhdr"
        with np.errstate(all="ignore"), pytest.warns(RuntimeWarning, match="double"):
            mne.export.export_raw(fname, raw, fmt="brainvision", verbose=False)
        rc = main(["localize", str(fname), "-o", str(out / f"{montage}-a"), "--quiet"])
        if by_name:
            assert rc == 0
            continue
        assert rc == 2 and "not 10-05 names" in capsys.readouterr().err
        assert main(["localize", str(fname), "--montage", montage, "-o",
                     str(out / f"{montage}-b"), "--quiet"]) == 0


@needs_shipped
def test_digitized_recording_scales_the_template(template, sample_dir):
    """The sample subject's 60 digitized electrodes: the template is scaled to its head shape."""
    from deepesi.inverse.anycap import bind_recording

    model, slf = template
    ev = mne.read_evokeds(sample_dir / "MEG/sample/sample_audvis-auditory-ave.fif",
                          condition=0, verbose=False).pick("eeg")
    bound, lf = bind_recording(model, ev.info, slf)
    meta = bound.meta["bound_to"]
    n_good = len(mne.pick_types(ev.info, eeg=True, exclude="bads"))
    assert meta["n_electrodes"] == n_good >= 59
    res = meta["scaling"]["residual_mm"]
    assert res["after"]["median"] < res["before_fiducials_only"]["median"]
    assert 0.9 < min(meta["scale"]) and max(meta["scale"]) < 1.1
    assert lf.ch_names == bound.ch_names


def test_auto_model_by_modality_and_system(tmp_path, capsys):
    from deepesi.commands.localize import choose_pretrained

    info = mne.create_info([f"MEG{i:03d}" for i in range(10)], 250.0, "mag")
    ev = mne.EvokedArray(np.zeros((10, 5)), info, verbose=False)
    name, why = choose_pretrained(ev)  # Neuromag coils
    assert name == "template-meg306" and "neuromag MEG" in why
    with ev.info._unlock():
        for ch in ev.info["chs"]:
            ch["coil_type"] = 5001  # CTF: none is shipped, one clear line
    with pytest.raises(ValueError, match="no pretrained network is shipped for it"):
        choose_pretrained(ev)
    info = mne.create_info([f"EEG{i:03d}" for i in range(12)], 250.0, "eeg")
    name, why = choose_pretrained(mne.EvokedArray(np.zeros((12, 5)), info, verbose=False))
    assert name == "template-eeg-w5" and "12 good electrodes" in why
    rows = describe_pretrained()
    assert any(r["name"] == "template-eeg64" and r["installed"] for r in rows)
