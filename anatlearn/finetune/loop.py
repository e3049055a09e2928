"""One fine-tuning fit: a fresh head on an encoder, the learning rate chosen on an inner validation split,
early stopping, and a checkpoint after every epoch so that a killed fit resumes exactly.

The fit sees two sets of subjects only, its training and its validation positions; the loaders read them
through :class:`LabelledVolumes`, which refuses (raises :class:`LeakError`) any position it was told is
forbidden, i.e. the outer test fold. Every random draw (head initialisation, data order, augmentation) is
seeded from (seed, fold, candidate, epoch, subject), never from a global generator, so an epoch replayed
after a kill draws the same batches; the global RNG state is checkpointed as well.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from anatlearn.errors import TrainingError
from anatlearn.models import build_model, load_checkpoint, save_checkpoint
from anatlearn.precision import autocast, optimizer_step
from anatlearn.pretrain.rundir import rng_state, set_rng_state

from anatlearn.finetune.config import FinetuneConfig


class LeakError(TrainingError):
    """A loader of the training or validation part asked for a subject of the outer test fold."""


def mix_seed(*values: int) -> int:
    """One 63-bit seed from several integers (NumPy's SeedSequence hashing: distinct tuples, distinct seeds)."""
    return int(np.random.SeedSequence([int(v) % 2**32 for v in values]).generate_state(2, np.uint64)[0] % 2**63)


class LabelledVolumes(Dataset):
    """Items ``{"volume": (1, X, Y, Z), "target", "index"}`` for positions 0..n-1 of the labelled subjects.

    ``rows[i]`` is position i's row in the image ``dataset``. ``forbidden`` positions raise
    :class:`LeakError` when read. ``transform(volume, generator)`` (training only) is seeded by (seed,
    epoch, position), as :class:`anatlearn.data.ViewsDataset` seeds its views.
    """

    def __init__(self, dataset, rows, targets, ids, transform=None, seed: int = 0, forbidden=()):
        self.dataset, self.rows, self.ids = dataset, np.asarray(rows), list(ids)
        self.targets = torch.as_tensor(np.asarray(targets))
        self.transform, self.seed, self.epoch = transform, seed, 0
        self.forbidden = frozenset(int(i) for i in forbidden)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict:
        i = int(i)
        if i in self.forbidden:
            raise LeakError(f"subject {self.ids[i]} belongs to the outer test fold but a training or validation "
                            f"loader asked for it; the fit would have seen its test subjects")
        vol = torch.from_numpy(self.dataset.volume(int(self.rows[i])))[None]
        if self.transform is not None:
            vol = self.transform(vol, torch.Generator().manual_seed(mix_seed(self.seed, self.epoch, i)))
        return {"volume": vol, "target": self.targets[i], "index": i}


class StepBudget:
    """Stops a fit after ``steps`` optimiser steps (simulates a kill in tests, like pretrain's hook)."""

    def __init__(self, steps: int | None):
        self.left = steps

    def spend(self) -> bool:
        if self.left is None:
            return False
        self.left -= 1
        return self.left <= 0


def param_groups(model, lr: float, layer_decay: float) -> list[dict]:
    """The head at ``lr``; the encoder's top-level stages from the top down at lr * decay^1, decay^2, ..."""
    groups = [{"params": list(model.head.parameters()), "base_lr": lr, "lr": lr, "encoder": False}]
    stages = [m for _, m in model.encoder.named_children() if any(True for _ in m.parameters())]
    seen = set()
    for depth, stage in enumerate(reversed(stages), start=1):
        params = list(stage.parameters())
        seen.update(id(p) for p in params)
        groups.append({"params": params, "base_lr": lr * layer_decay ** depth, "lr": lr, "encoder": True})
    rest = [p for p in model.encoder.parameters() if id(p) not in seen]
    if rest:  # parameters held by the encoder itself: with the lowest stage
        groups.append({"params": rest, "base_lr": lr * layer_decay ** max(1, len(stages)), "lr": lr, "encoder": True})
    return groups


@dataclass
class FitContext:
    """What one fit needs: the model to start from, the subjects it may read, how to score them."""
    cfg: FinetuneConfig
    kind: str
    model_config: dict
    initial_state: dict
    train_data: LabelledVolumes  # guarded, augmented
    eval_data: LabelledVolumes  # guarded, not augmented
    train_pos: np.ndarray
    val_pos: np.ndarray
    key: int  # the fold (or -1 for the final model): seeds the data order
    device: torch.device = torch.device("cpu")
    amp_dtype: torch.dtype | None = None
    use_scaler: bool = False
    workers: int = 0
    class_weights: torch.Tensor | None = None
    target_stats: dict = field(default_factory=lambda: {"mean": 0.0, "std": 1.0})
    observer: Callable[[str, np.ndarray], None] | None = None
    budget: StepBudget | None = None
    on_epoch: Callable[[], None] | None = None


def forward(model, x: torch.Tensor, amp_dtype, frozen: bool = False) -> torch.Tensor:
    """Head outputs in float32; ``frozen`` runs the encoder without gradients (the warm-up)."""
    with autocast(x.device, amp_dtype):
        if frozen:
            with torch.no_grad():
                feats = model.encoder(x)
            out = model.head(feats)
        else:
            out = model(x)
    return out.float()


def loss_of(ctx: FitContext, out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Class-weighted cross-entropy, or the mean squared error of the standardised target."""
    if ctx.kind == "classification":
        return F.cross_entropy(out, target.long(), weight=ctx.class_weights)
    z = (target.float() - ctx.target_stats["mean"]) / ctx.target_stats["std"]
    return F.mse_loss(out, z)


def outputs(model, data: LabelledVolumes, positions, batch_size: int, device, amp_dtype, workers: int = 0,
            observer=None, role: str = "validation") -> torch.Tensor:
    """Raw head outputs (logits or standardised values) of ``positions``, in that order, in eval mode."""
    positions = [int(p) for p in positions]
    batches = [positions[i:i + batch_size] for i in range(0, len(positions), batch_size)]
    loader = DataLoader(data, batch_sampler=batches, num_workers=workers, pin_memory=device.type == "cuda")
    model.eval()
    out = []
    with torch.no_grad():
        for batch in loader:
            if observer:
                observer(role, batch["index"].numpy())
            out.append(forward(model, batch["volume"].to(device, non_blocking=True), amp_dtype).cpu())
    return torch.cat(out)


def _train_epoch(ctx: FitContext, model, optimizer, scaler, frozen: bool, candidate: int, epoch: int):
    """Mean training loss of one epoch, or None when the step budget ran out during it."""
    model.train()
    if frozen:
        model.encoder.eval()  # the warm-up leaves the encoder's BatchNorm statistics as they are
    g = torch.Generator().manual_seed(mix_seed(ctx.cfg.seed, ctx.key, candidate, epoch))
    order = ctx.train_pos[torch.randperm(len(ctx.train_pos), generator=g).numpy()].tolist()
    bs = ctx.cfg.batch_size
    batches = [order[i:i + bs] for i in range(0, len(order), bs)]
    if len(batches) > 1 and len(batches[-1]) < 2:  # BatchNorm cannot train on a batch of one
        batches = batches[:-1]
    ctx.train_data.epoch = mix_seed(ctx.key, candidate, epoch)
    loader = DataLoader(ctx.train_data, batch_sampler=batches, num_workers=ctx.workers,
                        pin_memory=ctx.device.type == "cuda")
    total, count = 0.0, 0
    for batch in loader:
        if ctx.observer:
            ctx.observer("train", batch["index"].numpy())
        target = batch["target"].to(ctx.device)
        loss = loss_of(ctx, forward(model, batch["volume"].to(ctx.device, non_blocking=True), ctx.amp_dtype, frozen),
                       target)
        if not torch.isfinite(loss):
            raise TrainingError(f"fine-tuning loss is {loss.item()} at fold {ctx.key}, epoch {epoch}; lower the "
                                f"learning rates or check the input volumes")
        optimizer_step(loss, optimizer, scaler)
        total, count = total + float(loss.detach()) * len(target), count + len(target)
        if ctx.budget is not None and ctx.budget.spend():
            return None
    return total / max(count, 1)


def _validate(ctx: FitContext, model) -> tuple[float, float]:
    """(validation loss, validation metric: balanced accuracy or MAE in target units)."""
    out = outputs(model, ctx.eval_data, ctx.val_pos, ctx.cfg.batch_size, ctx.device, ctx.amp_dtype, ctx.workers,
                  ctx.observer, "validation")
    target = ctx.eval_data.targets[torch.as_tensor(ctx.val_pos)]
    loss = float(loss_of(ctx, out.to(ctx.device), target.to(ctx.device)))
    if ctx.kind == "classification":
        pred, y = out.argmax(1).numpy(), target.numpy()
        metric = float(np.mean([np.mean(pred[y == c] == c) for c in np.unique(y)]))
    else:
        values = out.numpy() * ctx.target_stats["std"] + ctx.target_stats["mean"]
        metric = float(np.mean(np.abs(values - target.numpy())))
    return loss, metric


def _new_model(ctx: FitContext, lr: float):
    model = build_model(ctx.model_config)
    model.load_state_dict(ctx.initial_state)
    model = model.to(ctx.device)
    optimizer = torch.optim.AdamW(param_groups(model, lr, ctx.cfg.layer_decay), lr=lr,
                                  weight_decay=ctx.cfg.weight_decay)
    scaler = torch.amp.GradScaler("cuda") if ctx.use_scaler else None
    return model, optimizer, scaler


def _weights(model) -> dict:
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def fit(ctx: FitContext, state_path: Path) -> dict | None:
    """Train one candidate per learning rate of the grid, each with warm-up and early stopping; return the
    winner ``{"lr", "epoch", "val_loss", "weights"}`` (lowest validation loss) and the learning curve under
    ``"curve"``, or None when the step budget ran out (the state on disk is the last finished epoch's)."""
    state = load_checkpoint(state_path) if state_path.exists() else {"candidate": 0, "winner": None, "curve": []}
    if "rng" in state:
        set_rng_state(state["rng"])
    for candidate in range(int(state["candidate"]), len(ctx.cfg.lr_grid)):
        if not _fit_candidate(ctx, candidate, state, state_path):
            return None
        state = {"candidate": candidate + 1, "winner": state["winner"], "curve": state["curve"]}
        save_checkpoint(state_path, {**state, "rng": rng_state()})
    return {**state["winner"], "curve": state["curve"]}


def _fit_candidate(ctx: FitContext, candidate: int, state: dict, state_path: Path) -> bool:
    """Train candidate ``candidate`` (resuming from ``state`` if it holds its epoch); update ``state``'s
    winner and curve in place. False when the step budget ran out."""
    cfg, lr = ctx.cfg, float(ctx.cfg.lr_grid[candidate])
    model, optimizer, scaler = _new_model(ctx, lr)
    epoch, best, bad = 0, None, 0
    if state.get("model") is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if scaler is not None and state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        epoch, best, bad = int(state["epoch"]), state["best"], int(state["bad"])
    while epoch < cfg.epochs and bad < cfg.patience:
        frozen = epoch < cfg.warmup_epochs
        for group in optimizer.param_groups:
            group["lr"] = 0.0 if (frozen and group["encoder"]) else group["base_lr"]
        train_loss = _train_epoch(ctx, model, optimizer, scaler, frozen, candidate, epoch)
        if train_loss is None:
            return False
        val_loss, val_metric = _validate(ctx, model)
        # recorded epochs count from 1, as pretraining's (the loop's counter stays 0-based for resume)
        state["curve"].append({"fold": ctx.key, "lr": lr, "epoch": epoch + 1, "phase": "warmup" if frozen else "full",
                               "train_loss": train_loss, "val_loss": val_loss, "val_metric": val_metric})
        if best is None or val_loss < best["val_loss"]:
            best, bad = {"val_loss": val_loss, "epoch": epoch + 1, "weights": _weights(model)}, 0
        elif not frozen:
            bad += 1
        epoch += 1
        save_checkpoint(state_path, {"candidate": candidate, "epoch": epoch, "model": _weights(model),
                                     "optimizer": optimizer.state_dict(),
                                     "scaler": scaler.state_dict() if scaler else None, "best": best, "bad": bad,
                                     "winner": state["winner"], "curve": state["curve"], "rng": rng_state()})
        if ctx.on_epoch:
            ctx.on_epoch()
    if state["winner"] is None or best["val_loss"] < state["winner"]["val_loss"]:
        state["winner"] = {**best, "lr": lr}
    state.pop("model", None)
    return True
