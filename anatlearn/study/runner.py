"""``anatlearn study``: run the grid (resumably, optionally in parallel processes), then aggregate.

    STUDY/study.json       settings, grid, device, invocations with their measured wall time
    STUDY/progress.json    units done / total, cells running, elapsed and estimated time (rewritten as it goes)
    STUDY/data/            the four cohorts (see anatlearn.study.evaluation)
    STUDY/cells/           one directory per cell (see anatlearn.study.cells)
    STUDY/results/         tables and figures (anatlearn.study.aggregate); STUDY/summary.md

Order: random-init cells first (their evaluation times one unit), a timing probe of a few training steps,
the estimate printed, the stages of the grid up to the selection budget (``grid.stages``), then the
selection rule on the healthy validation cohort and the selected variants resumed to the full budget, then
the main grid's longer budgets, and the aggregation. Only the order changes, never a number.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path

from anatlearn.errors import ConfigError, TrainingError
from anatlearn.io import atomic_write_text
from anatlearn.study.cells import cell_dir, run_cell, units_done
from anatlearn.study.grid import RANDOM_INIT, StudySettings, build_cells, n_units, stages, training_epochs

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


def _git_commit() -> str | None:
    """The source tree's commit (with ``-dirty`` for uncommitted changes), when it is a git checkout."""
    import subprocess

    here = Path(__file__).resolve().parent
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=here, capture_output=True, text=True,
                              timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    if head.returncode != 0:
        return None
    return head.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def _machine(device: str) -> str:
    import platform

    import torch

    # the CPU capability torch dispatches to: cells trained on AVX2 and AVX-512 machines differ in rounding
    text = f"{platform.machine()} {os.cpu_count()} CPU cores ({torch.backends.cpu.get_cpu_capability()})"
    if device == "cuda":
        text += f", {torch.cuda.get_device_name(0)}"
    return text


def _check_settings(out: Path, s: StudySettings, grid: str) -> dict:
    """study.json: the settings a study was started with; a re-run must use the same ones."""
    path = out / "study.json"
    if path.exists():
        doc = json.loads(path.read_text())
        if doc["settings"] != s.to_dict():
            diff = [k for k in s.to_dict() if doc["settings"].get(k) != s.to_dict()[k]]
            raise ConfigError(f"{out} holds a study started with other settings (differs in: {', '.join(diff)}; "
                              f"grid {doc.get('grid')!r}); choose another --out to start a new study")
        return doc
    return {"grid": grid, "settings": s.to_dict(), "invocations": []}


class _Progress:
    """A rich bar on a terminal (log lines otherwise) and ``progress.json`` on disk, both counting evaluated
    units from the cells' json files (so they are right after a resume and across worker processes)."""

    def __init__(self, out: Path, cells, show: bool, doc: dict | None = None, invocation: dict | None = None):
        self.out, self.cells, self.t0 = out, list(cells), time.perf_counter()
        # study.json's record of this invocation, rewritten as it runs: a study killed without a chance to
        # clean up (SIGKILL, a machine that goes away) still has its wall time up to the last update
        self.doc, self.invocation, self.saved = doc, invocation, -1e9
        self.total = n_units(self.cells)
        self.estimate_s: float | None = None
        self.bar = None
        if show and sys.stderr.isatty():
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                TimeElapsedColumn(), transient=False)
            self.bar.start()
            self.task = self.bar.add_task("study", total=self.total)
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
            _save_study_doc(self.out, self.doc)
            self.saved = elapsed
        if self.bar is not None:
            self.bar.update(self.task, completed=done, description=f"study ({', '.join(running)[:60]})")
        elif done != self.done:
            _log(f"{done}/{self.total} evaluations done ({elapsed:.0f} s)")
        self.done = done

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def _save_study_doc(out: Path, doc: dict) -> None:
    doc["wall_s_total"] = round(sum(i["wall_s"] for i in doc["invocations"]), 1)
    atomic_write_text(out / "study.json", json.dumps(doc, indent=1))


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
    from anatlearn.data import open_dataset

    n_train = len(open_dataset(healthy, split="train"))
    per_epoch = (n_train // s.batch_size) * s.batch_size
    rates = sorted(rates)
    return per_epoch / rates[len(rates) // 2]


def _unit_seconds(out: Path, cells) -> float | None:
    """Measured seconds of one evaluation (from the random-init cells' json files)."""
    times = []
    for c in cells:
        for p in (cell_dir(out, c) / "eval").glob("budget-*.json"):
            times.append(json.loads(p.read_text())["timing_s"]["total"])
    return sum(times) / len(times) if times else None


def _remaining_epochs(out: Path, cells) -> int:
    """Training epochs still to run: a complete cell needs none (even without its checkpoint, as in a study
    restored from a snapshot); an unfinished one resumes from its ``last.pt``, or retrains from epoch 0."""
    from anatlearn.study.cells import _trained_epochs

    total = 0
    for c in cells:
        if c.method == RANDOM_INIT or units_done(out, c) == len(c.budgets):
            continue
        last = cell_dir(out, c) / "run" / "checkpoints" / "last.pt"
        total += max(c.budgets) - (_trained_epochs(last) if last.exists() else 0)
    return total


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


def run_study(out, grid: str = "full", settings: StudySettings | None = None, device: str = "cpu",
              workers: int = 1, max_cells: int | None = None, progress: bool = True,
              stop_after_steps: int | None = None, aggregate: bool = True) -> dict:
    """Run (or continue) the study in ``out``; returns ``study.json``'s content. ``max_cells`` stops after
    that many cells in this invocation (and ``stop_after_steps`` inside a cell's pretraining, for tests):
    a later call continues where it stopped. ``device="cpu"`` hides the GPU from worker processes; cells run
    in this process (``workers=1``) train where :func:`anatlearn.pretrain.pretrain` does unless the caller hid
    it (the CLI does, before torch starts)."""
    from anatlearn.study.grid import grid_settings
    from anatlearn.study.evaluation import make_cohorts
    from anatlearn.study.selection import extend_selected

    s = settings or grid_settings(grid)
    if device not in ("cpu", "cuda"):
        raise ConfigError(f"--device must be cpu or cuda, got {device!r}")
    if workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {workers}")
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise ConfigError("--device cuda: no CUDA GPU is available")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    doc = _check_settings(out, s, grid)
    import signal
    import threading

    # SIGTERM (e.g. from `timeout`) ends the study like Ctrl-C: workers stopped, wall time recorded
    previous = (signal.signal(signal.SIGTERM, _raise_interrupt)
                if threading.current_thread() is threading.main_thread() else None)
    t0 = time.perf_counter()
    invocation = {"started": time.strftime("%Y-%m-%dT%H:%M:%S"), "wall_s": 0.0, "ended": False,
                  "device": device, "workers": workers, "cells_run": 0, "commit": _git_commit(),
                  "machine": _machine(device)}
    doc["invocations"].append(invocation)
    _save_study_doc(out, doc)
    make_cohorts(out, s)
    cells = build_cells(s)
    bar = _Progress(out, cells, progress, doc, invocation)
    ran, failed, stopped = 0, [], False
    try:
        refs = [c for c in cells if c.method == RANDOM_INIT]
        n, f = _run_cells(refs, out, s, device, 1, bar, max_cells)
        ran, failed = ran + n, failed + f
        trained = [c for c in cells if c.method != RANDOM_INIT]
        epochs = _remaining_epochs(out, trained)
        units = n_units(cells) - sum(units_done(out, c) for c in cells)
        if epochs:  # also when --max-cells stops here: `--max-cells 1` prints the estimate of a new study
            from anatlearn.study.evaluation import cohort_paths

            epoch_s = _time_steps(out, s, cohort_paths(out)["healthy"])
            unit_s = _unit_seconds(out, refs) or 0.0
            cpu = epochs * epoch_s + units * unit_s
            bar.estimate_s = cpu / workers
            _log(f"grid {grid}: {len(cells)} cells, {n_units(cells)} evaluations, {training_epochs(cells)} "
                 f"training epochs; remaining {epochs} epochs x {epoch_s:.1f} s + {units} evaluations x "
                 f"{unit_s:.1f} s = {cpu / 3600:.2f} h on {device} with one worker "
                 f"(~{cpu / workers / 3600:.2f} h with {workers}; before the selected variants' extension)")
        left = None if max_cells is None else max_cells - ran
        selected = False

        def select_and_extend() -> list:
            """The selection rule on the complete selection-budget table, then its variants resumed to the
            full budget; returns the extended cells."""
            nonlocal cells, failed, selected, ran, left
            selected = True
            extended = extend_selected(out, s, cells)
            if extended:
                bar.cells = cells = [c for c in cells if c.id not in {e.id for e in extended}] + extended
                bar.total = n_units(cells)
                _log(f"selection rule: resuming {len(extended)} selected-variant cells to {max(s.budgets)} epochs")
                n, f = _run_cells(extended, out, s, device, workers, bar, left)
                ran, failed = ran + n, failed + f
                left = None if left is None else left - n
            return extended

        for stage in stages(trained, s.selection_budget):  # budget by budget: the decisive comparisons land first
            if left is not None and left <= 0:
                break
            if not selected and not failed and max(stage[0].budgets) > s.selection_budget:
                # Every stage up to the selection budget is complete here (an unfinished one breaks out
                # below), so the selection rule has its whole table: the selected variants' long runs go
                # before the main grid's longer budgets, and the best configurations land first.
                extended = select_and_extend()
                if failed or any(units_done(out, c) < len(c.budgets) for c in extended):
                    break
                if left is not None and left <= 0:
                    break
            n, f = _run_cells(stage, out, s, device, workers, bar, left, stop_after_steps)
            ran, failed = ran + n, failed + f
            left = None if left is None else left - n
            if any(units_done(out, c) < len(c.budgets) for c in stage if c.id not in failed):
                break  # stopped inside the stage (stop_after_steps): later stages would resume its cells
        stopped = any(units_done(out, c) < len(c.budgets) for c in cells if c.id not in failed)
        if not stopped and not failed and not selected:  # a grid with nothing beyond the selection budget
            select_and_extend()
            stopped = any(units_done(out, c) < len(c.budgets) for c in cells if c.id not in failed)
    except KeyboardInterrupt:
        _log("interrupted; run the same command again to continue")
        raise
    finally:
        bar.update()
        bar.close()
        wall = time.perf_counter() - t0
        invocation.update(wall_s=round(wall, 1), ended=True, cells_run=ran)
        _save_study_doc(out, doc)
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    _log(f"measured: {wall:.0f} s in this invocation, {doc['wall_s_total']:.0f} s over {len(doc['invocations'])}")
    if failed:
        raise StudyError(f"{len(failed)} cell(s) failed: {', '.join(failed[:5])} (see their error.txt); "
                         f"re-run the same command to retry them")
    doc["complete"] = not stopped
    if aggregate and not stopped:
        from anatlearn.study.aggregate import aggregate_study

        doc["results"] = str(aggregate_study(out))
    return doc
