"""Checkpoint I/O: anatlearn's own checkpoints, the released AnatCL checkpoints, and safetensors.

Safety: checkpoints are read with ``torch.load(weights_only=True)`` (tensors, numbers, strings, lists and
dicts only) or safetensors, so a checkpoint whose pickle would run code is refused, never executed (the
released package unpickles with ``weights_only=False``). Consequently checkpoint state holds no NumPy
arrays: RNG states and statistics are stored as tensors or lists.

Released layout (``anatcl`` package): ``{"model": state_dict}`` of their SupConResNet, keys
``encoder.<torchvision resnet names>`` and ``head.0.*``, ``head.2.*``. anatlearn layout: ``{"format":
"anatlearn", "format_version": 1, "model": state_dict, "model_config": {...}, "config": {...}, "seed": int,
"provenance": {...}, ...}``. Both load strictly: any missing or unexpected key or shape mismatch is an error.
"""

from __future__ import annotations

import json
import os
import pickle
import zipfile
from pathlib import Path

import torch

from anatlearn.errors import CheckpointError
from anatlearn.io import atomic_path
from anatlearn.models.hub import fetch, is_hf_hub, is_url, resolve_hf_hub

FORMAT = "anatlearn"
FORMAT_VERSION = 1


def save_checkpoint(path: str | os.PathLike, state: dict) -> None:
    """Write ``state`` atomically (temporary file, fsync, rename): a crash leaves the old file intact."""
    try:
        with atomic_path(path) as tmp:
            torch.save(state, tmp)
    except OSError as exc:  # disk full, quota, permissions: the previous file at `path` is untouched
        raise CheckpointError(f"could not write checkpoint {path}: {exc.strerror or exc}; "
                              f"the previous checkpoint there (if any) is intact") from None


def load_checkpoint(path: str | os.PathLike, map_location="cpu") -> dict:
    """Read a checkpoint safely (``weights_only=True``, or safetensors for ``*.safetensors``)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    if path.suffix == ".safetensors":
        return _load_safetensors(path)
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        lines = [ln for ln in str(exc).splitlines() if "GLOBAL" in ln or "Unsupported" in ln]
        first = lines[0].strip() if lines else type(exc).__name__
        raise CheckpointError(f"refused to load {path}: it contains objects other than tensors and plain data "
                              f"(nothing was executed). Only weights-only checkpoints are accepted. [{first}]") from None
    except (EOFError, RuntimeError, zipfile.BadZipFile, ValueError, OSError) as exc:
        raise CheckpointError(f"checkpoint {path} is truncated or corrupt ({type(exc).__name__}: "
                              f"{str(exc).splitlines()[0] if str(exc) else ''})") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"checkpoint {path} holds a {type(state).__name__}, not a dict of weights")
    return state


def _load_safetensors(path: Path) -> dict:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata() or {}
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"safetensors file {path} is truncated or corrupt ({exc})") from None
    state: dict = {"model": tensors}
    for key, value in meta.items():
        try:
            state[key] = json.loads(value)
        except json.JSONDecodeError:
            state[key] = value
    return state


def export_safetensors(model, path: str | os.PathLike, metadata: dict | None = None) -> None:
    """Export a model's weights (and its ``model_config`` plus ``metadata``) to a safetensors file."""
    from safetensors.torch import save_file

    from anatlearn.provenance import versions

    meta = {"format": FORMAT, "model_config": getattr(model, "model_config", {}), "versions": versions(),
            **(metadata or {})}
    tensors = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={k: json.dumps(v) for k, v in meta.items()})


def _strip_prefix(state_dict: dict, prefix: str = "module.") -> dict:
    if state_dict and all(k.startswith(prefix) for k in state_dict):
        return {k[len(prefix):]: v for k, v in state_dict.items()}
    return state_dict


def load_state_strict(model: torch.nn.Module, state_dict: dict, source: str) -> None:
    """Load ``state_dict`` into ``model``, raising one clear error for any key or shape mismatch."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    shapes = [f"{k}: checkpoint {tuple(state_dict[k].shape)} vs model {tuple(v.shape)}"
              for k, v in expected.items() if k in state_dict and tuple(state_dict[k].shape) != tuple(v.shape)]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing keys (e.g. {', '.join(missing[:3])})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected keys (e.g. {', '.join(unexpected[:3])})")
    if shapes:
        problems.append(f"{len(shapes)} shape mismatches (e.g. {'; '.join(shapes[:2])})")
    if problems:
        raise CheckpointError(f"checkpoint {source} does not match the model "
                              f"{model.model_config.get('encoder', '?')} (width {model.model_config.get('width', '?')}): "
                              + "; ".join(problems) + ". Is it another architecture or width?")
    model.load_state_dict(state_dict, strict=True)


# Hub-format folders (written by anatlearn.models.card.export_folder): weights and config side by side
HUB_FORMAT = "anatlearn-hub"
WEIGHTS_FILE, CONFIG_FILE = "model.safetensors", "config.json"


def is_hub_folder(path) -> bool:
    p = Path(path)
    return p.is_dir() and (p / CONFIG_FILE).is_file()


def read_hub_folder(path) -> tuple[dict, dict]:
    """(config, state dict) of a Hub-format folder; every missing or malformed file is one clear error."""
    folder = Path(path)
    config_path, weights_path = folder / CONFIG_FILE, folder / WEIGHTS_FILE
    try:
        config = json.loads(config_path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"cannot read {config_path}: {exc}") from None
    if not isinstance(config, dict) or config.get("format") != HUB_FORMAT or not isinstance(config.get("model_config"), dict):
        raise CheckpointError(f"{config_path} is not an anatlearn model config (expected \"format\": \"{HUB_FORMAT}\" "
                              f"and a model_config)")
    if not weights_path.is_file():
        raise CheckpointError(f"model folder {folder} has no {WEIGHTS_FILE}")
    return config, load_checkpoint(weights_path)["model"]


def _check_architecture(config: dict, model, width, source: str) -> None:
    """A ``model``/``width`` given for a checkpoint that records its own architecture must be that one."""
    encoder, own_width = config.get("encoder"), float(config.get("width", 1.0))
    if model is not None and model != encoder:
        raise CheckpointError(f"{source} holds a {encoder} encoder (width {own_width:g}), not the `model` {model!r} "
                              f"asked for; leave `model` out (this checkpoint records its architecture)")
    if width is not None and float(width) != own_width:
        raise CheckpointError(f"{source} holds a {encoder} encoder of width {own_width:g}, not the `width` {width:g} "
                              f"asked for; leave `width` out (this checkpoint records its architecture)")


def load_pretrained(path_or_url, model: str | None = None, width: float | None = None, cache_dir=None,
                    map_location="cpu", *, default_model: str = "resnet18", default_width: float = 1.0):
    """Load a pretrained :class:`~anatlearn.models.ContrastiveModel` in eval mode.

    Accepts anatlearn checkpoints (architecture read from their ``model_config``: a ``model`` or ``width``
    that contradicts it is a :class:`CheckpointError`, never silently replaced), anatlearn safetensors exports, Hub-format folders (``model.safetensors`` + ``config.json``,
    :mod:`anatlearn.models.card`), ``hf-hub:ORG/NAME[@REV]`` (such a folder on the Hugging Face Hub, through
    huggingface_hub's cache) and the released AnatCL checkpoints (``{"model": state_dict}`` with
    ``encoder.*`` and ``head.0/2.*``; architecture given by ``model`` and ``width``, else ``default_model``
and ``default_width``: the command line's ``--model``/``--width`` defaults, which only ever name a released
checkpoint's architecture). URLs (http(s)://,
    file://) are downloaded once into a cache keyed by the whole URL. Every ``--weights`` of the command line
    is resolved here.
    """
    from anatlearn.models import build_model, default_model_config

    source = str(path_or_url)
    if is_hf_hub(source):
        path_or_url = resolve_hf_hub(source)
    if is_hub_folder(path_or_url):
        config, weights = read_hub_folder(path_or_url)
        _check_architecture(config["model_config"], model, width, source)
        net = build_model(config["model_config"])
        load_state_strict(net, weights, source)
        net.checkpoint_meta = {"format": "anatlearn-hub", "hub_config": config}
        return net.eval()
    path = fetch(source, cache_dir) if is_url(source) else Path(path_or_url)
    if path.is_dir():
        raise CheckpointError(f"{path} is a folder without config.json: not a model folder written by export")
    state = load_checkpoint(path, map_location=map_location)
    if "model" not in state or not isinstance(state["model"], dict):
        if state and all(isinstance(v, torch.Tensor) for v in state.values()):
            state = {"model": state}  # a bare state dict
        else:
            raise CheckpointError(f"checkpoint {source} has no 'model' state dict (keys: {', '.join(list(state)[:5])})")
    weights = _strip_prefix(state["model"])
    if state.get("format") == FORMAT:
        config = state.get("model_config")
        if not isinstance(config, dict):
            raise CheckpointError(f"anatlearn checkpoint {source} lacks its model_config")
        _check_architecture(config, model, width, source)
    else:
        has_head = any(k.startswith("head.") for k in weights)
        config = default_model_config(model or default_model, default_width if width is None else width,
                                      head="projection" if has_head else None)
        if has_head and "head.2.weight" in weights:
            config["head"]["hidden"] = int(weights["head.0.weight"].shape[0])
            config["head"]["out_features"] = int(weights["head.2.weight"].shape[0])
    net = build_model(config)
    load_state_strict(net, weights, source)
    net.checkpoint_meta = {k: v for k, v in state.items() if k not in ("model", "optimizer", "scheduler", "scaler", "rng")}
    return net.eval()
