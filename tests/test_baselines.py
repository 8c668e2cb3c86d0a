"""Classical inverse methods (deepesi.inverse) on a small spherical EEG forward with a simulated
dipole."""

from __future__ import annotations

import mne
import numpy as np
import pytest

from deepesi.inverse import CLASSICAL_METHODS, SourceMap, apply_classical

mne.set_log_level("WARNING")

SPACING = 0.02  # grid step of the test source space (m)
CENTRE = np.array([0.0, 0.0, 0.04])


@pytest.fixture(scope="module")
def sphere_setup():
    """64-channel EEG on a 4-shell sphere, volume grid at 20 mm, ad-hoc noise."""
    sphere = mne.make_sphere_model(r0=tuple(CENTRE), head_radius=0.09)
    # exclude the centre point, where the sphere model's formula is singular
    src = mne.setup_volume_source_space(
        pos=SPACING * 1000, sphere=sphere, sphere_units="m", exclude=5.0
    )
    montage = mne.channels.make_standard_montage("biosemi64")
    info = mne.create_info(montage.ch_names, 1000.0, "eeg")
    info.set_montage(montage)
    fwd = mne.make_forward_solution(info, None, src, sphere, meg=False, eeg=True)
    cov = mne.make_ad_hoc_cov(info)  # 0.2 µV white noise
    return sphere, info, fwd, cov


def simulate(fwd, info, index, snr_db=None, seed=0, n_times=40, sphere=None, pos=None):
    """Evoked of one dipole (Gaussian time course peaking at 20 ms) plus 0.2 µV white noise."""
    if pos is not None:  # off-grid dipole: its own one-point forward
        one = mne.setup_volume_source_space(pos={"rr": pos[None], "nn": np.eye(3)[2][None]})
        gain = mne.make_forward_solution(info, None, one, sphere, meg=False, eeg=True)
        gain = gain["sol"]["data"].reshape(len(info["ch_names"]), 3)
    else:
        gain = fwd["sol"]["data"].reshape(len(info["ch_names"]), -1, 3)[:, index]
    q = np.array([0.3, 0.5, 0.8]) / np.linalg.norm([0.3, 0.5, 0.8])
    wave = np.exp(-0.5 * ((np.arange(n_times) / 1000.0 - 0.02) / 0.005) ** 2)
    signal = (gain @ q)[:, None] * wave[None] * 1e-8
    data = signal.copy()
    if snr_db is not None:
        rng = np.random.default_rng(seed)
        noise = 0.2e-6 * rng.standard_normal(signal.shape)
        data *= 0.2e-6 * np.sqrt(10 ** (snr_db / 10) / np.mean(signal**2))
        data += noise
    return mne.EvokedArray(data, info, tmin=0.0), q, wave


def nearest(fwd, xyz):
    return int(np.argmin(np.linalg.norm(fwd["source_rr"] - xyz, axis=1)))


# Largest peak error (m) each method may show at 30 dB on this grid. The minimum-norm estimate and
# dSPM are depth-biased (they favour superficial points): a known property, not a bug, hence the
# loose bound, which is still far below the ~70 mm of a random guess.
MAX_ERROR = {
    "MNE": 0.040,
    "dSPM": 0.040,
    "sLORETA": SPACING,
    "eLORETA": SPACING,
    "LCMV": SPACING,
    "MxNE": SPACING * np.sqrt(2) + 1e-6,
    "gamma_map": SPACING,
    "dipole_scan": 0.0,
    "dipoles": 0.5 * SPACING,  # off the grid: the peak table reads the nearest grid point
}


FAST = ("MNE", "sLORETA", "eLORETA", "LCMV", "dipole_scan", "dipoles")


@pytest.mark.parametrize(
    ("target", "methods"),
    [((0.03, 0.0, 0.075), CLASSICAL_METHODS), ((-0.045, 0.015, 0.03), FAST)],
)
def test_every_method_finds_single_dipole_at_high_snr(sphere_setup, target, methods):
    _, info, fwd, cov = sphere_setup
    i = nearest(fwd, np.array(target))
    evoked, _, _ = simulate(fwd, info, i, snr_db=30, seed=1)
    assert set(MAX_ERROR) == set(CLASSICAL_METHODS)
    for method in methods:
        res = apply_classical(evoked, method, fwd, cov, snr=30.0)
        assert isinstance(res, SourceMap)
        assert res.amplitudes.shape == (fwd["nsource"], len(evoked.times))
        assert (res.amplitudes >= 0).all()
        stc = res.to_stc()
        assert isinstance(stc, mne.VolSourceEstimate)
        np.testing.assert_array_equal(stc.vertices[0], fwd["src"][0]["vertno"])
        np.testing.assert_allclose(stc.data, res.amplitudes)
        assert res.peak_time == pytest.approx(0.02)
        err = np.linalg.norm(res.peaks(1).positions()[0] - fwd["source_rr"][i])
        assert err <= MAX_ERROR[method], f"{method}: {err * 1000:.1f} mm"


def test_dipole_scan_exact_without_noise(sphere_setup):
    _, info, fwd, cov = sphere_setup
    i = nearest(fwd, np.array([0.02, -0.03, 0.06]))
    evoked, q, wave = simulate(fwd, info, i, snr_db=None)
    res = apply_classical(evoked, "dipole", fwd, cov)
    assert res.peaks(5).column("source") == [i]
    assert res.extras["gof"][i] == pytest.approx(1.0, abs=1e-9)
    assert np.sort(res.extras["gof"])[-2] < 0.999
    # the moment is recovered up to the average-reference null space (none for a dipole)
    np.testing.assert_allclose(res.extras["moment"], 1e-8 * q[:, None] * wave[None], atol=1e-14)
    np.testing.assert_allclose(res.amplitudes[i], 1e-8 * wave, rtol=1e-6, atol=1e-16)
    assert np.count_nonzero(res.amplitudes.any(axis=1)) == 1
    assert res.units == "A·m"


def test_dipole_scan_refinement_off_grid(sphere_setup):
    sphere, info, fwd, cov = sphere_setup
    true = np.array([0.021, -0.006, 0.064])  # between grid points
    evoked, _, _ = simulate(fwd, info, None, snr_db=None, sphere=sphere, pos=true)
    res = apply_classical(evoked, "dipole_scan", fwd, cov, refine=True)
    grid_err = np.linalg.norm(res.peaks(1).positions()[0] - true)
    refined_err = np.linalg.norm(res.extras["refined_pos"] - true)
    assert grid_err > 0.005
    assert refined_err < 0.5 * grid_err
    assert refined_err < 0.003
    assert res.extras["refined_gof"] > res.extras["gof"].max()


def test_window_and_two_peaks(sphere_setup):
    _, info, fwd, cov = sphere_setup
    left, right = nearest(fwd, [-0.045, 0.0, 0.06]), nearest(fwd, [0.045, 0.0, 0.06])
    ev_l, _, _ = simulate(fwd, info, left, snr_db=None)
    ev_r, _, _ = simulate(fwd, info, right, snr_db=None)
    data = ev_l.data + ev_r.data
    data *= 0.2e-6 * np.sqrt(1e3 / np.mean(data**2))  # 30 dB
    data += 0.2e-6 * np.random.default_rng(3).standard_normal(data.shape)
    evoked = mne.EvokedArray(data, info, tmin=0.0)
    res = apply_classical(evoked, "sLORETA", fwd, cov, tmin=0.015, tmax=0.025, snr=30.0)
    assert res.times[0] == pytest.approx(0.015) and res.times[-1] == pytest.approx(0.025)
    peaks = res.peaks(2)
    assert len(peaks) == 2
    assert peaks[0]["amplitude"] >= peaks[1]["amplitude"]
    rr = fwd["source_rr"]
    for true in (left, right):
        assert np.linalg.norm(peaks.positions() - rr[true], axis=1).min() <= SPACING
    single = apply_classical(evoked, "eLORETA", fwd, cov, tmin=0.02, tmax=0.02)
    assert single.amplitudes.shape[1] == 1
    assert "peak time 0.020 s" in repr(single)
    np.testing.assert_allclose(single.map_at(), single.amplitudes[:, 0])


def test_leadfield_input(sphere_setup):
    io = pytest.importorskip("deepesi.forward.io")
    from deepesi.forward.leadfield import LeadField
    from deepesi.sources import SourceSpace

    _, info, fwd, cov = sphere_setup
    n = fwd["nsource"]
    src = SourceSpace(
        pos=fwd["source_rr"],
        region_ids=np.zeros(n, int),
        normals=np.zeros((n, 3)),
        free_ori=np.ones(n, bool),
        adjacency=np.zeros((n, n)),
        spacing=SPACING,
    )
    gain = fwd["sol"]["data"].reshape(len(info["ch_names"]), n, 3)
    # a non-identity head→MRI transform: positions must come back in the MRI frame of the lead field
    rot = mne.transforms.rotation(0.0, 0.0, np.pi / 6)
    rot[:3, 3] = [0.01, -0.02, 0.03]
    trans = mne.transforms.Transform("head", "mri", rot)
    lf = LeadField(
        gain, info["ch_names"], ["eeg"] * len(info["ch_names"]), src, info=info, trans=trans
    )
    assert io.leadfield_to_forward(lf)["nsource"] == n
    i = nearest(fwd, np.array([0.02, -0.03, 0.06]))
    evoked, _, _ = simulate(fwd, info, i)
    res = apply_classical(evoked, "dipole_scan", lf, cov)
    np.testing.assert_allclose(res.source_space.pos, src.pos, atol=1e-9)
    assert res.peaks(5).column("source") == [i]
    assert res.extras["gof"][i] == pytest.approx(1.0, abs=1e-9)


def test_clear_errors(sphere_setup):
    _, info, fwd, cov = sphere_setup
    evoked, _, _ = simulate(fwd, info, 10)
    with pytest.raises(ValueError, match="unknown method 'foo'"):
        apply_classical(evoked, "foo", fwd, cov)
    with pytest.raises(ValueError, match="noise covariance"):
        apply_classical(evoked, "MNE", fwd, None)
    with pytest.raises(TypeError, match=r"mne\.Evoked"):
        apply_classical(evoked.data, "MNE", fwd, cov)
    with pytest.raises(TypeError, match=r"mne\.Forward or a deepesi LeadField"):
        apply_classical(evoked, "MNE", "fwd.fif", cov)
    bad = evoked.copy()
    bad.data[3, 5] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        apply_classical(bad, "dSPM", fwd, cov)
    extra = mne.EvokedArray(
        np.zeros((1, len(evoked.times))), mne.create_info(["X1"], 1000.0, "eeg"), tmin=0.0
    )
    more = evoked.copy().add_channels([extra], force_update_info=True)
    with pytest.raises(ValueError, match=r"not in the forward: \['X1'\]"):
        apply_classical(more, "MNE", fwd, cov)
    small_cov = mne.make_ad_hoc_cov(evoked.copy().drop_channels(["Fp1"]).info)
    with pytest.raises(ValueError, match=r"not in the noise covariance: \['Fp1'\]"):
        apply_classical(evoked, "MNE", fwd, small_cov)
    with pytest.raises(ValueError, match="snr must be a positive"):
        apply_classical(evoked, "MNE", fwd, cov, snr=0)
    with pytest.raises(ValueError, match="outside the recording's time range"):
        apply_classical(evoked, "MNE", fwd, cov, tmin=1.0, tmax=2.0)
    with pytest.raises(ValueError, match=r"tmax .* is before tmin"):
        apply_classical(evoked, "MNE", fwd, cov, tmin=0.03, tmax=0.01)
    # a bad channel missing from the forward is fine: it is not used
    more.info["bads"] = ["X1"]
    assert apply_classical(more, "dipole_scan", fwd, cov).n_sources == fwd["nsource"]


@pytest.mark.shared_data
def test_sample_subject_meg_auditory_dipole(sample_dir):
    """Real data, real trans: the N100m dipole of the sample subject lies in the temporal lobe."""
    meg = sample_dir / "MEG" / "sample"
    bem = sample_dir / "subjects" / "sample" / "bem" / "sample-1280-bem-sol.fif"
    evoked = mne.combine_evoked(
        mne.read_evokeds(meg / "sample_audvis-auditory-ave.fif", verbose=False), weights="nave"
    ).pick("meg")
    cov = mne.read_cov(meg / "sample_audvis_trunc-cov.fif", verbose=False)
    trans = mne.read_trans(meg / "sample_audvis_trunc-trans.fif")
    src = mne.setup_volume_source_space(
        "sample", pos=15.0, bem=bem, subjects_dir=sample_dir / "subjects", add_interpolator=False
    )
    fwd = mne.make_forward_solution(evoked.info, trans, src, bem, meg=True, eeg=False)
    res = apply_classical(evoked, "dipole_scan", fwd, cov, tmin=0.085, tmax=0.105)
    x, y, z = res.peaks(1).positions()[0]  # MRI (surface RAS) frame, metres
    assert abs(x) > 0.04  # lateral
    assert -0.06 < y < 0.01 and -0.02 < z < 0.05  # around the superior temporal plane
    # whitened GOF counts the noise of all 306 channels and the N100m is bilateral: the best
    # single dipole explains little in absolute terms, but far more than a typical grid point
    gof = res.extras["gof"]
    assert gof.max() > 3 * np.median(gof)


def test_sequential_dipoles_find_two_sources_off_the_grid(sphere_setup):
    """The classical 'dipoles' method: two dipoles, their number and positions, in one map."""
    _, info, fwd, cov = sphere_setup
    rr = fwd["source_rr"]
    i = nearest(fwd, np.array([0.03, 0.0, 0.075]))
    j = nearest(fwd, np.array([-0.045, 0.015, 0.03]))
    ev1, _, _ = simulate(fwd, info, i, snr_db=30, seed=1)
    ev2, _, _ = simulate(fwd, info, j, snr_db=30, seed=2)
    evoked = ev1.copy()  # the second source 8 ms later: two time courses
    evoked.data = ev1.data + np.roll(ev2.data, 8, axis=1)
    res = apply_classical(evoked, "sequential_dipoles", fwd, cov)
    assert res.method == "dipoles" and len(res.sources) == 2
    found = np.array([[r["x_mm"], r["y_mm"], r["z_mm"]] for r in res.sources]) * 1e-3
    d = np.linalg.norm(rr[[i, j]][:, None] - found[None], axis=2).min(axis=1)
    assert d.max() < 3e-3, d
    assert res.fit["sources"]["nave"] == evoked.nave
    assert np.count_nonzero(res.amplitudes.any(axis=1)) == 2
