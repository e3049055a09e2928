"""``anatlearn study``: run the grid (resumably, optionally in parallel processes), then aggregate.

    STUDY/study.json       settings, grid, device, invocations with their measured wall time
    STUDY/progress.json    units done / total, cells running, elapsed and estimated time (rewritten as it goes)
    STUDY/data/            the four cohorts (see anatlearn.study.evaluation)
    STUDY/cells/           one directory per cell (see anatlearn.study.cells)
    STUDY/results/         tables and figures (anatlearn.study.aggregate); STUDY/summary.md

Phases of one invocation (:func:`_run_phases`, each a function): (1) the random-init cells (their
evaluation times one unit); (2) the estimate, from a timing probe of a few training steps; (3) the stages of
the grid (``grid.stages``) up to the selection budget, then (4) the selection rule on the healthy validation
cohort and the selected variants resumed to the full budget, then the rest of (3): the main grid's longer
budgets; and the aggregation. Only the order changes, never a number.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

from anatlearn.errors import ConfigError, TrainingError
from anatlearn.io import atomic_write_text
from anatlearn.progress import progress
from anatlearn.study import evaluation
from anatlearn.study import selection as selection_rule
from anatlearn.study.cells import cell_dir, run_cell, units_done
from anatlearn.study.record import save_study_doc, start_invocation
from anatlearn.study.grid import RANDOM_INIT, StudySettings, build_cells, n_units, stages, training_epochs
from anatlearn.study.time_left import epochs_left, evaluation_seconds, seconds_left

_EVALUATOR = None  # one per process: cohorts, labels and truth read once


class StudyError(TrainingError):
    """A study could not finish (failed cells are listed)."""


def _log(msg: str) -> None:
    print(f"[study {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _evaluator(out: Path, s: StudySettings, device: str):
    global _EVALUATOR
    if _EVALUATOR is None or _EVALUATOR[0] != (str(out), device):
        from anatlearn.study.evaluation import Evaluator, cohort_paths

        _EVALUATOR = ((str(out), device), Evaluator(cohort_paths(out), s, device))
    return _EVALUATOR[1]


def _init_worker(threads: int, device: str) -> None:
    if device == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
    try:  # Linux: die with the study process (a killed study leaves no orphan training its cell)
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6").prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    import torch

    torch.set_num_threads(threads)


def _work(cell, out: Path, s: StudySettings, device: str, loader_workers: int) -> str:
    """Run one cell in a worker process; returns its id (failures are written to the cell's error.txt)."""
    from anatlearn.study.evaluation import cohort_paths

    marker = cell_dir(out, cell) / RUNNING
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(str(os.getpid()))
    try:
        ev = _evaluator(out, s, device)
        run_cell(cell, out, s, ev.evaluate, cohort_paths(out)["healthy"], loader_workers)
    finally:
        marker.unlink(missing_ok=True)
    (cell_dir(out, cell) / "error.txt").unlink(missing_ok=True)
    return cell.id


RUNNING = ".running"  # a worker's mark on the cell it trains (its pid); the executor's own "running" state
# also covers calls merely queued for a worker


def _running_in_workers(out: Path, cells) -> list[str]:
    """Cells a live worker process is on (a killed worker's stale mark is ignored)."""
    ids = []
    for c in cells:
        try:
            pid = int((cell_dir(out, c) / RUNNING).read_text())
            os.kill(pid, 0)
        except (OSError, ValueError):
            continue
        ids.append(c.id)
    return ids


class _Progress:
    """The study's bar (:func:`anatlearn.progress.progress`; log lines when stderr is not a terminal) and
    ``progress.json`` on disk, both counting evaluated units from the cells' json files (so they are right
    after a resume and across worker processes)."""

    def __init__(self, out: Path, cells, show: bool, doc: dict | None = None, invocation: dict | None = None):
        self.out, self.cells, self.t0 = out, list(cells), time.perf_counter()
        # study.json's record of this invocation, rewritten as it runs: a study killed without a chance to
        # clean up (SIGKILL, a machine that goes away) still has its wall time up to the last update
        self.doc, self.invocation, self.saved = doc, invocation, -1e9
        self.total = n_units(self.cells)
        self.estimate_s: float | None = None
        self._stack = contextlib.ExitStack()
        self.bar = self._stack.enter_context(progress("study", total=self.total, enabled=None if show else False,
                                                      transient=False, eta=True))
        self.done = -1

    def update(self, running=()) -> None:
        done = sum(units_done(self.out, c) for c in self.cells)
        elapsed = time.perf_counter() - self.t0
        doc = {"units_done": done, "units_total": self.total,
               "cells_done": sum(units_done(self.out, c) == len(c.budgets) for c in self.cells),
               "cells_total": len(self.cells), "running": list(running), "elapsed_s": round(elapsed, 1),
               "estimate_s": None if self.estimate_s is None else round(self.estimate_s, 1),
               "updated": time.strftime("%Y-%m-%dT%H:%M:%S")}
        atomic_write_text(self.out / "progress.json", json.dumps(doc, indent=1))
        if self.invocation is not None and (elapsed - self.saved >= 30 or done != self.done):
            self.invocation["wall_s"] = round(elapsed, 1)
            save_study_doc(self.out, self.doc)
            self.saved = elapsed
        if self.bar.active:
            self.bar.update(completed=done, total=self.total, description=f"study ({', '.join(running)[:60]})")
        elif done != self.done:
            _log(f"{done}/{self.total} evaluations done ({elapsed:.0f} s)")
        self.done = done

    def close(self) -> None:
        self._stack.close()


def _time_steps(out: Path, s: StudySettings, healthy: Path, steps: int = 4) -> float:
    """Seconds per training epoch, from a few timed steps of the base AnatCL configuration (the first
    step, which includes warm-up, is left out)."""
    import csv

    from anatlearn.study.cells import train_config
    from anatlearn.study.grid import BASE, Cell, base_overrides
    from anatlearn.pretrain import pretrain

    probe = Cell("anatcl-global", BASE, 0, (1,), "timing", base_overrides("anatcl-global", s))
    tmp = Path(tempfile.mkdtemp(prefix=".timing-", dir=out))
    try:
        cfg = train_config(probe, s, healthy, tmp / "run", 1)
        pretrain(cfg, overwrite=True, stop_after_steps=steps)
        rates = [float(r["samples_per_s"]) for r in csv.DictReader((tmp / "run" / "metrics.csv").open())][1:]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    per_epoch = _steps_per_epoch(healthy, s) * s.batch_size
    rates = sorted(rates)
    return per_epoch / rates[len(rates) // 2]


def _steps_per_epoch(healthy: Path, s: StudySettings) -> int:
    """Training steps in one epoch: the pretraining split in whole batches (the loader drops the last)."""
    from anatlearn.data import open_dataset

    return len(open_dataset(healthy, split="train")) // s.batch_size


def _run_cells(cells, out: Path, s: StudySettings, device: str, workers: int, progress: _Progress,
               max_cells: int | None, stop_after_steps: int | None = None) -> tuple[int, list[str]]:
    """Run the unfinished ``cells`` (in this process when workers == 1); returns (cells run, failed ids)."""
    from anatlearn.study.evaluation import cohort_paths

    todo = [c for c in cells if units_done(out, c) < len(c.budgets)]
    if max_cells is not None:
        todo = todo[:max_cells]
    failed: list[str] = []
    healthy = cohort_paths(out)["healthy"]
    if workers == 1:
        ev = _evaluator(out, s, device)
        for c in todo:
            progress.update([c.id])
            try:
                finished = run_cell(c, out, s, ev.evaluate, healthy, 0, lambda: progress.update([c.id]),
                                    stop_after_steps)
            except Exception as exc:  # noqa: BLE001 - one failed cell must not stop a days-long study
                _record_failure(out, c, exc)
                failed.append(c.id)
                continue
            if not finished:
                return len(todo), failed
            (cell_dir(out, c) / "error.txt").unlink(missing_ok=True)
        progress.update()
        return len(todo), failed
    threads = max(1, (os.cpu_count() or 1) // workers)
    loader = 1 if device == "cuda" else 0
    import multiprocessing as mp

    pool = ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"), initializer=_init_worker,
                               initargs=(threads, device))
    try:
        futures = {pool.submit(_work, c, out, s, device, loader): c for c in todo}
        pending = set(futures)
        while pending:
            done, pending = wait(pending, timeout=5, return_when=FIRST_COMPLETED)
            for f in done:
                if f.exception() is not None:
                    _record_failure(out, futures[f], f.exception())
                    failed.append(futures[f].id)
            progress.update(_running_in_workers(out, [futures[f] for f in pending]))
    except BaseException:
        # interrupted (Ctrl-C, SIGTERM from `timeout`): stop the workers now rather than wait for their cells;
        # what they leave is a resumable state (atomic checkpoints and evaluations)
        for proc in list((getattr(pool, "_processes", None) or {}).values()):
            proc.terminate()
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
    return len(todo), failed


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def _record_failure(out: Path, cell, exc: BaseException) -> None:
    _log(f"cell {cell.id} failed: {type(exc).__name__}: {exc}")
    path = cell_dir(out, cell) / "error.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, f"{type(exc).__name__}: {exc}\n")


@dataclass
class _Invocation:
    """What one invocation of the study runs and has run so far; each phase below reads and advances it."""

    out: Path
    s: StudySettings
    device: str
    workers: int
    bar: _Progress
    cells: list
    left: int | None  # cells this invocation may still start (``max_cells``); None: no limit
    stop_after_steps: int | None = None
    ran: int = 0
    failed: list = field(default_factory=list)
    selected: bool = False

    @property
    def exhausted(self) -> bool:
        return self.left is not None and self.left <= 0

    def incomplete(self, cells) -> bool:
        """Whether a cell of ``cells`` that did not fail has a budget left."""
        return any(units_done(self.out, c) < len(c.budgets) for c in cells if c.id not in self.failed)

    def run(self, cells, workers: int | None = None, stop_after_steps: int | None = None) -> None:
        n, failed = _run_cells(cells, self.out, self.s, self.device, workers or self.workers, self.bar, self.left,
                               stop_after_steps)
        self.ran, self.failed = self.ran + n, self.failed + failed
        self.left = None if self.left is None else self.left - n


def _check_request(device: str, workers: int) -> None:
    if device not in ("cpu", "cuda"):
        raise ConfigError(f"--device must be cpu or cuda, got {device!r}")
    if workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {workers}")
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise ConfigError("--device cuda: no CUDA GPU is available")


def _log_estimate(run: _Invocation, grid: str) -> None:
    """Phase 2: the time the training and evaluations left take, from a few timed training steps and the
    measured time of one evaluation (also when ``max_cells`` stops here: ``--max-cells 1`` prints the
    estimate of a new study)."""
    healthy = evaluation.cohort_paths(run.out)["healthy"]
    trained = [c for c in run.cells if c.method != RANDOM_INIT]
    epochs = epochs_left(run.out, trained, _steps_per_epoch(healthy, run.s)) if trained else 0
    if not epochs:
        return
    units = n_units(run.cells) - sum(units_done(run.out, c) for c in run.cells)
    epoch_s = _time_steps(run.out, run.s, healthy)
    unit_s = evaluation_seconds(run.out, [c for c in run.cells if c.method == RANDOM_INIT]) or 0.0
    one = seconds_left(epochs, epoch_s, units, unit_s, 1)
    run.bar.estimate_s = one / run.workers
    _log(f"grid {grid}: {len(run.cells)} cells, {n_units(run.cells)} evaluations, {training_epochs(run.cells)} "
         f"training epochs; remaining {epochs} epochs x {epoch_s:.1f} s + {units} evaluations x "
         f"{unit_s:.1f} s = {one / 3600:.2f} h on {run.device} with one worker "
         f"(~{one / run.workers / 3600:.2f} h with {run.workers}; before the selected variants' extension)")


def _select_and_extend(run: _Invocation) -> list:
    """Phase 4: the selection rule on the complete selection-budget table, then its variants resumed to the
    full budget; returns the extended cells."""
    run.selected = True
    extended = selection_rule.extend_selected(run.out, run.s, run.cells)
    if extended:
        ids = {e.id for e in extended}
        run.bar.cells = run.cells = [c for c in run.cells if c.id not in ids] + extended
        run.bar.total = n_units(run.cells)
        _log(f"selection rule: resuming {len(extended)} selected-variant cells to {max(run.s.budgets)} epochs")
        run.run(extended)
    return extended


def _run_stages(run: _Invocation) -> None:
    """Phase 3: the trained cells stage by stage (``grid.stages``: the decisive comparisons land first),
    with phase 4 before the first stage beyond the selection budget. Every stage up to the selection budget
    is complete there (an unfinished stage returns), so the selection rule has its whole table and the
    selected variants' long runs go before the main grid's longer budgets. Returns at the first stop: cells
    allowed by ``max_cells`` used up, a failure before the selection, or a stage left unfinished
    (``stop_after_steps``: later stages would resume its cells)."""
    for stage in stages([c for c in run.cells if c.method != RANDOM_INIT], run.s.selection_budget):
        if run.exhausted:
            return
        if not run.selected and not run.failed and max(stage[0].budgets) > run.s.selection_budget:
            extended = _select_and_extend(run)
            if run.failed or run.incomplete(extended) or run.exhausted:
                return
        run.run(stage, stop_after_steps=run.stop_after_steps)
        if run.incomplete(stage):
            return


def _run_phases(run: _Invocation, grid: str) -> bool:
    """Phases 1 to 4 in order; returns whether the study stopped with a budget left."""
    run.run([c for c in run.cells if c.method == RANDOM_INIT], workers=1)  # 1: random init times an evaluation
    _log_estimate(run, grid)  # 2
    _run_stages(run)  # 3 (and 4 when the grid goes beyond the selection budget)
    if not run.incomplete(run.cells) and not run.failed and not run.selected:
        _select_and_extend(run)  # 4: a grid with nothing beyond the selection budget
    return run.incomplete(run.cells)


def run_study(out, grid: str = "full", settings: StudySettings | None = None, device: str = "cpu",
              workers: int = 1, max_cells: int | None = None, progress: bool = True,
              stop_after_steps: int | None = None, aggregate: bool = True) -> dict:
    """Run (or continue) the study in ``out``; returns ``study.json``'s content. ``max_cells`` stops after
    that many cells in this invocation (and ``stop_after_steps`` inside a cell's pretraining, for tests):
    a later call continues where it stopped. ``device="cpu"`` hides the GPU from worker processes; cells run
    in this process (``workers=1``) train where :func:`anatlearn.pretrain.pretrain` does unless the caller hid
    it (the CLI does, before torch starts)."""
    from anatlearn.study.grid import grid_settings

    s = settings or grid_settings(grid)
    _check_request(device, workers)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    doc, invocation = start_invocation(out, s, grid, device, workers)
    # SIGTERM (e.g. from `timeout`) ends the study like Ctrl-C: workers stopped, wall time recorded
    previous = (signal.signal(signal.SIGTERM, _raise_interrupt)
                if threading.current_thread() is threading.main_thread() else None)
    t0 = time.perf_counter()
    evaluation.make_cohorts(out, s)
    cells = build_cells(s)
    run = _Invocation(out, s, device, workers, _Progress(out, cells, progress, doc, invocation), cells, max_cells,
                      stop_after_steps)
    try:
        stopped = _run_phases(run, grid)
    except KeyboardInterrupt:
        _log("interrupted; run the same command again to continue")
        raise
    finally:
        run.bar.update()
        run.bar.close()
        wall = time.perf_counter() - t0
        invocation.update(wall_s=round(wall, 1), ended=True, cells_run=run.ran)
        save_study_doc(out, doc)
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    _log(f"measured: {wall:.0f} s in this invocation, {doc['wall_s_total']:.0f} s over {len(doc['invocations'])}")
    if run.failed:
        raise StudyError(f"{len(run.failed)} cell(s) failed: {', '.join(run.failed[:5])} (see their error.txt); "
                         f"re-run the same command to retry them")
    doc["complete"] = not stopped
    if aggregate and not stopped:
        from anatlearn.study.aggregate import aggregate_study

        doc["results"] = str(aggregate_study(out))
    return doc
