"""HeadModel: an integer tissue-label volume, its affine and its conductivity table."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

from .._io import atomic_path, load_image
from .._validation import check_affine, check_dir, check_integer_labels, check_voxel_size
from .regions import REGION_NAMES, SUBCORTICAL_REGIONS
from .tissues import BRAIN_TISSUES, SKULL_TISSUES, TissueTable

FORMAT_VERSION = 1
_TISSUES_FILE = "tissues.nii.gz"
_REGIONS_FILE = "regions.nii.gz"
_META_FILE = "head.json"


def labels_to_uint8(data: np.ndarray, what: str = "label volume") -> np.ndarray:
    """Convert a label array to uint8, refusing non-integer, negative or too-large values."""
    data = check_integer_labels(data, what)
    if data.size and data.max() > 255:
        raise ValueError(
            f"{what} has labels above 255 (max {data.max()}); map them to the tissue convention "
            "first (see deepesi.anatomy.read_labelled_nifti)."
        )
    return data.astype(np.uint8)


@dataclass(frozen=True, eq=False)
class HeadModel:
    """A volume conductor: tissue labels on a voxel grid, the grid's affine, and conductivities.

    Parameters
    ----------
    labels : ndarray of uint8, shape (nx, ny, nz)
        Tissue label per voxel, following ``tissues`` (0 = outside the head).
    affine : ndarray, shape (4, 4)
        Voxel index → MRI (surface RAS) coordinates in **millimetres**, as in nibabel.
        :attr:`affine_m` gives the same map in metres.
    tissues : TissueTable
        Label → name and conductivity (S/m). Every non-zero label in ``labels`` must be in it.
    regions : ndarray of uint16, shape (nx, ny, nz) | None
        Anatomical region id per voxel (see :mod:`deepesi.anatomy.regions`), 0 = none. Deep
        structures are labelled over their full extent, whatever their tissue label.
    name : str
        Short name (e.g. 'template', 'sample').
    mri_to_mni : ndarray, shape (4, 4) | None
        Affine from this head's MRI coordinates (mm) to MNI coordinates (mm), if known.
    meta : dict
        Provenance: reader, source files, attribution, notes. JSON-serialisable.
    """

    labels: np.ndarray
    affine: np.ndarray
    tissues: TissueTable = field(default_factory=TissueTable.charm)
    regions: np.ndarray | None = None
    name: str = "head"
    mri_to_mni: np.ndarray | None = None
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        labels = labels_to_uint8(self.labels, "tissue label volume")
        object.__setattr__(self, "labels", labels)
        affine = check_affine(self.affine, "head model affine")
        object.__setattr__(self, "affine", affine)
        if not isinstance(self.tissues, TissueTable):
            raise TypeError(f"tissues must be a TissueTable, got {type(self.tissues).__name__}.")
        present = np.unique(labels)
        present = present[present != 0]
        unknown = sorted(set(present.tolist()) - set(self.tissues.labels.tolist()))
        if unknown:
            raise ValueError(
                f"label volume contains label(s) {unknown} that are not in the tissue table "
                f"{self.tissues.labels.tolist()}; give a label map that names every label, or "
                "relabel the image."
            )
        if present.size == 0:
            raise ValueError("label volume is empty (all voxels are 0 = outside the head).")
        if self.regions is not None:
            regions = np.asanyarray(self.regions)
            if regions.shape != labels.shape:
                raise ValueError(
                    f"region volume shape {regions.shape} differs from label volume shape "
                    f"{labels.shape}; both must be on the same voxel grid."
                )
            if regions.dtype.kind not in "iu" or (regions.size and regions.min() < 0):
                raise ValueError("region volume must hold non-negative integer region ids.")
            if regions.size and regions.max() > np.iinfo(np.uint16).max:
                raise ValueError(
                    f"region volume holds ids up to {regions.max()}; region ids must fit in "
                    "0..65535 (see deepesi.anatomy.regions)."
                )
            object.__setattr__(self, "regions", regions.astype(np.uint16))
        if self.mri_to_mni is not None:
            object.__setattr__(self, "mri_to_mni", check_affine(self.mri_to_mni, "mri_to_mni"))
        object.__setattr__(self, "meta", dict(self.meta))

    # ------------------------------------------------------------------ geometry
    @property
    def shape(self) -> tuple[int, int, int]:
        """Voxel grid shape."""
        return tuple(int(s) for s in self.labels.shape)  # type: ignore[return-value]

    @property
    def voxel_size(self) -> np.ndarray:
        """Voxel edge lengths in mm."""
        return np.sqrt((self.affine[:3, :3] ** 2).sum(axis=0))

    @property
    def voxel_volume_ml(self) -> float:
        """Volume of one voxel in millilitres (cm³)."""
        return float(abs(np.linalg.det(self.affine[:3, :3])) / 1000.0)

    @property
    def affine_m(self) -> np.ndarray:
        """Voxel index → MRI coordinates in metres."""
        aff = self.affine.copy()
        aff[:3] /= 1000.0
        return aff

    def voxel_to_mri(self, ijk: np.ndarray) -> np.ndarray:
        """Voxel indices (n, 3) → MRI coordinates in metres (n, 3)."""
        return nib.affines.apply_affine(self.affine_m, np.asarray(ijk, dtype=float))

    def mri_to_voxel(self, xyz_m: np.ndarray) -> np.ndarray:
        """MRI coordinates in metres (n, 3) → (fractional) voxel indices (n, 3)."""
        return nib.affines.apply_affine(np.linalg.inv(self.affine_m), np.asarray(xyz_m, float))

    # ------------------------------------------------------------------ tissues
    def tissue_mask(self, *names: str) -> np.ndarray:
        """Boolean mask of the voxels of the given tissue(s) (names or aliases)."""
        labels = [self.tissues.label_of(n) for n in names]
        return np.isin(self.labels, labels)

    def has_tissue(self, name: str) -> bool:
        """True if the table knows ``name`` and at least one voxel carries it."""
        if name not in self.tissues:
            return False
        return bool(np.any(self.labels == self.tissues.label_of(name)))

    def conductivity_volume(self) -> np.ndarray:
        """Conductivity (S/m) per voxel (0 outside the head)."""
        return self.tissues.conductivity_lut()[self.labels]

    def volumes_ml(self) -> dict[str, float]:
        """Volume of each tissue in millilitres, in label order."""
        counts = np.bincount(self.labels.ravel(), minlength=256)
        return {t.name: float(counts[t.label] * self.voxel_volume_ml) for t in self.tissues}

    def region_volumes_ml(self) -> dict[str, float]:
        """Volume of each labelled region in millilitres."""
        if self.regions is None:
            return {}
        ids, counts = np.unique(self.regions[self.regions > 0], return_counts=True)
        return {
            REGION_NAMES.get(int(i), f"region-{int(i)}"): float(c * self.voxel_volume_ml)
            for i, c in zip(ids, counts, strict=True)
        }

    def with_conductivities(self, conductivities: Mapping[str | int, float]) -> HeadModel:
        """A copy with some tissue conductivities (S/m) replaced, e.g. ``{'skull': 0.006}``."""
        return replace(self, tissues=self.tissues.with_conductivities(conductivities))

    # ------------------------------------------------------------------ checks
    def check_forward_ready(self, max_brain_leak: float = 0.05) -> None:
        """Raise ValueError unless the head can carry a forward model.

        It needs a scalp, a skull, and brain (GM or WM); and the skull must enclose the brain:
        at most ``max_brain_leak`` of the voxels bordering the intracranial compartment (WM, GM,
        CSF, blood inside) may touch scalp or air directly (real skulls have foramina).
        """
        missing = [
            what
            for what, names in (
                ("scalp", ("Scalp",)),
                ("skull", SKULL_TISSUES),
                ("brain (GM/WM)", BRAIN_TISSUES),
            )
            if not any(self.has_tissue(n) for n in names)
        ]
        if missing:
            raise ValueError(
                f"head model {self.name!r} has no {', '.join(missing)}; a forward model needs "
                "scalp, skull and brain. Check the segmentation and its label map."
            )
        inner_names = [n for n in ("WM", "GM", "CSF") if self.has_tissue(n)]
        inner = self.tissue_mask(*inner_names)
        skin_or_air = (self.labels == 0) | self.tissue_mask("Scalp")
        border = ndimage.binary_dilation(inner) & ~inner
        if border.sum() == 0:
            raise ValueError("the intracranial compartment has no border; is the head empty?")
        leak = float((border & skin_or_air).sum() / border.sum())
        if leak > max_brain_leak:
            raise ValueError(
                f"the skull does not enclose the brain in head model {self.name!r}: {leak:.0%} of "
                "the voxels around WM/GM/CSF are scalp or air (allowed "
                f"{max_brain_leak:.0%}). The segmentation lacks a closed skull; fix it or use a "
                "reader that builds the skull from surfaces (e.g. read_freesurfer_subject)."
            )

    # ------------------------------------------------------------------ regions
    def subcortical_regions_present(self) -> dict[str, int]:
        """Voxel counts of the standard deep structures present in :attr:`regions`."""
        if self.regions is None:
            return {}
        counts = np.bincount(self.regions.ravel(), minlength=max(SUBCORTICAL_REGIONS) + 1)
        return {name: int(counts[rid]) for rid, name in SUBCORTICAL_REGIONS.items() if counts[rid]}

    # ------------------------------------------------------------------ resampling
    def resample(self, voxel_size: float) -> HeadModel:
        """Nearest-neighbour resampling to isotropic ``voxel_size`` (mm) over the same extent."""
        voxel_size = check_voxel_size(voxel_size)
        old = self.voxel_size
        extent = np.array(self.shape) * old
        new_shape = np.maximum(1, np.round(extent / voxel_size).astype(int))
        # new voxel centres in old index space (axes kept, only the step changes)
        scale = np.diag(np.append(voxel_size / old, 1.0))
        offset = np.eye(4)
        offset[:3, 3] = (voxel_size / old - 1.0) / 2.0
        new_to_old = offset @ scale
        new_affine = self.affine @ new_to_old

        def _nn(vol: np.ndarray) -> np.ndarray:
            return ndimage.affine_transform(
                vol, new_to_old[:3, :3], new_to_old[:3, 3], output_shape=tuple(new_shape),
                order=0, mode="constant", cval=0,
            )

        regions = None if self.regions is None else _nn(self.regions)
        meta = {**self.meta, "resampled_from_mm": old.tolist()}
        return replace(self, labels=_nn(self.labels), affine=new_affine, regions=regions, meta=meta)

    def crop(self, margin_vox: int = 2) -> HeadModel:
        """Crop the grid to the head's bounding box plus ``margin_vox`` voxels of air.

        The affine is shifted so that every kept voxel keeps its MRI coordinates.
        """
        if isinstance(margin_vox, bool) or not isinstance(margin_vox, int | np.integer) or (
            margin_vox < 0
        ):
            raise ValueError(f"margin_vox must be an integer >= 0, got {margin_vox!r}.")
        idx = np.argwhere(self.labels > 0)
        lo = np.maximum(idx.min(axis=0) - margin_vox, 0)
        hi = np.minimum(idx.max(axis=0) + margin_vox + 1, self.shape)
        sl = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))
        shift = np.eye(4)
        shift[:3, 3] = lo
        regions = None if self.regions is None else self.regions[sl]
        return replace(self, labels=self.labels[sl], affine=self.affine @ shift, regions=regions)

    # ------------------------------------------------------------------ identity
    def hash(self) -> str:
        """Content hash (sha256 hex) of labels, affine, conductivities and regions."""
        h = hashlib.sha256()
        h.update(np.ascontiguousarray(self.labels).tobytes())
        h.update(str(self.shape).encode())
        # the affine at the float32 precision of a NIfTI header, so that a saved and reloaded
        # head keeps its hash (for affines exact in float32 this is the affine itself)
        h.update(np.round(self.affine.astype(np.float32).astype(np.float64), 6).tobytes())
        h.update(self.tissues.hash().encode())
        if self.regions is not None:
            h.update(np.ascontiguousarray(self.regions).tobytes())
        return h.hexdigest()

    def __repr__(self) -> str:
        vs = "x".join(f"{v:g}" for v in self.voxel_size)
        return (
            f"<HeadModel {self.name!r} | {self.shape} voxels of {vs} mm | "
            f"{len(self.tissues)} tissues | regions: {'yes' if self.regions is not None else 'no'}>"
        )

    # ------------------------------------------------------------------ I/O
    def to_nifti(self) -> nib.Nifti1Image:
        """The label volume as a NIfTI image (affine in mm)."""
        img = nib.Nifti1Image(self.labels, self.affine)
        img.header.set_xyzt_units("mm")
        return img

    def save(self, path: str | os.PathLike, overwrite: bool = False) -> Path:
        """Write the head model to a folder (``tissues.nii.gz``, ``regions.nii.gz``, ``head.json``).

        The folder is written under a temporary name and moved into place at the end, so an
        interrupted save never leaves a half-written head model.
        """
        with atomic_path(path, overwrite=overwrite) as tmp:
            tmp.mkdir()
            nib.save(self.to_nifti(), tmp / _TISSUES_FILE)
            if self.regions is not None:
                regions_img = nib.Nifti1Image(self.regions, self.affine)
                regions_img.header.set_xyzt_units("mm")
                nib.save(regions_img, tmp / _REGIONS_FILE)
            meta = {
                "format": "deepesi-head",
                "format_version": FORMAT_VERSION,
                "name": self.name,
                "tissue_table": self.tissues.to_dict(),
                "mri_to_mni": None if self.mri_to_mni is None else self.mri_to_mni.tolist(),
                "region_names": {
                    str(int(i)): REGION_NAMES.get(int(i), f"region-{int(i)}")
                    for i in (np.unique(self.regions) if self.regions is not None else [])
                    if i
                },
                "meta": self.meta,
                "hash": self.hash(),
            }
            (tmp / _META_FILE).write_text(json.dumps(meta, indent=1))
        return Path(path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> HeadModel:
        """Read a head model written by :meth:`save`."""
        path = check_dir(path, "head model folder")
        meta_file = path / _META_FILE
        if not meta_file.is_file():
            raise FileNotFoundError(
                f"{path} is not a deepesi head model folder (no {_META_FILE}); create one with "
                "HeadModel.save() or `deepesi headmodel build`."
            )
        try:
            meta = json.loads(meta_file.read_text())
        except json.JSONDecodeError as err:
            raise ValueError(
                f"{meta_file} is not valid JSON ({err}); the file is damaged."
            ) from err
        if meta.get("format") != "deepesi-head":
            raise ValueError(f"{meta_file} is not a deepesi head model description.")
        if int(meta.get("format_version", 0)) > FORMAT_VERSION:
            raise ValueError(
                f"{path} was written by a newer deepesi (format {meta['format_version']}); upgrade."
            )
        damaged = "the head folder is damaged; rebuild it (`deepesi headmodel build`)"
        img = load_image(path / _TISSUES_FILE, f"tissue labels of head model {path}", damaged)
        regions = None
        if (path / _REGIONS_FILE).is_file():
            regions_img = load_image(path / _REGIONS_FILE, f"regions of head model {path}", damaged)
            regions = np.asanyarray(regions_img.dataobj)
        m2m = meta.get("mri_to_mni")
        return cls(
            labels=np.asanyarray(img.dataobj),
            affine=img.affine,
            tissues=TissueTable.from_dict(meta["tissue_table"]),
            regions=regions,
            name=meta.get("name", path.name),
            mri_to_mni=None if m2m is None else np.array(m2m),
            meta=meta.get("meta", {}),
        )


def read_head_model(path: str | os.PathLike) -> HeadModel:
    """Read a head model folder written by :meth:`HeadModel.save`."""
    return HeadModel.load(path)
