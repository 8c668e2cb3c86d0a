"""deepesi.viz.report: HTML report of a SourceMap, with or without a head, with other methods."""

from __future__ import annotations

import numpy as np
import pytest

from deepesi.inverse import SourceMap, apply_network
from deepesi.viz import make_report, plot_glass_brain, plot_peak_slices
from localize_helpers import StandInModel, grid_source_space, make_evoked

SOURCE = 9


@pytest.fixture(scope="module")
def src():
    return grid_source_space()


@pytest.fixture(scope="module")
def result(src):
    model = StandInModel(src)
    return apply_network(make_evoked(model, SOURCE), model, source_space=src)


def _blob(src, centre_mm, times):
    d = np.linalg.norm(src.pos * 1000 - centre_mm, axis=1)
    return np.exp(-(d**2) / 150.0)[:, None] * np.hanning(len(times) + 2)[1:-1][None, :]


def test_report_contents(result, src, tmp_path):
    other = SourceMap.from_amplitudes(
        _blob(src, (15, 15, 20), result.times), result.times, src, method="sLORETA",
        units="F", peak_time=result.peak_time,
    )
    dspm = SourceMap.from_amplitudes(
        _blob(src, (-15, -15, 0), result.times), result.times, src, method="dSPM",
        peak_time=result.peak_time,
    )
    out = make_report(
        result, title="Test report", extra_results={"sLORETA": other, "dSPM": dspm},
        fname=tmp_path / "r.html",
    )
    html = out.read_text(encoding="utf-8")
    assert "Test report" in html
    for name in ("deepesi", "sLORETA", "dSPM"):
        assert f"{name}: glass brain" in html
        assert f"{name}: peak table" in html
    assert "Comparison: glass brains" in html
    assert "Left-Thalamus" in html and "ctx-rh-frontal" in html
    assert html.count("<img") + html.count("data:image") >= 10
    with pytest.raises(FileExistsError, match="overwrite"):
        make_report(result, fname=out)
    make_report(result, fname=out, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.html"]


def test_report_bad_inputs(result, tmp_path):
    with pytest.raises(ValueError, match=r"\.html"):
        make_report(result, fname=tmp_path / "r.pdf")
    small = grid_source_space().subset(np.arange(10))
    wrong = SourceMap.from_amplitudes(np.ones((10, 1)), [0.0], small)
    with pytest.raises(ValueError, match="another source space"):
        make_report(result, extra_results={"x": wrong}, fname=tmp_path / "r.html")
    with pytest.raises(TypeError, match="SourceMap"):
        make_report(result, extra_results={"x": 3}, fname=tmp_path / "r.html")
    with pytest.raises(TypeError, match="SourceMap"):
        make_report(result.amplitudes, fname=tmp_path / "r.html")
    assert list(tmp_path.iterdir()) == []


def test_glass_brain_projects_the_peak(result, src):
    fig = plot_glass_brain(result)
    # the axial MIP (third panel) is brightest where the source is (x=-5, y=5 mm)
    ax = fig.axes[2]
    img = ax.images[-1]  # activity over the grey silhouette
    data = np.ma.filled(img.get_array(), 0)
    x0, x1, y0, y1 = img.get_extent()
    iy, ix = np.unravel_index(np.argmax(data), data.shape)
    x = x0 + (ix + 0.5) * (x1 - x0) / data.shape[1]
    y = y0 + (iy + 0.5) * (y1 - y0) / data.shape[0]
    assert (x, y) == pytest.approx(tuple(src.pos[SOURCE, :2] * 1000), abs=1e-6)


def test_slices_over_a_head(sphere_head, tmp_path):
    from deepesi.sources import make_source_space

    src = make_source_space(sphere_head, 8e-3)
    centre = np.array([0.0, 0.0, 40.0])
    times = np.array([0.0, 0.01])
    res = SourceMap.from_amplitudes(_blob(src, centre, times), times, src)
    fig = plot_peak_slices(res, sphere_head)
    top = res.peaks(1)[0]
    assert "peak 1" in fig._suptitle.get_text()
    assert np.linalg.norm(
        np.array([top["x_mri"], top["y_mri"], top["z_mri"]]) - centre
    ) <= 8.0 * np.sqrt(3)
    out = make_report(res, sphere_head, fname=tmp_path / "head.html")
    assert out.is_file()
    labels = sphere_head.labels.copy()
    labels[20, 20, 20] = 0
    other = type(sphere_head)(labels, sphere_head.affine, name="other")
    with pytest.raises(ValueError, match="not the one the source space was built from"):
        make_report(res, other, fname=tmp_path / "x.html")


def test_report_shows_the_truth_of_a_simulation(result, src, tmp_path):
    """Issue 16 (#7): known sources drawn on every glass brain; a table of each method's error
    in mm; a plain-words note; the comparison says the maps share one time sample."""
    true_pos = src.pos[SOURCE]
    far = src.pos[int(np.argmax(np.linalg.norm(src.pos - true_pos, axis=1)))]
    other = SourceMap.from_amplitudes(
        _blob(src, far * 1000, result.times), result.times, src, method="dSPM",
        peak_time=result.peak_time,
    )
    truth = [{"region": "Left-Thalamus", "pos_m": true_pos.tolist()}]
    fig = plot_glass_brain(result, truth=[true_pos])
    circles = [ln for ax in fig.axes for ln in ax.get_lines() if ln.get_marker() == "o"]
    assert len(circles) == 3  # one per view
    x, y = circles[0].get_data()  # sagittal: y (h) and z (v), mm
    assert (x[0], y[0]) == pytest.approx((true_pos[1] * 1e3, true_pos[2] * 1e3))
    html = make_report(result, extra_results={"dSPM": other}, fname=tmp_path / "t.html",
                       truth=truth, notes="A simulated recording at 10 dB.").read_text()
    assert "A simulated recording at 10 dB." in html and "Known sources" in html
    assert "deepesi: error (mm)" in html and "<td>0.0 (best of 5: 0.0)</td>" in html


def test_comparison_rows_share_one_grid(result):
    """Issue 16 (#7): rows of a comparison figure share one layout grid (their titles no longer
    overlap the row above), the views are named once, each row has its colour bar."""
    from deepesi.viz.report import _new_figure

    fig = _new_figure(12.0, 7.2)
    for i in range(2):
        plot_glass_brain(result, title=f"m{i}", fig=fig, row=i, n_rows=2)
    specs = {ax.get_subplotspec().get_gridspec() for ax in fig.axes}
    assert len(specs) == 1 and len(fig.axes) == 8
    assert [ax.get_title() for ax in fig.axes if ax.get_title()] == ["sagittal", "coronal",
                                                                      "axial"]
    fig.canvas.draw()
    boxes = [ax.get_tightbbox() for ax in fig.axes]
    tops = [b for b, ax in zip(boxes, fig.axes, strict=True)
            if ax.get_subplotspec().rowspan.start == 0]
    bottoms = [b for b, ax in zip(boxes, fig.axes, strict=True)
               if ax.get_subplotspec().rowspan.start == 1]
    assert min(b.y0 for b in tops) >= max(b.y1 for b in bottoms) - 1  # no overlap (pixels)
