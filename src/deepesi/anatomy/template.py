"""The template head shipped with deepesi: BrainWeb subject 47 as a 10-tissue model in MNI space.

Built by ``scripts/build_template.py`` (see ``docs/template.md`` and ``data/ATTRIBUTION.md``):
1 mm voxels, CHARM tissue labels, regions for the 15 deep structures, the cortical lobes and the
cerebellar cortex, and MRI coordinates equal to MNI coordinates (``mri_to_mni`` = identity).
"""

from __future__ import annotations

import functools
from importlib import resources

from .._validation import check_voxel_size
from .headmodel import HeadModel

#: Package-relative folder of the template head.
TEMPLATE_RESOURCE = ("deepesi", "data/template")


@functools.lru_cache(maxsize=1)
def _load_template_cached() -> HeadModel:
    package, name = TEMPLATE_RESOURCE
    ref = resources.files(package).joinpath(name)
    if not ref.is_dir():
        raise FileNotFoundError(
            f"the template head {package}/{name} is missing from the installation; rebuild it "
            "with `python scripts/build_template.py` or reinstall deepesi."
        )
    with resources.as_file(ref) as path:
        head = HeadModel.load(path)
    # the cached object is shared: make its arrays read-only so no caller can alter it
    for arr in (head.labels, head.affine, head.regions, head.mri_to_mni):
        if arr is not None:
            arr.setflags(write=False)
    return head


def load_template(voxel_size: float | None = None) -> HeadModel:
    """Load the template head shipped with deepesi (offline; cached after the first call).

    Parameters
    ----------
    voxel_size : float | None
        Isotropic voxel edge in mm. None keeps the shipped 1 mm grid; any other value
        resamples with :meth:`HeadModel.resample` (nearest neighbour, same extent). Coarser
        grids (2-4 mm) make fast FEM forward models for tests and demos.

    Returns
    -------
    HeadModel
        The template, named 'template', with ``regions`` and ``mri_to_mni`` (identity: its MRI
        coordinates are MNI coordinates). Its arrays are read-only (shared cache); use
        ``labels.copy()`` to edit.

    Examples
    --------
    >>> from deepesi.anatomy.template import load_template
    >>> head = load_template()
    >>> head.check_forward_ready()
    """
    head = _load_template_cached()
    if voxel_size is None:
        return head
    voxel_size = check_voxel_size(voxel_size)
    if abs(voxel_size - float(head.voxel_size[0])) < 1e-9:
        return head
    return head.resample(voxel_size)
