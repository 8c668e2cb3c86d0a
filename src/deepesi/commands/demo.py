"""``deepesi demo``: the main job on the embedded default, offline.

It loads the embedded template head, prints its tissue table and source counts, and writes a picture
of the head with its cortical and subcortical sources. API twin: :func:`deepesi.demo.run_demo`.
"""

from __future__ import annotations

import argparse

from ..cli import add_common_options


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``deepesi demo``."""
    parser = subparsers.add_parser(
        "demo",
        help="run the main job on the embedded template head (offline)",
        description=(
            "Load the embedded 10-tissue template head, summarise it (tissues, volumes, "
            "conductivities, cortical and subcortical sources) and draw it. Nothing is downloaded."
        ),
    )
    parser.add_argument("-o", "--output", default="deepesi-demo", metavar="DIR",
                        help="output folder (default: ./deepesi-demo)")
    parser.add_argument("--spacing", type=float, default=5.0, metavar="MM",
                        help="source grid spacing in mm (default 5)")
    add_common_options(parser)
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Run the demo and print where its outputs went."""
    from ..demo import run_demo

    outputs = run_demo(args.output, spacing_mm=args.spacing, overwrite=args.overwrite,
                       verbose=not args.quiet)
    if not args.quiet:
        for what, path in outputs.items():
            print(f"{what}: {path}")
    return 0
