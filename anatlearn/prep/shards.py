"""Sharded ``anatlearn prep`` for job arrays: ``--shard I/N`` tasks into one output directory, then ``--merge``.

Task I (0-based, 0 <= I < N) prepares the subjects at positions I, I+N, I+2N, ... of the input order (the
BIDS participants table or the image list): a deterministic, balanced 1/N. The per-subject files
(``sub-<id>/...``, ``logs/sub-<id>.log``) of two tasks never coincide, and a task writes no shared file:
its QC rows go to its own record ``OUT/shards/shard-IIIII-of-NNNNN.json`` (written first, with
``finished: false``, then again at the end). ``participants.tsv``, ``qc.tsv``, ``qc.html`` and
``prep.json`` are written only by ``anatlearn prep --merge`` (one process, after the array), which
assembles them from the finished subjects' files and the records, and lists every subject that failed or
that no task finished ("missing").

Under SLURM, ``--shard`` defaults to ``I = SLURM_ARRAY_TASK_ID - SLURM_ARRAY_TASK_MIN`` and
``N = SLURM_ARRAY_TASK_COUNT``, so ``--array=0-49`` and ``--array=1-50`` both give tasks 0..49 of 50. Arrays
with a step or a list of ids (``--array=1,5,9``) are refused: give ``--shard I/N`` yourself.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from anatlearn.errors import ConfigError
from anatlearn.io import atomic_write_text

SHARDS_DIR = "shards"
_SHARD_RE = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


@dataclass(frozen=True)
class Shard:
    index: int  # 0-based
    count: int

    def __post_init__(self):
        if self.count < 1 or not (0 <= self.index < self.count):
            raise ConfigError(f"--shard {self.index}/{self.count}: need 0 <= I < N (I is 0-based)")

    @classmethod
    def parse(cls, text: str) -> "Shard":
        m = _SHARD_RE.match(text or "")
        if not m:
            raise ConfigError(f"--shard {text!r}: expected I/N, e.g. 0/50 (I counts from 0)")
        return cls(int(m.group(1)), int(m.group(2)))

    @classmethod
    def from_slurm(cls, env: Mapping[str, str] = os.environ) -> "Shard | None":
        """The shard of a SLURM array task (None outside an array)."""
        if "SLURM_ARRAY_TASK_ID" not in env:
            return None
        try:
            task, count = int(env["SLURM_ARRAY_TASK_ID"]), int(env["SLURM_ARRAY_TASK_COUNT"])
            first, step = int(env.get("SLURM_ARRAY_TASK_MIN", "0")), int(env.get("SLURM_ARRAY_TASK_STEP", "1") or 1)
        except (KeyError, ValueError) as exc:
            raise ConfigError(f"SLURM_ARRAY_TASK_ID is set but the array variables cannot be read ({exc}); "
                              f"give --shard I/N") from None
        index = task - first
        if step != 1 or not (0 <= index < count):
            raise ConfigError(f"SLURM array task {task} (min {first}, count {count}, step {step}) is not one of a "
                              f"contiguous range such as --array=0-{count - 1}; give --shard I/N")
        return cls(index, count)

    @property
    def name(self) -> str:
        return f"shard-{self.index:05d}-of-{self.count:05d}"

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def select(self, items: list) -> list:
        return list(items[self.index::self.count])


def record_path(out: Path, shard: Shard) -> Path:
    return out / SHARDS_DIR / f"{shard.name}.json"


def write_record(out: Path, shard: Shard, config: dict, subjects: list[str], rows: list[dict] | None,
                 extra: dict | None = None) -> Path:
    """This task's record: its configuration, its subjects and (once finished) their QC rows."""
    path = record_path(out, shard)
    rec = {"shard": str(shard), "config": config, "subjects": subjects, "finished": rows is not None,
           "rows": rows or [], **(extra or {})}
    atomic_write_text(path, json.dumps(rec, indent=1, default=_json_default))
    return path


def _json_default(v):
    try:
        import numpy as np

        if isinstance(v, np.generic):
            return v.item()
    except ImportError:  # pragma: no cover
        pass
    return str(v)


def read_records(out: Path) -> dict[Path, dict]:
    """Every task record under ``OUT/shards`` (unreadable ones are an error naming the file)."""
    from anatlearn.errors import DataError

    records = {}
    for path in sorted((out / SHARDS_DIR).glob("shard-*.json")):
        try:
            records[path] = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise DataError(f"cannot read the shard record {path}: {exc}") from None
    return records


def missing_reason(pid: str, records: dict[Path, dict]) -> str:
    """Why a subject has no result: which task should have prepared it and what that task left."""
    owners = [(p, r) for p, r in records.items() if pid in r.get("subjects", [])]
    if not owners:
        return "no shard task listed this subject (did every task of the array start?)"
    unfinished = [p.name for p, r in owners if not r.get("finished")]
    if unfinished:
        return f"shard task {', '.join(unfinished)} did not finish (killed, timed out or still running)"
    return f"listed by {owners[0][0].name} but no result was recorded"
