"""One entry point for every kind of head: :func:`load_head` dispatches on what it is given.

- a :class:`HeadModel`: used as is;
- ``'template'``: the embedded template head, :func:`deepesi.anatomy.template.load_template`;
- a folder with ``head.json``: a saved deepesi head, :meth:`HeadModel.load`;
- a folder with ``final_tissues.nii.gz`` (a SimNIBS CHARM ``m2m_<subject>`` folder):
  :func:`deepesi.anatomy.charm.read_charm`;
- a folder with ``mri/aseg.mgz`` (a FreeSurfer subject), or a subject name with
  ``subjects_dir``: :func:`deepesi.anatomy.freesurfer.read_freesurfer_subject`;
- ``*.mnc`` / ``*.mnc.gz`` (BrainWeb crisp model): :func:`deepesi.anatomy.brainweb.read_brainweb`;
- ``*.nii`` / ``*.nii.gz`` / ``*.mgz`` (a labelled segmentation, with ``label_map``):
  :func:`deepesi.anatomy.nifti.read_labelled_nifti`.

The readers are imported only when needed.
"""

from __future__ import annotations

import importlib
import inspect
import os
from collections.abc import Callable, Mapping
from pathlib import Path

from .._deprecate import progress_to_verbose
from .._logging import verbose as _verbose
from .._validation import check_voxel_size
from .headmodel import HeadModel

#: The string that names the embedded template head.
TEMPLATE_SPEC = "template"

_SPEC_HELP = (
    "HEAD must be 'template', a deepesi head folder (with head.json), a SimNIBS m2m folder "
    "(with final_tissues.nii.gz), a FreeSurfer subject folder (with mri/aseg.mgz), a BrainWeb "
    "*.mnc(.gz) file, or a labelled *.nii(.gz) with a label map"
)


def _reader(module: str, func: str) -> Callable:
    """Import ``deepesi.anatomy.<module>.<func>`` lazily, with a clear error if it is missing."""
    try:
        mod = importlib.import_module(f"{__package__}.{module}")
    except ModuleNotFoundError as err:
        if err.name and err.name.endswith(f"anatomy.{module}"):
            raise ValueError(
                f"this deepesi build has no {module} reader (deepesi.anatomy.{module}); "
                "upgrade deepesi or convert the head to a deepesi head folder."
            ) from err
        raise
    return getattr(mod, func)


def _call(func: Callable, *args, **kwargs) -> tuple[HeadModel, set[str]]:
    """Call a reader with the keyword arguments it accepts; return the head and those used."""
    params = inspect.signature(func).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    used = {k: v for k, v in kwargs.items() if v is not None and (takes_any or k in params)}
    head = func(*args, **used)
    if not isinstance(head, HeadModel):  # pragma: no cover - a reader bug
        raise TypeError(f"{func.__module__}.{func.__name__} returned {type(head).__name__}.")
    return head, set(used)


def _is_freesurfer_subject(path: Path) -> bool:
    return (path / "mri" / "aseg.mgz").is_file()


@progress_to_verbose
@_verbose
def load_head(
    spec: str | os.PathLike | HeadModel,
    *,
    label_map: str | os.PathLike | Mapping | None = None,
    subjects_dir: str | os.PathLike | None = None,
    conductivities: Mapping[str | int, float] | None = None,
    voxel_size: float | None = None,
    verbose: bool | str | int | None = None,
) -> HeadModel:
    """Load a head model from whatever describes it (see the module docstring for the table).

    Parameters
    ----------
    spec : str | path-like | HeadModel
        ``'template'`` for the embedded template head (to read a folder that happens to be
        called ``template``, write ``./template``), a path to a head folder or segmentation,
        a FreeSurfer subject name (with ``subjects_dir``), or a :class:`HeadModel`.
    label_map : path-like | dict | None
        For labelled NIfTI images: how the image's labels map to tissues (see
        :func:`deepesi.anatomy.nifti.read_labelled_nifti`). Ignored by the other readers.
    subjects_dir : path-like | None
        FreeSurfer ``SUBJECTS_DIR``: lets ``spec`` be a subject name.
    conductivities : dict | None
        Conductivity overrides in S/m, e.g. ``{'skull': 0.006}``, applied whatever the source.
    voxel_size : float | None
        Voxel edge in **mm** of the returned head. Readers that can merge voxels themselves
        (e.g. BrainWeb, by majority vote) do so; otherwise the head is resampled with
        :meth:`HeadModel.resample` (nearest neighbour).
    verbose : bool | str | int | None
        Log level for the call (:func:`deepesi.set_log_level`), passed on to the reader;
        progress bars are shown at INFO.

    Returns
    -------
    HeadModel

    Raises
    ------
    FileNotFoundError
        ``spec`` is neither ``'template'`` nor an existing path (or subject).
    ValueError
        ``spec`` exists but is not a kind of head deepesi can read.
    """
    if voxel_size is not None:
        voxel_size = check_voxel_size(voxel_size)
    if isinstance(spec, HeadModel):
        head, used = spec, set()
    else:
        if not isinstance(spec, str | os.PathLike):
            raise TypeError(
                f"head must be a HeadModel, a path or 'template', got {type(spec).__name__}."
            )
        head, used = _load_spec(spec, label_map, subjects_dir, conductivities, voxel_size, verbose)
    if conductivities and "conductivities" not in used:
        head = head.with_conductivities(conductivities)
    if voxel_size is not None and "voxel_size" not in used:
        if not _same_voxel_size(head, voxel_size):
            head = head.resample(voxel_size)
    return head


def _same_voxel_size(head: HeadModel, voxel_size: float) -> bool:
    return bool(abs(head.voxel_size - voxel_size).max() < 1e-6)


def _load_spec(
    spec: str | os.PathLike,
    label_map,
    subjects_dir,
    conductivities,
    voxel_size,
    verbose: bool | str | int | None,
) -> tuple[HeadModel, set[str]]:
    opts = dict(conductivities=conductivities, voxel_size=voxel_size, verbose=verbose)
    if isinstance(spec, str) and spec.strip().lower() == TEMPLATE_SPEC:
        return _call(_reader("template", "load_template"), **opts)
    path = Path(spec).expanduser()
    if not path.exists() and subjects_dir is not None:
        candidate = Path(subjects_dir).expanduser() / str(spec)
        if _is_freesurfer_subject(candidate):
            path = candidate
    if not path.exists():
        extra = f" (nor a subject in {subjects_dir})" if subjects_dir is not None else ""
        raise FileNotFoundError(f"no such file or folder: {spec}{extra}. {_SPEC_HELP}.")
    if path.is_dir():
        if (path / "head.json").is_file():
            return HeadModel.load(path), set()
        if (path / "final_tissues.nii.gz").is_file():
            return _call(_reader("charm", "read_charm"), path, **opts)
        if _is_freesurfer_subject(path):
            func = _reader("freesurfer", "read_freesurfer_subject")
            return _call(func, path.name, subjects_dir=path.parent, **opts)
        raise ValueError(
            f"{path} is a folder but holds no head.json, final_tissues.nii.gz or mri/aseg.mgz. "
            f"{_SPEC_HELP}."
        )
    name = path.name.lower()
    if name.endswith((".mnc", ".mnc.gz")):
        return _call(_reader("brainweb", "read_brainweb"), path, **opts)
    if name.endswith((".nii", ".nii.gz", ".mgz", ".mgh")):
        if name == "final_tissues.nii.gz" and label_map is None:
            return _call(_reader("charm", "read_charm"), path.parent, **opts)
        if label_map is None:
            raise ValueError(
                f"{path.name} is a labelled image: give a label map that names its labels "
                "(label_map=..., CLI --label-map FILE; a TSV 'label<TAB>tissue' or a JSON "
                "{\"1\": \"csf\", ...}, see deepesi.anatomy.nifti). For a SimNIBS segmentation "
                "pass the m2m folder instead."
            )
        return _call(
            _reader("nifti", "read_labelled_nifti"), path, label_map=label_map, **opts
        )
    raise ValueError(f"cannot tell what kind of head {path} is from its name. {_SPEC_HELP}.")
