"""The training loop: :func:`train_model` trains a network on data simulated on the fly.

It validates on a fixed simulated set every epoch, keeps the best weights, stops early, writes an
atomic checkpoint after every epoch (``<out>.ckpt``) from which ``resume=True`` continues
bit-for-bit, and finally saves the model (:class:`~deepesi.training.TrainedModel`) to
``out_path``. Under ``torchrun`` (environment ``WORLD_SIZE`` > 1) it trains data-parallel with
DistributedDataParallel: every rank draws its own reproducible sample stream, gradients are
averaged, rank 0 writes the files and reports progress.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .._deprecate import progress_to_verbose
from .._io import atomic_path, check_overwrite
from .._logging import logger, use_log_level, verbose
from .._progress import progress
from ..forward.leadfield import LeadField
from ..nets import SourceNet, build_net
from ..simulation import SimulationConfig, Simulator, batch_seed
from ._distributed import dist_env, pick_device
from ._modelfile import trans_matrix
from .dataset import SimulatedDataset, smooth_target, smoothing_kernel
from .losses import LOSSES, _lr_factor, normalise_input, normalise_target
from .model import TrainedModel
from .options import check_options, input_transform

__all__ = ["train_model", "train_or_load"]

#: PyTorch threads of a training run on a CPU, fixed so that the net does not depend on the
#: machine's core count (``train_model(threads=)``).
TRAIN_THREADS = 2
_VAL_EPOCH = 1_000_000  # epoch index of the validation stream (never a training epoch)
_VAL_CHUNK = 1024  # validation samples per forward pass


def _checkpoint_path(out_path: Path) -> Path:
    return out_path.with_name(out_path.name + ".ckpt")


@progress_to_verbose
@verbose
def train_model(
    leadfield: LeadField,
    config: SimulationConfig | None = None,
    out_path: str | os.PathLike = "model.pt",
    *,
    net: str = "4lcnn",
    net_kwargs: dict | None = None,
    epochs: int = 50,
    batch_size: int = 256,
    batches_per_epoch: int = 200,
    lr: float = 1e-3,
    loss: str = "ce",
    target_smoothing_mm: float | None = None,
    schedule: str = "cosine",
    seed: int = 0,
    device: str | torch.device = "auto",
    resume: bool = False,
    n_val: int = 2048,
    patience: int = 6,
    num_workers: int = 0,
    max_minutes: float | None = None,
    precision: str = "float32",
    whiten: bool | None = None,
    ensemble: Any = None,
    caps: Any = None,
    threads: int | None = TRAIN_THREADS,
    overwrite: bool = False,
    verbose: bool | str | int | None = None,
) -> TrainedModel:
    """Train a source-imaging network on data simulated on the fly from ``leadfield``.

    Parameters
    ----------
    leadfield : LeadField
        The forward model the network is for (fixes channels, source space and gain).
    config : SimulationConfig | None
        Training-data distribution (default :class:`SimulationConfig`). ``config.n_times`` is the
        network's input window.
    out_path : path-like
        Model file to write (``.pt``); the checkpoint is ``<out_path>.ckpt``.
    net : {'4lcnn', 'convdip', 'linear'}
        Architecture.
    net_kwargs : dict | None
        Architecture options.
    epochs : int
        Maximum number of epochs.
    batch_size : int
        Samples per batch (per process under DDP).
    batches_per_epoch : int
        Batches per epoch, over all processes together.
    lr : float
        Adam (peak) learning rate.
    loss : {'ce', 'map'}
        'ce': cross-entropy of the softmax over the sources against the normalised target map
        (:func:`cross_entropy_loss`; the net's output is then ``exp(z - max z)``). 'map': weighted
        MSE + cosine distance on maps normalised to a peak of 1 (:func:`map_loss`; ReLU output).
    target_smoothing_mm : float | None
        σ (mm) of the Gaussian that smooths the target maps before the cross-entropy
        (:func:`smoothing_kernel`); None uses the source grid spacing, 0 turns it off. Ignored by
        the 'map' loss.
    schedule : {'cosine', 'plateau'}
        'cosine': warm-up then cosine decay over the training budget (``epochs``, or
        ``max_minutes`` when that ends first). 'plateau': constant, halved whenever the
        validation loss stalls for 2 epochs.
    seed : int
        Seeds the initial weights, the training stream and the validation set.
    device : {'auto', 'cpu', 'cuda', 'cuda:N'} | torch.device
        'auto' uses the GPU when there is one.
    resume : bool
        Continue from ``<out_path>.ckpt`` if it exists (same lead field, net and settings).
    n_val : int
        Size of the fixed validation set.
    patience : int
        Stop after this many epochs without a validation improvement.
    num_workers : int
        DataLoader worker processes generating data (0 = in the training process).
    max_minutes : float | None
        Stop after the epoch that exceeds this wall time.
    precision : {'float32', 'bfloat16'}
        Arithmetic of the training forward pass. 'bfloat16' runs it under ``torch.autocast``
        (weights, loss and optimiser stay float32): 1.7× faster steps on CPUs with AVX-512 BF16
        and on recent GPUs, for the same accuracy per batch (docs/network.md). Validation and
        inference are float32 either way.
    whiten : bool | None
        Whiten the net's input with ``config.noise_cov`` (:func:`deepesi.whitening.make_whitener`,
        stored in the model and applied by :meth:`TrainedModel.predict`) instead of scaling it per
        sensor type. That is what makes EEG, magnetometers and gradiometers commensurate and lets
        the net see data as the classical methods do; pair it with
        ``config.snr_space='whitened'``. None (default): whiten when ``config.noise_cov`` is given.
        With ``config.projs`` the whitener also removes the recording's SSP directions.
    ensemble : ForwardEnsemble | None
        Train under forward uncertainty (:func:`deepesi.forward.make_forward_ensemble`): each
        training and validation sample's signal goes through one member drawn at random. The
        members must have ``leadfield``'s channels and source space; ``leadfield`` stays the
        model's forward (its hash, the amplitude recovery, the input scaling).
    caps : CapPool | None
        Train a montage-independent net (:class:`deepesi.simulation.caps.CapPool`): every
        sample is simulated on an electrode set drawn from the pool and read through the
        virtual channels of ``leadfield`` (whose rows are those channels). The model records
        it (``meta['cap_free']``), and :func:`deepesi.inverse.apply_network` then reads any
        EEG recording through the same layout.
    threads : int | None
        PyTorch intra-op threads for the training steps on a CPU (restored afterwards). The
        partition of a reduction over threads changes its rounding, and so the net: with a
        fixed count (default 2) the same command and seed give the same weights on a machine
        of any core count and load; None keeps PyTorch's setting (one thread per core: faster
        on big machines, but the net then depends on the machine). NumPy's simulation of the
        batches is not affected (it gives the same numbers with any BLAS thread count).
    overwrite : bool
        Replace an existing ``out_path``.
    verbose : bool | str | int | None
        Log level for the call (:func:`deepesi.set_log_level`); the progress bars are shown at
        INFO, on the main process only.

    Returns
    -------
    TrainedModel
        The best (lowest validation loss) weights, also written to ``out_path``, with the lead
        field's source space, channel Info and head → MRI transform.
    """
    config, whiten, target_smoothing_mm = check_options(
        leadfield, config, epochs=epochs, batch_size=batch_size,
        batches_per_epoch=batches_per_epoch, n_val=n_val, patience=patience, lr=lr, loss=loss,
        schedule=schedule, precision=precision, max_minutes=max_minutes, whiten=whiten,
        target_smoothing_mm=target_smoothing_mm, threads=threads,
    )
    out_path = Path(out_path)
    ckpt_path = _checkpoint_path(out_path)
    if not (resume and ckpt_path.exists()):
        check_overwrite(out_path, overwrite)
    previous_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(int(threads))
    try:
        return _train(leadfield, config, out_path, ckpt_path, net=net, net_kwargs=net_kwargs,
                      epochs=epochs, batch_size=batch_size,
                      batches_per_epoch=batches_per_epoch, lr=lr, loss=loss,
                      target_smoothing_mm=target_smoothing_mm, schedule=schedule, seed=seed,
                      device=device, resume=resume, n_val=n_val, patience=patience,
                      num_workers=num_workers, max_minutes=max_minutes, precision=precision,
                      whiten=whiten, ensemble=ensemble, caps=caps, threads=threads)
    finally:
        torch.set_num_threads(previous_threads)


def _train(leadfield, config, out_path: Path, ckpt_path: Path, *, net, net_kwargs, epochs,
           batch_size, batches_per_epoch, lr, loss, target_smoothing_mm, schedule, seed, device,
           resume, n_val, patience, num_workers, max_minutes, precision, whiten, ensemble,
           caps, threads) -> TrainedModel:
    """:func:`train_model` once the options are checked and the thread count set."""
    rank, world, local_rank = dist_env()
    dev = pick_device(device, local_rank)
    if world > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    loss_fn, output = LOSSES[loss]
    # ---- model and input normalisation (the seed fixes the initial weights)
    net_kwargs = dict(net_kwargs or {})
    torch.manual_seed(seed)
    model = build_net(net, leadfield, n_times=config.n_times, **net_kwargs).to(dev)
    model.output = output
    channel_scale, whitener = input_transform(leadfield, config, whiten)
    input_t = torch.as_tensor(
        channel_scale if whitener is None else whitener, dtype=torch.float32, device=dev
    )
    settings = {
        "net": net, "net_kwargs": net_kwargs, "batch_size": batch_size,
        "batches_per_epoch": batches_per_epoch, "lr": lr, "loss": loss,
        "target_smoothing_mm": target_smoothing_mm, "schedule": schedule,
        "precision": precision, "whiten": bool(whiten), "seed": seed, "world_size": world,
        "n_val": n_val, "sim_config": config.to_dict(), "leadfield_hash": leadfield.hash(),
    }
    if threads is not None:  # recorded (a resumed run must use the same count)
        settings["threads"] = int(threads)
    if ensemble is not None:
        from ..forward.ensemble import ForwardEnsemble

        if not isinstance(ensemble, ForwardEnsemble):
            ensemble = ForwardEnsemble(list(ensemble))
        settings["ensemble"] = {"hash": ensemble.hash(), "n_members": len(ensemble),
                                **dict(getattr(ensemble, "meta", {}))}
    if caps is not None:
        if ensemble is not None:
            raise ValueError("caps= and ensemble= cannot be combined (yet); pass one.")
        settings["cap_free"] = caps.describe()
    plan = _Plan(dev=dev, input_t=input_t, loss_fn=loss_fn, mixed=precision == "bfloat16",
                 lr=lr, schedule=schedule, epochs=epochs,
                 per_rank=-(-batches_per_epoch // world), max_minutes=max_minutes)
    dataset, loader, val_x, val_y = _make_data(
        leadfield, config, plan, batch_size=batch_size, seed=seed, rank=rank, n_val=n_val,
        num_workers=num_workers, target_smoothing_mm=target_smoothing_mm, ensemble=ensemble,
        caps=caps,
    )
    train_net = model
    if world > 1:
        train_net = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[dev.index] if dev.type == "cuda" else None
        )
    # fused: one kernel for all parameters (4 ms less per step on the 2-core CPU, 256 × 8,092)
    opt = torch.optim.Adam(model.parameters(), lr=lr, fused=dev.type in ("cpu", "cuda"))
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=2)
    with use_log_level(None if rank == 0 else "WARNING"):  # one process reports
        state = _initial_state(resume, ckpt_path, settings, model, opt, sched, dev)
        _run_epochs(state, plan, model, train_net, dataset, loader, opt, sched, val_x, val_y,
                    patience=patience, ckpt_path=ckpt_path if rank == 0 else None,
                    settings=settings)
    if state["best_state"] is not None:
        model.load_state_dict(state["best_state"])
    model = model.cpu().eval()
    result = TrainedModel(
        net=model,
        ch_names=list(leadfield.ch_names),
        ch_types=list(leadfield.ch_types),
        channel_scale=channel_scale,
        leadfield_hash=settings["leadfield_hash"],
        source_space_hash=leadfield.source_space.hash(),
        sim_config=config.to_dict(),
        history=state["history"],
        whitener=whitener,
        meta=_meta(state, settings, dev, target_smoothing_mm),
        source_space=leadfield.source_space,
        info=_sensor_info(leadfield),
        trans=trans_matrix(leadfield.trans),
    )
    if rank == 0:
        result.save(out_path, overwrite=True)  # existence was checked before training
    if world > 1:
        torch.distributed.barrier()
    return result


# ---------------------------------------------------------------------------- setup
@dataclass(frozen=True)
class _Plan:
    """What every training step needs: device, input transform, loss and the lr schedule."""

    dev: torch.device
    input_t: torch.Tensor
    loss_fn: Any
    mixed: bool  # forward pass in bfloat16; weights, loss, Adam in float32
    lr: float
    schedule: str
    epochs: int
    per_rank: int  # batches per epoch on this process
    max_minutes: float | None

    def lr_at(self, epoch: int, step: int, t_start: float) -> float:
        """Cosine schedule: the learning rate at ``step`` of ``epoch``, over the budget (epochs,
        or ``max_minutes`` of wall time when that ends first)."""
        done = (epoch + step / self.per_rank) / self.epochs
        if self.max_minutes is not None:
            done = max(done, (time.perf_counter() - t_start) / (60 * self.max_minutes))
        return self.lr * _lr_factor(done)


def _make_data(
    leadfield: LeadField, config: SimulationConfig, plan: _Plan, *, batch_size: int, seed: int,
    rank: int, n_val: int, num_workers: int, target_smoothing_mm: float, ensemble: Any = None,
    caps: Any = None,
) -> tuple[SimulatedDataset, torch.utils.data.DataLoader, torch.Tensor, torch.Tensor]:
    """The training stream of this process and the fixed, normalised validation set."""
    centre = config.n_times // 2
    cap_sim = None if caps is None else caps.simulator(leadfield, config)  # ~0.4 GB: build once
    kernel = smoothing_kernel(leadfield.source_space.pos, target_smoothing_mm * 1e-3)
    dataset = SimulatedDataset(
        leadfield,
        config,
        plan.per_rank,
        batch_size,
        seed=seed,
        rank=rank,
        target_sample=centre,
        target_kernel=kernel,
        ensemble=ensemble,
        simulator=cap_sim,
    )
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=None,
        num_workers=num_workers,
        persistent_workers=False,
        pin_memory=plan.dev.type == "cuda",
    )
    val_sim = Simulator(leadfield, config, ensemble=ensemble) if cap_sim is None else cap_sim
    val = val_sim.simulate(n_val, batch_seed(seed, _VAL_EPOCH, 0, 0))
    val_x = normalise_input(torch.from_numpy(val.data).to(plan.dev), plan.input_t)
    val_y = normalise_target(
        torch.from_numpy(smooth_target(val.sources[:, :, centre], kernel)).to(plan.dev)
    )
    return dataset, loader, val_x, val_y


# ---------------------------------------------------------------------------- checkpoints
def _initial_state(
    resume: bool, ckpt_path: Path, settings: dict, model: SourceNet, opt: torch.optim.Optimizer,
    sched: Any, dev: torch.device,
) -> dict:
    """A fresh training state, or the checkpoint's (weights, optimiser and scheduler loaded)."""
    state = {
        "epoch": 0,
        "best_val": float("inf"),
        "best_state": None,
        "bad_epochs": 0,
        "history": [],
        "elapsed": 0.0,
    }
    if resume and ckpt_path.exists():
        ck = torch.load(ckpt_path, map_location=dev, weights_only=True)
        if ck.get("settings") != settings:
            diff = sorted(k for k in settings if ck.get("settings", {}).get(k) != settings[k])
            raise ValueError(
                f"cannot resume from {ckpt_path}: it was made with different settings ({diff}). "
                "Use the same lead field and options, or start afresh (resume=False, overwrite)."
            )
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        sched.load_state_dict(ck["scheduler"])
        state = ck["state"]
        logger.info("resuming from %s after epoch %d", ckpt_path, state["epoch"])
    elif resume:
        logger.info("no checkpoint at %s; starting from scratch", ckpt_path)
    return state


def _save_checkpoint(
    path: Path, settings: dict, model: SourceNet, opt: torch.optim.Optimizer, sched: Any,
    state: dict,
) -> None:
    """Write the checkpoint atomically (a crash never leaves a half-written one)."""
    with atomic_path(path, overwrite=True) as tmp:
        torch.save(
            {
                "settings": settings,
                "model": model.state_dict(),
                "optimizer": opt.state_dict(),
                "scheduler": sched.state_dict(),
                "state": state,
            },
            tmp,
        )


# ---------------------------------------------------------------------------- epochs
def _run_epochs(
    state: dict, plan: _Plan, model: SourceNet, train_net: torch.nn.Module,
    dataset: SimulatedDataset, loader: torch.utils.data.DataLoader,
    opt: torch.optim.Optimizer, sched: Any, val_x: torch.Tensor, val_y: torch.Tensor, *,
    patience: int, ckpt_path: Path | None, settings: dict,
) -> None:
    """Train from ``state['epoch']`` to the budget or early stop, updating ``state`` in place
    (and the checkpoint after every epoch when ``ckpt_path`` is given)."""
    t_start = time.perf_counter() - state["elapsed"]
    epoch_bar = progress(
        range(state["epoch"], plan.epochs),
        desc="training",
        unit="epoch",
        initial=state["epoch"],
        total=plan.epochs,
        leave=True,
    )
    for epoch in epoch_bar:
        if state["bad_epochs"] >= patience:
            break
        dataset.set_epoch(epoch)
        train_loss = _train_epoch(plan, train_net, loader, opt, epoch, t_start)
        v = _validate(plan, model, val_x, val_y)
        if plan.schedule == "plateau":
            sched.step(v)
        if v < state["best_val"] - 1e-6:
            state["best_val"] = v
            state["best_state"] = {
                k: t.detach().cpu().clone() for k, t in model.state_dict().items()
            }
            state["bad_epochs"] = 0
        else:
            state["bad_epochs"] += 1
        state["epoch"] = epoch + 1
        state["elapsed"] = time.perf_counter() - t_start
        state["history"].append(
            {
                "epoch": epoch + 1,
                "train_loss": train_loss,
                "val_loss": v,
                "lr": opt.param_groups[0]["lr"],
                "elapsed_s": state["elapsed"],
            }
        )
        epoch_bar.set_postfix(train=f"{train_loss:.4f}", val=f"{v:.4f}")
        if ckpt_path is not None:
            _save_checkpoint(ckpt_path, settings, model, opt, sched, state)
        if plan.max_minutes is not None and state["elapsed"] > 60 * plan.max_minutes:
            break
    epoch_bar.close()


def _train_epoch(
    plan: _Plan, train_net: torch.nn.Module, loader: torch.utils.data.DataLoader,
    opt: torch.optim.Optimizer, epoch: int, t_start: float,
) -> float:
    """One pass over the epoch's batches; returns the mean training loss."""
    train_net.train()
    total, count = 0.0, 0
    for step, (xb, yb) in enumerate(progress(loader, desc=f"epoch {epoch + 1}",
                                             total=plan.per_rank)):
        if plan.schedule == "cosine":
            for group in opt.param_groups:
                group["lr"] = plan.lr_at(epoch, step, t_start)
        xb = normalise_input(xb.to(plan.dev, non_blocking=True), plan.input_t)
        yb = normalise_target(yb.to(plan.dev, non_blocking=True))  # smoothed in the dataset
        opt.zero_grad(set_to_none=True)
        with torch.autocast(plan.dev.type, dtype=torch.bfloat16, enabled=plan.mixed):
            out = train_net(xb, rectify=False)
        batch_loss = plan.loss_fn(out.float(), yb)
        batch_loss.backward()
        opt.step()
        total, count = total + float(batch_loss.detach()), count + 1
    return total / max(count, 1)


def _validate(plan: _Plan, model: SourceNet, val_x: torch.Tensor, val_y: torch.Tensor) -> float:
    """Mean validation loss (float32, eval mode), in chunks."""
    model.eval()
    n_val, c = len(val_x), _VAL_CHUNK
    with torch.no_grad():
        return (
            sum(
                float(plan.loss_fn(model(val_x[i : i + c], rectify=False), val_y[i : i + c]))
                * len(val_x[i : i + c])
                for i in range(0, n_val, c)
            )
            / n_val
        )


def _meta(state: dict, settings: dict, dev: torch.device, target_smoothing_mm: float) -> dict:
    """The model's ``meta``: training settings and timings."""
    keys = ("world_size", "batch_size", "batches_per_epoch", "lr", "loss")
    return {
        "epochs_run": state["epoch"],
        "best_val_loss": state["best_val"],
        "train_time_s": state["elapsed"],
        "device": str(dev),
        **{k: settings[k] for k in keys},
        "target_smoothing_mm": target_smoothing_mm,
        "schedule": settings["schedule"],
        "precision": settings["precision"],
        "whiten": settings["whiten"],
        "seed": settings["seed"],
        "threads": settings.get("threads"),
        "ensemble": settings.get("ensemble"),
        **({"cap_free": settings["cap_free"]} if "cap_free" in settings else {}),
        "deepesi_version": _version(),
    }


#: Entries of a recording's Info that describe the acquisition, not the sensors: left out of a
#: model file (HPI fits alone are ~3 MB for a Neuromag recording).
_ACQUISITION_KEYS = {"hpi_results": [], "hpi_meas": [], "hpi_subsystem": None, "events": []}


def _sensor_info(leadfield: LeadField) -> Any:
    """The lead field's Info on its channels, without the acquisition records, for the model."""
    info = leadfield.info
    if info is None:
        return None
    import mne

    missing = [n for n in leadfield.ch_names if n not in info["ch_names"]]
    if missing:
        return info
    info = mne.pick_info(info, mne.pick_channels(info["ch_names"], list(leadfield.ch_names),
                                                 ordered=True), verbose=False)
    with info._unlock():
        for key, empty in _ACQUISITION_KEYS.items():
            if key in info:
                info[key] = empty
    return info


def _version() -> str:
    from .. import __version__

    return __version__


@verbose
def train_or_load(
    leadfield: LeadField,
    config: SimulationConfig | None,
    out_path: str | os.PathLike,
    *,
    verbose: bool | str | int | None = None,
    **train_kwargs: Any,
) -> TrainedModel:
    """The model in ``out_path`` when it exists (checked against ``leadfield``), else one trained
    there: ``train_model(leadfield, config, out_path, resume=True, **train_kwargs)``, so an
    interrupted training continues from its checkpoint. For pipelines that cache their networks
    (the sample example, the sample-subject benchmarks)."""
    from .model import read_model

    out_path = Path(out_path)
    if out_path.is_file():
        logger.info("model: loaded %s", out_path)
        return read_model(out_path, leadfield)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    logger.info("model %s: training on %d channels", out_path.name, leadfield.n_channels)
    return train_model(leadfield, config, out_path, resume=True, **train_kwargs)
