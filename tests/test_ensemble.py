"""Forward ensembles: drawn head uncertainties, reproducible from the seed, used in training."""

from __future__ import annotations

import numpy as np
import pytest

from deepesi.forward import api
from deepesi.forward.ensemble import CONDUCTIVITY_FACTORS, ForwardEnsemble, make_forward_ensemble
from deepesi.forward.leadfield import LeadField
from deepesi.sensors import make_eeg_sensors, sensors_from_info
from deepesi.simulation import SimulationConfig, Simulator
from deepesi.simulation.sphere import make_sphere_leadfield
from helpers_meg import helmet_info

_H, _Z = 0.072 * np.cos(np.radians(20)), -0.072 * np.sin(np.radians(20))
FID = {"nasion": [0.0, _H, _Z], "lpa": [-_H, 0.0, _Z], "rpa": [_H, 0.0, _Z]}
EEG_NAMES = ["Fz", "Cz", "Pz", "Oz", "C3", "C4", "T7", "T8", "F3", "F4", "P3", "P4"]


@pytest.fixture(scope="module")
def setup():
    from conftest import make_sphere_labels
    from deepesi.anatomy import HeadModel
    from deepesi.sources import make_source_space

    vol, affine = make_sphere_labels()
    head = HeadModel(vol, affine, name="sphere")
    src = make_source_space(head, 0.012)
    eeg = make_eeg_sensors(head, "standard_1020", ch_names=EEG_NAMES, mri_fiducials=FID)
    pos_head = np.array([ch["loc"][:3] for ch in eeg.info["chs"]])
    info = helmet_info(np.asarray(eeg.trans["trans"]), grade=1, eeg_names=EEG_NAMES,
                       eeg_pos_head=pos_head)
    both = sensors_from_info(info, eeg.trans, head)
    return head, src, both


class _Recorder:
    """Stand-ins for the solvers: a gain that encodes what each member was drawn with."""

    def __init__(self):
        self.calls = []

    def compute_eeg(self, head, sensors, sources, eeg_kw):
        self.calls.append(("eeg", head, sensors))
        g = np.random.default_rng(0).normal(size=(sensors.n_eeg, sources.n_sources, 3))
        bone = head.tissues["Compact_bone"].conductivity if head.has_tissue(
            "Compact_bone") else head.tissues["Bone"].conductivity
        return (g - g.mean(axis=0)) * bone + 1e-3 * sensors.eeg_pos_mri[:, :1, None]

    def compute_meg(self, head, sensors, sources, meg_kw):
        self.calls.append(("meg", head, sensors))
        g = np.random.default_rng(1).normal(size=(sensors.n_meg, sources.n_sources, 3)) * 1e-13
        shift = np.asarray(sensors.info["dev_head_t"]["trans"])[0, 3]
        return g * (1.0 + shift), {"method": "fake"}


@pytest.fixture
def recorder(monkeypatch):
    r = _Recorder()
    monkeypatch.setattr(api, "_compute_eeg", r.compute_eeg)
    monkeypatch.setattr(api, "_compute_meg", r.compute_meg)
    return r


def test_members_differ_as_drawn_and_are_reproducible(setup, recorder):
    head, src, both = setup
    ens = make_forward_ensemble(head, both, src, 5, seed=3, cache_dir=False, verbose=False)
    assert isinstance(ens, ForwardEnsemble) and len(ens) == 5
    assert ens.draws[0]["nominal"] and ens.draws[0]["electrode_shift_mm"] == 0.0
    nominal = {t.name: t.conductivity for t in head.tissues}
    for d in ens.draws[1:]:
        for name, (lo, hi) in CONDUCTIVITY_FACTORS.items():
            if name in nominal:
                f = d["conductivities"][name] / nominal[name]
                assert lo <= f <= hi
        assert 1.0 < d["electrode_shift_mm"] < 12.0  # RMS 5 mm, 12 electrodes
        assert 0.2 < d["head_shift_mm"] < 10.0 and 0.1 < d["head_rotation_deg"] < 8.0
    # the skull conductivity spans more than the soft tissues
    skull = [d["conductivities"]["Compact_bone"] / nominal["Compact_bone"] for d in ens.draws[1:]]
    assert max(skull) / min(skull) > 1.2
    # each member's gain follows its own head and sensors; member 0 is the nominal forward
    nominal_lf = api.make_forward(head, both, src, cache_dir=False, verbose=False)
    np.testing.assert_array_equal(ens[0].gain, nominal_lf.gain)
    assert all(not np.allclose(ens[k].gain, ens[0].gain, rtol=1e-6, atol=0) for k in range(1, 5))
    meg_rows = [i for i, t in enumerate(ens[0].ch_types) if t != "eeg"]
    assert not np.allclose(ens[1].gain[meg_rows], ens[0].gain[meg_rows], rtol=1e-6, atol=0)
    assert ens.spread()["median_rel_diff"] > 0
    # the same seed gives the same ensemble, another seed another one
    again = make_forward_ensemble(head, both, src, 5, seed=3, cache_dir=False, verbose=False)
    assert again.hash() == ens.hash() and again.draws == ens.draws
    other = make_forward_ensemble(head, both, src, 3, seed=4, cache_dir=False, verbose=False)
    assert other[1].hash() != ens[1].hash()


def test_ensemble_errors(setup, recorder):
    head, src, both = setup
    with pytest.raises(ValueError, match="n_members"):
        make_forward_ensemble(head, both, src, 0, cache_dir=False)
    with pytest.raises(ValueError, match="conductivity_factors"):
        make_forward_ensemble(head, both, src, 2, conductivity_factors={"GM": (2.0, 1.0)},
                              cache_dir=False)
    ens = make_forward_ensemble(head, both, src, 2, cache_dir=False, verbose=False)
    eeg_only = ens.pick_types(["eeg"])
    assert eeg_only.ch_names == EEG_NAMES
    with pytest.raises(ValueError, match="other channels"):
        ForwardEnsemble([ens[0], eeg_only[1]])


def test_simulator_draws_a_member_per_sample():
    lf_a = make_sphere_leadfield(spacing=0.015, n_channels=32)
    b_gain = lf_a.gain * np.linspace(0.5, 1.5, lf_a.n_channels)[:, None, None]
    b_gain -= b_gain.mean(axis=0)
    lf_b = LeadField(b_gain, lf_a.ch_names, lf_a.ch_types, lf_a.source_space, lf_a.info,
                     lf_a.trans)
    cfg = SimulationConfig(n_sources=(1, 1), extent_mm=(0.0, 0.0), snr_db=(100.0, 100.0),
                           waveforms=("evoked",), n_times=1)
    sim = Simulator(lf_a, cfg, ensemble=[lf_a, lf_b])
    batch = sim.simulate(40, 0)
    alone = Simulator(lf_a, cfg).simulate(40, 0)
    assert np.array_equal(batch.centres, alone.centres)  # sources drawn before the member
    which = []
    for i in range(40):
        x = batch.data[i, :, 0].astype(float)
        c = int(batch.centres[i, 0])
        res = []
        for g in (lf_a.gain, lf_b.gain):
            cols = g[:, c, :]
            coef, *_ = np.linalg.lstsq(cols, x, rcond=None)
            res.append(np.linalg.norm(cols @ coef - x) / np.linalg.norm(x))
        assert min(res) < 1e-3
        which.append(int(np.argmin(res)))
    assert 5 < sum(which) < 35  # both members are used
    with pytest.raises(ValueError, match="other channels"):
        Simulator(lf_a, cfg, ensemble=[lf_a.pick(lf_a.ch_names[:10])])
