"""Feature extraction with a frozen encoder (``anatlearn embed``), in scikit-learn style.

``AnatEncoder(weights).transform(dataset)`` returns a feature table: a DataFrame indexed by
``participant_id`` with columns ``f0000...``, the encoder's representation f(x) (the 512-d global-average-
pooled vector for ResNet-18; the projection head is dropped, as in the paper's linear evaluation).

Streaming: a torch DataLoader reads one batch of volumes at a time, so memory is flat in the number of
subjects (only the n x F feature matrix grows). Inference runs under ``torch.inference_mode``.
Speed options: ``channels_last=True`` (``torch.channels_last_3d`` memory format; same arithmetic, results
within float rounding of the plain path) and ``dtype=torch.bfloat16`` (autocast, fewer significant digits);
their measured differences to plain fp32 are in docs/evaluation.md, and :func:`compare_to_fp32` measures
them on one's own data.
"""

from __future__ import annotations

import copy
import os
import warnings
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset

from anatlearn.errors import ConfigError, DataError
from anatlearn.features import make_feature_table
from anatlearn.progress import progress
from anatlearn.provenance import provenance

DTYPES = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
          "float16": torch.float16, "fp16": torch.float16}


class _Volumes(Dataset):
    """(1, X, Y, Z) float32 tensors from a SubjectDataset or a list of arrays; checks shape consistency."""

    def __init__(self, source, ids: Sequence[str]):
        self.source, self.ids = source, list(ids)
        self.shape = None

    def __len__(self):
        return len(self.ids)

    def _get(self, i: int) -> np.ndarray:
        if hasattr(self.source, "volume"):
            return self.source.volume(i)
        return self.source[i]

    def __getitem__(self, i: int) -> torch.Tensor:
        vol = np.asarray(self._get(i), dtype=np.float32)
        if vol.ndim == 4 and vol.shape[0] == 1:
            vol = vol[0]
        if vol.ndim != 3:
            raise DataError(f"subject {self.ids[i]}: expected a 3-D volume, got shape {vol.shape}")
        if not np.isfinite(vol).all():
            raise DataError(f"subject {self.ids[i]}: volume has NaN/inf voxels")
        return torch.from_numpy(np.ascontiguousarray(vol))[None]


def _numel(obj) -> int:
    """Number of tensor elements inside a (nested) checkpoint entry; weight-like entries are large."""
    if isinstance(obj, torch.Tensor):
        return obj.numel()
    if isinstance(obj, dict):
        return sum(_numel(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(_numel(v) for v in obj)
    return 0


def _collate(items: list[torch.Tensor]) -> torch.Tensor:
    shapes = {tuple(t.shape) for t in items}
    if len(shapes) > 1:
        raise DataError(f"volumes of different shapes in one batch: {sorted(shapes)}; resample them to one grid")
    return torch.stack(items)


def _resolve_inputs(data) -> tuple[Any, list[str]]:
    """(indexable source, ids) from a dataset directory, a SubjectDataset, a mapping id -> array, or a
    sequence of arrays."""
    if isinstance(data, (str, os.PathLike)):
        from anatlearn.data import open_dataset

        data = open_dataset(data, require_age=False)
    if hasattr(data, "volume") and hasattr(data, "participants"):
        return data, [str(i) for i in data.participants["participant_id"]]
    if isinstance(data, Mapping):
        return list(data.values()), [str(k) for k in data.keys()]
    if isinstance(data, np.ndarray) and data.ndim in (4, 5):
        return list(data), [str(i) for i in range(len(data))]
    if isinstance(data, Iterable) and not isinstance(data, (str, bytes)):
        arrays = list(data)
        return arrays, [str(i) for i in range(len(arrays))]
    raise DataError(f"cannot embed a {type(data).__name__}: give a dataset directory or object "
                    f"(anatlearn.data.open_dataset), "
                    f"a dict id -> volume or a list of volumes")


class AnatEncoder:
    """A frozen pretrained encoder that turns brain volumes into a feature table.

    ``weights``: an anatlearn checkpoint, a safetensors export, a released AnatCL checkpoint (with ``model``
    and ``width`` naming its architecture) or an already built :class:`~anatlearn.models.ContrastiveModel`.
    """

    def __init__(self, weights, model: str = "resnet18", width: float = 1.0, batch_size: int = 8,
                 device: str = "cpu", channels_last: bool = True, dtype: torch.dtype | str = torch.float32,
                 num_workers: int = 0, progress: bool = False, jit: bool = True):
        if isinstance(dtype, str):
            if dtype not in DTYPES:
                raise ConfigError(f"unknown dtype {dtype!r}; choose one of {', '.join(DTYPES)}")
            dtype = DTYPES[dtype]
        if dtype not in (torch.float32, torch.bfloat16, torch.float16):
            raise ConfigError(f"`dtype` must be float32, bfloat16 or float16, got {dtype}")
        if not (isinstance(batch_size, int) and batch_size >= 1):
            raise ConfigError(f"batch size must be a positive integer, got {batch_size!r}")
        self.batch_size, self.channels_last, self.dtype = batch_size, channels_last, dtype
        self.num_workers, self.progress = num_workers, progress
        # CPU fp32 fast path: the encoder traced, frozen and optimised by TorchScript (BatchNorm folded into the
        # convolutions, oneDNN layouts), once per input shape; its difference to eager: docs/evaluation.md.
        self.jit = jit
        self._traced: dict[tuple, Any] = {}
        from anatlearn.precision import resolve_device

        self.device = resolve_device(device, "`device`")  # auto: the GPU if one is visible
        if isinstance(weights, torch.nn.Module):
            self.model, self.source = weights, "<in-memory model>"
        else:
            from anatlearn.models import load_pretrained

            self.model, self.source = load_pretrained(weights, default_model=model, default_width=width), str(weights)
        self.model = self.model.eval().to(self.device)
        if channels_last:
            self.model = self.model.to(memory_format=torch.channels_last_3d)
        from anatlearn.models import ContrastiveModel

        # Only a model whose encode() is exactly its encoder is traced; anything else runs eagerly as given.
        self._plain_encode = type(self.model).encode is ContrastiveModel.encode
        self.metadata = self._metadata()

    def _metadata(self) -> dict:
        meta = dict(getattr(self.model, "checkpoint_meta", {}) or {})
        keep = {k: v for k, v in meta.items() if _numel(v) <= 100_000}  # provenance, config, normaliser stats
        keep.pop("input_fingerprint", None)  # the training maps' mean image: the table records the check instead
        if isinstance(keep.get("hub_config"), dict):
            keep["hub_config"] = {k: v for k, v in keep["hub_config"].items() if k != "input_fingerprint"}
        from anatlearn.data.lineage import IDENTITY, encoder_identity

        return {"checkpoint": self.source, "model_config": getattr(self.model, "model_config", {}),
                "checkpoint_meta": keep, IDENTITY: encoder_identity(self.model, self.source),
                "embedding": provenance(None, {"batch_size": self.batch_size, "channels_last": self.channels_last,
                                               "jit": self.jit,
                                               "dtype": str(self.dtype).removeprefix("torch."),
                                               "device": str(self.device)})}

    def fit(self, X=None, y=None) -> "AnatEncoder":
        """No-op (the encoder is pretrained and frozen); for scikit-learn pipelines."""
        return self

    @property
    def n_features(self) -> int:
        return int(self.model.encoder.out_features)

    def _encode(self, batch: torch.Tensor) -> torch.Tensor:
        batch = batch.to(self.device, non_blocking=True)
        if self.channels_last:
            batch = batch.contiguous(memory_format=torch.channels_last_3d)
        if self.dtype != torch.float32:
            with torch.autocast(device_type=self.device.type, dtype=self.dtype):
                return self.model.encode(batch).float()
        if self.jit and self.device.type == "cpu" and self._plain_encode:
            traced = self._traced_encoder(batch)
            if traced is not None:
                return traced(batch)
        return self.model.encode(batch)

    def _traced_encoder(self, batch: torch.Tensor):
        """The TorchScript-frozen encoder for this batch's shape (None, and eager from then on, if tracing
        fails, e.g. for an encoder TorchScript cannot trace)."""
        key = (tuple(batch.shape[1:]), batch.is_contiguous(memory_format=torch.channels_last_3d))
        if key not in self._traced:
            try:
                # TorchScript is deprecated upstream, but with torch pinned it is the fastest CPU path we
                # measured (torch.compile: docs/evaluation.md); eager is the fallback.
                with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
                    warnings.simplefilter("ignore", DeprecationWarning)
                    example = batch.clone()
                    traced = torch.jit.trace(self.model.encoder, example, check_trace=False)
                    self._traced[key] = torch.jit.optimize_for_inference(torch.jit.freeze(traced))
            except Exception:  # noqa: BLE001 - any tracing failure falls back to the exact eager path
                self._traced[key] = None
        return self._traced[key]

    def transform(self, data) -> pd.DataFrame:
        """Features of every subject: a DataFrame indexed by participant_id (the dataset's order), columns
        ``f0000...``; ``.attrs["metadata"]`` holds the checkpoint's provenance and the embedding options."""
        source, ids = _resolve_inputs(data)
        if not ids:
            raise DataError("nothing to embed: the dataset is empty")
        volumes = _Volumes(source, ids)
        loader = DataLoader(volumes, batch_size=self.batch_size, shuffle=False, num_workers=self.num_workers,
                            collate_fn=_collate, pin_memory=self.device.type == "cuda")
        out = np.empty((len(ids), self.n_features), dtype=np.float32)
        row = 0
        with torch.inference_mode(), progress("embedding", total=len(ids), enabled=self.progress) as bar:
            for batch in loader:
                feats = self._encode(batch).cpu().numpy()
                out[row:row + len(feats)] = feats
                row += len(feats)
                bar.advance(len(feats))
        return make_feature_table(out, ids, metadata=self.metadata)

    def fit_transform(self, data, y=None) -> pd.DataFrame:
        return self.transform(data)

def max_abs_difference(a: pd.DataFrame, b: pd.DataFrame) -> float:
    """Largest absolute difference between two feature tables of the same subjects and features."""
    if a.shape != b.shape or list(a.index) != list(b.index):
        raise DataError(f"feature tables differ in shape or subjects: {a.shape} vs {b.shape}")
    return float(np.max(np.abs(a.to_numpy() - b.to_numpy())))


def compare_to_fp32(encoder: AnatEncoder, table: pd.DataFrame, dataset, n_subjects: int) -> float:
    """Re-embed the first ``n_subjects`` of ``dataset`` with a plain copy of ``encoder``'s model (fp32,
    contiguous layout, eager, no TorchScript) and return the largest absolute difference to their rows
    of ``table`` (the features ``encoder`` computed)."""
    first = dataset.subset(list(range(min(n_subjects, len(dataset)))))
    reference = copy.deepcopy(encoder.model).to(memory_format=torch.contiguous_format)
    plain = AnatEncoder(reference, batch_size=encoder.batch_size, device=str(encoder.device), channels_last=False,
                        jit=False).transform(first)
    return max_abs_difference(table.loc[plain.index], plain)


def embed(weights, data, out: str | os.PathLike | None = None, **options) -> pd.DataFrame:
    """Convenience: ``AnatEncoder(weights, **options).transform(data)``, written to ``out`` if given."""
    from anatlearn.features import write_features

    table = AnatEncoder(weights, **options).transform(data)
    if out is not None:
        write_features(table, out)
    return table
