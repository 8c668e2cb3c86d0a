"""The benchmark grid on the template head: the pretrained 4LCNN vs the classical methods.

Usage::

    python benchmarks/benchmark_template.py [--work out/pretrained] [--model M.pt] [--n N]
                                            [--methods deepesi MNE ...] [--threads T]

Model forward: the FEM lead field the shipped ``template-eeg64`` network was trained on (2 mm mesh,
default conductivities, the 5 mm cortical + subcortical source space; 64-channel 10-10 EEG).
Test forward: FEM on a finer 1.5 mm mesh with every tissue conductivity perturbed by up to ±20 %
and every source moved off the grid. Both come from ``scripts/build_pretrained.py --stage
forward`` (in ``--work``). Runs :func:`deepesi.benchmark.run_benchmark` over 1–3 sources ×
cortical/subcortical/mixed × 0/5/10/20 dB × extents 0–20 mm; every method inverts with the model
forward. Writes ``benchmarks/results/benchmark_template.json`` (records + summary),
``benchmark_template.md`` (tables) and the plots in ``benchmarks/results/benchmark_template/``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch


def main() -> None:
    from benchmark_output import add_grid_options, grid_from_args, write_and_print

    from deepesi.benchmark import BenchmarkConfig, run_benchmark
    from deepesi.inverse import CLASSICAL_METHODS
    from deepesi.pretrained import PRETRAINED, load_pretrained, pretrained_files
    from deepesi.simulation import read_work_leadfield
    from deepesi.training import read_model

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", default="out/pretrained", help="build_pretrained.py work folder")
    p.add_argument("--model", help="model file trained on WORK/train-gain.npy (default: a "
                   "shipped model, inverted with its shipped lead field)")
    p.add_argument("--pretrained", default="template-eeg64",
                   help="shipped model when --model is not given")
    p.add_argument("--n", type=int, default=6, help="samples per scenario")
    p.add_argument("--methods", nargs="+", default=["deepesi", *CLASSICAL_METHODS])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--name", default="benchmark_template", help="output file stem")
    p.add_argument("--no-emd", action="store_true", help="skip the earth mover's distance")
    p.add_argument("--gamma-maxit", type=int, help="cap Gamma-MAP's iterations (a time budget; "
                   "MNE's default runs to tol 1e-4, ~20 s per sample on these forwards)")
    p.add_argument("--test", default="test", choices=["test", "test-realistic", "nominal"],
                   help="test forward: the ±20 %% one, the realistic mismatch (skull x0.6 / "
                        "x1.6, electrodes moved 5 mm; build_pretrained.py --realistic), or "
                        "'nominal': the model's own shipped forward, sources on the grid (no "
                        "FEM to build; an inverse crime, for speed measurements only)")
    add_grid_options(p)
    p.add_argument("--peers", nargs="+", default=[],
                   help="invertmeeg solvers to run beside (GPL-3, optional: pip install "
                        "invertmeeg; benchmarks/peers.py), e.g. flex-nl-champagne champagne "
                        "covcnn")
    p.add_argument("--proposal-samples", default=None,
                   help="samples of the residual the network's source-set proposal reads "
                   "(an integer, or 'all'; default the library's)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    work = Path(args.work)
    needed = ("train",) if args.model else ()
    needed += () if args.test == "nominal" else (args.test,)
    for stem in needed:
        if not (work / f"{stem}-gain.npy").exists():
            raise SystemExit(f"{work}/{stem}-gain.npy missing: run "
                             "`python scripts/build_pretrained.py --stage forward` first.")
    lf_test = None if args.test == "nominal" else read_work_leadfield(work, args.test)
    if args.model:
        model_path, model = args.model, read_model(args.model)
        lf = read_work_leadfield(work, "train")
    else:
        # the shipped float16 gain of the training forward (the FEM is not bit-reproducible
        # across machines, so a recomputed train-gain.npy differs from the one the net saw)
        model_path = pretrained_files(args.pretrained)["model"]
        model, lf = load_pretrained(args.pretrained)
        if PRETRAINED[args.pretrained].get("cap_free"):
            if lf_test is None:
                raise SystemExit("a montage-independent net has no forward of its own: give "
                                 "--test test or test-realistic.")
            # bound to the test forward's electrodes at their nominal 10-05 positions, as
            # deepesi localize binds a recording; their lead field from the dense scalp one
            from deepesi.anatomy.template import load_template
            from deepesi.inverse.anycap import CapBoundModel
            from deepesi.sensors import make_eeg_sensors

            nominal = make_eeg_sensors(load_template(), "colin27_1005",
                                       ch_names=list(lf_test.ch_names))
            model, lf = CapBoundModel(model, nominal, lf.centre), lf.leadfield(nominal)
        else:
            model.leadfield_hash = lf.hash()
    if lf_test is None:
        if args.model:
            raise SystemExit("--test nominal inverts with a shipped model's own forward; "
                             "drop --model.")
        lf_test = lf
    grid = grid_from_args(args)
    if args.proposal_samples is not None:
        grid["source_set_options"] = {"proposal_samples": None if args.proposal_samples == "all"
                                      else int(args.proposal_samples)}
    cfg = BenchmarkConfig(n_samples=args.n, seed=0, methods=tuple(args.methods), **grid,
                          emd_max_support=None if args.no_emd else 200,
                          classical_options={"gamma_map": {"maxit": args.gamma_maxit}}
                          if args.gamma_maxit else {})
    t0 = time.perf_counter()
    external = None
    if args.peers:
        from peers import peer_methods

        external = peer_methods(args.peers)
    res = run_benchmark(model, lf_test, cfg, model_leadfields=lf, external_methods=external)
    run_s = time.perf_counter() - t0
    res.meta.update(run_seconds=run_s, model=str(model_path),
                    model_epochs=model.meta.get("epochs_run"),
                    model_train_s=model.meta.get("train_time_s"),
                    model_sources=lf.n_sources, test_sources=lf_test.n_sources,
                    test_forward=args.test,
                    test_meta={k: v for k, v in lf_test.meta.items() if k != "conductivities"})
    write_and_print(res, args.name, run_s)

if __name__ == "__main__":
    main()
