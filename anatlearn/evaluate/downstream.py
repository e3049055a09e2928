"""Downstream evaluation (``anatlearn evaluate tasks``): several feature tables (methods) x several tasks.

For each task the subjects are those the task selects *and* every method has features for, so all methods
are scored on identical repeated stratified K-fold splits (see :mod:`anatlearn.evaluate.probes`). Per
(method, task, metric) the table reports the mean over the R x K folds and a 95 % interval, by default the
Nadeau-Bengio corrected resampled t interval (``interval="corrected"``; ``"repeats"``: a t interval over
the R per-repeat means). Every pair of methods gets a paired comparison on the same folds: the corrected
resampled t-test (Nadeau & Bengio 2003) and a Wilcoxon signed-rank test over per-repeat means.
"""

from __future__ import annotations

import itertools
from typing import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from anatlearn.errors import ConfigError, DataError
from anatlearn.features import match_ids, validate_features
from anatlearn.evaluate.probes import GRID, LOWER_IS_BETTER, cross_validate, make_splits
from anatlearn.evaluate.results import TABLE_COLUMNS, Results
from anatlearn.evaluate.stats import bounded_interval, corrected_interval, corrected_paired_ttest, repeat_interval, wilcoxon_repeats
from anatlearn.evaluate.tasks import Task
from anatlearn.data.lineage import tables_identity
from anatlearn.provenance import provenance

INTERVALS = ("corrected", "repeats")
CEILING = "ceiling: true anatomy"


def truth_features(participants: pd.DataFrame) -> pd.DataFrame | None:
    """The true anatomy of a synthetic cohort as a feature table (natural log of every region's true GMV, CT
    and SA, :func:`anatlearn.evaluate.anatomy_recovery.truth_targets`), when the participants table was read
    from a cohort of ``anatlearn synth`` (its folder holds ``truth/``); None for any other table. Probed like
    any method, it is the ceiling of a task: what a probe reaches when the features hold the anatomy exactly."""
    from pathlib import Path

    from anatlearn.evaluate.anatomy_recovery import truth_targets

    source = participants.attrs.get("source")
    root = Path(str(source)).parent if source else None
    if root is None or not (root / "truth" / "anatomy.npy").is_file():
        return None
    families = truth_targets(root)
    table = pd.concat([families[f].add_prefix(f"{f}_") for f in ("GMV", "CT", "SA")], axis=1)
    table.columns = [f"f{i:04d}" for i in range(table.shape[1])]  # the feature-table convention
    table.attrs["metadata"] = {"ceiling": "true anatomy of the synthetic cohort (log GMV, CT, SA per region)",
                               "cohort": str(root)}
    return table


def _summarise(folds: pd.DataFrame, interval: str) -> list[dict]:
    rows = []
    for (method, task, metric), g in folds.groupby(["method", "task", "metric"], sort=False):
        scores = g["score"].to_numpy()
        if np.isnan(scores).all():
            continue
        if interval == "corrected":
            mean, lo, hi = corrected_interval(scores, g["n_train"].mean(), g["n_test"].mean())
        else:
            mean, lo, hi = repeat_interval(g.groupby("repeat")["score"].mean().to_numpy())
        lo, hi, note = bounded_interval(metric, lo, hi)
        rows.append({"method": method, "task": task, "metric": metric, "mean": mean, "ci_low": lo, "ci_high": hi,
                     "n": int(g["n_train"].iloc[0] + g["n_test"].iloc[0]), "lower_is_better": metric in LOWER_IS_BETTER,
                     "ci_note": note})
    return rows


def paired_tests(folds: pd.DataFrame) -> pd.DataFrame:
    """Every pair of methods, per task and metric, on identical folds: mean difference (a - b), corrected
    resampled t statistic and p value, and the Wilcoxon signed-rank p over per-repeat means."""
    rows = []
    for (task, metric), g in folds.groupby(["task", "metric"], sort=False):
        by_method = {m: gm.sort_values(["repeat", "fold"]) for m, gm in g.groupby("method", sort=False)}
        for a, b in itertools.combinations(by_method, 2):
            ga, gb = by_method[a], by_method[b]
            sa, sb = ga["score"].to_numpy(), gb["score"].to_numpy()
            if np.isnan(sa).any() or np.isnan(sb).any() or len(sa) != len(sb):
                continue
            t, p = corrected_paired_ttest(sa, sb, ga["n_train"].mean(), ga["n_test"].mean())
            p_w = wilcoxon_repeats(ga.groupby("repeat")["score"].mean(), gb.groupby("repeat")["score"].mean())
            rows.append({"task": task, "metric": metric, "method_a": a, "method_b": b,
                         "mean_diff": float(sa.mean() - sb.mean()), "t": t, "p_corrected_t": p,
                         "p_wilcoxon": p_w, "n_folds": len(sa)})
    return pd.DataFrame(rows, columns=["task", "metric", "method_a", "method_b", "mean_diff", "t", "p_corrected_t",
                                       "p_wilcoxon", "n_folds"])


def evaluate_tasks(features: Mapping[str, pd.DataFrame], participants: pd.DataFrame, tasks: Sequence[Task],
                   n_splits: int = 5, n_repeats: int = 5, seed: int = 0, site_column: str | None = None,
                   interval: str = "corrected", grid=GRID, class_weight: str | None = None,
                   progress: Callable[[str], None] | None = None, ceiling: pd.DataFrame | None = None) -> Results:
    """Score linear probes of every feature table on every task.

    ``features``: method name -> feature table (index participant_id). ``participants``: label table
    indexed by participant_id (see :func:`anatlearn.data.tables.read_participants`). ``site_column``:
    stratify the outer folds by site as well. ``ceiling``: a feature table probed on the same folds as the
    method :data:`CEILING` (e.g. :func:`truth_features`), ignored when choosing the subjects. Returns :class:`Results` with the tidy table, per-fold scores
    and paired tests.
    """
    if not features:
        raise ConfigError("no feature table given")
    if interval not in INTERVALS:
        raise ConfigError(f"unknown interval {interval!r}; choose one of {', '.join(INTERVALS)}")
    if site_column is not None and site_column not in participants.columns:
        raise DataError(f"site column {site_column!r} not found in {participants.attrs.get('source', 'the participants table')}")
    tables = {m: match_ids(validate_features(f, m), participants, m) for m, f in features.items()}
    probed = dict(tables)
    if ceiling is not None:
        probed[CEILING] = match_ids(validate_features(ceiling, CEILING), participants, CEILING)
    fold_rows = []
    for task in tasks:
        y = task.select(participants)
        ids = y.index
        for m, f in tables.items():
            ids = ids[ids.isin(f.index)]
        if len(ids) == 0:
            raise DataError(f"task {task.name}: no subject of the task has features in every table "
                            f"({', '.join(tables)})")
        yv = y.loc[ids].to_numpy()
        sites = participants.loc[ids, site_column].to_numpy() if site_column else None
        names = dict(enumerate(task.classes())) or None
        splits = make_splits(yv, task.kind, n_splits, n_repeats, seed, sites, task.name, names)
        for m, f in probed.items():
            if m == CEILING and not ids.isin(f.index).all():
                continue  # a truth that misses subjects of the task is no ceiling of it
            if progress:
                progress(f"{task.name} / {m}")
            for rec in cross_validate(f.loc[ids].to_numpy(), yv, task.kind, splits, grid, seed, class_weight):
                fold_rows.append({"method": m, "task": task.name, **rec})
    folds = pd.DataFrame(fold_rows)
    table = pd.DataFrame(_summarise(folds, interval), columns=TABLE_COLUMNS)
    config = {"n_splits": n_splits, "n_repeats": n_repeats, "site_column": site_column, "interval": interval,
              "grid": list(map(float, grid)), "class_weight": class_weight,
              "task_set": " + ".join(dict.fromkeys(t.task_set for t in tasks if t.task_set)) or None,
              "participants": participants.attrs.get("source"),
              "tasks": [t.__dict__ | {"positive": list(t.positive), "negative": list(t.negative)} for t in tasks],
              "feature_metadata": {m: f.attrs.get("metadata", {}) for m, f in tables.items()},
              "ceiling": CEILING if ceiling is not None else None}
    return Results(kind="tasks", table=table, folds=folds, paired=paired_tests(folds),
                   provenance=provenance(seed, config),
                   inputs={"features": tables_identity(features), "participants": participants.attrs.get("source")})
