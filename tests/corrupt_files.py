"""Damaged files of every format ``deepesi localize`` reads, for the corrupt-input suite.

:func:`clean_recordings` writes one intact recording per format (FIF raw / evoked / epochs,
BrainVision, EDF, EEGLAB continuous and epochs) of a known source on the shipped template
model's 64 electrodes, with 1/f background noise (recorded EEG is correlated from sample to
sample). :func:`byte_damages` and :func:`data_damages` derive damaged copies: byte-level
(truncated, zeroed blocks, wrong magic, random bytes, bit rot, absurd header fields, wrong data
type) and data-level (NaN/Inf, µV stored as V, zeroed spans, clipped channels, all zeros, too
many flat channels), each a :class:`Case` naming the file to pass to ``deepesi localize``.
"""

from __future__ import annotations

import re
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path

import mne
import numpy as np

SFREQ = 250.0
N_TIMES = 500
TMIN = -0.5


@dataclass
class Case:
    """One damaged input: ``path`` is what the user passes (``option`` says where)."""

    name: str
    path: Path
    option: str = "recording"  # or "model", "noise_cov"
    fmt: str = ""


def clean_data(ch_names: list[str], gain: np.ndarray, j: int, seed: int = 0) -> np.ndarray:
    """A 100 nAm radial-ish dipole at source ``j`` peaking at 100 ms on 1/f noise of ~1 µV."""
    rng = np.random.default_rng(seed)
    t = np.arange(N_TIMES) / SFREQ + TMIN
    wave = np.exp(-0.5 * ((t - 0.1) / 0.02) ** 2)
    signal = (gain[:, j] @ np.array([0.0, 0.0, 1e-7]))[:, None] * wave
    spec = np.fft.rfft(rng.standard_normal((len(ch_names), N_TIMES)), axis=1)
    f = np.fft.rfftfreq(N_TIMES, 1 / SFREQ)
    spec /= np.maximum(f, 1.0)  # 1/f amplitude: strongly correlated sample to sample
    noise = np.fft.irfft(spec, n=N_TIMES, axis=1)
    noise *= 1e-6 / noise.std()
    return signal + noise


def _info(ch_names: list[str]) -> mne.Info:
    info = mne.create_info(list(ch_names), SFREQ, "eeg")
    with info._unlock():
        info["meas_date"] = None
    return info


def write_recordings(folder: Path, data: np.ndarray, ch_names: list[str], tag: str = "clean",
                     formats: tuple[str, ...] | None = None,
                     exact: np.ndarray | None = None) -> dict[str, Path]:
    """``data`` (n_ch, N_TIMES) in V written in every format; returns {format: file to read}.

    The epochs are ``data`` plus a little trial-to-trial noise, except where ``exact`` (a mask
    like ``data``) is True: there every epoch holds ``data`` itself (a damage the average keeps).
    """
    folder.mkdir(parents=True, exist_ok=True)
    montage = mne.channels.make_standard_montage("colin27_1005")
    raw = mne.io.RawArray(data, _info(ch_names), first_samp=0, verbose=False)
    raw.set_montage(montage, verbose=False)
    evoked = mne.EvokedArray(data, _info(ch_names), tmin=TMIN, nave=40, verbose=False)
    evoked.set_montage(montage, verbose=False)
    n_ep = 8
    ep_data = np.repeat(data[None], n_ep, axis=0)
    with np.errstate(invalid="ignore"):
        ep_data += np.random.default_rng(1).standard_normal(ep_data.shape) * 1e-8
    if exact is not None:
        ep_data[:, exact] = data[exact]
    epochs = mne.EpochsArray(ep_data, _info(ch_names), tmin=TMIN, verbose=False)
    epochs.set_montage(montage, verbose=False)
    out: dict[str, Path] = {}
    writers = {  # format: (file name, writer)
        "fif-raw": ("rec-raw.fif", lambda f: raw.save(f, overwrite=True, verbose=False)),
        "fif-ave": ("rec-ave.fif", lambda f: evoked.save(f, overwrite=True, verbose=False)),
        "fif-epo": ("rec-epo.fif", lambda f: epochs.save(f, overwrite=True, verbose=False)),
        "brainvision": ("rec.vhdr", lambda f: mne.export.export_raw(
            f, raw, fmt="brainvision", overwrite=True, verbose=False)),
        "edf": ("rec.edf", lambda f: mne.export.export_raw(
            f, raw, fmt="edf", overwrite=True, verbose=False)),
        "eeglab": ("rec.set", lambda f: mne.export.export_raw(
            f, raw, fmt="eeglab", overwrite=True, verbose=False)),
        "eeglab-epochs": ("rec-epochs.set", lambda f: mne.export.export_epochs(
            f, epochs, fmt="eeglab", overwrite=True, verbose=False)),
    }
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MNE's export notes (float64 -> float32)
        for fmt in formats or tuple(writers):
            name, write = writers[fmt]
            sub = folder / f"{tag}-{fmt}"
            sub.mkdir(parents=True, exist_ok=True)
            out[fmt] = sub / name
            write(out[fmt])
    return out


def _data_file(path: Path) -> Path:
    """The file holding a recording's samples (BrainVision: the .eeg; EEGLAB: .fdt if any)."""
    if path.suffix == ".vhdr":
        return path.with_suffix(".eeg")
    if path.suffix == ".set" and path.with_suffix(".fdt").exists():
        return path.with_suffix(".fdt")
    return path


def _copy_set(clean: Path, dest_dir: Path) -> Path:
    """Copy a recording (with its companion files) to ``dest_dir``; returns the new path."""
    dest_dir.mkdir(parents=True, exist_ok=True)
    for f in clean.parent.iterdir():
        shutil.copyfile(f, dest_dir / f.name)
    return dest_dir / clean.name


def _edit(path: Path, fn) -> None:
    b = bytearray(path.read_bytes())
    path.write_bytes(bytes(fn(b)))


def _huge_header(fmt: str, path: Path) -> None:
    """A header field claiming an absurd size or count."""
    if fmt.startswith("fif") or fmt == "pt":
        _edit(path, lambda b: b[:8] + (0x7FFFFFF0).to_bytes(4, "big") + b[12:])
    elif fmt == "brainvision":
        text = path.read_text()
        path.write_text(re.sub(r"NumberOfChannels=\d+", "NumberOfChannels=1000000000", text))
    elif fmt == "edf":
        _edit(path, lambda b: b[:184] + b"99999999" + b[192:252] + b"9999" + b[256:])
    elif fmt.startswith("eeglab"):
        from scipy.io import loadmat, savemat

        mat = loadmat(path, appendmat=False)
        key = "EEG" if "EEG" in mat else None
        if key:
            mat[key]["nbchan"][0, 0] = np.array([[10**9]])
        else:
            mat["nbchan"] = np.array([[10**9]])
        savemat(path, {k: v for k, v in mat.items() if not k.startswith("__")},
                appendmat=False)
    else:
        raise ValueError(fmt)


def byte_damages(clean: dict[str, Path], folder: Path, seed: int = 0) -> list[Case]:
    """Byte-level damages of each clean file (12 per format, 4 more for BrainVision)."""
    rng = np.random.default_rng(seed)
    cases: list[Case] = []
    for fmt, path in clean.items():
        option = {"pt": "model", "cov": "noise_cov"}.get(fmt, "recording")
        kinds = ["empty", "trunc05", "trunc40", "trunc75", "trunc98", "zero30", "zero60",
                 "zero85", "magic", "random", "bitrot", "huge_header"]
        if fmt == "brainvision":
            kinds += ["vhdr_garbage", "vhdr_wrong_dtype", "eeg_missing", "vhdr_no_datafile"]
        for kind in kinds:
            dest = _copy_set(path, folder / f"{fmt}-{kind}")
            target = _data_file(dest) if fmt != "pt" else dest
            n = target.stat().st_size
            if kind == "empty":
                target.write_bytes(b"")
            elif kind.startswith("trunc"):
                keep = int(n * int(kind[5:]) / 100) + 3  # an interrupted copy: any byte
                _edit(target, lambda b, k=keep: b[:k])
            elif kind.startswith("zero"):
                at, size = int(n * int(kind[4:]) / 100), min(20000, n // 8)
                _edit(target, lambda b, a=at, s=size: b[:a] + bytes(s) + b[a + s:])
            elif kind == "magic":  # the identifying bytes (BrainVision: its header's)
                _edit(dest if fmt == "brainvision" else target,
                      lambda b: b"\xab" * 16 + b[16:])
            elif kind == "random":
                target.write_bytes(rng.integers(0, 256, n, dtype=np.uint8).tobytes())
            elif kind == "bitrot":
                idx = rng.choice(n, size=min(200, n), replace=False)

                def flip(b, idx=idx):
                    for i in idx:
                        b[i] ^= 0xFF
                    return b

                _edit(target, flip)
            elif kind == "huge_header":
                _huge_header(fmt, dest)
            elif kind == "vhdr_garbage":
                dest.write_bytes(rng.integers(0, 256, 2000, dtype=np.uint8).tobytes())
            elif kind == "vhdr_wrong_dtype":
                text = dest.read_text()
                dest.write_text(re.sub(r"BinaryFormat=\w+", "BinaryFormat=INT_16", text))
            elif kind == "eeg_missing":
                dest.with_suffix(".eeg").unlink()
            elif kind == "vhdr_no_datafile":
                text = dest.read_text()
                dest.write_text(re.sub(r"DataFile=.*\n", "", text))
            cases.append(Case(f"{fmt}-{kind}", dest, option, fmt))
    return cases


def data_damages(data: np.ndarray, ch_names: list[str], folder: Path) -> list[Case]:
    """Recordings written intact by MNE but holding damaged data."""
    bad: dict[str, np.ndarray] = {}
    d = data.copy()
    d[5, 200:260] = np.nan
    bad["nan"] = d
    d = data.copy()
    d[7, 300] = np.inf
    bad["inf"] = d
    bad["microvolt_as_volt"] = data * 1e6
    d = data.copy()
    d[:, 240:270] = 0.0  # a zeroed block over the response, every channel
    bad["zeroed_span"] = d
    d = data.copy()
    d[10, 230:300] = d[10].max()  # one channel clipped at its rail
    bad["clipped_channel"] = d
    bad["all_zero"] = np.zeros_like(data)
    d = data.copy()
    d[::2] = 0.0  # half the electrodes flat: too many to interpolate
    bad["half_flat"] = d
    cases = []
    for kind, arr in bad.items():
        with np.errstate(invalid="ignore"):
            exact = ~np.isfinite(arr) | ~np.isclose(arr, data, rtol=0, atol=0) | (arr == 0)
        # EDF stores integers: NaN/Inf cannot be written, µV-as-V overflows its range
        formats = ["fif-raw", "fif-ave", "fif-epo", "brainvision", "eeglab"]
        if kind not in ("nan", "inf", "microvolt_as_volt"):
            formats.append("edf")
        for fmt in formats:
            try:
                written = write_recordings(folder, arr, ch_names, tag=kind, formats=(fmt,),
                                           exact=exact)
            except Exception:  # a format that refuses such data: no case
                continue
            cases += [Case(f"{f}-{kind}", p, "recording", f) for f, p in written.items()]
    return cases
