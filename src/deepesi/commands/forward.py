"""``deepesi forward``: compute a lead field for a head and sensors and write it as ``-fwd.fif``."""

from __future__ import annotations

import argparse


def _conductivity(text: str) -> tuple[str, float]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected TISSUE=VALUE (S/m), got {text!r}")
    try:
        val = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"conductivity of {name!r} is not a number: {value!r}"
        ) from None
    if not val > 0:
        raise argparse.ArgumentTypeError(f"conductivity of {name!r} must be > 0 S/m, got {val}")
    return name, val


def _non_negative(text: str) -> float:
    try:
        val = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not val >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {val}")
    return val


def _positive(text: str) -> float:
    try:
        val = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not val > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {val}")
    return val


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``deepesi forward``."""
    from ..cli import add_common_options

    parser = subparsers.add_parser(
        "forward",
        help="compute an EEG/MEG lead field and write it as an MNE -fwd.fif file",
        description=(
            "Compute the lead field of a head model (FEM for EEG, one-layer BEM on the inner "
            "skull for MEG) for a sensor layout and a cortical + subcortical source space, and "
            "write it as an MNE forward solution (-fwd.fif) with a deepesi sidecar. Results are "
            "cached by content hash ($DEEPESI_CACHE or ~/.cache/deepesi)."
        ),
    )
    parser.add_argument("--head", default="template",
                        help="'template', a head-model folder, a SimNIBS m2m folder, ... "
                             "(anything deepesi.anatomy.load_head accepts; default: template)")
    parser.add_argument("--montage", default="standard_1020",
                        help="EEG montage name (MNE built-in, e.g. standard_1020, biosemi64, "
                             "GSN-HydroCel-128); ignored with --meg (positions come from the file)")
    parser.add_argument("-o", "--output", required=True, help="output file, must end in -fwd.fif")
    parser.add_argument("--spacing", type=_positive, default=5.0,
                        help="source grid spacing in mm (default 5)")
    parser.add_argument("--voxel-size", type=_non_negative, default=2.0, metavar="MM",
                        help="resample the head to this isotropic voxel size (mm) for the FEM "
                             "(default 2: about 1.5 min for 64 electrodes on the template on 2 "
                             "cores; 1 mm, the template's own resolution, takes over 10 min); "
                             "0 keeps the head's own")
    parser.add_argument("--meg", metavar="INFO_FIF", default=None,
                        help="FIF file with MEG (and digitized EEG) channels; needs --trans")
    parser.add_argument("--trans", metavar="TRANS_FIF", default=None,
                        help="head->MRI transform (-trans.fif) for --meg")
    parser.add_argument("--conductivity", type=_conductivity, nargs="+", default=[],
                        metavar="TISSUE=VALUE", help="override conductivities in S/m, e.g. "
                                                     "skull=0.006 csf=1.79")
    parser.add_argument("--cache-dir", default=None,
                        help="lead-field cache folder (default $DEEPESI_CACHE or ~/.cache/deepesi)")
    add_common_options(parser)
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Run ``deepesi forward``; returns the exit code."""
    from .._io import check_overwrite
    from ..anatomy.load import load_head
    from ..forward.api import make_forward
    from ..forward.io import sidecar_path
    from ..sensors import make_eeg_sensors, sensors_from_info
    from ..sources import make_source_space

    out = str(args.output)
    if not out.endswith(("-fwd.fif", "_fwd.fif")):
        raise ValueError(f"the output file must end with -fwd.fif (MNE convention), got {out}.")
    check_overwrite(out, args.overwrite)
    check_overwrite(sidecar_path(out), args.overwrite)
    if args.meg is not None and args.trans is None:
        raise ValueError("--meg needs --trans (the head->MRI transform of the subject).")
    if args.trans is not None and args.meg is None:
        raise ValueError("--trans is only used with --meg INFO_FIF.")
    shipped = _shipped_leadfield(args)
    if shipped is not None:  # the lead field of the shipped model: no FEM to solve
        shipped.save(out, overwrite=args.overwrite)
        if not args.quiet:
            print(f"wrote {out}: {shipped!r} (the shipped template-eeg64 lead field: 2 mm FEM, "
                  "stored in float16)")
        return 0
    head = load_head(args.head, voxel_size=args.voxel_size or None)
    sources = make_source_space(head, spacing=args.spacing / 1000.0)
    if args.conductivity:
        head = head.with_conductivities(dict(args.conductivity))
    if args.meg is not None:
        sensors = sensors_from_info(args.meg, args.trans, head)
    else:
        sensors = make_eeg_sensors(head, args.montage)
    lf = make_forward(head, sensors, sources, cache_dir=args.cache_dir)
    lf.save(out, overwrite=args.overwrite)
    if not args.quiet:
        print(f"wrote {out}: {lf!r}")
    return 0


def _shipped_leadfield(args: argparse.Namespace):
    """The shipped model's lead field when the command asks for exactly it (the template head at
    its default conductivities, its 64-channel layout, 5 mm sources, 2 mm FEM, EEG only)."""
    from .._registry import PRETRAINED

    spec = PRETRAINED["template-eeg64"]
    if (args.head != spec["head"] or args.montage != spec["layout"] or args.spacing != 5.0
            or args.voxel_size != 2.0 or args.conductivity or args.meg is not None):
        return None
    from ..pretrained import load_pretrained

    return load_pretrained("template-eeg64")[1]
