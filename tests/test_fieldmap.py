"""Restoring what SSP projectors removed, for nets trained without them: exact for fields in a
low-rank forward's span, better than the projected data for a full-rank one, and used by
apply_network when the recording has projectors and the forward is given."""

from __future__ import annotations

import mne
import numpy as np
import pytest

from deepesi.forward.leadfield import LeadField
from deepesi.inverse import apply_network
from deepesi.inverse.fieldmap import (
    MappedInputModel,
    field_mapping_matrix,
    restoration_matrix,
)
from deepesi.whitening import ssp_projector
from localize_helpers import StandInModel, grid_source_space, make_evoked


def _proj(names: list[str], vectors: np.ndarray) -> list:
    q, _ = np.linalg.qr(vectors.T)
    return [mne.Projection(data=dict(kind=1, desc=f"v{k}", nrow=1, ncol=len(names),
                                     row_names=None, col_names=list(names),
                                     data=q[:, k][None]),
                           kind=1, desc=f"v{k}", active=False, explained_var=None)
            for k in range(q.shape[1])]


def test_restoration_is_exact_in_a_low_rank_forward():
    rng = np.random.default_rng(0)
    names = [f"C{k}" for k in range(30)]
    gain = rng.standard_normal((30, 5, 3))  # 15 field patterns on 30 channels
    projs = _proj(names, rng.standard_normal((3, 30)))
    r = restoration_matrix(projs, gain, names, np.ones(30), snr=1e9)
    p = ssp_projector(projs, names)
    fields = gain.reshape(30, -1) @ rng.standard_normal((15, 8))
    assert np.linalg.norm(p @ fields - fields) / np.linalg.norm(fields) > 0.05
    np.testing.assert_allclose(r @ (p @ fields), fields, rtol=0, atol=1e-6 * np.abs(fields).max())
    np.testing.assert_allclose(p @ r, p, atol=1e-6)  # only the removed directions are added
    # channel scaling (e.g. magnetometers vs gradiometers) does not change an exact restoration
    scale = np.r_[np.full(15, 1e-13), np.full(15, 1e-11)]
    r2 = restoration_matrix(projs, gain * scale[:, None, None], names, scale, snr=1e9)
    f2 = fields * scale[:, None]
    np.testing.assert_allclose(r2 @ (p @ f2), f2, atol=1e-6 * np.abs(f2).max())
    assert restoration_matrix([], gain, names, np.ones(30)) is None


def test_field_mapping_is_exact_for_fields_of_the_shared_sources():
    """Fields of the shared source columns, seen by 40 sensors, mapped to 25 other sensors:
    exact without noise, and the matrix shape follows the two geometries."""
    rng = np.random.default_rng(1)
    a = rng.standard_normal((40, 4, 3))  # 12 columns: a low-rank field on both sides
    b = rng.standard_normal((25, 4, 3))
    m = field_mapping_matrix(a, b, np.full(40, 2.0), np.full(25, 0.5), snr=1e10)
    assert m.shape == (25, 40)
    moments = rng.standard_normal((12, 6))
    np.testing.assert_allclose(m @ (a.reshape(40, -1) @ moments), b.reshape(25, -1) @ moments,
                               atol=1e-4 * np.abs(b).max())
    noisy = field_mapping_matrix(a, b, np.ones(40), np.ones(25), snr=10.0)
    assert np.linalg.norm(noisy) < np.linalg.norm(m)  # the regularisation shrinks the map
    with pytest.raises(ValueError, match="share the source space"):
        field_mapping_matrix(a, b[:, :3], np.ones(40), np.ones(25))


def test_apply_network_restores_untrained_projectors(caplog):
    src = grid_source_space()
    model = StandInModel(src)
    model.channel_scale = np.full(len(model.ch_names), 1e-6)  # for the fit's scaling
    source = 7
    ev = make_evoked(model, source)
    ev.set_eeg_reference("average", projection=True, verbose=False)
    ev.apply_proj(verbose=False)
    clean = ev.data.copy()
    u = np.random.default_rng(3).standard_normal((2, len(model.ch_names)))
    ev.add_proj(_proj(model.ch_names, u), verbose=False)
    ev.apply_proj(verbose=False)
    gain = np.zeros((len(model.ch_names), src.n_sources, 3))
    gain[:, :, 0] = model.gain
    fwd = LeadField(gain, list(model.ch_names), ["eeg"] * len(model.ch_names), src)
    with caplog.at_level("INFO", logger="deepesi"):
        res = apply_network(ev, model, source_space=src, forward=fwd, tmin=0.0, tmax=0.09)
    assert res.meta["ssp_restored"] and "restored from the forward" in caplog.text
    plain = apply_network(ev, model, source_space=src, tmin=0.0, tmax=0.09)
    assert not plain.meta["ssp_restored"]  # no forward: read as is (with the warning)
    wrapped = MappedInputModel(model, np.eye(len(model.ch_names)))
    assert wrapped.ch_names == model.ch_names and wrapped.n_sources == model.n_sources
    from deepesi.inverse.network import _restoring
    from deepesi.whitening import ssp_projector

    restorer = _restoring(model, fwd, ev.info)
    # only the two untrained directions are added (not the average reference's)
    p = ssp_projector(ev.info["projs"][1:], model.ch_names)
    got = restorer.matrix @ ev.data
    np.testing.assert_allclose(p @ got, ev.data, atol=1e-6 * np.abs(ev.data).max())
    assert np.linalg.norm(got - ev.data) > 1e-3 * np.linalg.norm(clean)
    with pytest.raises(ValueError, match="restoration matrix"):
        MappedInputModel(model, np.eye(3))
