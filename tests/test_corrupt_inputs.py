"""The corrupt-input suite: damaged files of every format ``deepesi localize`` reads.

Every damaged file must give one clear line (exit 2) or a warning, never a traceback, never a
silent result (a result without a warning is accepted only where it equals the intact file's:
damage in bytes the reader never uses), and no input file may be changed. The tally is written
to ``$DEEPESI_CORRUPT_REPORT`` (JSON) when that is set (the figure in docs/localize.md).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import warnings
from collections import Counter
from pathlib import Path

import mne
import numpy as np
import pytest

from corrupt_files import byte_damages, clean_data, data_damages, write_recordings
from deepesi.cli import main
from deepesi.inverse import read_source_map
from deepesi.pretrained import load_pretrained, pretrained_files

MODEL = "template-eeg64"


def _digest(folder: Path) -> dict[str, str]:
    return {str(f.relative_to(folder)): hashlib.sha256(f.read_bytes()).hexdigest()
            for f in sorted(folder.rglob("*")) if f.is_file()}


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    root = tmp_path_factory.mktemp("corrupt")
    _, lf = load_pretrained(MODEL)
    src = lf.source_space
    j = int(np.flatnonzero(~src.is_subcortical)[500])
    data = clean_data(list(lf.ch_names), lf.gain, j)
    clean = write_recordings(root / "inputs", data, list(lf.ch_names))
    # the model file and a noise covariance, damaged the same ways
    pt = root / "inputs" / "clean-pt" / "model.pt"
    pt.parent.mkdir(parents=True)
    shutil.copyfile(pretrained_files(MODEL)["model"], pt)
    cov = mne.make_ad_hoc_cov(mne.create_info(list(lf.ch_names), 250.0, "eeg"),
                              std={"eeg": 1e-6}, verbose=False)
    cov_file = root / "inputs" / "clean-cov" / "noise-cov.fif"
    cov_file.parent.mkdir(parents=True)
    cov.save(cov_file, verbose=False)
    cases = byte_damages({**clean, "pt": pt, "fif-cov": cov_file}, root / "inputs", seed=0)
    for c in cases:  # the cov and model cases are passed next to the intact raw FIF
        if c.fmt == "fif-cov":
            c.option = "noise_cov"
        elif c.fmt == "pt":
            c.option = "model"
    cases += data_damages(data, list(lf.ch_names), root / "inputs")
    return root, clean, cov_file, cases


def _localize(case_path: Path, option: str, clean: dict, out: Path, caplog):
    args = ["localize", "-o", str(out), "-q"]
    if option == "recording":
        args += [str(case_path), "--model", MODEL]
    elif option == "model":
        args += [str(clean["fif-raw"]), "--model", str(case_path)]
    else:
        args += [str(clean["fif-raw"]), "--model", MODEL, "--noise-cov", str(case_path)]
    caplog.clear()
    with warnings.catch_warnings(record=True) as py_warnings, \
            caplog.at_level(logging.WARNING, logger="deepesi"):
        warnings.simplefilter("always")
        try:
            rc = main(args)
            exc = None
        except BaseException as err:  # a traceback for the user
            rc, exc = None, err
    ours = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    mne_warn = [str(w.message) for w in py_warnings
                if not issubclass(w.category, DeprecationWarning | FutureWarning)]
    return rc, exc, ours, mne_warn


def _same_answer(got, ref) -> bool:
    """The same answer as the intact file: same peak point and time, maps correlated > 0.99
    (bytes the reader never uses, or a few least-significant bits of integer samples, which no
    format without a checksum can tell from the signal)."""
    if got.amplitudes.shape != ref.amplitudes.shape:
        return False
    g, r = got.peaks(n=1), ref.peaks(n=1)
    corr = np.corrcoef(got.amplitudes.ravel(), ref.amplitudes.ravel())[0, 1]
    return (g[0]["source"] == r[0]["source"] and got.peak_time == ref.peak_time
            and corr > 0.99)


def test_corrupt_input_suite(suite, tmp_path, capsys, caplog):
    root, clean, _, cases = suite
    assert len(cases) >= 100
    before = _digest(root / "inputs")
    # the intact results, to tell harmless damage from a silent wrong answer
    reference, clean_warnings = {}, {}
    for fmt in clean:
        out = tmp_path / f"clean-{fmt}"
        rc, exc, ours, _ = _localize(clean[fmt], "recording", clean, out, caplog)
        assert rc == 0 and exc is None, (fmt, exc)
        reference[fmt] = read_source_map(out)
        clean_warnings[fmt] = set(ours)  # e.g. MNE's note on EEGLAB export's head radius
    capsys.readouterr()
    outcome: dict[str, str] = {}
    problems = []
    for k, case in enumerate(cases):
        out = tmp_path / f"out{k}"
        rc, exc, ours, mne_warn = _localize(case.path, case.option, clean, out, caplog)
        base = case.fmt if case.option == "recording" and case.fmt in clean else "fif-raw"
        ours = [w for w in ours if w not in clean_warnings[base]]  # warnings about the damage
        err = capsys.readouterr().err
        if exc is not None:
            outcome[case.name] = "traceback"
            problems.append(f"{case.name}: {type(exc).__name__}: {exc}")
        elif rc == 2:
            lines = [ln for ln in err.splitlines() if "error:" in ln]
            ok = len(lines) == 1 and "Traceback" not in err and not out.exists()
            outcome[case.name] = "error" if ok else "messy error"
            if not ok:
                problems.append(f"{case.name}: {err!r}")
        elif rc == 0 and ours:
            outcome[case.name] = "warning"
        elif rc == 0:
            ref, got = reference[base], read_source_map(out)
            same = _same_answer(got, ref)
            outcome[case.name] = "unchanged" if same else "silent"
            if not same:
                problems.append(f"{case.name}: a changed result without a warning")
        else:
            outcome[case.name] = f"exit {rc}"
            problems.append(f"{case.name}: exit {rc}")
        if mne_warn and outcome[case.name] != "error":
            outcome[case.name] += " (+MNE warning)"
    after = _digest(root / "inputs")
    assert after == before, "an input file was changed"
    tally = Counter(v.split(" (")[0] for v in outcome.values())
    report = os.environ.get("DEEPESI_CORRUPT_REPORT")
    if report:
        Path(report).write_text(json.dumps(
            {"n_files": len(cases), "tally": dict(tally), "outcome": outcome,
             "formats": sorted({c.fmt for c in cases})}, indent=1))
    assert not problems, "\n".join(problems)
    assert tally["traceback"] == tally["silent"] == 0
