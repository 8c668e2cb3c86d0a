"""A head model described in numbers: tissues, region volumes and source counts per region.

:func:`head_summary` gives a JSON-serialisable dictionary (``deepesi headmodel info --json``,
the demo's ``template-summary.json``); :func:`format_head_summary` turns it into the table that
``deepesi headmodel info`` prints.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .headmodel import HeadModel
from .regions import REGION_NAMES, SUBCORTICAL_REGIONS


def head_summary(head: HeadModel, src: Any = None) -> dict:
    """JSON-serialisable description of a head and, optionally, of its source space.

    Parameters
    ----------
    head : HeadModel
        The head.
    src : SourceSpace | None
        A source space made for ``head`` (e.g. by :func:`deepesi.sources.make_source_space`):
        adds the source counts, in total and per region.

    Returns
    -------
    dict
        ``name``, ``shape``, ``voxel_size_mm``, ``mni_transform`` (bool), ``hash``, ``tissues``
        (label, name, volume in mL, conductivity in S/m), ``regions`` (id, name, deep or not,
        volume in mL, and with ``src`` the number of sources) and, with ``src``, ``sources``
        (spacing in mm, total, cortical and subcortical counts).
    """
    if not isinstance(head, HeadModel):
        raise TypeError(f"head must be a HeadModel, got {type(head).__name__}.")
    volumes = head.volumes_ml()
    summary: dict = {
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
    if src is not None:
        ids, n = np.unique(src.region_ids, return_counts=True)
        counts = dict(zip(ids.tolist(), n.tolist(), strict=True))
        n_deep = int(src.is_subcortical.sum())
        summary["sources"] = {
            "spacing_mm": src.spacing * 1000.0,
            "total": src.n_sources,
            "cortical": src.n_sources - n_deep,
            "subcortical": n_deep,
        }
    if head.regions is not None:
        ids, n = np.unique(head.regions[head.regions > 0], return_counts=True)
        for rid, nvox in zip(ids.tolist(), n.tolist(), strict=True):
            entry = {"id": rid, "name": REGION_NAMES.get(rid, f"region-{rid}"),
                     "deep": rid in SUBCORTICAL_REGIONS,
                     "volume_ml": round(nvox * head.voxel_volume_ml, 3)}
            if src is not None:
                entry["sources"] = counts.get(rid, 0)
            summary["regions"].append(entry)
    listed = {r["id"] for r in summary["regions"]}
    for rid, n_src in counts.items():  # cortex of unknown lobe has no region voxels
        if rid not in listed:
            summary["regions"].append({"id": rid, "name": REGION_NAMES.get(rid, "unknown"),
                                       "deep": False, "volume_ml": None, "sources": n_src})
    return summary


def format_head_summary(summary: dict) -> str:
    """The tables of ``deepesi headmodel info``, from a :func:`head_summary` dictionary."""
    vs = "x".join(f"{v:g}" for v in summary["voxel_size_mm"])
    lines = [
        f"head model {summary['name']!r}: {' x '.join(map(str, summary['shape']))} voxels of "
        f"{vs} mm",
        f"MNI transform: {'yes' if summary['mni_transform'] else 'no'}",
        f"hash: {summary['hash'][:16]}",
        "",
        f"{'label':>5}  {'tissue':<14}{'volume (mL)':>12}  {'conductivity (S/m)':>18}",
    ]
    absent = []
    for t in summary["tissues"]:
        vol = f"{t['volume_ml']:>12.1f}" if t["volume_ml"] > 0 else f"{'none':>12}"
        lines.append(f"{t['label']:>5}  {t['name']:<14}{vol}  "
                     f"{t['conductivity_s_per_m']:>18.4g}")
        if not t["volume_ml"] > 0:
            absent.append(t["name"])
    if absent:
        names = {t["name"] for t in summary["tissues"] if t["volume_ml"] > 0}
        why = (" (the skull is segmented into compact and spongy bone instead)"
               if "Bone" in absent and {"Compact_bone", "Spongy_bone"} <= names else "")
        lines.append(f"       no voxel of: {', '.join(absent)}{why}; their conductivity "
                     "is unused")
    if summary["regions"]:
        has_src = "sources" in summary
        header = f"\n{'id':>5}  {'region':<26}{'volume (mL)':>12}"
        if has_src:
            header += f"  {'sources':>8}"
        lines.append(header)
        for group, deep in (("deep structures", True), ("cortex", False)):
            rows = [r for r in summary["regions"] if r["deep"] is deep]
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
    if "sources" in summary:
        src = summary["sources"]
        lines.append(
            f"\nsources at {src['spacing_mm']:g} mm: {src['total']} "
            f"({src['cortical']} cortical, {src['subcortical']} subcortical)"
        )
    return "\n".join(lines)
