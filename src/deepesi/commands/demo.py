"""``deepesi demo``: the main job on the embedded default, offline.

It loads the embedded template head, prints its tissue table and source counts, writes a picture of
the head with its cortical and subcortical sources, simulates a 64-channel EEG recording of a
left-thalamic and a right-temporal source and localizes it with the shipped network and eLORETA.
API twin: :func:`deepesi.demo.run_demo`.
"""

from __future__ import annotations

import argparse

from ..cli import add_common_options


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``deepesi demo``."""
    parser = subparsers.add_parser(
        "demo",
        help="simulate a recording on the embedded template head and localize it (offline)",
        description=(
            "Load the embedded 10-tissue template head, summarise it (tissues, volumes, "
            "conductivities, cortical and subcortical sources) and draw it; then simulate a "
            "64-channel EEG recording of two known sources (left thalamus, right temporal "
            "cortex, 10 dB) and localize it with the shipped 4LCNN and with eLORETA on the same "
            "forward, at the same time sample, and print each method's error and goodness of "
            "fit. Writes the localization and an HTML report. Nothing is downloaded."
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
    else:  # the result in one line, even when quiet
        import json

        comparison = json.loads(outputs["comparison"].read_text())
        errs = ", ".join(
            f"{m} {min(r['nearest_of_5_peaks_mm'] for r in rows):.0f}-"
            f"{max(r['nearest_of_5_peaks_mm'] for r in rows):.0f} mm"
            for m, rows in comparison["methods"].items())
        print(f"demo: true sources localized within (best of 5 peaks) {errs}; "
              f"report: {outputs['localization'] / 'report.html'}")
    return 0
