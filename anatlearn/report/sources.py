"""Where each number of the report comes from: the evaluation, the cohort and the n behind it, the task
set that titles a tasks section, and which balanced accuracies lie below chance.

Everything is read from a results directory's own provenance (``config["participants"]``,
``config["cohort"]``, ``config["task_set"]``), so the report never guesses from folder names; results
written before these were recorded fall back to "cohort not recorded" and the folder's name.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from anatlearn.evaluate import chance
from anatlearn.evaluate.results import Results

NOT_RECORDED = "cohort not recorded"
_BINARY_CHANCE = 0.5  # the task registry's classification tasks are binary (positive vs negative values)
BELOW_CHANCE_MARK = "†"


def cohort_name(source) -> str:
    """A cohort's short name from a participants table path (its dataset directory) or a cohort directory."""
    if not source:
        return ""
    path = Path(str(source))
    return path.parent.name if path.stem == "participants" else path.stem


def cohort(res: Results) -> str:
    """'<name> cohort' of a results directory, or :data:`NOT_RECORDED`."""
    cfg = res.provenance.get("config", {}) or {}
    name = cohort_name(cfg.get("cohort") or cfg.get("participants"))
    return f"{name} cohort" if name else NOT_RECORDED


def task_set(res: Results, folder: str) -> str:
    """The task set (preset or TOML name) a tasks evaluation ran, or the results folder's name for old results."""
    return str((res.provenance.get("config", {}) or {}).get("task_set") or folder)


def _n_range(table: pd.DataFrame, task: str, metric: str) -> str:
    """"12", or "10 to 12 (by method)" where methods were scored on different numbers; "" when not recorded."""
    ns = pd.to_numeric(table.loc[(table["task"] == task) & (table["metric"] == metric), "n"], errors="coerce").dropna()
    if ns.empty:
        return ""
    lo, hi = int(ns.min()), int(ns.max())
    return f"{lo}" if lo == hi else f"{lo} to {hi} (by method)"


def _n_text(table: pd.DataFrame, task: str, metric: str) -> str:
    n = _n_range(table, task, metric)
    return f"n = {n}" if n else "n not recorded"


def headline_sources(res: Results) -> dict[tuple[str, str], str]:
    """(task, metric) -> 'evaluation, cohort, split or design, n' for every row of a results table."""
    cfg = res.provenance.get("config", {}) or {}
    where = cohort(res)
    out = {}
    for task, metric in res.table[["task", "metric"]].drop_duplicates().itertuples(index=False):
        n = _n_text(res.table, task, metric)
        if res.kind == "openbhb":
            split = {"mae_external": "external-site test split", "mae_internal": "internal test split",
                     "balanced_accuracy_internal": "internal test split (training sites)"}.get(metric, "test splits")
            text = f"OpenBHB protocol, {where}, {split}, {n}"
        elif res.kind == "tasks":
            tasks = f"downstream tasks ({cfg['task_set']})" if cfg.get("task_set") else "downstream tasks"
            text = f"{tasks}, {where}, {cfg.get('n_repeats', '?')} x {cfg.get('n_splits', '?')}-fold CV, {n}"
        elif res.kind == "anatomy":
            what = "effective rank of the features" if task == "effective rank" else \
                f"anatomy recovery, {cfg.get('n_splits', '?')}-fold CV ridge"
            text = f"{what}, {where}, {n}"
        elif res.kind == "finetune-comparison":
            k = res.folds["fold"].nunique() if res.folds is not None and len(res.folds) else "?"
            text = f"fine-tuning and probes on the same outer folds, {where}, {k}-fold CV, {n}"
        elif res.kind == "icc":
            subjects = {m.get("n_subjects") for m in (res.extra.get("methods") or {}).values()} - {None}
            of = f" of {subjects.pop()} subjects" if len(subjects) == 1 else ""
            text = f"test-retest ICC, {where}, median over {_n_range(res.table, task, metric) or 'the'} features{of}"
        else:
            text = f"{res.kind}, {where}, {n}"
        out[(str(task), str(metric))] = text
    return out


def _chance_of(res: Results, method: str, task: str, metric: str) -> float | None:
    if res.kind == "tasks" and metric == "balanced_accuracy":
        return _BINARY_CHANCE
    if res.kind == "openbhb" and metric == "balanced_accuracy_internal":
        value = (res.extra.get(method) or {}).get("chance_balanced_accuracy")
        return float(value) if value is not None else None
    return None


def below_chance(res: Results) -> dict[tuple[str, str, str], float]:
    """(method, task, metric) -> chance, for every balanced accuracy below chance (:mod:`anatlearn.evaluate.chance`:
    its interval wholly below chance, or without one, below by more than 2 SD of random guessing over its n
    subjects, split evenly between the classes since the table keeps no class sizes)."""
    out = {}
    for r in res.table.itertuples(index=False):
        level = _chance_of(res, str(r.method), str(r.task), str(r.metric))
        if level is None:
            continue
        mean, high, n = (pd.to_numeric(pd.Series([v]), errors="coerce").iloc[0] for v in (r.mean, r.ci_high, r.n))
        k = max(2, round(1 / level))
        counts = [n / k] * k if math.isfinite(n) and n > 0 else None
        if chance.below_chance(float(mean), level, float(high), counts):
            out[(str(r.method), str(r.task), str(r.metric))] = level
    return out


def below_chance_note(flags: dict[tuple[str, str, str], float]) -> str:
    """The plain-words footnote of the cells marked :data:`BELOW_CHANCE_MARK` (plain text), "" without any."""
    if not flags:
        return ""
    cells = "; ".join(f"{m}, {t} {metric} (chance {c:.3f})" for (m, t, metric), c in flags.items())
    return (f"{BELOW_CHANCE_MARK} {chance.note()}. Marked: {cells}. Rule: the 95 % interval lies wholly below "
            f"chance or, without an interval, the value is below chance by more than {chance.MARGIN_SD:g} SD of the "
            f"balanced accuracy of random guessing over its n subjects.")
