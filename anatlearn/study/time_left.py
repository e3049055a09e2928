"""How long a study has left: the training epochs and evaluations still to run, and their seconds at a
measured rate. One implementation for the runner (its estimate before training) and ``--status`` (beside a
running study): both read the study directory only (the runs' ``metrics.csv`` and the evaluations' json),
load no checkpoint and lock nothing.

    seconds = (epochs_left * epoch_s + evaluations_left * evaluation_s) / workers
"""

from __future__ import annotations

import json
from pathlib import Path

from anatlearn.study.cells import cell_dir, units_done
from anatlearn.study.grid import RANDOM_INIT


def steps_table(run: Path):
    """A run's steps (step, epoch, samples/s) from its metrics.csv, one row per step (a resumed run rewrites
    the steps of an epoch it had not finished: the last row of a step counts); None without a row."""
    import pandas as pd

    path = Path(run) / "metrics.csv"
    if not path.is_file():
        return None
    m = pd.read_csv(path, usecols=["step", "epoch", "samples_per_s"]).drop_duplicates("step", keep="last")
    return None if m.empty else m


def trained_epochs(steps, steps_per_epoch: int) -> int:
    """Complete epochs in a run's step table: those before the last, and the last if all its steps are in."""
    if steps is None or steps_per_epoch <= 0:
        return 0
    first = 0 if (steps["epoch"] == 0).any() else 1  # numbered from 1; from 0 by runs of earlier releases
    last = int(steps["epoch"].iloc[-1])
    return last - first + int((steps["epoch"] == last).sum() >= steps_per_epoch)


def _step_tables(out: Path, cells) -> dict:
    return {c.id: steps_table(cell_dir(out, c) / "run") for c in cells if c.method != RANDOM_INIT}


def observed_steps_per_epoch(tables: dict) -> int | None:
    """Steps per epoch seen in any run past its first epoch (the same for every cell: one cohort, one batch
    size); None when no run has finished an epoch."""
    counts = [int(t.groupby("epoch").size().max()) for t in tables.values() if t is not None and t["epoch"].nunique() > 1]
    return max(counts) if counts else None


def epochs_left(out: Path, cells, steps_per_epoch: int, tables: dict | None = None) -> int:
    """Training epochs still to run: none for a complete cell (even without its run, as in a study restored
    from a snapshot); an unfinished one resumes from its complete epochs, or retrains from epoch 0."""
    tables = _step_tables(out, cells) if tables is None else tables
    return sum(max(max(c.budgets) - trained_epochs(tables.get(c.id), steps_per_epoch), 0) for c in cells
               if c.method != RANDOM_INIT and units_done(out, c) < len(c.budgets))


def evaluation_seconds(out: Path, cells) -> float | None:
    """Measured seconds of one evaluation (the mean over the evaluation files of ``cells``)."""
    times = []
    for c in cells:
        for p in (cell_dir(out, c) / "eval").glob("budget-*.json"):
            times.append(json.loads(p.read_text())["timing_s"]["total"])
    return sum(times) / len(times) if times else None


def seconds_left(epochs: int, epoch_s: float, evaluations: int, evaluation_s: float, workers: int) -> float:
    return (epochs * epoch_s + evaluations * evaluation_s) / workers


def time_left(out: Path, cells, running, batch_size: int, units_left: int) -> dict | None:
    """Epochs and evaluations left, and the seconds they take at the running cells' current rate (median
    subjects/s of their last 100 steps, per worker; one evaluation at the random-init cells' measured time),
    shared over the cells running now. None when no cell is training or no epoch has finished."""
    tables = _step_tables(out, cells)
    per = observed_steps_per_epoch(tables)
    rates = [float(tables[r]["samples_per_s"].tail(100).median()) for r in running if tables.get(r) is not None]
    if per is None or not rates:
        return None
    epochs = epochs_left(out, cells, per, tables)
    epoch_s = per * batch_size / (sum(rates) / len(rates))
    unit_s = evaluation_seconds(out, [c for c in cells if c.method == RANDOM_INIT]) or 0.0
    return {"epochs": epochs, "units": units_left, "epoch_s": epoch_s, "workers": len(rates),
            "seconds": seconds_left(epochs, epoch_s, units_left, unit_s, len(rates))}
