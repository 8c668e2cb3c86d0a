"""Deep or cortical by the posterior mass (deepesi.inverse.compartments)."""

from __future__ import annotations

import numpy as np
import pytest

from deepesi.inverse.compartments import GATE_MARGIN, deep_probability, gate_compartments


def _maps():
    deep = np.zeros(10, bool)
    deep[:4] = True
    a = np.full((10, 3), 0.01)
    a[:4, 0] = [0.9, 0.8, 0.7, 0.6]  # sample 0: mass deep, strongest point cortical
    a[6, 0] = 1.0
    a[:, 1] = [1.0, 0.1, 0.1, 0.1, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3]  # peak deep, mass cortical
    a[:, 2] = 0.0  # sample 2: nothing
    return a, deep


def test_deep_probability_is_the_share_in_deep_structures():
    a, deep = _maps()
    p = deep_probability(a, deep)
    assert p[0] == pytest.approx(3.0 / (3.0 + 1.0 + 5 * 0.01))
    assert p[1] == pytest.approx(a[:4, 1].sum() / a[:, 1].sum())
    assert np.isnan(p[2])
    assert deep_probability(a[:, 0], deep).shape == (1,)


def test_gating_moves_the_peak_into_the_compartment_of_the_mass():
    a, deep = _maps()
    g, p = gate_compartments(a, deep)
    assert p[0] > 0.5 and deep[np.argmax(g[:, 0])]  # cortical peak moved into deep
    assert g[6, 0] == pytest.approx(GATE_MARGIN * 0.9)
    np.testing.assert_allclose(g[deep, 0], a[deep, 0])  # the winner untouched
    np.testing.assert_allclose(g[~deep, 0] / g[6, 0], a[~deep, 0] / a[6, 0])  # shape kept
    assert p[1] < 0.5 and not deep[np.argmax(g[:, 1])]  # deep peak moved into cortex
    np.testing.assert_allclose(g[:, 2], 0.0)
    # a consistent sample is returned as it is
    ok = a.copy()
    ok[6, 0] = 0.5
    np.testing.assert_array_equal(gate_compartments(ok[:, :1], deep)[0], ok[:, :1])
    with pytest.raises(ValueError, match="non-negative"):
        gate_compartments(-a, deep)
    with pytest.raises(ValueError, match="do not match"):
        gate_compartments(a[:5], deep)
