"""``deepesi models``: the pretrained networks shipped in the package and how well they do.

API twin: :func:`deepesi.pretrained.describe_pretrained`.
"""

from __future__ import annotations

import argparse
import json


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``deepesi models``."""
    parser = subparsers.add_parser(
        "models",
        help="list the pretrained networks shipped in the package, with their evaluation",
        description="List the pretrained networks shipped in this installation: what each "
                    "reads (head, channels), its files and its measured single-source "
                    "localization error on held-out simulations (median mm, share within "
                    "10 mm, deep / cortical). 'deepesi localize' without --model picks one.",
    )
    parser.add_argument("--json", action="store_true", help="print the table as JSON")
    parser.set_defaults(func=run)
    return parser


def _cell(ev: dict | None, key: str) -> str:
    if not ev or key not in ev:
        return "-"
    e = ev[key]
    return (f"{e['subcortical']['median_mm']:.1f} / {e['cortical']['median_mm']:.1f} mm, "
            f"{100 * e['all']['within_10mm']:.0f} % ≤10 mm")


def run(args: argparse.Namespace) -> int:
    """Print the table."""
    from ..pretrained import describe_pretrained

    rows = describe_pretrained()
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    for r in rows:
        status = "" if r["installed"] else "  [not installed: rebuild it with scripts/]"
        print(f"{r['name']}{status}")
        print(f"  {r['description']}")
        print(f"  channels: {r['channels']}; {r['n_sources']} source points; "
              f"model {r['model_mb']:.1f} MB")
        ev = r.get("evaluation")
        if ev and "test_forward" in ev:
            label = ev.get("test_label", "test forward (conductivities ±20 %)")
            print(f"  {label}, 10 dB, deep / cortical: {_cell(ev, 'test_forward')}")
        if ev and "refined_test_forward" in ev:
            print(f"  the same, peak refined on the recording's forward (--refine): "
                  f"{_cell(ev, 'refined_test_forward')}")
        for key, val in sorted((ev or {}).get("caps", {}).items()):
            print(f"  cap {key}, realistic mismatch, 10 dB, deep / cortical: "
                  f"{val['subcortical']['median_mm']:.1f} / {val['cortical']['median_mm']:.1f}"
                  f" mm")
    return 0
