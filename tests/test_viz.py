"""Tests for deepesi.viz: head slices with tissues and source points."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.collections import PathCollection
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure

from deepesi.sources import make_source_space
from deepesi.viz import (
    BACKGROUND_COLOR,
    TISSUE_COLORS,
    plot_head_slices,
    save_figure,
    tissue_colormap,
)


@pytest.fixture(scope="module")
def head(small_synthetic_head):
    return small_synthetic_head


def _rgb_at(fig: Figure, ax_index: int, x: float, y: float) -> np.ndarray:
    """Colour of the slice image of panel ``ax_index`` at data coordinates (x, y)."""
    ax = fig.axes[ax_index]
    image = ax.images[0]
    data = image.get_array()
    x0, x1, y0, y1 = image.get_extent()
    col = int((x - x0) / (x1 - x0) * data.shape[1])
    row = int((y - y0) / (y1 - y0) * data.shape[0])
    return np.asarray(image.cmap(image.norm(data[row, col])))[:3]


def test_tissue_colours_are_fixed_and_documented(head):
    cmap, legend = tissue_colormap(head)
    names = [n for n, _ in legend]
    assert names == ["WM", "GM", "CSF", "Bone", "Scalp"]  # only tissues present, label order
    for label, name in ((1, "WM"), (2, "GM"), (3, "CSF"), (4, "Bone"), (5, "Scalp")):
        np.testing.assert_allclose(cmap(label)[:3], to_rgb(TISSUE_COLORS[name]))
    np.testing.assert_allclose(cmap(0)[:3], to_rgb(BACKGROUND_COLOR))


def test_slices_show_the_right_tissue_at_known_places(head):
    fig = plot_head_slices(head, coords_mm=(0.0, 0.0, 0.0))
    assert isinstance(fig, Figure)
    titles = [ax.get_title() for ax in fig.axes[:3]]
    assert titles[0].startswith("axial") and titles[1].startswith("coronal")
    assert titles[2].startswith("sagittal")
    # along +x in the axial slice through the centre: WM (r<57), GM, CSF, bone, scalp, outside
    for r_mm, name in ((30, "WM"), (61, "GM"), (66, "CSF"), (71, "Bone"), (77, "Scalp")):
        for panel in range(3):
            got = _rgb_at(fig, panel, r_mm, 0.0)
            np.testing.assert_allclose(got, to_rgb(TISSUE_COLORS[name]), err_msg=f"{name} {panel}")
    np.testing.assert_allclose(_rgb_at(fig, 0, 75.0, 75.0), to_rgb(BACKGROUND_COLOR))


def test_sources_overlaid_near_each_plane(head):
    src = make_source_space(head, 8e-3)
    coords = (-10.0, -12.0, 5.0)  # through the left thalamus
    fig = plot_head_slices(head, src, coords_mm=coords, title="t")
    assert fig._suptitle.get_text() == "t"
    snapped = np.round(np.array(coords) / 8.0) * 8.0  # planes move to the nearest grid layer
    for panel, fixed in ((0, 2), (1, 1), (2, 0)):
        ax = fig.axes[panel]
        assert ax.get_title().endswith(f"= {snapped[fixed]:.0f} mm")
        pts = np.concatenate(
            [c.get_offsets() for c in ax.collections if isinstance(c, PathCollection)]
        )
        near = np.abs(src.pos[:, fixed] * 1000 - snapped[fixed]) <= 4.0
        assert len(pts) == int(near.sum()) > 0
    # legend names both kinds of sources with their counts
    texts = [t.get_text() for t in fig.axes[3].get_legend().get_texts()]
    n_deep = int(src.is_subcortical.sum())
    assert f"subcortical sources ({n_deep})" in texts
    assert f"cortical sources ({src.n_sources - n_deep})" in texts


def test_default_coords_are_the_brain_centre(head):
    fig = plot_head_slices(head)
    # the synthetic brain is centred on the origin, up to the painted deep structures
    for ax in fig.axes[:3]:
        value = float(ax.get_title().split("=")[1].split()[0])
        assert abs(value) <= 3


def test_save_figure(head, tmp_path):
    fig = plot_head_slices(head)
    out = save_figure(fig, tmp_path / "sub" / "head.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(FileExistsError):
        save_figure(fig, out)
    save_figure(fig, out, overwrite=True)
    with pytest.raises(ValueError, match="extension"):
        save_figure(fig, tmp_path / "noext")
    assert not list(tmp_path.glob(".*"))  # no temporary leftovers


def test_invalid_inputs(head):
    with pytest.raises(ValueError, match="outside the head"):
        plot_head_slices(head, coords_mm=(0, 0, 500))
    with pytest.raises(ValueError, match="three finite"):
        plot_head_slices(head, coords_mm=(0, 0))
    with pytest.raises(TypeError, match="HeadModel"):
        plot_head_slices("template")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="SourceSpace"):
        plot_head_slices(head, sources=np.zeros((3, 3)))  # type: ignore[arg-type]
