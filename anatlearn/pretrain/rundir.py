"""The run directory: lock, config, metrics and checkpoints.

    RUN/config.toml                 the resolved configuration
    RUN/provenance.json             seed, versions, machine
    RUN/normaliser.json             descriptor normalisation statistics (also inside every checkpoint)
    RUN/metrics.csv                 step, epoch, loss terms, lr, samples/s (the terms of anatcl-regression last)
    RUN/checkpoints/last.pt         full state, written atomically every checkpoint_every steps and at each
                                    epoch end (then a hard link to the newest epoch-NNNN.pt); a resume reads it
    RUN/checkpoints/epoch-NNNN.pt   full state at an epoch end; the keep_last newest are kept
    RUN/checkpoints/epoch-NNNN.weights.pt   weights-only milestones (keep_every, save_epochs); never deleted
    RUN/.lock                       held while a run writes here (a second run refuses to start)
"""

from __future__ import annotations

import csv
import io
import json
import os
import random
import re
import shutil
from pathlib import Path

import numpy as np
import torch
from filelock import FileLock, Timeout

from anatlearn.errors import ConfigError, TrainingError
from anatlearn.io import atomic_write_text

METRIC_FIELDS = ["step", "epoch", "loss", "age", "anat", "lr", "samples_per_s", "contrastive", "regression"]
# Full epoch-end checkpoints of this naming; old runs' unpadded ``epoch-N.pt`` (<= 3 digits) never match, so
# retention leaves them alone.
_FULL = re.compile(r"epoch-(\d{4,})\.pt")


def resume_point(run: str | Path) -> tuple[int, int, int] | None:
    """(completed epochs, steps into the next epoch, epochs planned) of the checkpoint a resume of ``run``
    starts from; None when the run has none yet."""
    last = Path(run) / "checkpoints" / "last.pt"
    if not last.is_file():
        return None
    state = torch.load(last, map_location="cpu", weights_only=True)
    return int(state["epoch"]), int(state.get("step_in_epoch", 0)), int(state["config"]["epochs"])


def describe_resume_point(run: str | Path) -> str:
    """What is safe on disk in ``run``, in one phrase (for an interruption message)."""
    point = resume_point(run)
    if point is None:
        return "no checkpoint was written yet"
    epoch, step, planned = point
    where = f"epoch {epoch} of {planned} is complete" + (f", {step} steps into epoch {epoch + 1}" if step else "")
    return f"{Path(run) / 'checkpoints' / 'last.pt'} ({where})"


class RunDir:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.ckpt_dir = self.path / "checkpoints"
        self.last = self.ckpt_dir / "last.pt"
        self._lock: FileLock | None = None

    def prepare(self, resume: bool, overwrite: bool) -> None:
        """Check the directory is usable for a new run (or a resume) and take its lock."""
        if self.path.exists() and not self.path.is_dir():
            raise ConfigError(f"output path {self.path} exists and is not a directory")
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            probe = self.path / ".write-test"
            probe.write_text("")
            probe.unlink()
        except OSError as exc:
            raise ConfigError(f"cannot write to output directory {self.path}: {exc.strerror or exc}") from None
        self._lock = FileLock(str(self.path / ".lock"))
        try:
            self._lock.acquire(timeout=0)
        except Timeout:
            raise TrainingError(f"another anatlearn run is writing to {self.path} (its lock {self.path / '.lock'} "
                                f"is held); wait for it or choose another output directory") from None
        has_run = (self.path / "config.toml").exists()
        if resume:
            if not self.last.exists():
                raise ConfigError(f"resume=True: no checkpoint {self.last} to resume from")
        elif has_run and not overwrite:
            raise ConfigError(f"`out` {self.path} already holds a run (config.toml); use resume=True to continue "
                              f"it or overwrite=True to replace it")
        elif self._leftovers() and not overwrite:
            raise ConfigError(f"output directory {self.path} is not empty and holds no run (no config.toml); choose "
                              f"another `out`, or overwrite=True to replace it whole")
        elif overwrite and (has_run or self._leftovers()):
            self._replace_with_empty()
        self.ckpt_dir.mkdir(exist_ok=True)

    def _leftovers(self) -> list[Path]:
        """What the directory holds besides this run's lock and an empty checkpoints/ (a run killed before
        its config.toml leaves just those)."""
        return [p for p in self.path.iterdir() if p.name != ".lock"
                and not (p == self.ckpt_dir and p.is_dir() and not any(p.iterdir()))]

    def _replace_with_empty(self) -> None:
        """Overwrite: an empty directory, its lock taken, takes the old run's place in one rename
        (anatlearn.io.replace_dir), so an interrupted overwrite leaves the old run or the new one."""
        from anatlearn.io import make_temp_dir, replace_dir

        fresh = make_temp_dir(self.path)
        lock = FileLock(str(fresh / ".lock"))
        lock.acquire(timeout=0)
        try:
            replace_dir(fresh, self.path)  # the lock file (and our hold on it) moves with the directory
        except BaseException:
            lock.release()
            shutil.rmtree(fresh, ignore_errors=True)
            raise
        self._lock.release()
        self._lock = lock

    def full_checkpoint(self, epoch: int) -> Path:
        """Full state (model + optimiser, ...) at the end of ``epoch``; names sort by epoch."""
        return self.ckpt_dir / f"epoch-{epoch:04d}.pt"

    def milestone(self, epoch: int) -> Path:
        """Weights-only checkpoint at the end of ``epoch`` (for embedding, never for resuming)."""
        return self.ckpt_dir / f"epoch-{epoch:04d}.weights.pt"

    def point_last_to(self, target: Path) -> None:
        """Make ``last.pt`` the same file as ``target`` without a second copy: a hard link created beside it
        and renamed onto ``last.pt`` (atomic; a crash leaves the previous ``last.pt``). File systems without
        hard links get a copy, also renamed into place."""
        tmp = self.ckpt_dir / f".{self.last.name}.link.tmp"
        tmp.unlink(missing_ok=True)
        try:
            os.link(target, tmp)
        except OSError:
            shutil.copyfile(target, tmp)
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
        os.replace(tmp, self.last)

    def prune_full(self, keep_last: int) -> list[Path]:
        """Delete all but the ``keep_last`` newest full epoch checkpoints; returns the deleted paths.
        ``last.pt`` and the milestones are never touched."""
        found = sorted((int(m.group(1)), p) for p in self.ckpt_dir.iterdir() if (m := _FULL.fullmatch(p.name)))
        stale = [p for _, p in found[:max(len(found) - keep_last, 0)]]
        for p in stale:
            p.unlink(missing_ok=True)
        return stale

    def release(self) -> None:
        if self._lock is not None:
            self._lock.release()

    def write_json(self, name: str, obj) -> None:
        atomic_write_text(self.path / name, json.dumps(obj, indent=2, default=str))

    def metrics_writer(self, keep_until_step: int | None) -> "MetricsWriter":
        return MetricsWriter(self.path / "metrics.csv", keep_until_step)


class MetricsWriter:
    """Appends one CSV row per step; on resume, first drops rows past the checkpoint's step (they were
    written by the killed run after its last checkpoint and will be recomputed identically). Epochs are
    numbered from 1, as on the console and in checkpoint names; a run written before that numbered them
    from 0, and its rows are renumbered when it resumes."""

    def __init__(self, path: Path, keep_until_step: int | None):
        self.path = path
        if keep_until_step is not None and path.exists():
            rows = [r for r in csv.DictReader(path.open()) if int(r["step"]) <= keep_until_step]
            if any(r["epoch"] == "0" for r in rows):  # numbered from 0 by an earlier release
                rows = [{**r, "epoch": str(int(r["epoch"]) + 1)} for r in rows]
            buf = io.StringIO()
            w = csv.DictWriter(buf, METRIC_FIELDS)
            w.writeheader()
            w.writerows(rows)
            atomic_write_text(path, buf.getvalue())
        elif keep_until_step is None:
            atomic_write_text(path, ",".join(METRIC_FIELDS) + "\n")
        self.fh = path.open("a", newline="")
        self.writer = csv.DictWriter(self.fh, METRIC_FIELDS, extrasaction="ignore")

    def write(self, row: dict) -> None:
        self.writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
        self.fh.flush()

    def close(self) -> None:
        self.fh.close()


def training_data(data, dataset, split: str | None, split_ignored: str | None = None) -> dict:
    """What a run trains on, recorded in every checkpoint (the model card states it): the data directory,
    the split used (None: every subject), the subject count, the split asked for where the table has none,
    and, for a cohort of ``anatlearn synth`` (it has ``truth/world.json``), its world and generated size."""
    record = {"data": str(data), "split": split, "n_subjects": len(dataset), "split_ignored": split_ignored,
              "synthetic": None}
    world = Path(data) / "truth" / "world.json"
    if world.is_file():
        info = json.loads(world.read_text())
        params = info.get("params") or {}
        record["synthetic"] = {"world": info.get("world"), "n_subjects": params.get("n_subjects"),
                               "seed": params.get("seed")}
    return record


def rng_state() -> dict:
    """All RNG states as tensors / plain lists (readable with torch.load(weights_only=True))."""
    np_state = np.random.get_state()
    py_state = random.getstate()
    state = {"torch": torch.get_rng_state(),
             "numpy": [np_state[0], np_state[1].tolist(), int(np_state[2]), int(np_state[3]), float(np_state[4])],
             "python": [py_state[0], list(py_state[1]), py_state[2]]}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n[0], np.asarray(n[1], dtype=np.uint32), n[2], n[3], n[4]))
    p = state["python"]
    random.setstate((p[0], tuple(p[1]), p[2]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
