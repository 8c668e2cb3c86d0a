"""``deepesi headmodel``: inspect (``info``), draw (``show``) and build (``build``) head models.

API twins: :func:`deepesi.anatomy.load.load_head`, :func:`deepesi.sources.make_source_space`,
:func:`deepesi.viz.plot_head_slices`, :meth:`deepesi.anatomy.HeadModel.save`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
from pathlib import Path

import numpy as np

from ..anatomy.regions import REGION_NAMES, SUBCORTICAL_REGIONS

logger = logging.getLogger(__name__)

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
        progress=not getattr(args, "quiet", False),
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


def head_summary(head, spacing_m: float | None, src=None) -> dict:
    """JSON-serialisable description of a head (and its source counts at ``spacing_m``).

    ``src`` may pass a source space already made at ``spacing_m`` so it is not built twice.
    """
    volumes = head.volumes_ml()
    summary = {
        "name": head.name,
        "shape": list(head.shape),
        "voxel_size_mm": [float(v) for v in head.voxel_size],
        "mni_transform": head.mri_to_mni is not None,
        "hash": head.hash(),
        "tissues": [
            {"label": t.label, "name": t.name, "volume_ml": round(volumes[t.name], 3),
             "conductivity_s_per_m": t.conductivity}
            for t in head.tissues
        ],
        "regions": [],
    }
    counts: dict[int, int] = {}
    if spacing_m is not None:
        from ..sources import make_source_space

        if src is None:
            src = make_source_space(head, spacing_m)
        ids, n = np.unique(src.region_ids, return_counts=True)
        counts = dict(zip(ids.tolist(), n.tolist()))
        summary["sources"] = {
            "spacing_mm": spacing_m * 1000.0,
            "total": src.n_sources,
            "cortical": int((~src.is_subcortical).sum()),
            "subcortical": int(src.is_subcortical.sum()),
        }
    if head.regions is not None:
        ids, n = np.unique(head.regions[head.regions > 0], return_counts=True)
        for rid, nvox in zip(ids.tolist(), n.tolist()):
            entry = {"id": rid, "name": REGION_NAMES.get(rid, f"region-{rid}"),
                     "deep": rid in SUBCORTICAL_REGIONS,
                     "volume_ml": round(nvox * head.voxel_volume_ml, 3)}
            if spacing_m is not None:
                entry["sources"] = counts.get(rid, 0)
            summary["regions"].append(entry)
    for rid, n in counts.items():  # cortex of unknown lobe has no region voxels
        if rid not in {r["id"] for r in summary["regions"]}:
            summary["regions"].append({"id": rid, "name": REGION_NAMES.get(rid, "unknown"),
                                       "deep": False, "volume_ml": None, "sources": n})
    return summary


def _format_summary(s: dict) -> str:
    vs = "x".join(f"{v:g}" for v in s["voxel_size_mm"])
    lines = [
        f"head model {s['name']!r}: {' x '.join(map(str, s['shape']))} voxels of {vs} mm",
        f"MNI transform: {'yes' if s['mni_transform'] else 'no'}",
        f"hash: {s['hash'][:16]}",
        "",
        f"{'label':>5}  {'tissue':<14}{'volume (mL)':>12}  {'conductivity (S/m)':>18}",
    ]
    for t in s["tissues"]:
        lines.append(f"{t['label']:>5}  {t['name']:<14}{t['volume_ml']:>12.1f}  "
                     f"{t['conductivity_s_per_m']:>18.4g}")
    if s["regions"]:
        has_src = "sources" in s
        header = f"\n{'id':>5}  {'region':<26}{'volume (mL)':>12}"
        if has_src:
            header += f"  {'sources':>8}"
        lines.append(header)
        for group, deep in (("deep structures", True), ("cortex", False)):
            rows = [r for r in s["regions"] if r["deep"] is deep]
            if not rows:
                continue
            lines.append(f"  -- {group}")
            for r in sorted(rows, key=lambda r: r["id"]):
                vol = "" if r["volume_ml"] is None else f"{r['volume_ml']:.2f}"
                line = f"{r['id']:>5}  {r['name']:<26}{vol:>12}"
                if has_src:
                    line += f"  {r['sources']:>8}"
                lines.append(line)
    else:
        lines.append("\nregions: none (no region volume)")
    if "sources" in s:
        src = s["sources"]
        lines.append(
            f"\nsources at {src['spacing_mm']:g} mm: {src['total']} "
            f"({src['cortical']} cortical, {src['subcortical']} subcortical)"
        )
    return "\n".join(lines)


def _info(args: argparse.Namespace) -> int:
    spacing = None if args.no_sources else _spacing_m(args.spacing)
    head = head_from_args(args.head, args)
    summary = head_summary(head, spacing)
    print(json.dumps(summary, indent=1) if args.json else _format_summary(summary))
    return 0


def _show(args: argparse.Namespace) -> int:
    from ..viz import plot_head_slices, save_figure

    spacing = None if args.no_sources else _spacing_m(args.spacing)
    out = Path(args.output)
    if out.exists() and not args.overwrite:
        raise FileExistsError(f"{out} already exists; pass --overwrite to replace it.")
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
    out = Path(args.output)
    if out.exists() and not args.overwrite:
        raise FileExistsError(f"{out} already exists; pass --overwrite to replace it.")
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
