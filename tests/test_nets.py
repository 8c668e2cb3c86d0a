"""Tests of the 4LCNN, the baselines and the topographic input layer."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from deepesi.nets import NETS, FourLayerCNN, build_net, net_from_spec
from deepesi.nets.topomap import interpolation_matrix, project_sensors, sensor_groups
from deepesi.simulation import SimulationConfig, simulate_batch
from deepesi.simulation.sphere import make_sphere_leadfield
from deepesi.training import map_loss, normalise_input, normalise_target


@pytest.fixture(scope="module")
def lf():
    return make_sphere_leadfield()


@pytest.mark.parametrize("name", sorted(NETS))
@pytest.mark.parametrize("n_times", [1, 5])
def test_shapes_and_non_negative(lf, name, n_times):
    torch.manual_seed(0)
    net = build_net(name, lf, n_times=n_times)
    x = torch.randn(7, lf.n_channels, n_times)
    y = net(x)
    assert y.shape == (7, lf.n_sources)
    assert (y >= 0).all()
    raw = net(x, rectify=False)
    assert (raw < 0).any()  # the pre-activation is not rectified
    torch.testing.assert_close(y, torch.relu(raw))
    with pytest.raises(ValueError, match="expects input"):
        net(torch.randn(2, lf.n_channels + 1, n_times))


def test_parameter_count(lf):
    net = build_net("4lcnn", lf, image_size=16, channels=(16, 32), hidden=128)
    g, s, c1, c2, h, n = 1, 16, 16, 32, 128, lf.n_sources
    expected = (g * 9 * c1 + c1) + (c1 * 9 * c2 + c2) + (c2 * (s // 4) ** 2 * h + h) + (h * n + n)
    assert net.n_parameters() == expected
    # exactly four learnable layers
    learnable = [m for m in net.modules() if any(p.requires_grad for p in m.parameters(False))]
    assert len(learnable) == 4
    assert build_net("linear", lf).n_parameters() == (lf.n_channels + 1) * lf.n_sources


def test_rebuild_from_spec(lf):
    torch.manual_seed(1)
    net = build_net("4lcnn", lf, n_times=3)
    clone = net_from_spec(net.name, net.n_channels, net.n_sources, net.init_kwargs)
    clone.load_state_dict(net.state_dict())
    x = torch.randn(4, lf.n_channels, 3)
    torch.testing.assert_close(net(x), clone(x))
    assert isinstance(clone, FourLayerCNN)
    with pytest.raises(ValueError, match="unknown network"):
        build_net("resnet", lf)


def test_topomap_interpolation(lf):
    pos = np.array([ch["loc"][:3] for ch in lf.info["chs"]])
    xy = project_sensors(pos)
    # Cz (the vertex) projects near the centre, left electrodes to the left, frontal to the front
    names = lf.ch_names
    assert np.linalg.norm(xy[names.index("Cz")]) < 0.25 * np.abs(xy).max()
    assert xy[names.index("T7"), 0] < 0 < xy[names.index("T8"), 0]
    assert xy[names.index("Fpz"), 1] > 0 > xy[names.index("Oz"), 1]
    groups = sensor_groups(lf.ch_names, lf.ch_types)
    mat = interpolation_matrix(pos, groups, 16)
    assert mat.shape == (256, lf.n_channels)
    # rows are convex weights: a constant field stays constant where the image is defined
    rows = mat.sum(1)
    assert np.allclose(rows[rows > 0], 1.0)
    assert (rows > 0).mean() > 0.5
    # Neuromag gradiometer pairs become two images
    g = sensor_groups(["MEG0112", "MEG0113", "MEG0111", "EEG001"], ["grad", "grad", "mag", "eeg"])
    assert g == [[3], [2], [0], [1]]


def test_loss_and_normalisation():
    x = torch.tensor([[[2.0], [-4.0]], [[1e-6], [5e-7]]])
    xn = normalise_input(x, torch.tensor([1.0, 2.0]))
    torch.testing.assert_close(xn[:, :, 0], torch.tensor([[1.0, -1.0], [1.0, 0.25]]))
    y = normalise_target(torch.tensor([[0.0, 2.0, 1.0]]))
    torch.testing.assert_close(y, torch.tensor([[0.0, 1.0, 0.5]]))
    assert float(map_loss(y, y)) == pytest.approx(0.0, abs=1e-6)
    assert float(map_loss(torch.zeros_like(y), y)) > float(map_loss(0.5 * y, y)) > 0


def test_tiny_net_learns_toy_problem(lf):
    """A small 4LCNN trained briefly localizes point sources far better than chance."""
    torch.manual_seed(0)
    torch.set_num_threads(1)
    cfg = SimulationConfig(n_sources=(1, 1), extent_mm=(0, 12), snr_db=(10, 20))
    net = build_net("4lcnn", lf, image_size=16, channels=(8, 16), hidden=128)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    scale = torch.ones(lf.n_channels) * float(np.sqrt((lf.gain**2).mean()))
    for step in range(100):
        b = simulate_batch(lf, 128, cfg, seed=step)
        xb = normalise_input(torch.from_numpy(b.data), scale)
        yb = normalise_target(torch.from_numpy(b.sources[:, :, 0]))
        opt.zero_grad()
        map_loss(net(xb, rectify=False), yb).backward()
        opt.step()
    test = simulate_batch(
        lf, 300, SimulationConfig(n_sources=(1, 1), extent_mm=(0, 0), snr_db=(15, 15)), seed=999
    )
    with torch.no_grad():
        pred = net(normalise_input(torch.from_numpy(test.data), scale)).numpy()
    pos = lf.source_space.pos
    err = np.linalg.norm(pos[pred.argmax(1)] - pos[test.centres[:, 0]], axis=1)
    chance = np.median(np.linalg.norm(pos[:, None] - pos[None], axis=-1))
    assert np.median(err) < 0.025, np.median(err)  # chance level is ~ 80 mm
    print(f"toy problem: median peak error {np.median(err) * 1e3:.1f} mm")
    assert chance > 0.06


def test_baselines_module_is_a_deprecated_shim():
    import importlib
    import sys

    from deepesi.nets import ablation

    sys.modules.pop("deepesi.nets.baselines", None)
    with pytest.warns(DeprecationWarning, match="deepesi.nets.ablation"):
        old = importlib.import_module("deepesi.nets.baselines")
    assert old.LinearNet is ablation.LinearNet and old.ConvDip is ablation.ConvDip
    assert NETS["linear"] is ablation.LinearNet and NETS["convdip"] is ablation.ConvDip
