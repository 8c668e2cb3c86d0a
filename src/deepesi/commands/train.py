"""``deepesi train``: train the 4LCNN (or a baseline) for a forward model."""

from __future__ import annotations

import argparse

from .._logging import logger
from .simulate import add_leadfield_options, add_sim_options, leadfield_from_args, sim_config


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``deepesi train``."""
    from ..cli import add_common_options

    p = subparsers.add_parser(
        "train",
        help="train the 4LCNN on data simulated for a forward model",
        description="Train a network on EEG/MEG simulated on the fly. Writes the model (-o) and a "
        "checkpoint next to it (<model>.ckpt) after every epoch; --resume continues from it. "
        "Run under torchrun for data-parallel training on several GPUs/nodes.",
    )
    add_leadfield_options(p)
    p.add_argument("-o", "--output", required=True, help="model file to write (.pt)")
    p.add_argument("--net", default="4lcnn", choices=("4lcnn", "convdip", "linear"))
    p.add_argument("--epochs", type=int, default=50, help="maximum epochs (default %(default)s)")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--batches-per-epoch", type=int, default=200)
    p.add_argument("--lr", type=float, default=1e-3, help="learning rate (default %(default)s)")
    p.add_argument("--loss", default="ce", choices=("ce", "map"),
                   help="ce: cross-entropy over sources (default); map: weighted MSE + cosine")
    p.add_argument("--schedule", default="cosine", choices=("cosine", "plateau"),
                   help="learning-rate schedule (default %(default)s)")
    p.add_argument("--precision", default="float32", choices=("float32", "bfloat16"),
                   help="forward-pass arithmetic while training; bfloat16 is ~1.7x faster per "
                        "step on CPUs with AVX-512 BF16 and on recent GPUs (default %(default)s)")
    p.add_argument("--hidden", type=int, default=None,
                   help="width of the dense hidden layer (4lcnn, convdip)")
    p.add_argument("--seed", type=int, default=0,
                   help="seeds the net's weights, its training stream and the drawn lead "
                   "fields of --ensemble (default %(default)s)")
    p.add_argument("--seeds", type=int, nargs="+", default=None, metavar="S",
                   help="train a seed ensemble: one net per seed (same settings, each written "
                   "beside the output as <stem>-seed<S>.pt and reused when it exists), "
                   "combined into the output; its maps are the members' averaged posteriors "
                   "and localize reports how far the members agree")
    p.add_argument("--ensemble-rule", default="mean", choices=("mean", "geometric"),
                   help="with --seeds: mean (default, mixture of the members' posteriors) or "
                   "geometric (normalised product)")
    p.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:N")
    p.add_argument("--workers", type=int, default=1, help="data-generating worker processes")
    p.add_argument("--max-minutes", type=float, default=None, help="wall-time budget")
    p.add_argument("--threads", type=int, default=2,
                   help="PyTorch threads on a CPU (default %(default)s, fixed so that the "
                        "same command gives the same net on any machine; 0: one per core, "
                        "faster on big machines but machine-dependent)")
    p.add_argument("--resume", action="store_true", help="continue from <output>.ckpt")
    p.add_argument("--ensemble", type=int, default=1, metavar="N",
                   help="train on N lead fields: the nominal one and N-1 drawn under "
                   "conductivity and electrode-position uncertainty (needs --head/--montage; "
                   "each cached; default 1)")
    p.add_argument("--no-whiten", action="store_true",
                   help="with --noise-cov: scale the net's input per sensor type instead of "
                   "whitening it with the covariance")
    add_sim_options(p)
    add_common_options(p)
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    """Run ``deepesi train``."""
    from ..training import train_model, train_seed_ensemble
    from ..training.ensemble import check_seeds

    if args.seeds is not None:  # before any lead field is built
        check_seeds(args.seeds)
        if args.resume:
            raise ValueError("--resume is implied with --seeds (every member resumes from its "
                             "checkpoint); leave it out.")
    config = sim_config(args)
    ensemble = None
    if args.ensemble < 1:
        raise ValueError(f"--ensemble must be >= 1, got {args.ensemble}.")
    if args.ensemble > 1:
        if args.head is None:
            raise ValueError("--ensemble redraws the head model: give --head and --montage "
                             "instead of --forward.")
        from ..simulation.forwards import load_forward_ensemble

        ensemble = load_forward_ensemble(args.head, montage=args.montage,
                                         spacing_mm=args.spacing, n_members=args.ensemble,
                                         seed=args.seed, cache_dir=args.cache_dir)
        lf = ensemble.nominal
    else:
        lf = leadfield_from_args(args)
    common = dict(
        net=args.net,
        epochs=args.epochs,
        batch_size=args.batch_size,
        batches_per_epoch=args.batches_per_epoch,
        lr=args.lr,
        loss=args.loss,
        schedule=args.schedule,
        net_kwargs={} if args.hidden is None else {"hidden": args.hidden},
        device=args.device,
        num_workers=args.workers,
        max_minutes=args.max_minutes,
        precision=args.precision,
        whiten=None if not args.no_whiten else False,
        ensemble=ensemble,
        threads=args.threads or None,
    )
    if args.seeds is not None:
        model = train_seed_ensemble(lf, config, args.output, seeds=args.seeds,
                                    rule=args.ensemble_rule, overwrite=args.overwrite,
                                    **common)
        logger.info("%r written to %s", model, args.output)
        return 0
    model = train_model(lf, config, args.output, seed=args.seed, resume=args.resume,
                        overwrite=args.overwrite, **common)
    logger.info(
        "%r: best validation loss %.4f after %d epochs, written to %s",
        model,
        model.meta["best_val_loss"],
        model.meta["epochs_run"],
        args.output,
    )
    return 0
