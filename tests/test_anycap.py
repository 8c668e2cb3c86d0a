"""The montage-independent net: random caps in training, any electrode set at run time."""

from __future__ import annotations

import contextlib
import logging

import mne
import numpy as np
import pytest

from conftest import SYNTHETIC_FID
from deepesi.inverse.anycap import CapBoundModel, bind_recording, is_cap_free
from deepesi.simulation import SimulationConfig
from deepesi.simulation.caps import make_cap_pool, virtual_leadfield

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")


@pytest.fixture(scope="module")
def anycap_model(small_scalp_leadfield, small_synthetic_head, tmp_path_factory):
    from deepesi.training import train_model

    slf = small_scalp_leadfield[0]
    head = small_synthetic_head
    vlf = virtual_leadfield(slf, head, 16e-3, mri_fiducials=SYNTHETIC_FID)
    pool = make_cap_pool(slf, head, vlf, n_random=6, n_montage=3, n_range=(12, 40),
                         montages=("biosemi32", "biosemi64"), mri_fiducials=SYNTHETIC_FID)
    config = SimulationConfig(n_sources=(1, 1), snr_db=(10.0, 20.0), extent_mm=(0.0, 0.0))
    model = train_model(vlf, config, tmp_path_factory.mktemp("anycap") / "m.pt", caps=pool,
                        epochs=2, batches_per_epoch=4, batch_size=32, n_val=64,
                        net_kwargs={"hidden": 32, "channels": (4, 8), "image_size": 8},
                        verbose=False)
    return model, pool, vlf


def test_cap_pool_and_simulator(anycap_model):
    model, pool, vlf = anycap_model
    assert len(pool.caps) == 9
    montage = [c.n_electrodes for c in pool.caps if c.name.startswith("biosemi64")]
    assert montage and all(0.8 * 64 <= n <= 64 for n in montage)  # up to 15 % dropped
    random = [c.n_electrodes for c in pool.caps if c.name.startswith("random")]
    assert len(random) == 6 and all(12 <= n <= 40 for n in random)
    sim = pool.simulator(vlf, SimulationConfig(n_sources=(1, 1), snr_db=(100.0, 100.0),
                                               extent_mm=(0.0, 0.0)))
    batch = sim.simulate(16, seed=3)
    assert batch.data.shape == (16, len(vlf.ch_names), 1) and np.isfinite(batch.data).all()
    assert sim.simulate(16, seed=3).data.tobytes() == batch.data.tobytes()  # seeded
    # noiseless: a sample's virtual data are its cap's data mapped by the cap's spline
    rng = np.random.default_rng(3)
    signal, _ = sim._sim.signal(16, rng)
    which = rng.integers(len(pool.caps), size=16)
    cap = pool.caps[which[0]]
    s = cap.true_weights @ signal[0, :, 0]
    np.testing.assert_allclose(batch.data[0, :, 0], cap.to_virtual @ (s - s.mean()),
                               rtol=1e-3, atol=1e-4 * np.abs(batch.data[0]).max())
    assert is_cap_free(model) and model.meta["cap_free"]["n_caps"] == 9
    with pytest.raises(ValueError, match="white sensor noise only"):
        pool.simulator(vlf, SimulationConfig(bad_channel_prob=0.5))


@contextlib.contextmanager
def _logs(text: str):
    """Assert that the deepesi logger emits a message containing ``text`` in the block."""
    seen: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: seen.append(record.getMessage())
    logging.getLogger("deepesi").addHandler(handler)
    try:
        yield
    finally:
        logging.getLogger("deepesi").removeHandler(handler)
    assert any(text in m for m in seen), seen


def _evoked(sensors, data):
    info = sensors.info.copy()
    with info._unlock():
        info["projs"] = []
    return mne.EvokedArray(data, info, tmin=0.0, verbose=False)


def test_any_channel_subset_gives_finite_normalised_maps(anycap_model, small_scalp_leadfield,
                                                         small_synthetic_head):
    from deepesi.inverse import apply_network
    from deepesi.sensors import make_eeg_sensors

    model = anycap_model[0]
    slf, cap, _, _ = small_scalp_leadfield
    names = cap.eeg_names[::2]  # 16 of biosemi32's electrodes: a cap never trained on
    sub = make_eeg_sensors(small_synthetic_head, "biosemi32", ch_names=names,
                           mri_fiducials=SYNTHETIC_FID)
    bound, lf = bind_recording(model, sub.info, slf, head=small_synthetic_head,
                               mri_fiducials=SYNTHETIC_FID)
    assert isinstance(bound, CapBoundModel) and bound.ch_names == names
    assert lf.ch_names == names and lf.n_sources == model.n_sources
    x = lf.gain[:, 40, :] @ np.array([0.0, 0.0, 1e-8])
    maps = bound.predict(np.c_[x, 3 * x])
    assert maps.shape == (model.n_sources, 2) and np.isfinite(maps).all() and maps.min() >= 0
    # the input is normalised: the map's shape does not depend on the data's scale
    np.testing.assert_allclose(maps[:, 1] / maps[:, 1].max(), maps[:, 0] / maps[:, 0].max(),
                               atol=1e-5)
    # channels by name, in any order
    np.testing.assert_allclose(bound.predict(x[::-1], ch_names=names[::-1]), maps[:, 0],
                               rtol=1e-5)
    # through apply_network (bound once, as for many recordings of one cap), with the
    # electrodes' interpolated forward for the fit
    ev = _evoked(sub, np.c_[x, 2 * x, x])
    result = apply_network(ev, bound, forward=lf, verbose=False)
    assert result.amplitudes.shape == (model.n_sources, 3) and result.fit
    np.testing.assert_allclose(result.amplitudes[:, 0], maps[:, 0], rtol=1e-4, atol=1e-12)
    with pytest.raises(ValueError, match="dense scalp lead field"):
        apply_network(ev, model, forward=lf, verbose=False)


def test_wrong_or_missing_positions_fail_clearly(anycap_model, small_scalp_leadfield,
                                                 small_synthetic_head):
    model, _, _ = anycap_model
    slf, cap, _, _ = small_scalp_leadfield
    names = cap.eeg_names
    egi = mne.create_info([f"E{i + 1}" for i in range(32)], 250.0, "eeg")
    with pytest.raises(ValueError, match="no positions and 32 of 32 are not 10-05 names"):
        bind_recording(model, egi, slf, head=small_synthetic_head, mri_fiducials=SYNTHETIC_FID)
    bare = mne.create_info(names, 250.0, "eeg")
    by_name, _ = bind_recording(model, bare, slf, head=small_synthetic_head,
                                mri_fiducials=SYNTHETIC_FID)  # biosemi32 uses 10-05 names
    assert by_name.ch_names == names
    pos = {n: ch["loc"][:3] for n, ch in zip(names, cap.info["chs"], strict=True)}
    fid = cap.info.get_montage().get_positions()
    mm = bare.copy()  # positions in millimetres
    mm.set_montage(mne.channels.make_dig_montage(
        ch_pos={n: p * 1000 for n, p in pos.items()}, nasion=fid["nasion"] * 1000,
        lpa=fid["lpa"] * 1000, rpa=fid["rpa"] * 1000, coord_frame="head"), on_missing="ignore")
    with pytest.raises(ValueError):
        bind_recording(model, mm, slf, head=small_synthetic_head, mri_fiducials=SYNTHETIC_FID)
    few = mne.pick_info(cap.info, list(range(5)))
    with pytest.raises(ValueError, match="at least 8"):
        bind_recording(model, few, slf, head=small_synthetic_head, mri_fiducials=SYNTHETIC_FID)
    with pytest.raises(ValueError, match="montage-independent"):
        bind_recording(type("M", (), {"meta": {}})(), cap.info, slf)
    # one electrode without a position: the others keep their digitized positions
    one_off = cap.info.copy()
    with one_off._unlock():
        one_off["chs"][3]["loc"][:3] = 0.0
    with _logs("left out"):
        part, _ = bind_recording(model, one_off, slf, head=small_synthetic_head,
                                 mri_fiducials=SYNTHETIC_FID)
    assert part.ch_names == [n for i, n in enumerate(names) if i != 3]
