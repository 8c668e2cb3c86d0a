"""The demo on the embedded default: offline, from the template shipped in the package."""

from __future__ import annotations

import json
import os
from pathlib import Path

from ._io import atomic_path


def run_demo(
    out_dir: str | os.PathLike, *, spacing_mm: float = 5.0, overwrite: bool = False,
    verbose: bool = True,
) -> dict[str, Path]:
    """Summarise and draw the embedded template head with its source space.

    Parameters
    ----------
    out_dir : path-like
        Output folder; created if missing. Existing outputs are kept unless ``overwrite``.
    spacing_mm : float
        Source grid spacing in millimetres.
    overwrite : bool
        Replace outputs of an earlier run.
    verbose : bool
        Print the head summary.

    Returns
    -------
    outputs : dict of str to Path
        What was written.
    """
    from .anatomy.template import load_template
    from .commands.headmodel import _format_summary, head_summary
    from .sources import make_source_space
    from .viz import plot_head_slices, save_figure

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    head = load_template()
    src = make_source_space(head, spacing_mm / 1000.0)
    summary = head_summary(head, spacing_mm / 1000.0, src=src)
    if verbose:
        print(_format_summary(summary))
    outputs: dict[str, Path] = {}
    with atomic_path(out / "template-summary.json", overwrite=overwrite) as tmp:
        tmp.write_text(json.dumps(summary, indent=1))
    outputs["head summary"] = out / "template-summary.json"
    fig = plot_head_slices(head, src, coords_mm=(-20.0, -20.0, 0.0))
    save_figure(fig, out / "template-head.png", overwrite=overwrite)
    outputs["head picture"] = out / "template-head.png"
    with atomic_path(out / "template-src.npz", overwrite=overwrite) as tmp:
        src.save(tmp, overwrite=True)
    outputs["source space"] = out / "template-src.npz"
    return outputs
