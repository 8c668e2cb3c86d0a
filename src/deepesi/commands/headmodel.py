"""``deepesi headmodel``: inspect (``info``), draw (``show``) and build (``build``) head models.

API twins: :func:`deepesi.anatomy.load.load_head`, :func:`deepesi.sources.make_source_space`,
:func:`deepesi.viz.plot_head_slices`, :meth:`deepesi.anatomy.HeadModel.save`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from .._io import check_overwrite
from ..anatomy.summary import format_head_summary, head_summary

HEAD_HELP = (
    "'template', a deepesi head folder, a SimNIBS m2m folder, a FreeSurfer subject folder, "
    "a BrainWeb *.mnc(.gz) file, or a labelled *.nii(.gz) (with --label-map)"
)


# ---------------------------------------------------------------------- shared with `sources`
def add_head_options(parser: argparse.ArgumentParser) -> None:
    """Options that say how to read HEAD (passed to :func:`~deepesi.anatomy.load.load_head`)."""
    group = parser.add_argument_group("reading the head")
    group.add_argument("--label-map", metavar="FILE",
                       help="label map of a labelled NIfTI segmentation (its labels → tissues)")
    group.add_argument("--subjects-dir", metavar="DIR",
                       help="FreeSurfer SUBJECTS_DIR (then HEAD may be a subject name)")
    group.add_argument("--conductivity", metavar="TISSUE=S_PER_M", action="append", default=[],
                       help="override a conductivity in S/m, e.g. --conductivity skull=0.006 "
                            "(repeatable)")
    group.add_argument("--voxel-size", metavar="MM", type=float,
                       help="resample the head to this voxel size in mm")


def parse_conductivities(items: list[str]) -> dict[str, float]:
    """``['skull=0.006', 'GM=0.33']`` → ``{'skull': 0.006, 'GM': 0.33}`` (S/m)."""
    out: dict[str, float] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"--conductivity {item!r}: write TISSUE=VALUE, e.g. skull=0.006.")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            raise ValueError(
                f"--conductivity {item!r}: {value!r} is not a number (S/m)."
            ) from None
    return out


def head_from_args(spec: str, args: argparse.Namespace):
    """Load HEAD with the reading options of :func:`add_head_options`."""
    from ..anatomy.load import load_head

    return load_head(
        spec,
        label_map=args.label_map,
        subjects_dir=args.subjects_dir,
        conductivities=parse_conductivities(args.conductivity) or None,
        voxel_size=args.voxel_size,
    )


def _spacing_m(mm: float) -> float:
    if not 0.5 <= mm <= 50:
        raise ValueError(f"--spacing is in mm and must be between 0.5 and 50, got {mm:g}.")
    return mm / 1000.0


# ---------------------------------------------------------------------- parser
def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``deepesi headmodel`` and its actions."""
    from ..cli import add_common_options

    parser = subparsers.add_parser(
        "headmodel",
        help="inspect, draw and build head models",
        description="Inspect, draw and build 10-tissue head models (SimNIBS CHARM labels).",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    info = actions.add_parser(
        "info", help="tissue table, region volumes and source counts",
        description="Print the tissue table (label, name, volume, conductivity), the region "
                    "volumes, the source counts per region at a grid spacing, and whether the "
                    "head has an MRI→MNI transform.",
    )
    info.add_argument("head", metavar="HEAD", help=HEAD_HELP)
    info.add_argument("--spacing", metavar="MM", type=float, default=5.0,
                      help="source grid spacing in mm for the counts (default: 5)")
    info.add_argument("--no-sources", action="store_true", help="skip the source counts")
    info.add_argument("--json", action="store_true", help="machine-readable output")
    add_head_options(info)
    add_common_options(info)

    show = actions.add_parser(
        "show", help="draw orthogonal slices with tissues and source points",
        description="Draw axial, coronal and sagittal slices of the head with its tissues and "
                    "source points (cortical and subcortical) to an image file.",
    )
    show.add_argument("head", metavar="HEAD", help=HEAD_HELP)
    show.add_argument("-o", "--output", required=True, metavar="FILE",
                      help="image file to write (.png, .pdf, .svg)")
    show.add_argument("--coords", nargs=3, type=float, metavar=("X", "Y", "Z"),
                      help="MRI coordinates in mm where the slices cross (default: brain centre)")
    show.add_argument("--no-sources", action="store_true", help="do not draw source points")
    show.add_argument("--spacing", metavar="MM", type=float, default=5.0,
                      help="source grid spacing in mm (default: 5)")
    show.add_argument("--title", help="figure title")
    show.add_argument("--dpi", type=int, default=150, help="resolution (default: 150)")
    add_head_options(show)
    add_common_options(show)

    build = actions.add_parser(
        "build", help="read a segmentation and write a deepesi head folder",
        description="Read a head (see HEAD) and write it as a deepesi head folder "
                    "(tissues.nii.gz, regions.nii.gz, head.json).",
    )
    build.add_argument("spec", metavar="SPEC", help=HEAD_HELP)
    build.add_argument("-o", "--output", required=True, metavar="OUT_DIR",
                       help="head folder to write")
    build.add_argument("--name", help="name of the head model (default: from the reader)")
    add_head_options(build)
    add_common_options(build)

    parser.set_defaults(func=run)
    return parser


# ---------------------------------------------------------------------- actions
def run(args: argparse.Namespace) -> int:
    """Dispatch to the action."""
    return {"info": _info, "show": _show, "build": _build}[args.action](args)


def _info(args: argparse.Namespace) -> int:
    spacing = None if args.no_sources else _spacing_m(args.spacing)
    head = head_from_args(args.head, args)
    src = None
    if spacing is not None:
        from ..sources import make_source_space

        src = make_source_space(head, spacing)
    summary = head_summary(head, src)
    print(json.dumps(summary, indent=1) if args.json else format_head_summary(summary))
    return 0


def _show(args: argparse.Namespace) -> int:
    from ..viz import plot_head_slices, save_figure

    spacing = None if args.no_sources else _spacing_m(args.spacing)
    out = check_overwrite(args.output, args.overwrite)
    head = head_from_args(args.head, args)
    src = None
    if spacing is not None:
        from ..sources import make_source_space

        src = make_source_space(head, spacing)
    fig = plot_head_slices(head, src, coords_mm=args.coords, title=args.title)
    save_figure(fig, out, overwrite=args.overwrite, dpi=args.dpi)
    if not args.quiet:
        print(f"wrote {out}")
    return 0


def _build(args: argparse.Namespace) -> int:
    out = check_overwrite(args.output, args.overwrite)
    spec_path = Path(args.spec).expanduser()
    if spec_path.exists() and out.exists() and out.resolve() in (
        spec_path.resolve(), *spec_path.resolve().parents
    ):
        raise ValueError(f"{out} would overwrite the input {args.spec}; choose another OUT_DIR.")
    head = head_from_args(args.spec, args)
    if args.name:
        head = dataclasses.replace(head, name=args.name)
    head.save(out, overwrite=args.overwrite)
    if not args.quiet:
        print(f"wrote {out}: {head!r}")
    return 0
