"""``deepesi localize``: localize the sources of a recording with a trained network.

API twin: :func:`deepesi.localize.localize` (+ :meth:`LocalizationResult.save`,
:func:`deepesi.report.make_report`).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

EVOKED_SUFFIXES = ("-ave.fif", "_ave.fif", "-ave.fif.gz", "_ave.fif.gz")
EPOCHS_SUFFIXES = ("-epo.fif", "_epo.fif", "-epo.fif.gz", "_epo.fif.gz")


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``deepesi localize``."""
    from ..cli import add_common_options

    parser = subparsers.add_parser(
        "localize",
        help="localize the sources of a recording with a trained network",
        description="Run a trained deepesi network on a recording and write the source "
                    "estimate (MNE -vl.stc), a 4-D NIfTI volume of the activity (MRI mm), the "
                    "peak table (TSV, region names, MRI/MNI mm) and optionally an HTML report. "
                    "Channels are matched to the model by name; bad channels are interpolated; "
                    "EEG is average-referenced; epochs are averaged.",
    )
    parser.add_argument(
        "recording", metavar="RECORDING",
        help="anything mne.io.read_raw reads (FIF, BrainVision .vhdr, EDF/BDF, EEGLAB .set, "
             "CTF .ds), or an evoked (-ave.fif) or epochs (-epo.fif) file; SI units",
    )
    parser.add_argument("--model", required=True, metavar="MODEL.pt",
                        help="trained model (deepesi train), or the name of a pretrained model "
                             "shipped in the package: 'template-eeg64' (template head, 64-channel "
                             "10-10 EEG)")
    parser.add_argument("--source-space", metavar="SRC.npz",
                        help="the source space the model was trained on (default: the one the "
                             "model file records, if any)")
    parser.add_argument("--condition", metavar="NAME",
                        help="condition of an -ave.fif file, or event name of an -epo.fif file")
    parser.add_argument("--tmin", type=float, default=None, metavar="S",
                        help="start of the time window (s)")
    parser.add_argument("--tmax", type=float, default=None, metavar="S",
                        help="end of the time window (s)")
    parser.add_argument("-o", "--output", required=True, metavar="OUT_DIR",
                        help="output folder (must not exist unless --overwrite)")
    parser.add_argument("--report", action="store_true",
                        help="also write report.html (mne.Report) into OUT_DIR")
    parser.add_argument("--head", metavar="HEAD",
                        help="head drawn under the report's slices: 'template' or a deepesi head "
                             "folder (must be the head the source space was built from)")
    parser.add_argument("--peaks", type=int, default=5, metavar="N",
                        help="peaks to print (default: 5)")
    add_common_options(parser)
    parser.set_defaults(func=run)
    return parser


def read_recording(path: str | Path, condition: str | None = None) -> Any:
    """Read a raw, evoked or epochs recording with MNE.

    Parameters
    ----------
    path : path-like
        The file (or a CTF ``.ds`` folder).
    condition : str | None
        Evoked: the comment/condition to use (needed when the file holds several).
        Epochs: the event name to keep.

    Returns
    -------
    mne.io.Raw | mne.Evoked | mne.Epochs
    """
    import mne

    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"recording not found: {path}. Check the path and spelling.")
    name = path.name.lower()
    if name.endswith(EVOKED_SUFFIXES):
        evokeds = mne.read_evokeds(path, verbose=False)
        names = [ev.comment for ev in evokeds]
        if condition is not None:
            if condition not in names:
                raise ValueError(
                    f"--condition {condition!r} is not in {path.name}; it holds {names}."
                )
            return evokeds[names.index(condition)]
        if len(evokeds) > 1:
            raise ValueError(
                f"{path.name} holds {len(evokeds)} conditions {names}; choose one with "
                "--condition NAME."
            )
        return evokeds[0]
    if name.endswith(EPOCHS_SUFFIXES):
        epochs = mne.read_epochs(path, preload=True, verbose=False)
        if condition is not None:
            try:  # MNE's selection: an event name or "/"-separated tags
                epochs = epochs[condition]
            except KeyError as err:
                raise ValueError(
                    f"--condition {condition!r} is not an event of {path.name}; events: "
                    f"{sorted(epochs.event_id)}."
                ) from err
        return epochs
    if condition is not None:
        raise ValueError("--condition applies to -ave.fif and -epo.fif files, not raw data.")
    try:
        return mne.io.read_raw(path, preload=True, verbose=False)
    except (ValueError, RuntimeError, OSError, NotImplementedError) as err:
        raise ValueError(f"cannot read {path} as a recording: {err}") from err


def _load_model(path: str) -> Any:
    from ..training import load_model

    return load_model(path)


def _source_space_for(model: Any, path: str | None) -> Any:
    from ..sources import SourceSpace

    if path is not None:
        return SourceSpace.load(path)
    src = getattr(model, "source_space", None)
    if isinstance(src, SourceSpace):
        return src
    recorded = (getattr(model, "meta", None) or {}).get("source_space_file")
    if recorded and Path(recorded).is_file():
        return SourceSpace.load(recorded)
    raise ValueError(
        "the model file does not carry its source space; pass the one it was trained on with "
        "--source-space SRC.npz (deepesi sources)."
    )


def run(args: argparse.Namespace) -> int:
    """Read, localize, write."""
    from .._io import check_overwrite
    from .._validation import check_file
    from ..localize import localize

    out = Path(args.output)
    if out.exists() and out.is_dir() and not any(out.iterdir()):
        pass  # an empty folder is fine
    else:
        check_overwrite(out, args.overwrite)
    if args.peaks < 1:
        raise ValueError(f"--peaks must be >= 1, got {args.peaks}.")
    from ..pretrained import PRETRAINED, load_pretrained

    if args.model in PRETRAINED:  # a model shipped in the package, with its source space
        model, leadfield = load_pretrained(args.model)
        src = leadfield.source_space if args.source_space is None else None
        if src is None:
            raise ValueError(
                f"--source-space cannot be combined with the pretrained {args.model!r}."
            )
    else:
        check_file(args.model, "model file")
        model = _load_model(args.model)
        src = _source_space_for(model, args.source_space)
    head = None
    if args.head is not None:
        if not args.report:
            raise ValueError("--head is only used by the report; add --report.")
        from ..anatomy.load import load_head

        head = load_head(args.head, progress=not args.quiet)
    inst = read_recording(args.recording, args.condition)
    result = localize(inst, model, src, tmin=args.tmin, tmax=args.tmax)
    result.meta["recording"] = str(Path(args.recording).resolve())
    result.meta["model_file"] = (
        args.model if args.model in PRETRAINED else str(Path(args.model).resolve())
    )
    result.save(out, overwrite=args.overwrite, report=args.report, head=head,
                title=f"deepesi localization: {Path(args.recording).name}")
    if not args.quiet:
        print(f"wrote {out}/: {result!r}")
        print(result.peaks(n=args.peaks))
    return 0
