"""Resumable and sharded embedding: ``anatlearn embed`` in one process or under ``torchrun``.

The subjects, in the dataset's (participant) order, are cut into fixed chunks of ``chunk_size`` subjects:
chunk k holds rows ``[k*C, (k+1)*C)``. The plan depends only on the dataset and ``C``, never on the
number of processes, so a run killed with 4 ranks can be finished with 1 (or 8). Each chunk's features
are written atomically (temporary file + rename, :mod:`anatlearn.io`) to ``OUT.parts/chunk-NNNNNN.npz``
together with its participant ids; a chunk file that exists is finished and is never computed again.

Under torchrun (``WORLD_SIZE`` > 1) rank 0 lists the chunks still missing and broadcasts the list; rank r
embeds entries r, r+W, r+2W, ... of it (disjoint, deterministic, balanced also when resuming). After a
barrier rank 0 reads every chunk in order, checks the ids against the plan, writes the one table the user
asked for, and deletes ``OUT.parts``. The process group is gloo whatever the device: the ranks exchange
only a barrier and a list. On several nodes ``OUT`` must be on a filesystem that every node sees.

``OUT.parts/fingerprint.json`` records what the features depend on: the SHA-256 of the encoder's weights
(over the loaded state dict, so a ``.pt`` and its ``.safetensors`` export agree), the architecture, dtype,
memory layout, TorchScript and device type, the dataset (resolved path, split, modality, SHA-256 of the
ordered ids) and the chunk size. A re-run whose fingerprint differs is refused before any work: features
of two encoders are never mixed in one table. Batch size and worker count are not part of it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

import pandas as pd
import torch

from anatlearn import DEFAULT_WORKERS, PRECISIONS
from anatlearn.distributed import DistInfo, barrier, broadcast_object
from anatlearn.embed import DEFAULT_CHUNK
from anatlearn.errors import ConfigError, DataError, differences
from anatlearn.io import atomic_path, atomic_write_text
from anatlearn.progress import progress as progress_bar

FINGERPRINT = "fingerprint.json"
PARTS_FORMAT = "anatlearn-embed-parts"


def parts_dir(out: str | os.PathLike) -> Path:
    """The parts directory of an output table: ``features.parquet`` -> ``features.parquet.parts``."""
    out = Path(out)
    return out.with_name(out.name + ".parts")


def chunk_path(parts: Path, k: int) -> Path:
    return parts / f"chunk-{k:06d}.npz"


@dataclass(frozen=True)
class ChunkPlan:
    """Rows ``[k*chunk_size, min((k+1)*chunk_size, n))`` form chunk k."""

    n: int
    chunk_size: int

    def __post_init__(self):
        if not (isinstance(self.chunk_size, int) and self.chunk_size >= 1):
            raise ConfigError(f"`chunk_size` must be a positive integer, got {self.chunk_size!r}")

    @property
    def n_chunks(self) -> int:
        return -(-self.n // self.chunk_size)

    def rows(self, k: int) -> range:
        return range(k * self.chunk_size, min((k + 1) * self.chunk_size, self.n))


def shard(items: list, rank: int, world: int) -> list:
    """Rank ``rank``'s share of ``items``: entries rank, rank+world, ... (disjoint, covers all)."""
    return list(items[rank::world])


def weights_sha256(model: torch.nn.Module) -> str:
    """SHA-256 over the whole state dict of ``model`` (:func:`anatlearn.data.lineage.state_sha256`)."""
    from anatlearn.data.lineage import state_sha256

    return state_sha256(model.state_dict())


def ids_sha256(ids: list[str]) -> str:
    return hashlib.sha256("\n".join(ids).encode()).hexdigest()


def fingerprint(encoder, ids: list[str], data: dict, chunk_size: int) -> dict:
    """What the features in the parts directory depend on (see the module docstring)."""
    return {"format": PARTS_FORMAT, "format_version": 1,
            "weights_sha256": weights_sha256(encoder.model),
            "options": {"model_config": encoder.metadata.get("model_config", {}),
                        "dtype": str(encoder.dtype).removeprefix("torch."), "channels_last": encoder.channels_last,
                        "jit": encoder.jit, "device_type": encoder.device.type},
            "data": {**data, "n_subjects": len(ids), "ids_sha256": ids_sha256(ids)},
            "chunk_size": chunk_size}


def check_parts(parts: Path, fp: dict) -> None:
    """Create ``parts`` with ``fp`` or check that the one already there is ``fp``; ConfigError if not."""
    path = parts / FINGERPRINT
    if parts.exists() and not parts.is_dir():
        raise ConfigError(f"{parts} (the embedding's parts directory) exists and is not a directory")
    if path.is_file():
        try:
            old = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise DataError(f"cannot read {path}: {exc}; delete {parts} to start over") from None
        diff = differences(old, fp, "in the parts")
        if diff:
            raise ConfigError(f"{parts} holds part of an embedding with other weights or options "
                              f"({'; '.join(diff[:4])}); refusing to mix features: use another `out`, "
                              f"or delete {parts} to start over")
        return
    if parts.is_dir() and any(p.name.startswith("chunk-") for p in parts.iterdir()):
        raise ConfigError(f"{parts} holds chunks but no {FINGERPRINT}; delete it to start over")
    parts.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(fp, indent=1))


def read_chunk(parts: Path, k: int, ids: list[str]) -> np.ndarray | None:
    """Features of chunk k if its file exists and holds exactly ``ids`` (else None: compute it again)."""
    path = chunk_path(parts, k)
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            got, feats = [str(i) for i in z["ids"]], z["features"]
    except (OSError, ValueError, KeyError):
        return None
    if got != ids or feats.ndim != 2 or feats.shape[0] != len(ids):
        return None
    return feats


def write_chunk(parts: Path, k: int, ids: list[str], features: np.ndarray) -> None:
    with atomic_path(chunk_path(parts, k)) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, ids=np.asarray(ids, dtype=str), features=np.asarray(features, dtype=np.float32))


class _Rows:
    """A read-only view of some rows of a dataset (``volume`` and ``participants``), for one chunk."""

    def __init__(self, dataset, rows: range):
        self.dataset, self.rows = dataset, list(rows)
        self.participants = dataset.participants.iloc[self.rows].reset_index(drop=True)

    def __len__(self):
        return len(self.rows)

    def volume(self, i: int) -> np.ndarray:
        return self.dataset.volume(self.rows[i])


@dataclass
class PartsResult:
    table: pd.DataFrame | None  # the merged table on rank 0, None elsewhere
    computed: int  # chunks this rank embedded now
    skipped: int  # chunks already on disk when the run started (all ranks)
    n_chunks: int
    n_compared: int = 0  # subjects re-embedded in plain fp32 (embed_dataset's compare_fp32)
    max_abs_difference_vs_fp32: float | None = None
    input_check: object = None  # the input check's anatlearn.inputcheck.Reference (results on rank 0)


def embed_in_parts(encoder, dataset, out: str | os.PathLike, data: dict, chunk_size: int = DEFAULT_CHUNK,
                   d: DistInfo | None = None, write: Callable[[pd.DataFrame, Path], object] | None = None,
                   stop_after_chunks: int | None = None, keep_parts: bool = False,
                   progress: bool | None = False) -> PartsResult:
    """Embed ``dataset`` chunk by chunk into ``parts_dir(out)``, then (rank 0) merge and write ``out``.

    ``d``: this process's rank and world size (:func:`anatlearn.distributed.setup_gloo`; one process if
    None). ``progress``: a bar on rank 0 (None: when stderr is a terminal). ``stop_after_chunks`` (tests
    only) kills this process with SIGKILL after writing that many chunks.
    """
    d = d or DistInfo()
    out = Path(out)
    parts = parts_dir(out)
    ids = [str(i) for i in dataset.participants["participant_id"]]
    if not ids:
        raise DataError("nothing to embed: the dataset is empty")
    plan = ChunkPlan(len(ids), chunk_size)
    fp = fingerprint(encoder, ids, data, chunk_size)
    error = None
    if d.rank == 0:
        try:
            check_parts(parts, fp)
            missing = [k for k in range(plan.n_chunks) if read_chunk(parts, k, ids[plan.rows(k).start:plan.rows(k).stop]) is None]
        except ConfigError as exc:
            error, missing = str(exc), []
    else:
        missing = []
    error, missing = broadcast_object((error, missing))
    if error:
        raise ConfigError(error)
    mine = shard(missing, d.rank, d.world_size)
    encoder.metadata["embedding"]["config"].update(chunk_size=chunk_size, world_size=d.world_size)
    done = 0
    try:
        n_rows = sum(len(plan.rows(k)) for k in mine)
        with progress_bar("embedding", total=n_rows, enabled=progress if d.rank == 0 and n_rows else False) as bar:
            for k in mine:
                rows = plan.rows(k)
                table = encoder.transform(_Rows(dataset, rows))
                write_chunk(parts, k, ids[rows.start:rows.stop], table.to_numpy(dtype=np.float32))
                done += 1
                bar.advance(len(rows))
                if stop_after_chunks is not None and done >= stop_after_chunks:
                    os.kill(os.getpid(), signal.SIGKILL)  # a real kill, for the resume tests
    except Exception:
        # bad input in the first chunk of a single process: leave nothing behind (no chunk to resume from)
        if not d.enabled and not any(parts.glob("chunk-*.npz")):
            shutil.rmtree(parts, ignore_errors=True)
        raise
    barrier()
    skipped = plan.n_chunks - len(missing)
    if d.rank != 0:
        return PartsResult(None, done, skipped, plan.n_chunks)
    table = merge_parts(parts, plan, ids, encoder.metadata, out, write)
    if not keep_parts:
        shutil.rmtree(parts, ignore_errors=True)
    return PartsResult(table, done, skipped, plan.n_chunks)


def merge_parts(parts: Path, plan: ChunkPlan, ids: list[str], metadata: dict, out: Path,
                write: Callable[[pd.DataFrame, Path], object] | None = None) -> pd.DataFrame:
    """Read every chunk in order, check its ids against the plan, and write the one table to ``out``."""
    from anatlearn.features import make_feature_table, write_features

    feats = []
    for k in range(plan.n_chunks):
        rows = plan.rows(k)
        chunk = read_chunk(parts, k, ids[rows.start:rows.stop])
        if chunk is None:
            raise DataError(f"chunk {k} ({chunk_path(parts, k)}) is missing or does not hold subjects "
                            f"{ids[rows.start]}..{ids[rows.stop - 1]}; with several nodes, `out` must be on a "
                            f"filesystem every node sees; re-run the same command to compute it")
        feats.append(chunk)
    table = make_feature_table(np.concatenate(feats), ids, metadata=metadata)
    (write or write_features)(table, out)
    return table


def embed_dataset(weights, data: str | os.PathLike, out: str | os.PathLike, split: str | None = None,
                  modality: str = "vbm", model: str = "resnet18", width: float = 1.0, batch_size: int = 8,
                  device: str = "cpu", channels_last: bool = True, jit: bool = True, precision: str = "fp32",
                  compare_fp32: bool = False, workers: int = DEFAULT_WORKERS, chunk_size: int = DEFAULT_CHUNK,
                  keep_parts: bool = False, stop_after_chunks: int | None = None,
                  progress: bool | None = None, center_crop: tuple[int, int, int] | None = None,
                  allow_grid_mismatch: bool = False, strict: bool = False) -> PartsResult:
    """Embed every subject of the dataset directory ``data`` with the frozen encoder of ``weights`` into the
    feature table ``out`` (``anatlearn embed``), in one process or as one rank of a torchrun job.

    The work goes through :func:`embed_in_parts` (resumable chunks in ``parts_dir(out)``). With
    ``device`` and ``precision`` may be ``auto`` (:mod:`anatlearn.precision`). With
    ``compare_fp32`` and a fast path on (``precision`` other than fp32, ``channels_last`` or ``jit``), the first ``batch_size``
    subjects are re-embedded in plain fp32 (:func:`~anatlearn.embed.encoder.compare_to_fp32`) before the
    table is written, and the largest absolute difference goes into its metadata and the result.
    Images on another grid than the one the encoder was trained on are refused before any work, unless
    ``allow_grid_mismatch`` (:func:`anatlearn.data.lineage.check_grid`; the table's metadata records the outcome).
    Before any embedding, the maps are checked against the fingerprint of the training maps
    (:mod:`anatlearn.inputcheck`): the flags go into the table's metadata (``input_check``) and
    ``result.input_check``; with ``strict`` a flagged subject is a :class:`DataError` and nothing is written.
    Returns the result on every rank; only rank 0's holds the table.
    """
    from anatlearn.data import open_dataset
    from anatlearn.distributed import setup_gloo, teardown
    from anatlearn.embed.encoder import AnatEncoder, compare_to_fp32
    from anatlearn.features import write_features
    from anatlearn.io import check_output_path

    check_output_path(out, "file", "`out`")
    check_output_path(parts_dir(out), "dir", "`out`")
    from anatlearn.precision import resolve_device, resolve_name

    device = str(resolve_device(device, "`device`"))  # auto: the GPU if one is visible
    if precision == "auto":  # fp32 on a CPU (where the jit and channels_last paths apply), bf16/fp16 on a GPU
        precision = resolve_name(precision, torch.device(device), "`precision`")
    if precision not in PRECISIONS:
        raise ConfigError(f"`precision` must be one of auto, {', '.join(PRECISIONS)}, got {precision!r}")
    dataset = open_dataset(data, split=split, modality=modality, require_age=False, center_crop=center_crop)
    rank = setup_gloo()
    try:
        if device == "cuda" and rank.enabled:
            device = f"cuda:{rank.local_rank}"
        encoder = AnatEncoder(weights, model=model, width=width, batch_size=batch_size, device=device,
                              channels_last=channels_last, dtype=precision, num_workers=workers, progress=False,
                              jit=jit)
        _check_grid(encoder, dataset, weights, data, allow_grid_mismatch, center_crop)
        result_check = _input_check(encoder, dataset, weights, out, strict, rank.rank == 0 or strict)
        source = {"data": str(Path(data).resolve()), "split": split, "modality": modality,
                  **({"center_crop": list(center_crop)} if center_crop else {})}
        write = (lambda table, path: None) if compare_fp32 else write_features  # written below, after the check
        result = embed_in_parts(encoder, dataset, out, source, chunk_size=chunk_size, d=rank, write=write,
                                stop_after_chunks=stop_after_chunks, keep_parts=keep_parts or compare_fp32,
                                progress=progress)
    finally:
        teardown()
    result.input_check = result_check
    if result.table is None or not compare_fp32:  # ranks other than 0 write nothing
        return result
    if precision != "fp32" or channels_last or jit:
        result.n_compared = min(batch_size, len(dataset))
        result.max_abs_difference_vs_fp32 = compare_to_fp32(encoder, result.table, dataset, batch_size)
        result.table.attrs["metadata"]["max_abs_difference_vs_fp32"] = result.max_abs_difference_vs_fp32
    write_features(result.table, out)
    if not keep_parts:
        shutil.rmtree(parts_dir(out), ignore_errors=True)
    return result


def _check_grid(encoder, dataset, weights, data, allow: bool, center_crop=None) -> None:
    """The grid rule (:func:`anatlearn.data.lineage.check_grid`) for ``embed``; its outcome and the input's grid go
    into the table's metadata. A ``center_crop`` asked for on images of the training grid is the user's
    documented choice (docs/getting-data.md), not a mismatch: then the uncropped grid is what is compared."""
    from anatlearn.data.lineage import GRID, IDENTITY, check_grid, dataset_grid

    want, have = encoder.metadata[IDENTITY]["training_grid"], dataset_grid(dataset)
    full = dataset_grid(dataset.dataset) if center_crop and hasattr(dataset, "full_shape") else None
    if want is not None and full is not None and full["shape"] == want["shape"]:
        record = check_grid(want, full, model=str(weights), data=f"data {data}", allow=allow)
        record.update(input_grid="x".join(map(str, have["shape"])), center_crop_of=record["input_grid"])
    else:
        record = check_grid(want, have, model=str(weights), data=f"data {data}", allow=allow)
    encoder.metadata[GRID] = {**record, "input_shape": have["shape"]}


def _input_check(encoder, dataset, weights, out, strict: bool, run: bool):
    """Check ``dataset``'s maps against the encoder's training-map fingerprint; record the result in the
    encoder's metadata (so in the table's); with ``strict``, a flagged subject is an error."""
    from anatlearn.inputcheck import reference_from_meta, run_check, strict_error, summary

    if not run:
        return None
    ref = run_check(dataset, reference_from_meta(getattr(encoder.model, "checkpoint_meta", {}), str(weights)))
    see = f"the input_check metadata of {out} or `anatlearn check`"
    encoder.metadata["input_check"] = summary(ref, see)
    if strict and ref.results is not None and not ref.results["ok"].all():
        raise strict_error(ref, "the data")
    return ref
