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
    p.add_argument("--seed", type=int, default=0)
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
    from ..training import train_model

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
    model = train_model(
        lf,
        config,
        args.output,
        net=args.net,
        epochs=args.epochs,
        batch_size=args.batch_size,
        batches_per_epoch=args.batches_per_epoch,
        lr=args.lr,
        loss=args.loss,
        schedule=args.schedule,
        net_kwargs={} if args.hidden is None else {"hidden": args.hidden},
        seed=args.seed,
        device=args.device,
        resume=args.resume,
        num_workers=args.workers,
        max_minutes=args.max_minutes,
        precision=args.precision,
        whiten=None if not args.no_whiten else False,
        ensemble=ensemble,
        threads=args.threads or None,
        overwrite=args.overwrite,
    )
    logger.info(
        "%r: best validation loss %.4f after %d epochs, written to %s",
        model,
        model.meta["best_val_loss"],
        model.meta["epochs_run"],
        args.output,
    )
    return 0
