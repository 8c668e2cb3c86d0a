"""make_forward: stacking, content-hash cache, errors, and the ``deepesi forward`` command."""

from __future__ import annotations

import numpy as np
import pytest

from deepesi.forward import api
from deepesi.sensors import make_eeg_sensors, sensors_from_info
from helpers_meg import helmet_info

_H, _Z = 0.072 * np.cos(np.radians(20)), -0.072 * np.sin(np.radians(20))
FID = {"nasion": [0.0, _H, _Z], "lpa": [-_H, 0.0, _Z], "rpa": [_H, 0.0, _Z]}
EEG_NAMES = ["Fz", "Cz", "Pz", "Oz", "C3", "C4", "T7", "T8"]


@pytest.fixture(scope="module")
def setup():
    from conftest import make_sphere_labels
    from deepesi.anatomy import HeadModel
    from deepesi.sources import make_source_space

    vol, affine = make_sphere_labels()
    head = HeadModel(vol, affine, name="sphere")
    src = make_source_space(head, 0.012)
    eeg = make_eeg_sensors(head, "standard_1020", ch_names=EEG_NAMES, mri_fiducials=FID)
    pos_head = np.array([ch["loc"][:3] for ch in eeg.info["chs"]])
    info = helmet_info(np.asarray(eeg.trans["trans"]), grade=1, eeg_names=EEG_NAMES,
                       eeg_pos_head=pos_head)
    both = sensors_from_info(info, eeg.trans, head)
    return head, src, eeg, both


class _Fake:
    """Deterministic stand-ins for the EEG and MEG solvers that count their calls."""

    def __init__(self):
        self.eeg = 0
        self.meg = 0

    def compute_eeg(self, head, sensors, sources, eeg_kw):
        self.eeg += 1
        g = np.random.default_rng(0).normal(size=(sensors.n_eeg, sources.n_sources, 3))
        return (g - g.mean(axis=0)) * head.tissues["Scalp"].conductivity

    def compute_meg(self, head, sensors, sources, meg_kw):
        self.meg += 1
        g = np.random.default_rng(1).normal(size=(sensors.n_meg, sources.n_sources, 3)) * 1e-13
        return g, {"method": "fake"}


@pytest.fixture
def fake(monkeypatch):
    f = _Fake()
    monkeypatch.setattr(api, "_compute_eeg", f.compute_eeg)
    monkeypatch.setattr(api, "_compute_meg", f.compute_meg)
    return f


def test_stacks_rows_in_sensor_order(setup, fake, tmp_path):
    head, src, _, both = setup
    lf = api.make_forward(head, both, src, cache_dir=tmp_path, verbose=False)
    assert lf.ch_names == both.ch_names and lf.ch_types == both.ch_types
    assert lf.gain.shape == (len(both.ch_names), src.n_sources, 3)
    assert lf.info["ch_names"] == lf.ch_names
    np.testing.assert_allclose(lf.gain[: both.n_eeg].sum(axis=0), 0.0, atol=1e-12)
    assert lf.meta["head_hash"] == head.hash() and lf.meta["sensors_hash"] == both.hash()
    assert lf.meta["source_space_hash"] == src.hash() and lf.meta["from_cache"] is None
    no_meg = api.make_forward(head, both, src, meg=False, cache_dir=False, verbose=False)
    assert no_meg.ch_names == EEG_NAMES


def test_cache_hit_returns_same_without_recomputing(setup, fake, tmp_path):
    head, src, eeg, _ = setup
    first = api.make_forward(head, eeg, src, cache_dir=tmp_path, verbose=False)
    assert fake.eeg == 1 and len(list((tmp_path / "forward").glob("*.npz"))) == 1
    second = api.make_forward(head, eeg, src, cache_dir=tmp_path, verbose=False)
    assert fake.eeg == 1  # no recomputation
    np.testing.assert_array_equal(second.gain, first.gain)
    assert second.ch_names == first.ch_names and second.meta["from_cache"]
    assert second.meta["cache_key"] == first.meta["cache_key"]
    # anything the lead field depends on changes the key
    skull = head.with_conductivities({"skull": 0.006})
    third = api.make_forward(skull, eeg, src, cache_dir=tmp_path, verbose=False)
    assert fake.eeg == 2 and third.meta["cache_key"] != first.meta["cache_key"]
    api.make_forward(head, eeg, src, eeg_kw={"tol": 1e-6}, cache_dir=tmp_path, verbose=False)
    assert fake.eeg == 3
    fewer = make_eeg_sensors(head, "standard_1020", ch_names=EEG_NAMES[:4], mri_fiducials=FID)
    api.make_forward(head, fewer, src, cache_dir=tmp_path, verbose=False)
    assert fake.eeg == 4


def test_cache_location_and_switch(setup, fake, tmp_path, monkeypatch):
    head, src, eeg, _ = setup
    monkeypatch.setenv("DEEPESI_CACHE", str(tmp_path / "env-cache"))
    assert api.default_cache_dir() == tmp_path / "env-cache"
    api.make_forward(head, eeg, src, verbose=False)
    assert len(list((tmp_path / "env-cache" / "forward").glob("*.npz"))) == 1
    api.make_forward(head, eeg, src, cache_dir=False, verbose=False)
    api.make_forward(head, eeg, src, cache_dir=False, verbose=False)
    assert fake.eeg == 3  # no cache: computed each time
    monkeypatch.delenv("DEEPESI_CACHE")
    assert str(api.default_cache_dir()).endswith(".cache/deepesi")


def test_corrupt_cache_entry_is_recomputed(setup, fake, tmp_path):
    head, src, eeg, _ = setup
    lf = api.make_forward(head, eeg, src, cache_dir=tmp_path, verbose=False)
    path = tmp_path / "forward" / f"{lf.meta['cache_key']}.npz"
    path.write_bytes(b"not a cache file")
    again = api.make_forward(head, eeg, src, cache_dir=tmp_path, verbose=False)
    assert fake.eeg == 2
    np.testing.assert_array_equal(again.gain, lf.gain)


def test_bad_inputs(setup, fake):
    from conftest import make_sphere_labels
    from deepesi.anatomy import HeadModel
    from deepesi.sources import make_source_space

    head, src, eeg, _ = setup
    with pytest.raises(TypeError, match="HeadModel"):
        api.make_forward("head", eeg, src)
    with pytest.raises(TypeError, match="Sensors"):
        api.make_forward(head, "standard_1020", src)
    with pytest.raises(TypeError, match="SourceSpace"):
        api.make_forward(head, eeg, np.zeros((3, 3)))
    vol, affine = make_sphere_labels(radii_mm=(72.0, 66.0, 60.0, 50.0))
    other = HeadModel(vol, affine, name="other")
    with pytest.raises(ValueError, match="another head model"):
        api.make_forward(head, eeg, make_source_space(other, 0.012), cache_dir=False)


def test_real_solvers_end_to_end(setup, tmp_path):
    """Real FEM EEG and BEM MEG on the sphere head (small: 8 electrodes, 178 MEG channels)."""
    pytest.importorskip("deepesi.forward.eeg")
    from deepesi.forward.meg import compute_meg_leadfield

    head, src, _, both = setup
    lf = api.make_forward(head, both, src, eeg_kw={"source_tissues": ("GM", "CSF")},
                          meg_kw={"grade": 3}, cache_dir=tmp_path, verbose=False)
    eeg = lf.pick_types("eeg").gain
    assert np.abs(eeg.sum(axis=0)).max() < 1e-9 * np.abs(eeg).max()  # average reference
    # a superficial radial dipole is seen most by the electrode right above it
    el = both.eeg_pos_mri / np.linalg.norm(both.eeg_pos_mri, axis=1, keepdims=True)
    for name in ("Cz", "T7", "Oz"):
        k = EEG_NAMES.index(name)
        s = int(np.argmax(src.pos @ el[k]))
        radial = src.pos[s] / np.linalg.norm(src.pos[s])
        nearest = int(np.argmax(el @ radial))
        assert np.argmax(np.abs(eeg[:, s] @ radial)) == nearest
    meg, _, _, _ = compute_meg_leadfield(head, both, src.pos, grade=3, verbose=False)
    np.testing.assert_allclose(lf.pick_types("meg").gain, meg, rtol=1e-10, atol=0)


# ------------------------------------------------------------------ CLI
def test_cli_forward(fake, tmp_path):
    pytest.importorskip("deepesi.anatomy.template")
    from deepesi.cli import main
    from deepesi.forward.io import read_forward

    out = tmp_path / "template-fwd.fif"
    argv = ["forward", "--head", "template", "--voxel-size", "6", "--montage", "standard_1020",
            "-o", str(out), "--spacing", "20", "--cache-dir", str(tmp_path / "cache"),
            "--conductivity", "skull=0.006", "--quiet"]
    assert main(argv) == 0
    lf = read_forward(out)
    assert lf.n_channels == 94 and set(lf.ch_types) == {"eeg"}
    assert lf.meta["conductivities"]["Bone"] == 0.006
    assert lf.source_space.n_sources > 50
    assert main(argv) == 2  # exists, no --overwrite
    assert main([*argv, "--overwrite"]) == 0
    assert fake.eeg == 1  # the second run came from the cache


def test_cli_forward_errors(tmp_path, capsys):
    from deepesi.cli import main

    assert main(["forward", "--head", "template", "-o", str(tmp_path / "x.fif")]) == 2
    assert "-fwd.fif" in capsys.readouterr().err
    assert main(["forward", "--head", "template", "-o", str(tmp_path / "x-fwd.fif"),
                 "--meg", "info.fif"]) == 2
    assert "--trans" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["forward", "-o", str(tmp_path / "x-fwd.fif"), "--conductivity", "skull"])


def test_cli_forward_reuses_the_shipped_leadfield(tmp_path, capsys):
    """The README's command asks for the shipped model's own forward: written in seconds."""
    import time

    from deepesi.cli import main
    from deepesi.forward.io import read_forward
    from deepesi.pretrained import load_pretrained

    out = tmp_path / "template-fwd.fif"
    t0 = time.perf_counter()
    assert main(["forward", "--head", "template", "--montage", "standard_1010_64",
                 "-o", str(out)]) == 0
    assert time.perf_counter() - t0 < 60
    assert "shipped template-eeg64 lead field" in capsys.readouterr().out
    lf = read_forward(out)
    _, shipped = load_pretrained("template-eeg64")
    assert lf.ch_names == shipped.ch_names
    scale = np.abs(shipped.gain).max()
    np.testing.assert_allclose(lf.gain, shipped.gain, rtol=1e-4, atol=1e-6 * scale)
    assert lf.source_space.hash() == shipped.source_space.hash()
