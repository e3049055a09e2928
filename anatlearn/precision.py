"""Mixed precision for every stage that trains or runs a model (pretrain, finetune, predict): the autocast
context and the optimiser step, one implementation.

With fp16 a :class:`torch.amp.GradScaler` multiplies the loss before backward and unscales the gradients
in ``step``, skipping the step when they hold inf/NaN (Micikevicius et al., "Mixed Precision Training",
ICLR 2018); bf16 and fp32 need no scaler."""

from __future__ import annotations

import contextlib

import torch


def autocast(device: torch.device, dtype: torch.dtype | None):
    """``torch.autocast`` to ``dtype`` on ``device``; no context (fp32) when ``dtype`` is None."""
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()


def optimizer_step(loss: torch.Tensor, optimizer: torch.optim.Optimizer,
                   scaler: torch.amp.GradScaler | None = None) -> None:
    """Backward and one step of ``optimizer`` (gradients zeroed first), through ``scaler`` if given."""
    optimizer.zero_grad(set_to_none=True)
    if scaler is None:
        loss.backward()
        optimizer.step()
        return
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
