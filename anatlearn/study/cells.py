"""One cell of the study: train along its budgets, evaluate at each, resume after a kill.

    STUDY/cells/<name>/seed-<s>/run/                    the pretraining run directory (anatlearn.pretrain)
    STUDY/cells/<name>/seed-<s>/model.pt                random-init cells: the untrained encoder
    STUDY/cells/<name>/seed-<s>/eval/budget-NNNN.json   one evaluation per budget, written atomically
    STUDY/cells/<name>/seed-<s>/error.txt               the last failure of this cell, if any

For budgets b_1 < b_2 < ...: train to b_1 epochs, evaluate ``last.pt``, resume to b_2 (``epochs`` may change
on resume and the resume is exact, so this is the same run as one to the last budget), evaluate, and so on.
A re-run skips every budget whose json exists and resumes the run from its last checkpoint; epoch
checkpoints other than ``last.pt`` are deleted once a budget is evaluated, so a cell keeps one checkpoint.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

from anatlearn.errors import TrainingError
from anatlearn.io import atomic_write_text
from anatlearn.study.grid import RANDOM_INIT, Cell, StudySettings


def cell_dir(out: Path, cell: Cell) -> Path:
    return Path(out) / "cells" / cell.name / f"seed-{cell.seed}"


def unit_path(out: Path, cell: Cell, budget: int) -> Path:
    return cell_dir(out, cell) / "eval" / f"budget-{budget:04d}.json"


def units_done(out: Path, cell: Cell) -> int:
    return sum(unit_path(out, cell, b).exists() for b in cell.budgets)


def train_config(cell: Cell, s: StudySettings, healthy: Path, run: Path, epochs: int, loader_workers: int = 0):
    """The TrainConfig of a cell trained to ``epochs``; everything but ``epochs`` and the loader workers
    is fixed by the settings, so every stage of a cell resumes the same run."""
    from anatlearn.pretrain.config import TrainConfig

    values = dict(data=str(healthy), out=str(run), method=cell.method, width=s.width, epochs=int(epochs),
                  batch_size=s.batch_size, lr=s.lr, seed=cell.seed, num_workers=loader_workers, progress=False,
                  channels_last=True, keep_last=1)
    values.update(cell.overrides)
    return TrainConfig(**values)


def random_init_checkpoint(path: Path, s: StudySettings, seed: int) -> Path:
    """The untrained encoder of ``seed`` (the same architecture and initialisation as a trained cell's)."""
    import torch

    from anatlearn.models import build_model, default_model_config, save_checkpoint
    from anatlearn.provenance import provenance

    if not path.exists():
        torch.manual_seed(seed)
        model = build_model(default_model_config("resnet18", s.width))
        save_checkpoint(path, {"format": "anatlearn", "format_version": 1, "model": model.state_dict(),
                               "model_config": model.model_config, "seed": seed, "provenance": provenance(seed)})
    return path


def _trained_epochs(last: Path) -> int:
    """Whole epochs held by ``last.pt`` (a mid-epoch checkpoint counts its finished epochs only)."""
    from anatlearn.models import load_checkpoint

    state = load_checkpoint(last)
    return int(state["epoch"])


def _prune(run: Path) -> None:
    """Keep only last.pt (its own file or hard link): the budgets already evaluated need no other checkpoint."""
    for p in (run / "checkpoints").glob("epoch-*"):
        p.unlink(missing_ok=True)


def run_cell(cell: Cell, out: Path, s: StudySettings, evaluate: Callable[[Path], dict], healthy: Path,
             loader_workers: int = 0, on_unit: Callable[[], None] | None = None,
             stop_after_steps: int | None = None) -> bool:
    """Train and evaluate ``cell`` at every budget not yet evaluated. ``evaluate(weights) -> dict`` scores
    one checkpoint. ``stop_after_steps`` ends pretraining early (simulates a kill, for tests); returns
    False when it did, True when the cell is complete."""
    from anatlearn.provenance import provenance
    from anatlearn.pretrain import pretrain

    cdir = cell_dir(out, cell)
    run = cdir / "run"
    for budget in sorted(cell.budgets):
        target = unit_path(out, cell, budget)
        if target.exists():
            continue
        if cell.method == RANDOM_INIT:
            weights = random_init_checkpoint(cdir / "model.pt", s, cell.seed)
        else:
            last = run / "checkpoints" / "last.pt"
            done = _trained_epochs(last) if last.exists() else 0
            if done > budget:
                raise TrainingError(f"{cell.id}: its run holds {done} epochs but budget {budget} was never "
                                    f"evaluated; delete {run} to retrain this cell")
            if done < budget:
                cfg = train_config(cell, s, healthy, run, budget, loader_workers)
                pretrain(cfg, resume=last.exists(), overwrite=not last.exists(), stop_after_steps=stop_after_steps)
                if not last.exists() or _trained_epochs(last) < budget:
                    return False  # stopped early (stop_after_steps)
            weights = last
        result = evaluate(weights)
        doc = {"cell": cell.id, "name": cell.name, "method": cell.method, "variant": cell.variant,
               "seed": cell.seed, "group": cell.group, "budget": int(budget), **result,
               "provenance": provenance(cell.seed, {"overrides": cell.overrides, "settings": s.to_dict()})}
        atomic_write_text(target, json.dumps(doc, indent=1, allow_nan=True))
        if cell.method != RANDOM_INIT:
            _prune(run)
        if on_unit:
            on_unit()
    return True
