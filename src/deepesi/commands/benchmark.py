"""``deepesi benchmark``: deepesi vs the classical inverse methods over a scenario grid."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

logger = logging.getLogger(__name__)

#: Files ``deepesi benchmark`` writes into the output folder.
OUTPUTS = (
    "benchmark.json",
    "benchmark.md",
    "error_vs_snr.png",
    "error_vs_depth.png",
    "cortical_vs_subcortical.png",
)


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``deepesi benchmark``."""
    from ..benchmark import DEEPESI, PLACEMENTS
    from ..cli import add_common_options
    from ..inverse import CLASSICAL_METHODS

    p = subparsers.add_parser(
        "benchmark",
        help="compare the network with MNE, dSPM, sLORETA, eLORETA, LCMV, MxNE, Gamma-MAP, "
        "dipole scan on simulated data",
        description="Simulate test data on --test-forward (which should differ from the "
        "model's forward: finer mesh, perturbed conductivities, off-grid sources), localize it "
        "with the network and the classical methods, all inverting with --forward (the model's "
        "own lead field), and write per-sample records (benchmark.json), a table of medians with "
        "bootstrap 95 % CIs (benchmark.md) and plots into OUT_DIR. See docs/benchmarks.md.",
    )
    p.add_argument("--model", metavar="MODEL.pt", help="trained model (needed for 'deepesi')")
    p.add_argument("--forward", required=True, metavar="FWD.fif",
                   help="the lead field the model was trained on (-fwd.fif + sidecar)")
    p.add_argument("--test-forward", required=True, metavar="FWD.fif",
                   help="the lead field the test data are simulated with")
    p.add_argument("--sensor-set", metavar="NAME",
                   help="name of the sensor set in the tables (default e.g. 'eeg64')")
    p.add_argument("--snr", type=float, nargs="+", default=[0.0, 5.0, 10.0, 20.0], metavar="DB",
                   help="SNR levels in dB (default: %(default)s)")
    p.add_argument("--n", type=int, default=50, help="samples per scenario (default %(default)s)")
    p.add_argument("--n-sources", type=int, nargs="+", default=[1, 2, 3], metavar="K",
                   help="numbers of simultaneous sources (default: %(default)s)")
    p.add_argument("--placements", nargs="+", default=list(PLACEMENTS), choices=PLACEMENTS,
                   help="source placements (default: all)")
    p.add_argument("--extent", type=float, nargs=2, default=[0.0, 20.0],
                   metavar=("MIN", "MAX"), help="patch radius range in mm (default 0 20)")
    p.add_argument("--n-times", type=int, default=20,
                   help="samples per simulated window (default %(default)s)")
    p.add_argument("--methods", nargs="+", default=[DEEPESI, *CLASSICAL_METHODS],
                   metavar="METHOD",
                   help=f"methods to run (default: {', '.join([DEEPESI, *CLASSICAL_METHODS])}; "
                   "also the source-set methods deepesi-sources, deepesi-map-sources, dipoles)")
    p.add_argument("--noise-cov", metavar="COV.fif",
                   help="noise covariance (MNE -cov.fif) for the simulated noise and the "
                   "classical methods (default: MNE's ad hoc diagonal covariance)")
    p.add_argument("--no-emd", action="store_true",
                   help="skip the earth mover's distance (most of the scoring time on big grids)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--bootstrap", type=int, default=2000, metavar="N",
                   help="bootstrap resamples for the CIs (default %(default)s)")
    p.add_argument("-o", "--output", required=True, metavar="OUT_DIR", help="output folder")
    add_common_options(p)
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    """Run ``deepesi benchmark``."""
    from .._io import check_overwrite
    from ..benchmark import NETWORK_METHODS, BenchmarkConfig, default_set_name, run_benchmark
    from ..forward.io import read_forward

    cfg_methods = tuple(args.methods)
    out_dir = Path(args.output)
    for name in OUTPUTS:  # fail now, not after the run
        check_overwrite(out_dir / name, args.overwrite)
    lf = read_forward(args.forward)
    lf_test = read_forward(args.test_forward)
    name = args.sensor_set or default_set_name(lf)
    config = BenchmarkConfig(
        n_sources=tuple(args.n_sources),
        placements=tuple(args.placements),
        snr_db=tuple(args.snr),
        extents_mm=(tuple(args.extent),),
        sensor_sets=(name,),
        n_samples=args.n,
        seed=args.seed,
        methods=cfg_methods,
        n_times=args.n_times,
        n_bootstrap=args.bootstrap,
        emd_max_support=None if args.no_emd else 200,
    )
    model = None
    net = [m for m in config.methods if m in NETWORK_METHODS]
    if net:
        if not args.model:
            raise ValueError(f"method {net[0]!r} needs --model MODEL.pt (or drop it from "
                             "--methods).")
        from ..training import read_model

        model = read_model(args.model, lf)
    noise_cov = None
    if args.noise_cov:
        from .._io import read_noise_cov

        noise_cov = read_noise_cov(args.noise_cov)
    result = run_benchmark(
        {name: model} if model is not None else None,
        {name: lf_test},
        config,
        model_leadfields={name: lf},
        noise_cov=noise_cov,
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    result.save(out_dir / "benchmark.json", overwrite=args.overwrite)
    from .._io import atomic_path

    with atomic_path(out_dir / "benchmark.md", overwrite=args.overwrite) as tmp:
        tmp.write_text(result.to_markdown())
    result.plot(out_dir, overwrite=args.overwrite)
    if not args.quiet:
        rows = result.summary(by=("placement", "snr_db"), metrics=("le_mm",))
        print("median localization error (mm) [95% CI], pooled over the number of sources:")
        for r in rows:
            print(f"  {r['placement']:>11} {r['snr_db']:5g} dB  {r['method']:>11}  "
                  f"{r['le_mm']:6.1f} [{r['le_mm_lo']:.1f}, {r['le_mm_hi']:.1f}]")
    logger.info("wrote %s", ", ".join(str(out_dir / n) for n in OUTPUTS))
    return 0
