"""Tests for `deepesi headmodel`, `deepesi sources` and deepesi.anatomy.load.load_head."""

from __future__ import annotations

import json

import numpy as np
import pytest

from deepesi.anatomy import HeadModel
from deepesi.anatomy.load import load_head
from deepesi.cli import main
from deepesi.sources import SourceSpace, make_source_space


@pytest.fixture(scope="module")
def head(small_synthetic_head) -> HeadModel:
    return small_synthetic_head


@pytest.fixture(scope="module")
def head_dir(head, tmp_path_factory):
    return head.save(tmp_path_factory.mktemp("heads") / "synthetic")


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# ---------------------------------------------------------------------- load_head
def test_load_head_saved_folder(head, head_dir):
    loaded = load_head(head_dir)
    assert loaded.hash() == head.hash()
    assert load_head(str(head_dir)).hash() == head.hash()
    assert load_head(loaded) is loaded


def test_saved_head_keeps_its_hash_whatever_the_affine(head, tmp_path):
    # NIfTI headers hold the affine in float32: a 0.7 mm grid at -88.2 mm is not exact there
    affine = head.affine.copy()
    affine[:3, :3] *= 0.7 / 4.0
    affine[:3, 3] = (-88.2, -7.1, 3.3)
    odd = HeadModel(head.labels, affine, regions=head.regions, name="odd")
    loaded = load_head(odd.save(tmp_path / "odd"))
    assert not np.array_equal(loaded.affine, odd.affine)
    np.testing.assert_allclose(loaded.affine, odd.affine, atol=1e-5)
    assert loaded.hash() == odd.hash()
    # a different grid position still gives a different hash
    moved = affine.copy()
    moved[0, 3] += 0.01
    assert HeadModel(head.labels, moved, regions=head.regions).hash() != odd.hash()


def test_head_model_refuses_what_does_not_fit_its_dtypes(head):
    regions = head.regions.astype(np.int32)
    regions[0, 0, 0] = 70_000  # would wrap around in uint16
    with pytest.raises(ValueError, match="65535"):
        HeadModel(head.labels, head.affine, regions=regions)
    labels = head.labels.astype(np.int16)
    labels[0, 0, 0] = 300
    with pytest.raises(ValueError, match="above 255"):
        HeadModel(labels, head.affine)
    with pytest.raises(ValueError, match="negative"):
        HeadModel(-labels, head.affine)
    with pytest.raises(ValueError, match="non-integer"):
        HeadModel(head.labels + 0.5, head.affine)
    with pytest.raises(ValueError, match="margin_vox"):
        head.crop(margin_vox=-1)


def test_load_head_overrides(head, head_dir):
    loaded = load_head(head_dir, conductivities={"skull": 0.006})
    assert loaded.tissues["Bone"].conductivity == 0.006
    coarse = load_head(head_dir, voxel_size=8.0)
    np.testing.assert_allclose(coarse.voxel_size, 8.0)
    assert load_head(head_dir, voxel_size=4.0).hash() == head.hash()
    with pytest.raises(ValueError, match="voxel_size"):
        load_head(head_dir, voxel_size=-1)


def test_load_head_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file or folder"):
        load_head(tmp_path / "missing")
    with pytest.raises(ValueError, match=r"holds no head\.json"):
        load_head(tmp_path)
    odd = tmp_path / "head.txt"
    odd.write_text("x")
    with pytest.raises(ValueError, match="cannot tell"):
        load_head(odd)
    with pytest.raises(TypeError, match="HeadModel"):
        load_head(3)  # type: ignore[arg-type]


def test_load_head_template_if_available():
    pytest.importorskip("deepesi.anatomy.template")
    head = load_head("template", voxel_size=4.0)
    assert isinstance(head, HeadModel)
    assert head.regions is not None and head.mri_to_mni is not None
    np.testing.assert_allclose(head.voxel_size, 4.0)


@pytest.fixture
def fake_readers(monkeypatch, head):
    """Replace each reader by a recorder that returns the synthetic head."""
    import importlib

    calls = []

    def recorder(module, func):
        def fake(*args, **kwargs):
            calls.append((module, func, args, kwargs))
            return head

        mod = importlib.import_module(f"deepesi.anatomy.{module}")
        monkeypatch.setattr(mod, func, fake)

    for module, func in (("charm", "read_charm"), ("brainweb", "read_brainweb"),
                         ("freesurfer", "read_freesurfer_subject"),
                         ("nifti", "read_labelled_nifti"), ("template", "load_template")):
        try:
            recorder(module, func)
        except ModuleNotFoundError:
            pass
    return calls


def test_load_head_dispatch(fake_readers, tmp_path):
    m2m = tmp_path / "m2m_ernie"
    m2m.mkdir()
    (m2m / "final_tissues.nii.gz").write_bytes(b"")
    fs = tmp_path / "subjects" / "bert"
    (fs / "mri").mkdir(parents=True)
    (fs / "mri" / "aseg.mgz").write_bytes(b"")
    mnc = tmp_path / "subject04_crisp_v.mnc.gz"
    mnc.write_bytes(b"")
    seg = tmp_path / "seg.nii.gz"
    seg.write_bytes(b"")
    cases = [
        (("template",), {}, ("template", "load_template")),
        ((m2m,), {}, ("charm", "read_charm")),
        ((m2m / "final_tissues.nii.gz",), {}, ("charm", "read_charm")),
        ((fs,), {}, ("freesurfer", "read_freesurfer_subject")),
        (("bert",), {"subjects_dir": tmp_path / "subjects"},
         ("freesurfer", "read_freesurfer_subject")),
        ((mnc,), {"voxel_size": 2.0}, ("brainweb", "read_brainweb")),
        ((seg,), {"label_map": {"1": "GM"}}, ("nifti", "read_labelled_nifti")),
    ]
    for args, kwargs, expected in cases:
        fake_readers.clear()
        load_head(*args, verbose=False, **kwargs)
        if not fake_readers:  # that reader module does not exist in this build
            continue
        module, func, call_args, call_kwargs = fake_readers[0]
        assert (module, func) == expected, args
        if module == "freesurfer":
            assert call_args == ("bert",) and call_kwargs["subjects_dir"] == fs.parent
        if module == "charm":
            assert call_args == (m2m,)
        if module == "brainweb":
            assert call_kwargs["voxel_size"] == 2.0 and call_kwargs["verbose"] is False
        if module == "nifti":
            assert call_kwargs["label_map"] == {"1": "GM"}
    with pytest.raises(ValueError, match="label map"):
        load_head(seg)


# ---------------------------------------------------------------------- CLI: help
@pytest.mark.parametrize(
    "argv",
    [
        ["headmodel", "--help"],
        ["headmodel", "info", "--help"],
        ["headmodel", "show", "--help"],
        ["headmodel", "build", "--help"],
        ["sources", "--help"],
    ],
)
def test_help(capsys, argv):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 0
    assert "usage: deepesi" in capsys.readouterr().out


# ---------------------------------------------------------------------- CLI: info
def test_info_text(capsys, head, head_dir):
    code, out, _ = _run(capsys, "headmodel", "info", str(head_dir), "--spacing", "8")
    assert code == 0
    assert "MNI transform: no" in out
    assert "Scalp" in out and "0.465" in out
    src = make_source_space(head, 8e-3)
    assert f"sources at 8 mm: {src.n_sources}" in out
    line = next(ln for ln in out.splitlines() if "Left-Thalamus" in ln)
    assert line.split()[-1] == str(int((src.region_ids == 10).sum()))


def test_info_json(capsys, head, head_dir):
    code, out, _ = _run(capsys, "headmodel", "info", str(head_dir), "--json", "--spacing", "8")
    assert code == 0
    info = json.loads(out)
    assert info["mni_transform"] is False
    volumes = head.volumes_ml()
    for t in info["tissues"]:
        assert t["volume_ml"] == pytest.approx(volumes[t["name"]], abs=1e-3)
    assert info["tissues"][0] == {
        "label": 1, "name": "WM", "volume_ml": pytest.approx(volumes["WM"], abs=1e-3),
        "conductivity_s_per_m": 0.126,
    }
    src = make_source_space(head, 8e-3)
    assert info["sources"]["total"] == src.n_sources
    regions = {r["name"]: r for r in info["regions"]}
    assert regions["Left-Accumbens-area"]["sources"] >= 1
    assert regions["Brain-Stem"]["deep"] is True
    assert sum(r["sources"] for r in info["regions"]) == src.n_sources


def test_info_no_sources_and_conductivity(capsys, head_dir):
    code, out, _ = _run(capsys, "headmodel", "info", str(head_dir), "--json", "--no-sources",
                        "--conductivity", "skull=0.006", "--conductivity", "GM=0.33")
    assert code == 0
    info = json.loads(out)
    assert "sources" not in info
    cond = {t["name"]: t["conductivity_s_per_m"] for t in info["tissues"]}
    assert cond["Bone"] == 0.006 and cond["GM"] == 0.33


# ---------------------------------------------------------------------- CLI: errors
@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (["headmodel", "info", "does/not/exist"], "no such file or folder"),
        (["headmodel", "info", "{head}", "--spacing", "0.1"], "--spacing"),
        (["headmodel", "info", "{head}", "--conductivity", "skull"], "TISSUE=VALUE"),
        (["headmodel", "info", "{head}", "--conductivity", "skull=abc"], "not a number"),
        (["headmodel", "info", "{head}", "--conductivity", "liver=0.2"], "unknown tissue"),
        (["headmodel", "show", "nope.nii.gz", "-o", "{tmp}/x.png"], "no such file"),
        (["headmodel", "build", "{tmp}/nothing", "-o", "{tmp}/out"], "no such file"),
        (["sources", "{head}", "-o", "{tmp}/src.txt"], ".npz"),
        (["sources", "{head}", "-o", "{tmp}/s.npz", "--mne", "{tmp}/x.fif"], "-src.fif"),
        (["sources", "{head}", "-o", "{tmp}/s.npz", "--loose", "2"], "loose"),
    ],
)
def test_errors_are_one_line_exit_2(capsys, head_dir, tmp_path, argv, match):
    argv = [a.format(head=head_dir, tmp=tmp_path) for a in argv]
    code, _, err = _run(capsys, *argv)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"deepesi {argv[0]}: error:")
    assert match in lines[0]
    assert "Traceback" not in err


def test_missing_action_exits_2(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["headmodel"])
    assert exc.value.code == 2


# ---------------------------------------------------------------------- CLI: show / build
def test_show(capsys, head_dir, tmp_path):
    out_png = tmp_path / "head.png"
    code, _, _ = _run(capsys, "headmodel", "show", str(head_dir), "-o", str(out_png),
                        "--coords", "0", "0", "0", "--spacing", "8", "--dpi", "40")
    assert code == 0 and out_png.read_bytes()[:4] == b"\x89PNG"
    code, _, err = _run(capsys, "headmodel", "show", str(head_dir), "-o", str(out_png))
    assert code == 2 and "already exists" in err
    code, _, _ = _run(capsys, "headmodel", "show", str(head_dir), "-o", str(out_png),
                      "--no-sources", "--overwrite", "--dpi", "40", "-q")
    assert code == 0


def test_build_round_trip(capsys, head, head_dir, tmp_path):
    out_dir = tmp_path / "built"
    code, out, _ = _run(capsys, "headmodel", "build", str(head_dir), "-o", str(out_dir),
                        "--conductivity", "scalp=0.43", "--name", "mine")
    assert code == 0 and "wrote" in out
    built = HeadModel.load(out_dir)
    assert built.name == "mine"
    assert built.tissues["Scalp"].conductivity == 0.43
    np.testing.assert_array_equal(built.labels, head.labels)
    np.testing.assert_array_equal(built.regions, head.regions)
    # the input folder is never overwritten
    code, _, err = _run(capsys, "headmodel", "build", str(head_dir), "-o", str(head_dir),
                        "--overwrite")
    assert code == 2 and "overwrite the input" in err


# ---------------------------------------------------------------------- CLI: sources
def test_sources_command(capsys, head, head_dir, tmp_path):
    out_npz = tmp_path / "src.npz"
    out_fif = tmp_path / "out-src.fif"
    code, out, _ = _run(capsys, "sources", str(head_dir), "-o", str(out_npz), "--spacing", "8",
                        "--loose", "0.2", "--mne", str(out_fif))
    assert code == 0
    src = SourceSpace.load(out_npz)
    expected = make_source_space(head, 8e-3, loose=0.2)
    assert src.hash() == expected.hash()
    assert "Left-Thalamus" in out
    mne = pytest.importorskip("mne")
    msrc = mne.read_source_spaces(out_fif, verbose=False)
    np.testing.assert_allclose(msrc[0]["rr"], src.pos, atol=1e-7)
    code, _, err = _run(capsys, "sources", str(head_dir), "-o", str(out_npz))
    assert code == 2 and "already exists" in err
