"""Lineage: which encoder made a feature table, which feature tables a result used, and which image grid an
encoder was trained on (one rule, :func:`check_grid`, for ``embed``, ``finetune``, ``predict`` and ``bids``).

*Encoder identity.* The SHA-256 of the encoder's state dict (sorted tensor names, dtypes, shapes and raw
bytes: :func:`state_sha256`), taken from the loaded model, so the same weights read from a ``.pt``
checkpoint, a ``.safetensors`` export, an exported Hub folder or a released ``.pth`` have one identity
whatever the file and its path; with it the architecture, the training grid and the training data where the
checkpoint records them. The projection or task head is not part of it: features are the encoder's output.
``embed`` writes the identity into every feature table's metadata (key :data:`IDENTITY`); a saved probe, a
brain-age model or a ComBat model fitted on a table copies it, and applying one to a table of another encoder
is refused (:func:`check_same_encoder`), comparing hashes, never paths. A table written before identities
existed still loads; what cannot be checked is said in a warning.

*Training grid.* The voxel grid (shape; the NIfTI affine where the data had one) an encoder was trained on:
recorded by ``pretrain`` and ``finetune`` in their checkpoints (``input``), by ``export`` in a folder's
config.json; the released AnatCL checkpoints were trained on OpenBHB's 121 x 145 x 121 VBM grid
(docs/getting-data.md). Features of images on another grid are meaningless, so they are refused unless the
caller allows it explicitly, and then the metadata says so.

*Feature-table identity* (:func:`table_identity`): the file, a SHA-256 of its ids and values, its size and
its encoder's hash; every results folder records those of the tables it used.
"""

from __future__ import annotations

import hashlib
import re
import warnings
from typing import Mapping

import numpy as np
import pandas as pd

from anatlearn.errors import DataError

IDENTITY = "encoder_identity"  # feature-table metadata key of the encoder's identity
GRID = "grid_check"  # feature-table metadata key of the grid check's outcome
RELEASED_GRID = {"shape": [121, 145, 121], "affine": None,
                 "origin": "released AnatCL weights: OpenBHB CAT12 VBM maps (docs/getting-data.md)"}


class LineageWarning(UserWarning):
    """Something that could not be checked (a table or model written before identities were recorded)."""


def state_sha256(state: Mapping) -> str:
    """SHA-256 over a state dict: for each tensor in name order, its name, dtype, shape and raw bytes (standard
    layout, on the CPU), so it depends on the values only, not on the file format or memory layout."""
    import torch

    h = hashlib.sha256()
    for name, tensor in sorted(state.items()):
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def encoder_sha256(model) -> str:
    """:func:`state_sha256` of ``model.encoder`` (of ``model`` itself if it has none)."""
    return state_sha256(getattr(model, "encoder", model).state_dict())


def short(sha: str | None) -> str:
    return "unknown" if not sha else sha[:12]


def grid_text(grid: Mapping | None) -> str:
    return "unknown" if not grid or not grid.get("shape") else "x".join(str(int(s)) for s in grid["shape"])


def _grid(record, origin: str) -> dict | None:
    if not isinstance(record, Mapping) or not record.get("shape"):
        return None
    return {"shape": [int(s) for s in record["shape"]], "affine": record.get("affine"), "origin": origin}


def released_variant(source: str) -> dict:
    """Variant and fold of a released AnatCL checkpoint, from its file name or URL (the run name encodes both)."""
    variant = next((v for v in ("global", "local") if f"_{v}_" in source or f"-{v[0]}3" in source), None)
    fold = re.search(r"fold(\d)", source)
    return {"variant": variant, "fold": int(fold.group(1)) if fold else None}


def training_grid(model, source: str = "") -> dict | None:
    """The grid ``model`` (loaded by :func:`anatlearn.models.load_pretrained` from ``source``) was trained on,
    or None where its checkpoint does not say (anatlearn checkpoints written before grids were recorded,
    bare state dicts, in-memory models)."""
    meta = dict(getattr(model, "checkpoint_meta", {}) or {})
    if meta.get("format") == "anatlearn-hub":
        config = meta.get("hub_config") or {}
        if config.get("method", "unknown") == "unknown" and not (config.get("input") or {}).get("recorded"):
            return None  # weights of unknown origin: the card's grid is the default, not a record
        grid = _grid(config.get("input"), f"config.json of {source}")
        if grid and config.get("released"):
            grid["affine"] = None  # released weights: the shape is documented, the NIfTI header convention is not
        return grid
    if meta.get("format") == "anatlearn":
        record = meta.get("input") or (meta.get("finetune") or {}).get("input")
        hub = (meta.get("hub_config") or {}).get("input")  # a safetensors export of a Hub folder
        return _grid(record, f"checkpoint {source}") or _grid(hub, f"checkpoint {source}")
    if source and (str(source).endswith(".pth") or released_variant(str(source))["variant"]):
        return dict(RELEASED_GRID)
    return None


def training_data(model) -> dict | None:
    """Where the checkpoint says its encoder was trained (path, split, modality), if it says."""
    meta = dict(getattr(model, "checkpoint_meta", {}) or {})
    if meta.get("format") == "anatlearn-hub":
        return (meta.get("hub_config") or {}).get("training_data")
    cfg = meta.get("config") or {}
    if meta.get("format") == "anatlearn" and cfg.get("data"):
        return {"name": str(cfg["data"]), "split": cfg.get("split"), "modality": cfg.get("modality")}
    return None


def encoder_identity(model, source: str = "") -> dict:
    """What a feature table records about its encoder: weights hash, architecture, training grid and data."""
    config = dict(getattr(model, "model_config", {}) or {})
    return {"sha256": encoder_sha256(model), "weights": str(source),
            "architecture": {k: config.get(k) for k in ("encoder", "width", "in_channels")},
            "training_grid": training_grid(model, source), "training_data": training_data(model)}


def identity_of(table: pd.DataFrame) -> dict | None:
    """The encoder identity recorded in a feature table's metadata (None for tables without one)."""
    record = (table.attrs.get("metadata") or {}).get(IDENTITY)
    return record if isinstance(record, dict) and record.get("sha256") else None


def check_same_encoder(expected: Mapping | None, table: pd.DataFrame, fitted: str, table_name: str,
                       warn: bool = True) -> None:
    """Refuse ``table`` unless its encoder is the one ``fitted`` (a probe or model file) was fitted on:
    weight hashes are compared, and the error names both encoders. Where either side records no identity
    (written by an older anatlearn) the check is skipped, with a :class:`LineageWarning` if ``warn``."""
    have = identity_of(table)
    want = expected if isinstance(expected, Mapping) and expected.get("sha256") else None
    if want is None or have is None:
        if not warn:
            return
        missing = fitted if want is None else f"feature table {table_name}"
        warnings.warn(f"{missing} records no encoder identity (written by an older anatlearn): cannot check that "
                      f"the features come from the encoder {fitted} was fitted on", LineageWarning, stacklevel=2)
        return
    if want["sha256"] != have["sha256"]:
        raise DataError(f"feature table {table_name} was embedded with encoder {short(have['sha256'])} "
                        f"({have.get('weights') or 'unknown weights'}), but {fitted} comes from encoder "
                        f"{short(want['sha256'])} ({want.get('weights') or 'unknown weights'}); embed the subjects with "
                        f"that encoder")


def table_sha256(table: pd.DataFrame) -> str:
    """SHA-256 of a feature table's ids, column names and float64 values (in its row order)."""
    h = hashlib.sha256()
    h.update("\n".join(map(str, table.index)).encode() + b"\0" + "\n".join(map(str, table.columns)).encode() + b"\0")
    h.update(np.ascontiguousarray(table.to_numpy(dtype=np.float64)).tobytes())
    return h.hexdigest()


def table_identity(table: pd.DataFrame, name: str | None = None) -> dict:
    """What a results folder records about a feature table it used (see the module docstring)."""
    encoder = identity_of(table) or {}
    return {"name": name, "file": table.attrs.get("source"), "sha256": table_sha256(table),
            "n_subjects": int(table.shape[0]), "n_features": int(table.shape[1]),
            "encoder_sha256": encoder.get("sha256"),
            "weights": encoder.get("weights") or (table.attrs.get("metadata") or {}).get("checkpoint"),
            "grid_check": (table.attrs.get("metadata") or {}).get(GRID)}


def tables_identity(tables: Mapping[str, pd.DataFrame]) -> dict:
    """{name: :func:`table_identity`} of every table, for a results folder."""
    return {str(name): table_identity(t, str(name)) for name, t in tables.items()}


def check_grid(want: Mapping | None, have: Mapping, *, model: str, data: str, allow: bool = False,
               option: str = "`allow_grid_mismatch`") -> dict:
    """The one grid rule: images on grid ``have`` (``shape``, and ``affine`` where known) against the grid
    ``want`` the encoder ``model`` was trained on (None: not recorded, nothing to check). A different shape,
    or a different affine where both have one, is a :class:`DataError` naming both grids, unless ``allow``;
    returns the record the outputs keep (``status``: same, not recorded, or allowed mismatch)."""
    record = {"training_grid": grid_text(want), "input_grid": grid_text(have), "allowed_mismatch": bool(allow)}
    if want is None:
        return {**record, "status": "training grid not recorded"}
    problem = None
    if [int(s) for s in have["shape"]] != [int(s) for s in want["shape"]]:
        problem = f"is on grid {grid_text(have)} but"
    elif want.get("affine") is not None and have.get("affine") is not None and \
            not np.allclose(np.asarray(want["affine"], float), np.asarray(have["affine"], float), atol=1e-3):
        problem = f"is on grid {grid_text(have)} in another space (NIfTI affine) than the grid"
    if problem is None:
        return {**record, "status": "same grid"}
    if not allow:
        raise DataError(f"{data} {problem} the encoder {model} was trained on {grid_text(want)} (features on another "
                        f"grid are meaningless): bring the images to the training grid, or pass {option} to "
                        f"proceed anyway")
    warnings.warn(f"{data} {problem} the encoder {model} was trained on {grid_text(want)}; proceeding as asked "
                  f"(recorded in the outputs)", LineageWarning, stacklevel=2)
    return {**record, "status": "mismatch allowed"}


def dataset_grid(dataset) -> dict:
    """The grid of a dataset's images: its volume shape, and its NIfTI affine if it has one."""
    affine = getattr(dataset, "affine", None)
    shape = getattr(dataset, "shape", None) or np.asarray(dataset.volume(0)).shape[-3:]
    return {"shape": [int(s) for s in shape],
            "affine": None if affine is None else np.asarray(affine, dtype=float).round(6).tolist()}
