"""The demo on the embedded default: offline, from the template shipped in the package."""

from __future__ import annotations

import json
import os
from pathlib import Path

from ._io import atomic_path, check_overwrite

#: Output file names of :func:`run_demo`, by what they hold.
DEMO_OUTPUTS = {
    "head summary": "template-summary.json",
    "head picture": "template-head.png",
    "source space": "template-src.npz",
}


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
        Source grid spacing in millimetres (0.5 to 50).
    overwrite : bool
        Replace outputs of an earlier run.
    verbose : bool
        Print the head summary.

    Returns
    -------
    outputs : dict of str to Path
        What was written (see :data:`DEMO_OUTPUTS`).

    Raises
    ------
    FileExistsError
        An output exists and ``overwrite`` is False (checked before any work is done).
    """
    from .anatomy.summary import format_head_summary, head_summary
    from .anatomy.template import load_template
    from .sources import make_source_space
    from .viz import plot_head_slices, save_figure

    spacing_mm = float(spacing_mm)
    if not 0.5 <= spacing_mm <= 50:
        raise ValueError(f"spacing_mm must be between 0.5 and 50 mm, got {spacing_mm:g}.")
    out = Path(out_dir)
    outputs = {what: check_overwrite(out / name, overwrite) for what, name in DEMO_OUTPUTS.items()}
    out.mkdir(parents=True, exist_ok=True)
    head = load_template()
    src = make_source_space(head, spacing_mm / 1000.0)
    summary = head_summary(head, src)
    if verbose:
        print(format_head_summary(summary))
    with atomic_path(outputs["head summary"], overwrite=overwrite) as tmp:
        tmp.write_text(json.dumps(summary, indent=1))
    fig = plot_head_slices(head, src, coords_mm=(-20.0, -20.0, 0.0))
    save_figure(fig, outputs["head picture"], overwrite=overwrite)
    src.save(outputs["source space"], overwrite=overwrite)
    return outputs
