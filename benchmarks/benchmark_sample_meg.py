"""The benchmark grid for 306-channel MEG on the MNE sample subject: 4LCNN vs classical methods.

Usage::

    python benchmarks/benchmark_sample_meg.py --data ../shared/data/mne-sample [--out out/sample]
        [--epochs 20 --batches-per-epoch 250] [--n N] [--methods deepesi MNE ...] [--threads T]

Model forward: deepesi's forward for the subject, built and cached by
:mod:`deepesi.datasets.mne_sample` as in ``examples/sample_auditory.py`` (head model from
FreeSurfer, 5 mm cortical + subcortical source space, the recording's 306 Neuromag sensors and
trans; MEG = one-layer BEM on the inner skull segmented from our head model). The 4LCNN is trained
on it (``<out>/models/meg-benchmark.pt``, cached). The net **whitens its input** with the
recording's noise covariance and is trained on noise drawn from that covariance at whitened SNRs
0-20 dB, the benchmark's own definition, for a budget of batches (float32, a fixed thread count:
the same net on any machine) (an earlier net without whitening lost to LCMV: at a
whitened 10 dB the raw gradiometer SNR is -3 dB). Test forward: MNE's **three-layer** BEM on the
subject's own FreeSurfer watershed surfaces (``bem/*.surf``, ico-4, 5120 triangles per layer), with
the brain, skull and scalp conductivities each perturbed by up to ±20 %, and every source moved off
the grid by up to half a grid step (within its tissue and region). A different surface, a different
mesh, a different number of layers and off-grid sources: every method inverts with the model
forward.

Runs :func:`deepesi.benchmark.run_benchmark` over 1–3 sources × cortical/subcortical/mixed ×
0/5/10/20 dB × extents 0–20 mm with the recording's noise covariance, and writes
``benchmarks/results/<name>.json`` / ``.md`` and plots, like ``benchmark_template.py``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

#: Conductivities (S/m) of MNE's default three-layer BEM: brain, skull, scalp.
BEM_CONDUCTIVITY = (0.3, 0.006, 0.3)


def test_leadfield(paths: dict, head, src, lf_meg, out: Path, seed: int):
    """The MEG test lead field (three-layer FreeSurfer BEM, perturbed, off-grid), cached."""
    from deepesi.forward.leadfield import LeadField
    from deepesi.sources import SourceSpace

    cache = out / "cache" / f"meg-test-3layer-seed{seed}.npz"
    src_file = cache.with_suffix(".src.npz")
    if not (cache.is_file() and src_file.is_file()):
        _compute_test_leadfield(paths, head, src, lf_meg, cache, src_file, seed)
    z = np.load(cache, allow_pickle=False)
    return LeadField(z["gain"], list(lf_meg.ch_names), list(lf_meg.ch_types),
                     SourceSpace.load(src_file), info=lf_meg.info, trans=lf_meg.trans,
                     meta=json.loads(str(z["meta"])))


def _meg_info(lf_meg):
    """The lead field's measurement info restricted to its MEG channels, in its order."""
    import mne

    return mne.pick_info(lf_meg.info, mne.pick_channels(lf_meg.info["ch_names"],
                                                        lf_meg.ch_names, ordered=True))


def _compute_test_leadfield(paths, head, src, lf_meg, cache: Path, src_file: Path, seed: int):
    """Compute the test lead field of :func:`test_leadfield` and write its cache files."""
    import mne

    from deepesi.forward.meg import discrete_source_space
    from deepesi.simulation import off_grid_sources

    rng = np.random.default_rng(seed)
    moved = off_grid_sources(src, head, rng)
    cond = tuple(float(c * rng.uniform(0.8, 1.2)) for c in BEM_CONDUCTIVITY)
    t0 = time.perf_counter()
    model = mne.make_bem_model("sample", ico=4, conductivity=cond,
                               subjects_dir=paths["subjects_dir"], verbose=False)
    bem = mne.make_bem_solution(model, verbose=False)
    fwd = mne.make_forward_solution(_meg_info(lf_meg), lf_meg.trans,
                                    discrete_source_space(moved.pos), bem, meg=True, eeg=False,
                                    mindist=0.0, verbose=False)
    # MNE drops the points outside its inner skull (a different surface from ours): keep the rest
    kept = np.asarray(fwd["src"][0]["vertno"])
    head_to_mri = np.asarray(lf_meg.trans["trans"], float)
    rr_mri = fwd["src"][0]["rr"][kept] @ head_to_mri[:3, :3].T + head_to_mri[:3, 3]
    if np.abs(rr_mri - moved.pos[kept]).max() > 1e-6:
        raise RuntimeError("MNE's source positions do not match ours; frames mixed up?")
    mask = np.zeros(moved.n_sources, bool)
    mask[kept] = True
    test_src = moved.subset(mask)
    names = list(fwd["sol"]["row_names"])
    order = [names.index(n) for n in lf_meg.ch_names]
    g_head = fwd["sol"]["data"][order].reshape(len(order), len(kept), 3)
    gain = g_head @ np.linalg.inv(head_to_mri)[:3, :3]  # q_head = R q_mri → G_mri = G_head R
    meta = {"method": "mne-bem-3layer-ico4", "conductivity": cond, "seed": seed,
            "seconds": time.perf_counter() - t0, "dropped_outside_inner_skull": int((~mask).sum()),
            "moved_fraction": moved.meta.get("moved_fraction")}
    cache.parent.mkdir(parents=True, exist_ok=True)
    test_src.save(src_file, overwrite=True)
    np.savez(cache, gain=gain, meta=json.dumps(meta))


def noise_covariance(fname, lf_meg):
    """The recording's noise covariance on the MEG channels, without its SSP projectors and
    regularised (10 % of the mean variance per sensor type on the diagonal).

    The file's covariance was computed after three empty-room SSP projectors, so it is rank 303
    of 306. The benchmark's simulated data carry no SSP: whitening them with the singular matrix
    amplifies the three missing directions (where only signal lives) without bound, and every
    classical method returns the same map at every SNR. The regularised matrix is full rank;
    the simulated noise is drawn from it and every method whitens with it.
    """
    import mne
    from mne.cov import regularize

    cov = mne.read_cov(fname, verbose=False)
    cov = cov.pick_channels(list(lf_meg.ch_names), ordered=True, verbose=False)
    cov["projs"] = []
    info = _meg_info(lf_meg)
    info["bads"] = []
    with info._unlock():
        info["projs"] = []
    return regularize(cov, info, mag=0.1, grad=0.1, proj=False, rank="full", verbose=False)


def main() -> None:
    from benchmark_output import add_grid_options, grid_from_args, write_and_print

    from deepesi import set_log_level
    from deepesi.benchmark import BenchmarkConfig, run_benchmark
    from deepesi.datasets.mne_sample import build_forward, build_head, build_sources, data_paths
    from deepesi.inverse import CLASSICAL_METHODS
    from deepesi.simulation import SimulationConfig
    from deepesi.training import read_model, train_model

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help="MNE sample data folder")
    p.add_argument("--out", default="out/sample", help="cache folder of sample_auditory.py")
    p.add_argument("--epochs", type=int, default=20,
                   help="training budget: epochs of --batches-per-epoch batches of 256 "
                   "(default 20 × 250 = 5,000 batches, the same on any machine)")
    p.add_argument("--batches-per-epoch", type=int, default=250)
    p.add_argument("--train-minutes", type=float, default=None,
                   help="optional wall-clock cap on the training (makes the net depend on the "
                   "machine's speed; default none)")
    add_grid_options(p)
    p.add_argument("--n", type=int, default=3, help="samples per scenario")
    p.add_argument("--methods", nargs="+", default=["deepesi", *CLASSICAL_METHODS])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--name", default="benchmark_sample_meg", help="output file stem")
    p.add_argument("--no-emd", action="store_true", help="skip the earth mover's distance")
    p.add_argument("--gamma-maxit", type=int, help="cap Gamma-MAP's iterations (a time budget; "
                   "MNE's default runs to tol 1e-4, ~20 s per sample on these forwards)")
    p.add_argument("--seed", type=int, default=20241104)
    args = p.parse_args()
    set_log_level("INFO")
    torch.set_num_threads(args.threads)

    out = Path(args.out)
    paths = data_paths(args.data)
    head = build_head(paths, out)
    src = build_sources(head, out)
    lf = build_forward(head, src, paths, out)
    lf_meg = lf.pick_types("meg")
    cov = noise_covariance(paths["cov"], lf_meg)
    lf_test = test_leadfield(paths, head, src, lf_meg, out, args.seed)
    print(f"model forward {lf_meg.n_channels} ch x {lf_meg.n_sources} sources; test forward "
          f"{lf_test.n_sources} sources ({lf_test.meta['method']}, "
          f"dropped {lf_test.meta['dropped_outside_inner_skull']})")
    model_file = out / "models" / "meg-benchmark.pt"
    if model_file.is_file():
        model = read_model(model_file, lf_meg)
    else:
        # the net whitens its input with ``cov`` (already regularised: noise_reg=0) and learns
        # at whitened SNRs, the benchmark's definition, on noise drawn from ``cov`` itself
        config = SimulationConfig(noise_cov=cov, noise_reg=0.0, snr_space="whitened",
                                  colored_noise_fraction=(1.0, 1.0))
        model = train_model(lf_meg, config, model_file, epochs=args.epochs,
                            batches_per_epoch=args.batches_per_epoch, lr=3e-3,
                            net_kwargs={"hidden": 256}, max_minutes=args.train_minutes,
                            whiten=True, resume=True, threads=args.threads)
    grid = grid_from_args(args)
    cfg = BenchmarkConfig(n_samples=args.n, seed=0, methods=tuple(args.methods), **grid,
                          emd_max_support=None if args.no_emd else 200,
                          classical_options={"gamma_map": {"maxit": args.gamma_maxit}}
                          if args.gamma_maxit else {})
    t0 = time.perf_counter()
    res = run_benchmark({"MEG306": model}, {"MEG306": lf_test}, cfg,
                        model_leadfields={"MEG306": lf_meg}, noise_cov=cov)
    run_s = time.perf_counter() - t0
    res.meta.update(run_seconds=run_s, model=str(model_file),
                    model_epochs=model.meta.get("epochs_run"),
                    model_train_s=model.meta.get("train_time_s"),
                    model_sources=lf_meg.n_sources, test_sources=lf_test.n_sources,
                    test_meta=lf_test.meta)
    write_and_print(res, args.name, run_s)


if __name__ == "__main__":
    main()
