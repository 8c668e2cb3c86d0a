"""``deepesi sources``: build a cortical + subcortical source space and save it.

API twin: :func:`deepesi.sources.make_source_space` (and :meth:`SourceSpace.to_mne`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .headmodel import HEAD_HELP, _spacing_m, add_head_options, head_from_args


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``deepesi sources``."""
    from ..cli import add_common_options

    parser = subparsers.add_parser(
        "sources",
        help="build a cortical + subcortical source space",
        description="Place source points on a regular grid in the cortex (grey matter, fixed "
                    "orientation normal to the cortex) and in the deep structures (thalamus, "
                    "basal ganglia, hippocampus, amygdala, brainstem; free orientation), with "
                    "region names and a neighbour graph, and save them as .npz.",
    )
    parser.add_argument("head", metavar="HEAD", help=HEAD_HELP)
    parser.add_argument("-o", "--output", required=True, metavar="FILE",
                        help="source space file to write (.npz)")
    parser.add_argument("--spacing", metavar="MM", type=float, default=5.0,
                        help="grid spacing in mm (default: 5)")
    parser.add_argument("--loose", type=float, default=0.0,
                        help="loose-orientation weight of the cortical points, 0..1 (default: 0)")
    parser.add_argument("--deep-orientation", choices=("free", "surface"), default="free",
                        help="orientation model of the deep points (default: free)")
    parser.add_argument("--min-points", type=int, default=1, metavar="N",
                        help="minimum points per deep structure (default: 1)")
    parser.add_argument("--mne", metavar="FILE",
                        help="also write an MNE discrete source space (name ending -src.fif)")
    add_head_options(parser)
    add_common_options(parser)
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Build the source space and write it."""
    from .._io import atomic_path, check_overwrite
    from ..sources import make_source_space

    out = Path(args.output)
    if out.suffix != ".npz":
        raise ValueError(f"-o {out}: the source space file must end in .npz.")
    check_overwrite(out, args.overwrite)
    mne_out = None
    if args.mne:
        mne_out = Path(args.mne)
        if not mne_out.name.endswith(("-src.fif", "_src.fif", "-src.fif.gz", "_src.fif.gz")):
            raise ValueError(f"--mne {mne_out}: MNE source space files end in -src.fif.")
        check_overwrite(mne_out, args.overwrite)
    spacing = _spacing_m(args.spacing)
    head = head_from_args(args.head, args)
    src = make_source_space(
        head, spacing, loose=args.loose, deep_orientation=args.deep_orientation,
        min_points_per_region=args.min_points,
    )
    src.save(out, overwrite=args.overwrite)
    if mne_out is not None:
        msrc = src.to_mne()
        with atomic_path(mne_out, overwrite=args.overwrite) as tmp:
            msrc.save(tmp, overwrite=True, verbose=False)
    if not args.quiet:
        print(f"wrote {out}: {src!r}")
        for name, n in src.counts_per_region().items():
            print(f"  {name:<26}{n:>7}")
        if mne_out is not None:
            print(f"wrote {mne_out} (MNE discrete source space, MRI frame)")
    return 0
