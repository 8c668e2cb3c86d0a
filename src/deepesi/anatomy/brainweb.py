"""Reader for BrainWeb crisp anatomical models (MINC), mapped onto the 10-tissue CHARM labels.

BrainWeb's "20 normal anatomical models" (Aubert-Broche, Evans & Collins, NeuroImage 2006) are
discrete ("crisp") label volumes of 0.5 mm voxels registered to ICBM/MNI space, with 11 classes.
:data:`BRAINWEB_TO_CHARM` maps them onto SimNIBS CHARM's ``final_tissues`` numbering; the
eyeballs, which BrainWeb does not label, are found by a geometric rule (:func:`find_eyes`).
Coarser grids are made by a majority vote per block (:func:`downsample_majority`), so thin
layers (CSF, skull) survive as well as they can.
"""

from __future__ import annotations

import gzip
import itertools
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path

import nibabel as nib
import numpy as np
from nibabel import orientations
from scipy import ndimage

from .._deprecate import progress_to_verbose
from .._logging import logger, verbose
from .._progress import progress as _progress_bar
from .._validation import check_file, check_voxel_size
from .atlas import label_regions_from_mni
from .headmodel import HeadModel
from .tissues import TissueTable

#: BrainWeb crisp model classes (label → name), as in the BrainWeb documentation.
BRAINWEB_CLASSES: dict[int, str] = {
    0: "background",
    1: "CSF",
    2: "grey matter",
    3: "white matter",
    4: "fat",
    5: "muscle",
    6: "muscle/skin",
    7: "skull",
    8: "vessels",
    9: "around fat",
    10: "dura mater",
    11: "bone marrow",
}

#: BrainWeb class → CHARM tissue label (1 WM, 2 GM, 3 CSF, 5 Scalp, 6 Eye_balls,
#: 7 Compact_bone, 8 Spongy_bone, 9 Blood, 10 Muscle; 0 outside). See ``docs/template.md``.
#:
#: - skull (7) → Compact_bone and bone marrow (11) → Spongy_bone: BrainWeb separates the skull's
#:   cortical tables from the diploë exactly as CHARM does; CHARM's undifferentiated "Bone" (4)
#:   is not needed.
#: - vessels (8) → Blood.
#: - fat (4), muscle/skin (6) and around fat (9) → Scalp: SimNIBS lumps skin, subcutaneous fat
#:   and connective tissue into one scalp compartment (0.465 S/m). BrainWeb's "muscle/skin" is the
#:   skin layer of the whole head (it also holds the eyeballs, see :func:`find_eyes`).
#: - muscle (5) → Muscle.
#: - dura mater (10) → CSF: CHARM has no dura; everything between the pia and the inner table of
#:   the skull is its CSF compartment. The dura is < 1 mm thick, and labelling it bone would
#:   thicken the skull where BrainWeb already has it, while labelling it CSF keeps the (thin)
#:   BrainWeb CSF layer continuous, which matters more for EEG.
BRAINWEB_TO_CHARM: dict[int, int] = {
    0: 0,
    1: 3,
    2: 2,
    3: 1,
    4: 5,
    5: 10,
    6: 5,
    7: 7,
    8: 9,
    9: 5,
    10: 3,
    11: 8,
}

#: Tie-break order of :func:`downsample_majority` for CHARM labels: when several tissues have
#: the same count in a block, the first in this list wins. Thin layers whose continuity matters
#: most for the volume conductor come first (skull tables, CSF), then small structures, then the
#: rest; air (0) comes last, so a half-filled boundary block belongs to the head.
CHARM_TIE_PRIORITY: tuple[int, ...] = (7, 8, 4, 3, 6, 9, 2, 1, 10, 5, 0)

#: Where the eyeballs are searched for, MNI mm: centre-search box for the left eye
#: (x, y, z ranges; the right eye mirrors x).
_EYE_CENTRE_BOX_MM = ((-48.0, -18.0), (30.0, 75.0), (-55.0, -20.0))
#: Margin (mm) of the box in which distances are computed, around the centre-search box.
_EYE_MARGIN_MM = 20.0
#: Plausible radius (mm) of the largest ball inscribed in an eyeball (adult eye: 11-13 mm).
_EYE_RADIUS_RANGE_MM = (9.0, 15.0)


def map_brainweb_classes(
    classes: np.ndarray, mapping: Mapping[int, int] | None = None
) -> np.ndarray:
    """Map a BrainWeb crisp class volume onto CHARM tissue labels.

    Parameters
    ----------
    classes : ndarray of int
        BrainWeb classes 0..11 (see :data:`BRAINWEB_CLASSES`), any shape.
    mapping : dict | None
        Class → tissue label. Default :data:`BRAINWEB_TO_CHARM`. Every class present must be in it.

    Returns
    -------
    labels : ndarray of uint8
        Tissue labels, same shape as ``classes``.
    """
    mapping = BRAINWEB_TO_CHARM if mapping is None else dict(mapping)
    classes = np.asarray(classes)
    if classes.dtype.kind not in "iu":
        raise TypeError(f"BrainWeb classes must be an integer array, got dtype {classes.dtype}.")
    present = np.unique(classes)
    unknown = sorted(set(present.tolist()) - set(mapping))
    if unknown:
        raise ValueError(
            f"class(es) {unknown} are not BrainWeb crisp classes {sorted(mapping)}; is this a "
            "crisp model (*_crisp_v.mnc) rather than a fuzzy model or an MR image?"
        )
    lut = np.zeros(int(max(max(mapping), present.max())) + 1, dtype=np.uint8)
    for cls, lab in mapping.items():
        if not 0 <= int(lab) <= 255:
            raise ValueError(f"mapping sends class {cls} to {lab}; tissue labels are 0..255.")
        lut[int(cls)] = int(lab)
    return lut[classes]


def downsample_majority(
    labels: np.ndarray, factor: int, priority: Sequence[int] | None = None
) -> np.ndarray:
    """Downsample a label volume by an integer ``factor`` with a majority vote per block.

    Each output voxel takes the most frequent label of its ``factor**3`` input block (nearest
    neighbour would keep one arbitrary voxel of the block and drop thin layers at random).
    Ties go to the label that comes first in ``priority``. A grid whose size is not a multiple
    of ``factor`` is padded with 0 at the high end of each axis.

    Parameters
    ----------
    labels : ndarray of uint8, shape (nx, ny, nz)
        Label volume.
    factor : int
        Block edge in voxels (>= 1).
    priority : sequence of int | None
        Tie-break order (labels earlier in the list win ties). Labels not listed rank after
        the listed ones, lower labels first. Default :data:`CHARM_TIE_PRIORITY`.

    Returns
    -------
    ndarray of uint8, shape ``ceil(n / factor)`` per axis
        The voxel ``I`` of the result covers input voxels ``factor*I .. factor*I + factor - 1``;
        its centre is at input index ``factor*I + (factor - 1) / 2``.
    """
    labels = np.asarray(labels)
    if labels.ndim != 3 or labels.dtype.kind not in "iub":
        raise ValueError(f"labels must be a 3-D integer array, got {labels.dtype} {labels.shape}.")
    if not isinstance(factor, int | np.integer) or factor < 1:
        raise ValueError(f"factor must be a positive integer, got {factor!r}.")
    labels = labels.astype(np.uint8)
    factor = int(factor)
    if factor == 1:
        return labels.copy()
    pad = [(0, (-n) % factor) for n in labels.shape]
    if any(p[1] for p in pad):
        labels = np.pad(labels, pad, mode="constant", constant_values=0)
    out_shape = tuple(n // factor for n in labels.shape)
    # one strided view per position in the block; most blocks are uniform and need no vote
    views = [
        labels[dx::factor, dy::factor, dz::factor]
        for dx, dy, dz in itertools.product(range(factor), repeat=3)
    ]
    best = views[0].copy()
    mixed = np.zeros(out_shape, dtype=bool)
    for view in views[1:]:
        mixed |= view != best
    where = np.nonzero(mixed)
    if not where[0].size:
        return best
    votes = np.stack([view[where] for view in views], axis=1)  # (n_mixed, factor**3)
    present = np.unique(votes)
    priority = CHARM_TIE_PRIORITY if priority is None else tuple(int(p) for p in priority)
    order = [p for p in priority if p in present] + sorted(
        int(p) for p in present if p not in priority
    )
    # score = count * n_labels + (n_labels - 1 - rank): the count decides, the rank breaks ties
    n_lab = len(order)
    best_score = np.full(len(votes), -1, dtype=np.int32)
    winner = np.zeros(len(votes), dtype=np.uint8)
    for rank, lab in enumerate(order):
        count = (votes == lab).sum(axis=1, dtype=np.int32)
        score = np.where(count > 0, count * n_lab + (n_lab - 1 - rank), -1)
        better = score > best_score
        winner[better] = lab
        best_score[better] = score[better]
    best[where] = winner
    return best


def _world_box_to_slices(
    affine: np.ndarray, shape: Sequence[int], box_mm: Sequence[tuple[float, float]]
) -> tuple[slice, slice, slice]:
    """Voxel slices covering an axis-aligned world box (mm), clipped to the grid."""
    corners = np.array(np.meshgrid(*box_mm, indexing="ij")).reshape(3, -1).T
    ijk = nib.affines.apply_affine(np.linalg.inv(affine), corners)
    lo = np.clip(np.floor(ijk.min(axis=0)).astype(int), 0, shape)
    hi = np.clip(np.ceil(ijk.max(axis=0)).astype(int) + 1, 0, shape)
    return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))  # type: ignore


def find_eyes(
    classes: np.ndarray, affine: np.ndarray, eye_class: int = 6
) -> tuple[np.ndarray, list[dict]]:
    """Find the eyeballs in a BrainWeb crisp model registered to MNI space.

    BrainWeb has no eye class: each eyeball is a round body of the "muscle/skin" class (6)
    embedded in orbital fat, touching the eyelid skin in front. The rule, per orbit: in a box
    around the expected eye centre (MNI |x| 18-48, y 30-75, z -55..-20 mm), take the point of
    class 6 farthest from any other class (Euclidean distance transform); that distance ``r``
    is the radius of the largest ball inscribed in the eyeball. The eye is the class-6 voxels
    within ``r`` + one voxel diagonal of that centre. The ball cuts the eyeball off from
    the eyelid skin it touches. An orbit whose inscribed radius is not 9-15 mm (adult eyes:
    11-13 mm) is reported and left unlabelled.

    Parameters
    ----------
    classes : ndarray of int, shape (nx, ny, nz)
        BrainWeb classes.
    affine : ndarray, shape (4, 4)
        Voxel → MNI mm (axis-aligned).
    eye_class : int
        Class that holds the eyeballs (6, muscle/skin).

    Returns
    -------
    mask : ndarray of bool
        True on eyeball voxels.
    eyes : list of dict
        Per eye: side, centre (mm), inscribed radius (mm), volume (mL), found (bool).
    """
    affine = np.asarray(affine, float)
    vox = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))
    mask = np.zeros(classes.shape, dtype=bool)
    eyes = []
    for side, sign in (("left", 1.0), ("right", -1.0)):
        cbox = [tuple(sorted(sign * np.array(_EYE_CENTRE_BOX_MM[0])))]
        cbox += list(_EYE_CENTRE_BOX_MM[1:])
        obox = [(a - _EYE_MARGIN_MM, b + _EYE_MARGIN_MM) for a, b in cbox]
        osl = _world_box_to_slices(affine, classes.shape, obox)
        sub = classes[osl] == eye_class
        info: dict = {"side": side, "found": False}
        if not sub.any():
            eyes.append(info)
            continue
        dist = ndimage.distance_transform_edt(sub, sampling=vox)
        # centre search restricted to the inner box
        origin = np.array([s.start for s in osl])
        csl = _world_box_to_slices(affine, classes.shape, cbox)
        inner = np.zeros(sub.shape, dtype=bool)
        inner[tuple(slice(c.start - o, c.stop - o) for c, o in zip(csl, origin))] = True
        cand = np.where(inner, dist, 0.0)
        centre_sub = np.unravel_index(int(np.argmax(cand)), cand.shape)
        radius = float(cand[centre_sub])
        centre_mm = nib.affines.apply_affine(affine, np.add(centre_sub, origin))
        info.update(centre_mm=[round(float(c), 2) for c in centre_mm], radius_mm=round(radius, 2))
        if not _EYE_RADIUS_RANGE_MM[0] <= radius <= _EYE_RADIUS_RANGE_MM[1]:
            logger.warning(
                "no eyeball found in the %s orbit (largest inscribed ball %.1f mm, expected "
                "%g-%g mm); the eye stays labelled as scalp.",
                side,
                radius,
                *_EYE_RADIUS_RANGE_MM,
            )
            eyes.append(info)
            continue
        grid = np.ogrid[tuple(slice(0, n) for n in sub.shape)]  # broadcastable index axes
        d2 = sum(((grid[a].astype(np.float32) - centre_sub[a]) * vox[a]) ** 2 for a in range(3))
        eye = sub & (d2 <= (radius + float(np.linalg.norm(vox))) ** 2)
        mask[osl] |= eye
        info.update(found=True, volume_ml=round(float(eye.sum() * np.prod(vox) / 1000.0), 3))
        eyes.append(info)
    return mask, eyes


def read_minc_classes(
    path: str | os.PathLike, check_header: Callable[[np.ndarray], object] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Read a (possibly gzipped) MINC crisp volume: its classes on RAS voxel axes, and its affine.

    Parameters
    ----------
    path : path-like
        A BrainWeb crisp model, ``*_crisp_v.mnc`` or ``*_crisp_v.mnc.gz`` (MINC1/MINC2).
    check_header : callable | None
        ``check_header(affine)`` runs on the header's affine before the voxels are read (so
        that a bad request fails fast).

    Returns
    -------
    classes : ndarray of int, shape (nx, ny, nz)
        The BrainWeb classes (:data:`BRAINWEB_CLASSES`), voxel axes reoriented to RAS.
    affine : ndarray, shape (4, 4)
        Voxel → world (MNI, mm) affine of ``classes``.
    """
    path = Path(path)
    tmpdir = None
    try:
        src = path
        if path.name.endswith(".gz"):
            tmpdir = tempfile.mkdtemp(prefix="deepesi-brainweb-")
            src = Path(tmpdir) / path.name[:-3]
            try:
                with gzip.open(path, "rb") as fin, open(src, "wb") as fout:
                    shutil.copyfileobj(fin, fout, length=1 << 22)
            except (OSError, EOFError) as err:
                raise ValueError(f"{path} is not a valid gzip file ({err}).") from err
        try:
            img = nib.load(src)
        except Exception as err:  # nibabel raises several types for unreadable files
            raise ValueError(
                f"{path} could not be read as a MINC image ({type(err).__name__}: {err}). "
                "read_brainweb expects a BrainWeb crisp model, e.g. subject04_crisp_v.mnc(.gz)."
            ) from err
        if not isinstance(img, nib.minc1.Minc1Image | nib.minc2.Minc2Image):
            raise ValueError(
                f"{path} is a {type(img).__name__}, not a MINC image; read_brainweb expects a "
                "BrainWeb crisp model (*_crisp_v.mnc[.gz]). For a labelled NIfTI use the "
                "labelled-NIfTI reader with a label map."
            )
        affine = img.affine
        if check_header is not None:
            check_header(affine)
        data = np.asarray(img.dataobj)
    finally:
        if tmpdir is not None:
            shutil.rmtree(tmpdir, ignore_errors=True)
    if data.ndim != 3:
        raise ValueError(f"{path} holds a {data.ndim}-D image; a BrainWeb crisp model is 3-D.")
    if data.dtype.kind == "f":
        # numpy.allclose(data, rounded, atol=1e-3) without its temporary copies: a 0.5 mm
        # model has 57 M voxels of float64
        rounded = np.rint(data)
        err = np.subtract(data, rounded, out=data if data.flags.writeable else None)
        np.abs(err, out=err)
        tol = np.abs(rounded)
        tol *= 1e-5
        tol += 1e-3
        close = bool(np.all(err <= tol))
        del err, tol
        if not close:
            raise ValueError(
                f"{path} holds non-integer values; it looks like an MR image or a fuzzy (tissue "
                "probability) model, not a crisp model (*_crisp_v.mnc)."
            )
        data = rounded
    if data.min() < 0 or data.max() > max(BRAINWEB_CLASSES):
        raise ValueError(
            f"{path} holds values {data.min():g}..{data.max():g}; BrainWeb crisp classes are "
            f"0..{max(BRAINWEB_CLASSES)}. Is this a crisp model (*_crisp_v.mnc)?"
        )
    data = data.astype(np.uint8)
    ornt = orientations.io_orientation(affine)
    data = orientations.apply_orientation(data, ornt)
    affine = affine @ orientations.inv_ornt_aff(ornt, img.shape)
    return np.ascontiguousarray(data), affine


@progress_to_verbose
@verbose
def read_brainweb(
    path: str | os.PathLike,
    *,
    voxel_size: float | None = None,
    regions: bool = True,
    conductivities: Mapping[str | int, float] | None = None,
    verbose: bool | str | int | None = None,
) -> HeadModel:
    """Read a BrainWeb crisp anatomical model as a 10-tissue :class:`HeadModel`.

    Parameters
    ----------
    path : path-like
        A BrainWeb crisp model, ``*_crisp_v.mnc`` or ``*_crisp_v.mnc.gz`` (MINC1/MINC2).
    voxel_size : float | None
        Output voxel edge in mm; an integer multiple of the model's voxel size (0.5 mm for
        BrainWeb: 0.5, 1, 1.5, 2 ...). Blocks are merged by a majority vote
        (:func:`downsample_majority`). None keeps the native grid.
    regions : bool
        Label anatomical regions (deep structures, cortical lobes, cerebellum) from the MNI
        region atlas shipped with deepesi (BrainWeb is registered to MNI space).
    conductivities : dict | None
        Overrides of the standard SimNIBS conductivities (S/m), e.g. ``{'skull': 0.006}``.
    verbose : bool | str | int | None
        Log level for the call (:func:`deepesi.set_log_level`); the progress bar is shown at
        INFO.

    Returns
    -------
    HeadModel
        CHARM tissue labels (see :data:`BRAINWEB_TO_CHARM`) with eyes found by
        :func:`find_eyes`, RAS voxel axes, affine in MNI mm, and ``mri_to_mni`` = identity.
    """
    path = check_file(path, "BrainWeb model")
    if not (path.name.endswith(".mnc") or path.name.endswith(".mnc.gz")):
        raise ValueError(
            f"{path.name} does not look like a MINC file (*.mnc or *.mnc.gz); read_brainweb "
            "reads BrainWeb crisp models such as subject04_crisp_v.mnc.gz."
        )
    tissues = TissueTable.charm(conductivities)  # validates the overrides early
    if voxel_size is not None:
        voxel_size = check_voxel_size(voxel_size)
    with _progress_bar(total=5, unit="step") as bar:
        return _read_brainweb_steps(path, voxel_size, tissues, regions, bar)


def _block_factor(voxel_size: float | None, affine: np.ndarray) -> int:
    """Integer block edge that turns the grid of ``affine`` into ``voxel_size`` mm voxels."""
    if voxel_size is None:
        return 1
    native = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))
    ratio = float(voxel_size) / native
    factor = round(float(ratio[0]))
    if not (factor >= 1 and np.allclose(ratio, factor, atol=1e-3)):
        raise ValueError(
            f"voxel_size={voxel_size} mm is not an integer multiple of the model's voxel "
            f"size {native.tolist()} mm; choose e.g. {2 * native[0]:g} mm, or resample "
            "afterwards with HeadModel.resample()."
        )
    return factor


def _read_brainweb_steps(
    path: Path, voxel_size: float | None, tissues: TissueTable, regions: bool, bar
) -> HeadModel:
    """The steps of :func:`read_brainweb`, reporting to the progress bar ``bar``."""
    bar.set_description("BrainWeb: reading MINC")
    classes, affine = read_minc_classes(path, lambda aff: _block_factor(voxel_size, aff))
    factor = _block_factor(voxel_size, affine)
    bar.update()
    bar.set_description("BrainWeb: mapping classes")
    labels = map_brainweb_classes(classes)
    bar.update()
    bar.set_description("BrainWeb: finding eyes")
    eye_mask, eyes = find_eyes(classes, affine)
    labels[eye_mask] = 6
    del classes, eye_mask
    bar.update()
    if factor > 1:
        bar.set_description(f"BrainWeb: majority vote to {voxel_size:g} mm")
        labels = downsample_majority(labels, factor)
        scale = np.diag([factor, factor, factor, 1.0])
        scale[:3, 3] = (factor - 1) / 2.0
        affine = affine @ scale
    bar.update()
    head = HeadModel(
        labels=labels,
        affine=affine,
        tissues=tissues,
        name=path.name.split(".")[0],
        mri_to_mni=np.eye(4),
        meta={
            "reader": "deepesi.anatomy.read_brainweb",
            "source": str(path),
            "class_mapping": {BRAINWEB_CLASSES[k]: v for k, v in BRAINWEB_TO_CHARM.items()},
            "eyes": eyes,
            "downsampling": "majority vote" if factor > 1 else "none",
            "attribution": (
                "BrainWeb: B. Aubert-Broche, A. C. Evans, D. L. Collins, 'A new improved "
                "version of the realistic digital brain phantom', NeuroImage 32(1):138-145, 2006."
            ),
        },
    )
    if regions:
        bar.set_description("BrainWeb: labelling regions")
        reg = label_regions_from_mni(head.labels, head.affine, np.eye(4), head.tissues)
        head = replace(head, regions=reg)
    bar.update()
    return head
