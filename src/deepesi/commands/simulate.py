"""``deepesi simulate``: simulated training/test data → HDF5 (for sharing or offline training).

Also holds the options shared with ``deepesi train`` (forward model, simulation); the lead field
itself comes from :func:`deepesi.simulation.load_leadfield`.
"""

from __future__ import annotations

import argparse

from .._logging import logger
from ..forward.leadfield import LeadField


def add_leadfield_options(parser: argparse.ArgumentParser) -> None:
    """``--forward FWD.fif`` or ``--head HEAD --montage NAME [--spacing MM]``."""
    g = parser.add_argument_group("forward model (either --forward, or --head with --montage)")
    g.add_argument("--forward", metavar="FWD.fif", help="lead field from an MNE -fwd.fif file")
    g.add_argument("--head", help="head model: 'template', a head folder or a segmentation")
    g.add_argument(
        "--montage",
        default="standard_1020",
        help="EEG montage name (MNE) for --head (default: %(default)s)",
    )
    g.add_argument(
        "--spacing",
        type=float,
        default=5.0,
        metavar="MM",
        help="source grid spacing in mm for --head (default: %(default)s)",
    )
    g.add_argument("--cache-dir", help="lead-field cache folder for --head")


def leadfield_from_args(args: argparse.Namespace) -> LeadField:
    """The lead field the forward-model options describe
    (:func:`deepesi.simulation.load_leadfield`: read, or computed and cached for --head)."""
    from ..simulation import load_leadfield

    return load_leadfield(args.forward, head=args.head, montage=args.montage,
                          spacing_mm=args.spacing, cache_dir=args.cache_dir)


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``deepesi simulate``."""
    from ..cli import add_common_options

    p = subparsers.add_parser(
        "simulate",
        help="simulate EEG/MEG of cortical + deep sources to an HDF5 file",
        description="Simulate sensor data and true source maps on a forward model (seeded) and "
        "write them to HDF5 (datasets data, sources, centres, regions, amplitudes, extent_mm, "
        "n_active, snr_db, good; attributes ch_names, ch_types, config, leadfield_hash).",
    )
    add_leadfield_options(p)
    p.add_argument("-o", "--output", required=True, help="output .h5 file")
    p.add_argument(
        "-n", "--n-samples", type=int, default=10000, help="samples (default %(default)s)"
    )
    p.add_argument("--seed", type=int, default=0, help="random seed (default %(default)s)")
    add_sim_options(p)
    add_common_options(p)
    p.set_defaults(func=run)
    return p


def add_sim_options(p: argparse.ArgumentParser) -> None:
    """SimulationConfig options shared with ``deepesi train``."""
    g = p.add_argument_group("simulation")
    g.add_argument("--n-sources", type=int, nargs=2, default=(1, 3), metavar=("MIN", "MAX"))
    g.add_argument(
        "--deep-fraction",
        type=float,
        default=0.4,
        help="fraction of samples with a deep source (default %(default)s)",
    )
    g.add_argument(
        "--extent",
        type=float,
        nargs=2,
        default=(0.0, 30.0),
        metavar=("MIN", "MAX"),
        help="patch radius range in mm (default 0 30)",
    )
    g.add_argument(
        "--snr",
        type=float,
        nargs=2,
        default=(0.0, 20.0),
        metavar=("MIN", "MAX"),
        help="SNR range in dB (default 0 20)",
    )
    g.add_argument("--n-times", type=int, default=1, help="samples per window (default 1)")
    g.add_argument(
        "--noise-cov",
        metavar="COV.fif",
        help="noise covariance (mne.write_cov file, e.g. of a baseline or empty-room recording) "
        "to draw spatially coloured noise from; deepesi train then whitens the net's input with "
        "it (--no-whiten to keep per-type scaling)",
    )
    g.add_argument(
        "--projs",
        metavar="FILE.fif",
        help="SSP projectors of the recording (a -proj.fif, or the recording or noise-covariance "
        "FIF that holds them): simulated data are projected like the recording, and the net's "
        "whitener removes the same directions",
    )
    g.add_argument(
        "--colored-fraction",
        type=float,
        nargs=2,
        default=None,
        metavar=("MIN", "MAX"),
        help="fraction of the noise power drawn from --noise-cov, the rest white (default 0 0.5; "
        "0.5 1 with --snr-space whitened)",
    )
    g.add_argument(
        "--noise-from",
        metavar="RECORDING",
        help="draw part of the noise from this recording's noise: the pre-stimulus baseline "
        "(t <= 0) of an -epo.fif / -ave.fif file, or a raw / empty-room file (all of it)",
    )
    g.add_argument(
        "--bank-fraction", type=float, nargs=2, default=(0.25, 0.75), metavar=("MIN", "MAX"),
        help="fraction of the noise power from --noise-from (default 0.25 0.75)",
    )
    g.add_argument(
        "--brain-noise", type=float, nargs=2, default=(0.0, 0.0), metavar=("MIN", "MAX"),
        help="fraction of the noise power that is background brain activity (100 random "
        "dipoles, 1/f time courses; default 0 0: none)",
    )
    g.add_argument(
        "--snr-space",
        choices=("sensor", "whitened"),
        default=None,
        help="measure the SNR per sensor type on the raw data, or on data whitened with "
        "--noise-cov (default: whitened when --noise-cov is given, else sensor)",
    )


def sim_config(args: argparse.Namespace):
    """The SimulationConfig the options describe."""
    import warnings

    import mne

    from .._validation import check_file
    from ..simulation import SimulationConfig

    cov = None
    if args.noise_cov is not None:
        from .._io import read_noise_cov

        cov = read_noise_cov(args.noise_cov)
    projs = None
    if args.projs is not None:
        fname = check_file(args.projs, "SSP projector file")
        try:
            with warnings.catch_warnings():  # MNE warns about names not ending in -proj.fif
                warnings.simplefilter("ignore", RuntimeWarning)
                projs = mne.read_proj(fname, verbose=False)
        except Exception as err:
            raise ValueError(f"cannot read SSP projectors from {fname} ({err}).") from err
        if not projs:
            raise ValueError(f"{fname} holds no SSP projectors; drop --projs or give the "
                             "file of the recording (or its -proj.fif).")
    space = args.snr_space or ("whitened" if cov is not None else "sensor")
    if space == "whitened" and cov is None:
        raise ValueError("--snr-space whitened needs --noise-cov (the SNR is measured after "
                         "whitening with it).")
    fraction = args.colored_fraction
    if fraction is None:
        fraction = (0.5, 1.0) if space == "whitened" else (0.0, 0.5)
    bank = None
    if getattr(args, "noise_from", None):
        from ..inverse import read_recording
        from ..simulation import make_noise_bank

        rec = read_recording(args.noise_from)
        bank = make_noise_bank(rec, tmax=None if isinstance(rec, mne.io.BaseRaw) else 0.0)
    return SimulationConfig(
        noise_bank=bank,
        bank_noise_fraction=tuple(args.bank_fraction),
        brain_noise_fraction=tuple(args.brain_noise),
        n_sources=tuple(args.n_sources),
        deep_fraction=args.deep_fraction,
        extent_mm=tuple(args.extent),
        snr_db=tuple(args.snr),
        n_times=args.n_times,
        noise_cov=cov,
        snr_space=space,
        colored_noise_fraction=tuple(fraction),
        projs=projs,
    )


def run(args: argparse.Namespace) -> int:
    """Run ``deepesi simulate``."""
    from .._io import check_overwrite
    from ..simulation import simulate_to_hdf5

    if args.n_samples < 1:
        raise ValueError(f"--n-samples must be >= 1, got {args.n_samples}.")
    check_overwrite(args.output, args.overwrite)
    config = sim_config(args)
    lf = leadfield_from_args(args)
    path = simulate_to_hdf5(
        lf, args.output, args.n_samples, config, seed=args.seed, overwrite=args.overwrite
    )
    logger.info("wrote %d samples to %s", args.n_samples, path)
    return 0
