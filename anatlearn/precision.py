"""Mixed precision for every stage that trains or runs a model (pretrain, finetune, predict): what a
precision setting means on a device, the autocast context and the optimiser step, one implementation.

With fp16 a :class:`torch.amp.GradScaler` multiplies the loss before backward and unscales the gradients
in ``step``, skipping the step when they hold inf/NaN (Micikevicius et al., "Mixed Precision Training",
ICLR 2018); bf16 and fp32 need no scaler."""

from __future__ import annotations

import contextlib

import torch

from anatlearn.errors import ConfigError

DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def resolve(precision: str, device: torch.device, name: str = "precision", fp32: str = "fp32"):
    """(autocast dtype, or None for fp32; whether fp16 needs a GradScaler) of ``precision`` on ``device``:
    ``auto`` is bf16 on a GPU that supports it, else fp16 on a GPU, and fp32 on a CPU. ``fp32`` is how
    the caller spells full precision (pretrain's saved configs say ``off``); ``name`` is the parameter that
    errors name."""
    if precision == "auto":
        precision = ("bf16" if torch.cuda.is_bf16_supported() else "fp16") if device.type == "cuda" else fp32
    if precision == fp32:
        precision = "fp32"
    if precision not in DTYPES:
        raise ConfigError(f"unknown {name} {precision!r}; choose one of auto, {fp32}, bf16, fp16")
    if precision == "fp16" and device.type != "cuda":
        raise ConfigError(f"{name}='fp16' needs a GPU; on CPU use {name}='bf16' or {name}={fp32!r}")
    return DTYPES[precision], precision == "fp16"


def resolve_device(device: str, name: str = "device") -> torch.device:
    """The torch device of ``device``: ``auto`` is the GPU when one is visible, else the CPU (the default
    of every command that runs a model). A GPU asked for where none is visible is a ConfigError."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise ConfigError(f"unknown {name} {device!r}; choose auto, cpu or cuda") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"{name} {device!r} requested but no CUDA GPU is available")
    return dev


def resolve_name(precision: str, device: torch.device, name: str = "precision") -> str:
    """``precision`` with ``auto`` made concrete by :func:`resolve`: fp32 on a CPU, bf16 or fp16 on a GPU."""
    dtype, _ = resolve(precision, device, name)
    return {v: k for k, v in DTYPES.items()}[dtype]


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
