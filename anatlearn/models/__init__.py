"""Encoders, heads and checkpoint I/O.

>>> from anatlearn.models import build_encoder
>>> enc = build_encoder("resnet18", width=0.125)
>>> enc.out_features
64
"""

from __future__ import annotations

import math

from torch import nn

from anatlearn.errors import ConfigError
from anatlearn.models.alexnet import alexnet3d
from anatlearn.models.densenet import densenet121
from anatlearn.models.heads import ContrastiveModel, ProjectionHead, ProjectionRegressionHead, RegressionHead
from anatlearn.models.resnet import resnet18, resnet34, resnet50

ENCODERS = {"resnet18": resnet18, "resnet34": resnet34, "resnet50": resnet50, "densenet121": densenet121,
            "alexnet3d": alexnet3d}
HEAD_KINDS = ("projection", "regression", "projection+regression")


def build_encoder(name: str, width: float = 1.0, in_channels: int = 1) -> nn.Module:
    """Build a 3D encoder mapping (B, in_channels, X, Y, Z) to (B, F); F is its ``out_features``.

    ``width`` multiplies every channel count (e.g. 0.125 for CPU experiments); inputs must be >= 32^3.
    """
    if name not in ENCODERS:
        raise ConfigError(f"unknown encoder {name!r}; choose one of {', '.join(ENCODERS)}")
    if not (isinstance(width, (int, float)) and math.isfinite(width) and 0 < width <= 8):
        raise ConfigError(f"encoder width must be in (0, 8], got {width!r}")
    if not (isinstance(in_channels, int) and in_channels >= 1):
        raise ConfigError(f"in_channels must be a positive integer, got {in_channels!r}")
    return ENCODERS[name](in_channels=in_channels, width=float(width))


def default_model_config(encoder: str = "resnet18", width: float = 1.0, in_channels: int = 1,
                         head: str | None = "projection", hidden: int = 512, out_features: int = 128,
                         regression_outputs: int | None = None) -> dict:
    """The ``model_config`` dict that :func:`build_model` takes and checkpoints store; ``regression_outputs``
    is the width of a regression head (None: 1)."""
    head_cfg = None
    if head == "projection":
        head_cfg = {"kind": "projection", "hidden": hidden, "out_features": out_features}
    elif head == "regression":
        head_cfg = {"kind": "regression"}
        if regression_outputs is not None:
            head_cfg["out_features"] = int(regression_outputs)
    elif head == "projection+regression":
        head_cfg = {"kind": head, "hidden": hidden, "out_features": out_features,
                    "regression_outputs": int(regression_outputs or 1)}
    elif head is not None:
        raise ConfigError(f"unknown head {head!r}; choose one of {', '.join(HEAD_KINDS)} or None")
    return {"encoder": encoder, "width": float(width), "in_channels": int(in_channels), "head": head_cfg}


def build_model(model_config: dict) -> ContrastiveModel:
    """Build a :class:`ContrastiveModel` from a ``model_config`` (see :func:`default_model_config`)."""
    try:
        encoder = build_encoder(model_config["encoder"], model_config.get("width", 1.0),
                                model_config.get("in_channels", 1))
    except KeyError as exc:
        raise ConfigError(f"model_config lacks the key {exc.args[0]!r}") from None
    head_cfg = model_config.get("head")
    head: nn.Module | None = None
    if head_cfg is not None:
        kind = head_cfg.get("kind")
        if kind == "projection":
            head = ProjectionHead(encoder.out_features, head_cfg.get("hidden", 512), head_cfg.get("out_features", 128))
        elif kind == "regression":
            head = RegressionHead(encoder.out_features, head_cfg.get("out_features", 1))
        elif kind == "projection+regression":
            head = ProjectionRegressionHead(encoder.out_features, head_cfg.get("hidden", 512),
                                            head_cfg.get("out_features", 128), head_cfg.get("regression_outputs", 1))
        else:
            raise ConfigError(f"unknown head kind {kind!r}; choose one of {', '.join(HEAD_KINDS)}")
    return ContrastiveModel(encoder, head, model_config)


from anatlearn.models.checkpoint import (export_safetensors, load_checkpoint, load_pretrained,  # noqa: E402
                                         save_checkpoint)

__all__ = ["ENCODERS", "ContrastiveModel", "ProjectionHead", "ProjectionRegressionHead", "RegressionHead", "build_encoder", "build_model",
           "default_model_config", "export_safetensors", "load_checkpoint", "load_pretrained", "save_checkpoint"]
