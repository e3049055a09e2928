"""Pretraining: one function, :func:`pretrain`, readable top to bottom.

data -> (normalised descriptors) -> model (encoder + head) -> loss of the method -> Adam + StepLR, with
exact resume (model, optimiser, scheduler, AMP scaler, RNG states and the position in the epoch's data
order are checkpointed), rank-0 logging and checkpointing under torchrun/DDP, and AMP on GPU.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, DistributedSampler

from anatlearn.data import DescriptorNormaliser, ViewsDataset, open_dataset
from anatlearn.data.transforms import build_augmentations
from anatlearn.errors import AnatlearnError, ConfigError, DataError, TrainingError
from anatlearn.io import atomic_write_text
from anatlearn.losses import (METHOD_DESCRIPTORS, REGRESSION_METHODS, build_loss, matched_anat_bandwidth,
                              method_needs)
from anatlearn.models import build_model, default_model_config, load_checkpoint, save_checkpoint
from anatlearn.provenance import provenance, seed_everything
from anatlearn import distributed as D
from anatlearn.training.config import TrainConfig
from anatlearn.training.rundir import RunDir, rng_state, set_rng_state


def _amp(cfg: TrainConfig, device: torch.device):
    """(autocast dtype or None, GradScaler or None): bf16/fp16 on GPU by default, bf16 on CPU opt-in."""
    if cfg.amp == "off" or (cfg.amp == "auto" and device.type != "cuda"):
        return None, None
    if device.type != "cuda" and cfg.amp == "fp16":
        raise ConfigError("--amp fp16 needs a GPU; on CPU use --amp bf16 or off")
    dtype = torch.float16 if cfg.amp == "fp16" else torch.bfloat16
    if cfg.amp == "auto":
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    scaler = torch.amp.GradScaler("cuda") if dtype == torch.float16 else None
    return dtype, scaler


def _epoch_batches(sampler: DistributedSampler, epoch: int, per_rank: int) -> list[list[int]]:
    """This rank's batches of one epoch: the sampler's seeded permutation, cut into full batches."""
    sampler.set_epoch(epoch)
    order = list(sampler)
    return [order[i:i + per_rank] for i in range(0, len(order) - per_rank + 1, per_rank)]


def train_step(net: torch.nn.Module, batch: dict, loss_fn, optimizer: torch.optim.Optimizer,
               scaler: torch.amp.GradScaler | None = None, *, method: str = "anatcl-global",
               device: torch.device = torch.device("cpu"), amp_dtype: torch.dtype | None = None,
               layout: torch.memory_format = torch.contiguous_format, age_stats: dict | None = None,
               where: Callable[[], str] = lambda: "this step") -> dict[str, float]:
    """One optimisation step on a loader batch (``views`` B x V x 1 x D x H x W, ``age``, optional
    ``descriptors``); returns the loss terms as floats. The loop of :func:`pretrain` and
    ``benchmarks/bench_train_step.py`` both run exactly this.

    The V views of each subject go through ``net`` as one batch of B*V volumes. Contrastive methods gather
    the projections of every rank (gradient to this rank's shard) and scale the global loss by the world
    size so that DDP's gradient average equals the single-process gradient (``anatlearn/distributed.py``);
    ``l1-age`` regresses the first view's output on the standardised age (age - mean) / std. With a
    GradScaler (fp16) the loss is scaled before backward and the step skipped on inf gradients.
    ``where()`` describes the step in error messages (NaN/inf output or loss)."""
    x = batch["views"].to(device, non_blocking=True)
    b, v = x.shape[:2]
    ctx = torch.autocast(device.type, dtype=amp_dtype) if amp_dtype else contextlib.nullcontext()
    with ctx:
        out = net(x.flatten(0, 1).contiguous(memory_format=layout))
    if not torch.isfinite(out).all():
        raise TrainingError(f"the model produced NaN/inf at {where()}. Lower the learning rate or check the input "
                            f"volumes.")
    age = batch["age"].to(device)
    if method == "l1-age":
        pred = out.reshape(b, v)[:, 0]
        terms = loss_fn(pred, (age - age_stats["mean"]) / age_stats["std"])
        loss_value = terms["loss"]
    else:
        feats = D.gather_with_grad(out.reshape(b, v, -1).float())
        desc = batch.get("descriptors")
        terms = loss_fn(feats, D.gather(age), None if desc is None else D.gather(desc.to(device)))
        loss_value = terms["loss"] * D.loss_scale()
    if not torch.isfinite(terms["loss"]):
        raise TrainingError(f"loss is {terms['loss'].item()} at {where()}")
    optimizer.zero_grad(set_to_none=True)
    if scaler is not None:
        scaler.scale(loss_value).backward()
        scaler.step(optimizer)
        scaler.update()
    else:
        loss_value.backward()
        optimizer.step()
    return {k: float(t.detach()) for k, t in terms.items()}


def _load_data(cfg: TrainConfig):
    dataset = open_dataset(cfg.data, split=cfg.split or None, modality=cfg.modality)
    needs_ages, needs_desc = method_needs(cfg.method)
    normaliser, descriptors = None, None
    if needs_desc:
        names = METHOD_DESCRIPTORS.get(cfg.method, tuple(cfg.descriptors))  # gmv-regression: GMV only
        try:
            raw = dataset.descriptors(names, cfg.atlas)
        except DataError as exc:
            raise DataError(f"method {cfg.method} needs FreeSurfer descriptors ({', '.join(names)}, "
                            f"{cfg.atlas}): {exc}") from None
        normaliser = DescriptorNormaliser(cfg.normalise).fit(raw)
        descriptors = normaliser.transform(raw)
    return dataset, normaliser, descriptors


def _anat_bandwidth(cfg: TrainConfig, descriptors, ages) -> float | None:
    """Bandwidth of weight_map "kernel": the configured one, or (0) the study's rule on the training subjects
    (mean anatomical weight = mean age-kernel weight; :func:`anatlearn.losses.matched_anat_bandwidth`).
    Deterministic in the data, so a resumed run computes the same value."""
    if cfg.weight_map != "kernel" or descriptors is None:
        return None
    if cfg.anat_bandwidth > 0:
        return cfg.anat_bandwidth
    mode = "local" if cfg.method == "anatcl-local" else "global"
    return matched_anat_bandwidth(descriptors, ages, mode, cfg.kernel, cfg.sigma)


def pretrain(cfg: TrainConfig, resume: bool = False, overwrite: bool = False, stop_after_steps: int | None = None) -> Path:
    """Train an encoder with ``cfg.method``; returns the run directory. ``stop_after_steps`` ends the run
    early (used to test interruption)."""
    cfg.validate()
    data = _load_data(cfg)  # validate the data before anything is written
    info = D.setup()
    run = RunDir(cfg.out)
    if info.is_main:
        run.prepare(resume, overwrite)
    D.barrier()
    try:
        return _train(cfg, info, run, resume, stop_after_steps, data)
    finally:
        run.release()
        D.teardown()


def _train(cfg: TrainConfig, info: D.DistInfo, run: RunDir, resume: bool, stop_after_steps: int | None, data) -> Path:
    state = None
    if resume:
        state = load_checkpoint(run.last)
        old = TrainConfig.from_dict(state["config"], str(run.last))
        diff = old.differences(cfg)
        if diff:
            raise ConfigError(f"cannot resume {run.path}: its checkpoint was made with another config "
                              f"(differs in: {', '.join(f'{k}={old.to_dict()[k]!r} vs {cfg.to_dict()[k]!r}' for k in diff[:4])})")
    seed_everything(cfg.seed)
    if cfg.deterministic:
        torch.use_deterministic_algorithms(True)
    dataset, normaliser, descriptors = data
    per_rank = cfg.batch_size // info.world_size
    if per_rank < 1 or cfg.batch_size % info.world_size:
        raise ConfigError(f"--batch-size {cfg.batch_size} must be a multiple of the {info.world_size} processes")
    if len(dataset) < cfg.batch_size:
        raise DataError(f"{cfg.data} split {cfg.split!r} has {len(dataset)} subjects, fewer than one batch of {cfg.batch_size}")
    ages = dataset.participants["age"].to_numpy(np.float64)
    age_stats = {"mean": float(ages.mean()), "std": float(ages.std() or 1.0)}

    head = "regression" if cfg.method in REGRESSION_METHODS else "projection"
    model_config = default_model_config(cfg.encoder, cfg.width, 1, head)
    if cfg.method == "gmv-regression":  # one linear output per regional descriptor
        model_config["head"]["out_features"] = int(np.prod(descriptors.shape[1:]))
    model = build_model(model_config).to(info.device)
    if info.enabled and cfg.sync_bn and info.device.type == "cuda":
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    layout = torch.channels_last_3d if cfg.channels_last else torch.contiguous_format
    model = model.to(memory_format=layout)  # before the optimiser sees the parameters
    loss_fn = build_loss(cfg.method, temperature=cfg.temperature, base_temperature=cfg.base_temperature or None,
                         kernel=cfg.kernel, sigma=cfg.sigma, lambda_age=cfg.lambda_age, lambda_anat=cfg.lambda_anat,
                         normalise=None, weight_map=cfg.weight_map,  # descriptors arrive normalised
                         anat_bandwidth=_anat_bandwidth(cfg, descriptors, ages))
    # fused kernel: one pass over all parameters instead of a dozen kernels per tensor; the step's overhead over
    # a bare forward+backward fell from 1.05-1.10x to 1.03-1.05x (medians) at 61x73x61 on CPU (benchmarks/RESULTS.md)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay,
                                 fused=info.device.type in ("cpu", "cuda"))
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=cfg.lr_step, gamma=cfg.lr_gamma)
    amp_dtype, scaler = _amp(cfg, info.device)
    epoch, step_in_epoch, global_step = 0, 0, 0
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if scaler is not None and state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        set_rng_state(state["rng"])
        epoch, step_in_epoch, global_step = state["epoch"], state["step_in_epoch"], state["global_step"]
    net = torch.nn.parallel.DistributedDataParallel(model) if info.enabled else model

    views = ViewsDataset(dataset, cfg.views, build_augmentations(cfg.augment, dataset.volume(0).shape),
                         descriptors, seed=cfg.seed)
    sampler = DistributedSampler(views, num_replicas=info.world_size, rank=info.rank, shuffle=True, seed=cfg.seed,
                                 drop_last=True)
    meta = {"format": "anatlearn", "format_version": 1, "model_config": model.model_config, "config": cfg.to_dict(),
            "seed": cfg.seed, "normaliser": normaliser.state_dict() if normaliser else None, "age_stats": age_stats}
    if info.is_main:
        atomic_write_text(run.path / "config.toml", cfg.to_toml())
        run.write_json("provenance.json", provenance(cfg.seed, cfg.to_dict()))
        if normaliser:
            run.write_json("normaliser.json", normaliser.state_dict())
        if getattr(loss_fn, "anat_bandwidth", None):  # weight_map "kernel": the bandwidth used (rule or given)
            run.write_json("anat_bandwidth.json", {"anat_bandwidth": loss_fn.anat_bandwidth,
                                                   "rule": "matched to the age kernel" if not cfg.anat_bandwidth else "given"})
    metrics = run.metrics_writer(global_step if state is not None else None) if info.is_main else None
    progress = _Progress(cfg.progress and info.is_main)

    def checkpoint(path: Path, ep: int, step: int) -> None:
        if info.is_main:
            save_checkpoint(path, {**meta, "model": _contiguous(model.state_dict()),
                                   "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                                   "scaler": scaler.state_dict() if scaler else None,
                                   "rng": rng_state(), "epoch": ep, "step_in_epoch": step, "global_step": global_step,
                                   "provenance": provenance(cfg.seed, cfg.to_dict())})
        D.barrier()

    ids = dataset.participants["participant_id"].to_numpy()
    while epoch < cfg.epochs:
        views.set_epoch(epoch)
        batches = _epoch_batches(sampler, epoch, per_rank)
        if not batches:
            raise DataError(f"no full batch of {cfg.batch_size} subjects in {cfg.data}")
        loader = DataLoader(views, batch_sampler=batches[step_in_epoch:], num_workers=cfg.num_workers,
                            pin_memory=info.device.type == "cuda", persistent_workers=False)
        net.train()
        progress.start(epoch, len(batches), step_in_epoch)
        t0 = time.perf_counter()  # samples/s include data loading: the time from one step's end to the next
        for batch in loader:
            where = functools.partial(_where, epoch, step_in_epoch, global_step, ids, batch["index"])
            values = train_step(net, batch, loss_fn, optimizer, scaler, method=cfg.method, device=info.device,
                                amp_dtype=amp_dtype, layout=layout, age_stats=age_stats, where=where)
            b = batch["views"].shape[0]
            step_in_epoch += 1
            global_step += 1
            now = time.perf_counter()
            rate, t0 = b * info.world_size / (now - t0), now
            row = {"step": global_step, "epoch": epoch, "lr": optimizer.param_groups[0]["lr"], "samples_per_s": rate,
                   **values}
            if metrics:
                metrics.write(row)
            progress.update(row)
            if cfg.checkpoint_every and global_step % cfg.checkpoint_every == 0 and step_in_epoch < len(batches):
                checkpoint(run.last, epoch, step_in_epoch)
            if stop_after_steps is not None and global_step >= stop_after_steps:
                progress.stop()
                return run.path
        progress.stop()
        scheduler.step()
        epoch, step_in_epoch = epoch + 1, 0
        checkpoint(run.full_checkpoint(epoch), epoch, 0)
        if info.is_main:
            run.point_last_to(run.full_checkpoint(epoch))  # resume point first, then retention
            if (cfg.keep_every and epoch % cfg.keep_every == 0) or epoch in cfg.save_epochs:
                save_checkpoint(run.milestone(epoch), {**meta, "model": _contiguous(model.state_dict()), "epoch": epoch,
                                                       "global_step": global_step, "weights_only": True,
                                                       "provenance": provenance(cfg.seed, cfg.to_dict())})
            run.prune_full(cfg.keep_last)
        D.barrier()
    if metrics:
        metrics.close()
    return run.path


def _where(epoch: int, step: int, global_step: int, ids: np.ndarray, index: torch.Tensor) -> str:
    """The step and its subjects, for error messages (formatted only when a step fails)."""
    return f"epoch {epoch}, step {step} (global step {global_step}); batch subjects: {', '.join(ids[index.numpy()][:8])}"


def _contiguous(state: dict) -> dict:
    """Weights saved in the standard layout whatever the training layout, so every reader gets plain tensors."""
    return {k: v.contiguous() for k, v in state.items()}


class _Progress:
    """A rich progress bar on a terminal; one summary line per epoch otherwise."""

    def __init__(self, enabled: bool):
        import sys

        self.enabled = enabled
        self.tty = enabled and sys.stderr.isatty()
        self.bar = None
        self.last: dict = {}

    def start(self, epoch: int, total: int, done: int) -> None:
        self.epoch, self.total = epoch, total
        if self.tty:
            from rich.progress import Progress

            self.bar = Progress(transient=True)
            self.bar.start()
            self.task = self.bar.add_task(f"epoch {epoch}", total=total, completed=done)

    def update(self, row: dict) -> None:
        self.last = row
        if self.bar is not None:
            self.bar.update(self.task, advance=1,
                            description=f"epoch {self.epoch} loss {row['loss']:.4f} {row['samples_per_s']:.1f} subj/s")

    def stop(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None
        if self.enabled and self.last:
            import sys

            print(f"epoch {self.epoch}: step {self.last['step']} loss {self.last['loss']:.4f} "
                  f"lr {self.last['lr']:.2e} {self.last['samples_per_s']:.1f} subjects/s", file=sys.stderr)


__all__ = ["AnatlearnError", "TrainConfig", "pretrain", "train_step"]
