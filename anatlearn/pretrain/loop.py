"""Pretraining: :func:`pretrain`, readable top to bottom.

data -> (normalised descriptors) -> model (encoder + the method's head) -> the method's loss, prepared on
the training subjects -> Adam + StepLR, with exact resume (model, optimiser, scheduler, AMP scaler, RNG
states and the position in the epoch's data order are checkpointed), rank-0 logging and checkpointing
under torchrun/DDP, and AMP on GPU. What differs between methods lives in :mod:`anatlearn.losses.methods`;
this loop never branches on a method's name.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, DistributedSampler

from anatlearn import distributed as D
from anatlearn.data import DescriptorNormaliser, ViewsDataset, open_training_split
from anatlearn.data.transforms import build_augmentations
from anatlearn.errors import AnatlearnError, ConfigError, DataError, TrainingError
from anatlearn.inputcheck.fingerprint import build_fingerprint
from anatlearn.io import atomic_write_text
from anatlearn.data.lineage import dataset_grid  # the training grid, checked by embed/finetune/bids
from anatlearn.losses import age_stats, fit_loss, method_spec
from anatlearn.models import build_model, default_model_config, load_checkpoint, save_checkpoint
from anatlearn.precision import autocast, optimizer_step, resolve as resolve_precision
from anatlearn.pretrain.config import TrainConfig, absolute_paths
from anatlearn.pretrain.rundir import MetricsWriter, RunDir, rng_state, set_rng_state, training_data
from anatlearn.progress import note, progress
from anatlearn.provenance import provenance, seed_everything


def pretrain(cfg: TrainConfig, resume: bool = False, overwrite: bool = False, stop_after_steps: int | None = None) -> Path:
    """Train an encoder with ``cfg.method``; returns the run directory. ``stop_after_steps`` ends the run
    early (used to test interruption)."""
    cfg = absolute_paths(cfg.validate())  # stored absolute: a resume works from any directory
    data = _load_data(cfg)  # validate the data before anything is written
    info = D.setup()
    run = RunDir(cfg.out)
    if info.is_main:
        run.prepare(resume, overwrite)
    D.barrier()
    try:
        state = _checkpoint_to_resume(cfg, run) if resume else None
        if state is not None and cfg.progress and info.is_main:
            done, step = state["epoch"], state["step_in_epoch"]
            note(f"{run.path} is complete ({done} epochs trained); nothing to train" if done >= cfg.epochs
                 else f"resuming {run.path} at epoch {done + 1} of {cfg.epochs}" + (f", step {step + 1}" if step else ""))
        if cfg.progress and info.is_main and (state is None or state["epoch"] < cfg.epochs):
            note(_describe(data[0].training_data))  # a complete run trains on nothing: said above
        seed_everything(cfg.seed)
        if cfg.deterministic:
            torch.use_deterministic_algorithms(True)
        t = _setup(cfg, info, run, data, state)
        while t.epoch < cfg.epochs:
            if _run_epoch(t, stop_after_steps):
                break
            _end_epoch(t)
        if t.metrics:
            t.metrics.close()
        return run.path
    finally:
        run.release()
        D.teardown()


def train_step(net: torch.nn.Module, batch: dict, loss_fn, optimizer: torch.optim.Optimizer,
               scaler: torch.amp.GradScaler | None = None, *, device: torch.device = torch.device("cpu"),
               amp_dtype: torch.dtype | None = None, layout: torch.memory_format = torch.contiguous_format,
               where: Callable[[], str] = lambda: "this step") -> dict[str, float]:
    """One optimisation step on a loader batch (``views`` B x V x 1 x D x H x W, ``age``, optional
    ``descriptors``); returns the loss terms as floats. The loop of :func:`pretrain` and
    ``benchmarks/bench_train_step.py`` both run exactly this.

    The V views of each subject go through ``net`` as one batch of B*V volumes; the outputs (B, V, d) of
    every rank are gathered (gradient to this rank's shard) with the ages and descriptors, and the loss
    ``loss_fn(outputs, ages, descriptors)`` of the global batch is scaled by the world size so that DDP's
    gradient average equals the single-process gradient (``anatlearn/distributed.py``). With a GradScaler
    (fp16) the loss is scaled before backward and the step skipped on inf gradients. ``where()`` describes
    the step in error messages (NaN/inf output or loss)."""
    x = batch["views"].to(device, non_blocking=True)
    b, v = x.shape[:2]
    with autocast(device, amp_dtype):
        out = net(x.flatten(0, 1).contiguous(memory_format=layout))
    if not torch.isfinite(out).all():
        raise TrainingError(f"the model produced NaN/inf at {where()}. Lower the learning rate or check the input "
                            f"volumes.")
    outputs = D.gather_with_grad(out.reshape(b, v, -1).float())
    desc = batch.get("descriptors")
    terms = loss_fn(outputs, D.gather(batch["age"].to(device)), None if desc is None else D.gather(desc.to(device)))
    if not torch.isfinite(terms["loss"]):
        raise TrainingError(f"loss is {terms['loss'].item()} at {where()}")
    optimizer_step(terms["loss"] * D.loss_scale(), optimizer, scaler)
    return {k: float(t.detach()) for k, t in terms.items()}


@dataclass
class _Training:
    """Everything the epochs of one run share, and where the run stands (epoch, step)."""

    cfg: TrainConfig
    info: D.DistInfo
    run: RunDir
    model: torch.nn.Module
    net: torch.nn.Module  # the model, wrapped in DDP under torchrun
    loss_fn: Callable
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.StepLR
    scaler: torch.amp.GradScaler | None
    amp_dtype: torch.dtype | None
    layout: torch.memory_format
    views: ViewsDataset
    sampler: DistributedSampler
    per_rank: int  # subjects per batch on this rank
    ids: np.ndarray  # participant ids, for error messages
    meta: dict  # what every checkpoint carries besides the weights
    metrics: MetricsWriter | None
    epoch: int = 0
    step_in_epoch: int = 0
    global_step: int = 0


def _load_data(cfg: TrainConfig):
    """(dataset, descriptor normaliser or None, normalised descriptors (n, K, D) or None). A table without a
    ``split`` column (most users' data) trains on every subject: ``cfg.split`` only selects where there are
    splits. What was trained on is ``dataset.training_data`` (recorded in every checkpoint)."""
    dataset, used = open_training_split(cfg.data, cfg.split, modality=cfg.modality)
    dataset.training_data = training_data(cfg.data, dataset, used, cfg.split if cfg.split and not used else None)
    spec = method_spec(cfg.method)
    if not spec.needs_descriptors:
        return dataset, None, None
    names = spec.descriptors or tuple(cfg.descriptors)
    try:
        raw = dataset.descriptors(names, cfg.atlas)
    except DataError as exc:
        raise DataError(f"method {cfg.method} needs FreeSurfer descriptors ({', '.join(names)}, "
                        f"{cfg.atlas}): {exc}") from None
    normaliser = DescriptorNormaliser(cfg.normalise).fit(raw)
    return dataset, normaliser, normaliser.transform(raw)


def _describe(data: dict, verb: str = "training on") -> str:
    """``training on 120 subjects of data/x (all: it has no 'split' column, so --split train selects nothing)``."""
    where = f"split {data['split']!r} of {data['data']}" if data["split"] else f"{data['data']}"
    text = f"{verb} {data['n_subjects']} subjects of {where}"
    if data.get("split_ignored"):
        text += f" (all of them: its participants table has no 'split' column to select {data['split_ignored']!r})"
    return text


def _checkpoint_to_resume(cfg: TrainConfig, run: RunDir) -> dict:
    """The state in ``last.pt``, refused when it was made with a config that computes something else."""
    state = load_checkpoint(run.last)
    old = TrainConfig.from_dict(state["config"], str(run.last))
    diff = old.differences(cfg)
    if diff:
        raise ConfigError(f"cannot resume {run.path}: its checkpoint was made with another config "
                          f"({'; '.join(diff[:4])}); give the same settings to continue it")
    return state


def _setup(cfg: TrainConfig, info: D.DistInfo, run: RunDir, data, state: dict | None) -> _Training:
    """Model, loss, optimiser and data order of a run (restored from ``state`` on resume); writes the run's
    config, provenance and what the loss fitted on the training subjects."""
    dataset, normaliser, descriptors = data
    per_rank = cfg.batch_size // info.world_size
    if per_rank < 1 or cfg.batch_size % info.world_size:
        raise ConfigError(f"batch_size {cfg.batch_size} must be a multiple of the {info.world_size} processes")
    if len(dataset) < cfg.batch_size:
        raise DataError(f"{_describe(dataset.training_data, 'has')}, fewer than one batch of {cfg.batch_size} "
                        f"(`batch_size`)")
    ages = dataset.participants["age"].to_numpy(np.float64)
    model, layout = _build_model(cfg, info, descriptors)
    loss_fn, fitted = fit_loss(cfg, ages, descriptors)
    # fused kernel: one pass over all parameters instead of a dozen kernels per tensor (benchmarks/RESULTS.md)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay,
                                 fused=info.device.type in ("cpu", "cuda"))
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=cfg.lr_step, gamma=cfg.lr_gamma)
    amp_dtype, scaler = _amp(cfg, info.device)
    position = _restore(state, model, optimizer, scheduler, scaler) if state is not None else (0, 0, 0)
    net = torch.nn.parallel.DistributedDataParallel(model) if info.enabled else model

    views = ViewsDataset(dataset, cfg.views, build_augmentations(cfg.augment, dataset.volume(0).shape),
                         descriptors, seed=cfg.seed)
    sampler = DistributedSampler(views, num_replicas=info.world_size, rank=info.rank, shuffle=True, seed=cfg.seed,
                                 drop_last=True)
    meta = {"format": "anatlearn", "format_version": 1, "model_config": model.model_config, "config": cfg.to_dict(),
            "seed": cfg.seed, "normaliser": normaliser.state_dict() if normaliser else None,
            "age_stats": age_stats(ages), "input": {**dataset_grid(dataset), "modality": cfg.modality},
            # what the inputs of this encoder look like, so that embed/check can flag users' maps unlike them
            "input_fingerprint": (state or {}).get("input_fingerprint") or build_fingerprint(dataset, source=str(cfg.data)),
            "training_data": dataset.training_data}
    metrics = None
    if info.is_main:
        atomic_write_text(run.path / "config.toml", cfg.to_toml())
        run.write_json("provenance.json", provenance(cfg.seed, cfg.to_dict()))
        if normaliser:
            run.write_json("normaliser.json", normaliser.state_dict())
        for name, record in fitted.items():
            run.write_json(name, record)
        metrics = run.metrics_writer(position[2] if state is not None else None)
    return _Training(cfg, info, run, model, net, loss_fn, optimizer, scheduler, scaler, amp_dtype, layout, views,
                     sampler, per_rank, dataset.participants["participant_id"].to_numpy(), meta, metrics, *position)


def _build_model(cfg: TrainConfig, info: D.DistInfo, descriptors) -> tuple[torch.nn.Module, torch.memory_format]:
    """Encoder + the head the method's loss reads (registry), on the device and in the memory layout."""
    spec = method_spec(cfg.method)
    model_config = default_model_config(cfg.encoder, cfg.width, 1, spec.head,
                                        regression_outputs=spec.head_outputs(descriptors))
    model = build_model(model_config).to(info.device)
    if info.enabled and cfg.sync_bn and info.device.type == "cuda":
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    layout = torch.channels_last_3d if cfg.channels_last else torch.contiguous_format
    return model.to(memory_format=layout), layout  # before the optimiser sees the parameters


def _amp(cfg: TrainConfig, device: torch.device):
    """(autocast dtype or None, GradScaler or None): bf16/fp16 on GPU by default, bf16 on CPU opt-in."""
    dtype, needs_scaler = resolve_precision(cfg.amp, device, name="amp", fp32="off")
    return dtype, torch.amp.GradScaler("cuda") if needs_scaler else None


def _restore(state: dict, model, optimizer, scheduler, scaler) -> tuple[int, int, int]:
    """Load a checkpoint's full state; returns its (epoch, step in epoch, global step)."""
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    if scaler is not None and state.get("scaler"):
        scaler.load_state_dict(state["scaler"])
    set_rng_state(state["rng"])
    return state["epoch"], state["step_in_epoch"], state["global_step"]


def _epoch_batches(sampler: DistributedSampler, epoch: int, per_rank: int) -> list[list[int]]:
    """This rank's batches of one epoch: the sampler's seeded permutation, cut into full batches."""
    sampler.set_epoch(epoch)
    order = list(sampler)
    return [order[i:i + per_rank] for i in range(0, len(order) - per_rank + 1, per_rank)]


def _run_epoch(t: _Training, stop_after_steps: int | None) -> bool:
    """Train from ``t.step_in_epoch`` to the end of epoch ``t.epoch``; True when ``stop_after_steps`` ended
    the run inside it."""
    cfg, info = t.cfg, t.info
    t.views.set_epoch(t.epoch)
    batches = _epoch_batches(t.sampler, t.epoch, t.per_rank)
    if not batches:
        raise DataError(f"no full batch of {cfg.batch_size} subjects in {cfg.data}")
    loader = DataLoader(t.views, batch_sampler=batches[t.step_in_epoch:], num_workers=cfg.num_workers,
                        pin_memory=info.device.type == "cuda", persistent_workers=False)
    t.net.train()
    shown, row, stopped = cfg.progress and info.is_main, None, False
    with progress(f"epoch {t.epoch + 1}/{cfg.epochs}", total=len(batches), completed=t.step_in_epoch,
                  enabled=None if shown else False) as bar:
        t0 = time.perf_counter()  # samples/s include data loading: the time from one step's end to the next
        for batch in loader:
            row, t0 = _step(t, batch, t0)
            bar.advance(1, description=f"epoch {t.epoch + 1}/{cfg.epochs} loss {row['loss']:.4f} "
                                       f"{row['samples_per_s']:.1f} subj/s")
            if cfg.checkpoint_every and t.global_step % cfg.checkpoint_every == 0 and t.step_in_epoch < len(batches):
                _checkpoint(t, t.run.last)
            if stop_after_steps is not None and t.global_step >= stop_after_steps:
                stopped = True
                break
    if shown and row is not None:
        note(f"epoch {t.epoch + 1}/{cfg.epochs}: step {row['step']} loss {row['loss']:.4f} lr {row['lr']:.2e} "
             f"{row['samples_per_s']:.1f} subjects/s")
    return stopped


def _step(t: _Training, batch: dict, t0: float) -> tuple[dict, float]:
    """One training step: its metrics row (written on rank 0) and the time it ended (``t0``: when the previous
    one did). Advances the run's position."""
    where = functools.partial(_where, t.epoch, t.step_in_epoch, t.global_step, t.ids, batch["index"])
    values = train_step(t.net, batch, t.loss_fn, t.optimizer, t.scaler, device=t.info.device,
                        amp_dtype=t.amp_dtype, layout=t.layout, where=where)
    t.step_in_epoch += 1
    t.global_step += 1
    now = time.perf_counter()
    rate = batch["views"].shape[0] * t.info.world_size / (now - t0)
    row = {"step": t.global_step, "epoch": t.epoch + 1, "lr": t.optimizer.param_groups[0]["lr"], "samples_per_s": rate,
           **values}
    if t.metrics:
        t.metrics.write(row)
    return row, now


def _end_epoch(t: _Training) -> None:
    """Step the learning rate, write the epoch's full checkpoint (``last.pt`` points to it), keep the
    milestones and prune old full checkpoints."""
    cfg = t.cfg
    t.scheduler.step()
    t.epoch, t.step_in_epoch = t.epoch + 1, 0
    _checkpoint(t, t.run.full_checkpoint(t.epoch))
    if t.info.is_main:
        t.run.point_last_to(t.run.full_checkpoint(t.epoch))  # resume point first, then retention
        if (cfg.keep_every and t.epoch % cfg.keep_every == 0) or t.epoch in cfg.save_epochs:
            save_checkpoint(t.run.milestone(t.epoch), {**t.meta, "model": _contiguous(t.model.state_dict()),
                                                       "epoch": t.epoch, "global_step": t.global_step,
                                                       "weights_only": True,
                                                       "provenance": provenance(cfg.seed, cfg.to_dict())})
        t.run.prune_full(cfg.keep_last)
    D.barrier()


def _checkpoint(t: _Training, path: Path) -> None:
    """The full state at the run's position (rank 0 writes; every rank waits)."""
    if t.info.is_main:
        save_checkpoint(path, {**t.meta, "model": _contiguous(t.model.state_dict()),
                               "optimizer": t.optimizer.state_dict(), "scheduler": t.scheduler.state_dict(),
                               "scaler": t.scaler.state_dict() if t.scaler else None, "rng": rng_state(),
                               "epoch": t.epoch, "step_in_epoch": t.step_in_epoch, "global_step": t.global_step,
                               "provenance": provenance(t.cfg.seed, t.cfg.to_dict())})
    D.barrier()


def _where(epoch: int, step: int, global_step: int, ids: np.ndarray, index: torch.Tensor) -> str:
    """The step and its subjects, for error messages (formatted only when a step fails)."""
    who = ids[index.numpy()]
    more = f" ... and {len(who) - 8} more" if len(who) > 8 else ""
    # numbered from 1, as on the console and in metrics.csv (its `step` column is the global step)
    return (f"epoch {epoch + 1}, step {step + 1} (global step {global_step + 1}); batch subjects: "
            f"{', '.join(who[:8])}{more}")


def _contiguous(state: dict) -> dict:
    """Weights saved in the standard layout whatever the training layout, so every reader gets plain tensors."""
    return {k: v.contiguous() for k, v in state.items()}


__all__ = ["AnatlearnError", "TrainConfig", "pretrain", "train_step"]
