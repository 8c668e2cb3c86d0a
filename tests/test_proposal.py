"""The network's proposal of the source-set fit: maps at chosen samples, the strongest read."""

from __future__ import annotations

import numpy as np
import pytest

from deepesi.inverse.source_set import network_proposal
from deepesi.simulation import SimulationConfig
from deepesi.training import train_model
from test_seed_ensemble import TINY


@pytest.fixture(scope="module")
def lf(sphere_leadfield):
    return sphere_leadfield


@pytest.fixture(scope="module")
def window_net(lf, tmp_path_factory):
    """A window net (3 samples): a sample's map depends on its neighbours."""
    out = tmp_path_factory.mktemp("proposal")
    return train_model(lf, SimulationConfig(n_sources=(1, 2), n_times=3), out / "w.pt", seed=0,
                       **TINY)


def _data(lf, n_times=12, seed=0):
    rng = np.random.default_rng(seed)
    src = rng.integers(lf.n_sources, size=2)
    wave = np.sin(np.linspace(0, np.pi, n_times)) * rng.uniform(0.5, 2.0, size=(2, 1))
    x = sum((lf.gain[:, s] @ rng.standard_normal(3) * 1e-8)[:, None] * w[None]
            for s, w in zip(src, wave, strict=True))
    return x + 1e-7 * rng.standard_normal(x.shape)


def test_predict_at_chosen_samples_equals_the_full_maps(lf, window_net):
    x = _data(lf)
    full = window_net.predict(x)
    some = [0, 4, 11]
    assert np.allclose(window_net.predict(x, samples=some), full[:, some], rtol=1e-5,
                       atol=1e-7 * full.max())
    scaled = window_net.predict(x, leadfield=lf)
    assert np.allclose(window_net.predict(x, leadfield=lf, samples=some), scaled[:, some],
                       rtol=1e-5, atol=1e-7 * scaled.max())
    with pytest.raises(ValueError, match="samples must be in"):
        window_net.predict(x, samples=[12])


class _NoSamples:
    """A model whose predict takes no ``samples``: the proposal picks the columns itself."""

    def __init__(self, base):
        self.base = base

    def predict(self, data, ch_names=None):
        return self.base.predict(data, ch_names=ch_names)


def test_proposal_reads_the_strongest_samples(lf, window_net):
    x = _data(lf, seed=3)
    w = 1e7 * np.eye(lf.n_channels)  # a whitener: unit-ish noise
    unwhiten = np.linalg.pinv(w)
    xw = w @ x
    full = window_net.predict(x)
    strongest = np.sort(np.argsort(-np.sum(xw**2, axis=0))[:4])
    expected = np.sqrt(np.mean(full[:, strongest] ** 2, axis=1))
    got = network_proposal(window_net, unwhiten, n_samples=4)(xw)
    assert np.allclose(got, expected, rtol=1e-5, atol=1e-7 * expected.max())
    assert np.allclose(network_proposal(_NoSamples(window_net), unwhiten, n_samples=4)(xw),
                       expected, rtol=1e-5, atol=1e-7 * expected.max())
    every = network_proposal(window_net, unwhiten, n_samples=None)(xw)
    assert np.allclose(every, np.sqrt(np.mean(full**2, axis=1)), rtol=1e-5,
                       atol=1e-7 * every.max())
    # more samples asked than the window has: all of them
    assert np.allclose(network_proposal(window_net, unwhiten, n_samples=50)(xw), every)
