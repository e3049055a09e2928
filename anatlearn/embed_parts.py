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
from datetime import timedelta
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch

from anatlearn.errors import ConfigError, DataError
from anatlearn.io import atomic_path, atomic_write_text

FINGERPRINT = "fingerprint.json"
PARTS_FORMAT = "anatlearn-embed-parts"
DEFAULT_CHUNK = 64  # subjects per part file: a killed CPU run loses under a minute per rank at full size


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
            raise ConfigError(f"--chunk-size must be a positive integer, got {self.chunk_size!r}")

    @property
    def n_chunks(self) -> int:
        return -(-self.n // self.chunk_size)

    def rows(self, k: int) -> range:
        return range(k * self.chunk_size, min((k + 1) * self.chunk_size, self.n))


def shard(items: list, rank: int, world: int) -> list:
    """Rank ``rank``'s share of ``items``: entries rank, rank+world, ... (disjoint, covers all)."""
    return list(items[rank::world])


def weights_sha256(model: torch.nn.Module) -> str:
    """SHA-256 over the state dict (sorted names, dtypes, shapes and raw bytes) of ``model``."""
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


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


def _differences(old: dict, new: dict, prefix: str = "") -> list[str]:
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _differences(a, b, f"{prefix}{key}.")
        elif a != b:
            short = (lambda v: v[:12] + "..." if isinstance(v, str) and len(v) == 64 else v)
            out.append(f"{prefix}{key}: {short(a)!r} -> {short(b)!r}")
    return out


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
        diff = _differences(old, fp)
        if diff:
            raise ConfigError(f"{parts} holds part of an embedding with other weights or options "
                              f"({'; '.join(diff[:4])}); refusing to mix features: use another --out, "
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
class Dist:
    rank: int = 0
    world: int = 1

    @property
    def enabled(self) -> bool:
        return self.world > 1


def init_from_env(timeout_hours: float = 12.0) -> Dist:
    """Join the process group when torchrun's variables say so (WORLD_SIZE > 1); gloo on every device.

    The timeout is long because a rank that finished its chunks waits at the barrier for the slowest one."""
    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if world <= 1:
        return Dist()
    import torch.distributed as dist

    if not dist.is_initialized():
        try:
            dist.init_process_group("gloo", timeout=timedelta(hours=timeout_hours))
        except (ValueError, RuntimeError) as exc:
            raise ConfigError(f"WORLD_SIZE={world} but the process group cannot start ({exc}); launch with "
                              f"torchrun, or unset WORLD_SIZE for one process") from None
    return Dist(dist.get_rank(), dist.get_world_size())


def _broadcast(obj, d: Dist):
    """rank 0's ``obj`` on every rank."""
    if not d.enabled:
        return obj
    import torch.distributed as dist

    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def _barrier(d: Dist) -> None:
    if d.enabled:
        import torch.distributed as dist

        dist.barrier()


def teardown(d: Dist) -> None:
    if d.enabled:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()


@dataclass
class PartsResult:
    table: pd.DataFrame | None  # the merged table on rank 0, None elsewhere
    computed: int  # chunks this rank embedded now
    skipped: int  # chunks already on disk when the run started (all ranks)
    n_chunks: int


def embed_in_parts(encoder, dataset, out: str | os.PathLike, data: dict, chunk_size: int = DEFAULT_CHUNK,
                   d: Dist | None = None, write: Callable[[pd.DataFrame, Path], object] | None = None,
                   stop_after_chunks: int | None = None, keep_parts: bool = False,
                   progress: bool = False) -> PartsResult:
    """Embed ``dataset`` chunk by chunk into ``parts_dir(out)``, then (rank 0) merge and write ``out``.

    ``stop_after_chunks`` (tests only) kills this process with SIGKILL after writing that many chunks.
    """
    d = d or Dist()
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
    error, missing = _broadcast((error, missing), d)
    if error:
        raise ConfigError(error)
    mine = shard(missing, d.rank, d.world)
    encoder.metadata["embedding"]["config"].update(chunk_size=chunk_size, world_size=d.world)
    done = 0
    try:
        with _progress(progress and d.rank == 0, sum(len(plan.rows(k)) for k in mine)) as advance:
            for k in mine:
                rows = plan.rows(k)
                table = encoder.transform(_Rows(dataset, rows))
                write_chunk(parts, k, ids[rows.start:rows.stop], table.to_numpy(dtype=np.float32))
                done += 1
                advance(len(rows))
                if stop_after_chunks is not None and done >= stop_after_chunks:
                    os.kill(os.getpid(), signal.SIGKILL)  # a real kill, for the resume tests
    except Exception:
        # bad input in the first chunk of a single process: leave nothing behind (no chunk to resume from)
        if not d.enabled and not any(parts.glob("chunk-*.npz")):
            shutil.rmtree(parts, ignore_errors=True)
        raise
    _barrier(d)
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
                            f"{ids[rows.start]}..{ids[rows.stop - 1]}; with several nodes, --out must be on a "
                            f"filesystem every node sees; re-run the same command to compute it")
        feats.append(chunk)
    table = make_feature_table(np.concatenate(feats), ids, metadata=metadata)
    (write or write_features)(table, out)
    return table


class _progress:
    """A rich progress bar over subjects (or nothing)."""

    def __init__(self, enabled: bool, total: int):
        self.enabled, self.total, self.bar = enabled, total, None

    def __enter__(self):
        if not self.enabled or not self.total:
            return lambda n: None
        from rich.progress import Progress

        self.bar = Progress(transient=True)
        self.bar.__enter__()
        task = self.bar.add_task("embedding", total=self.total)
        return lambda n: self.bar.advance(task, n)

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.__exit__(*exc)
        return False
