"""Fine-tunes against linear probes on the same outer folds, with the paired corrected test.

The report renders the files :func:`compare` writes (``comparison.csv``: mean and Nadeau-Bengio corrected
95 % interval per method and metric; ``comparison_paired.csv``: every pair of methods, the corrected
resampled t-test over the paired folds and the Wilcoxon p; ``comparison.json``: both, plus the inputs).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from anatlearn.errors import DataError
from anatlearn.evaluate.stats import bounded_interval
from anatlearn.evaluate import Split, corrected_interval, cross_validate, paired_tests
from anatlearn.io import atomic_write_text

FOLD_COLUMNS = ["method", "task", "repeat", "fold", "metric", "score", "n_train", "n_test"]


def run_splits(run_dir) -> tuple[dict, list[Split]]:
    """A fine-tuning run's record (config.json) and its outer folds as :class:`anatlearn.evaluate.Split`."""
    run_dir = Path(run_dir)
    record = json.loads((run_dir / "config.json").read_text())
    folds = json.loads((run_dir / "splits.json").read_text())["folds"]
    position = {pid: k for k, pid in enumerate(record["subjects"])}
    splits = []
    for k, test_ids in enumerate(folds):
        test = np.array(sorted(position[i] for i in test_ids))
        splits.append(Split(0, k, np.setdiff1d(np.arange(len(position)), test), test))
    return record, splits


def probe_on_splits(features: pd.DataFrame, run_dir, method: str = "probe") -> pd.DataFrame:
    """The linear probe of ``evaluate tasks`` (:func:`anatlearn.evaluate.cross_validate`, same grid and
    seeds) fitted on ``features`` over the exact outer folds of the fine-tuning run ``run_dir``; fold
    scores in the tidy layout of ``evaluate tasks``' folds.csv."""
    record, splits = run_splits(run_dir)
    missing = [i for i in record["subjects"] if i not in features.index]
    if missing:
        raise DataError(f"features: {len(missing)} subject(s) of the fine-tuning run {run_dir} have no features "
                        f"(e.g. {', '.join(missing[:3])})")
    X = features.loc[record["subjects"]].to_numpy(dtype=float)
    y = np.asarray(record["targets"])
    records = cross_validate(X, y, record["kind"], splits, seed=record["config"]["seed"])
    task = Path(run_dir).joinpath("results.json")
    name = json.loads(task.read_text())["task"] if task.exists() else record["target"]
    return pd.DataFrame([{"method": method, "task": name, **r} for r in records], columns=FOLD_COLUMNS)


def fold_scores(source, method: str) -> pd.DataFrame:
    """Repeat 0 of a source's fold scores (see :func:`compare`), named ``method`` unless it names several."""
    if isinstance(source, pd.DataFrame):
        table = source.copy()
    else:
        path = Path(source)
        table = pd.read_csv(path / "folds.csv" if path.is_dir() else path)
    table = table[table["repeat"] == 0] if "repeat" in table else table
    if "method" not in table or table["method"].nunique() <= 1:
        table = table.assign(method=method)
    return table[FOLD_COLUMNS]


def _check_paired(folds: pd.DataFrame) -> None:
    """Every method must have been scored on folds of the same sizes (a cheap check that they are paired);
    the error names what differs (the number of folds, the subjects, or how they were split) and both values."""
    for task, g in folds.groupby("task", sort=False):
        per = {m: gm[["fold", "n_train", "n_test"]].drop_duplicates().sort_values("fold")
               for m, gm in g.groupby("method", sort=False)}
        (ref, a), others = next(iter(per.items())), list(per.items())[1:]
        for other, b in others:
            head = f"task {task}: {ref} and {other} were not scored on the same folds"
            if len(a) != len(b):
                raise DataError(f"{head}: {len(a)} outer folds against {len(b)}; compare runs made with the same "
                                f"number of folds (--folds of finetune and evaluate tasks)")
            na, nb = (int(t["n_train"].iloc[0] + t["n_test"].iloc[0]) for t in (a, b))
            if na != nb:
                raise DataError(f"{head}: {na} subjects against {nb}; use the same participants table and task")
            sa, sb = (list(map(int, t["n_test"])) for t in (a, b))
            if sa != sb:
                raise DataError(f"{head}: test folds of {sa} subjects against {sb} (same {na} subjects, split "
                                f"another way); use the same seed (--seed of finetune and evaluate tasks)")


def compare(sources: dict, out=None) -> dict:
    """``sources``: method name -> a fine-tuning run directory, an ``evaluate tasks`` results directory or
    folds.csv (its repeat 0 is used), or a fold-score DataFrame. Returns ``{"table", "paired", "folds"}``
    DataFrames and writes them to ``out`` (a directory) if given."""
    folds = pd.concat([fold_scores(src, name) for name, src in sources.items()], ignore_index=True)
    _check_paired(folds)
    rows = []
    for (method, task, metric), g in folds.groupby(["method", "task", "metric"], sort=False):
        scores = g["score"].to_numpy(float)
        mean, lo, hi = corrected_interval(scores, g["n_train"].mean(), g["n_test"].mean())
        lo, hi, note = bounded_interval(metric, lo, hi)
        rows.append({"method": method, "task": task, "metric": metric, "mean": mean, "ci_low": lo, "ci_high": hi,
                     "ci_note": note,
                     "sd": float(scores.std(ddof=1)) if len(scores) > 1 else float("nan"), "n_folds": len(scores),
                     "n": int(g["n_train"].iloc[0] + g["n_test"].iloc[0])})
    table, paired = pd.DataFrame(rows), paired_tests(folds)
    if out is not None:
        out = Path(out)
        atomic_write_text(out / "comparison.csv", table.to_csv(index=False))
        atomic_write_text(out / "comparison_paired.csv", paired.to_csv(index=False))
        atomic_write_text(out / "comparison.json", json.dumps(
            {"kind": "finetune-comparison", "table": table.to_dict("records"), "paired": paired.to_dict("records"),
             "folds": folds.to_dict("records"), "sources": {k: (str(v) if not isinstance(v, pd.DataFrame) else
                                                                "table") for k, v in sources.items()}},
            indent=1, allow_nan=True))
        comparison_results(table, paired, folds).write(out)  # what `anatlearn report OUT` reads
    return {"table": table, "paired": paired, "folds": folds}


def comparison_results(table: pd.DataFrame, paired: pd.DataFrame | None, folds: pd.DataFrame,
                       cohort: str | None = None):
    """The comparison as a results directory's content (kind "finetune-comparison"), so that the report shows
    fine-tune, linear probe and random-init fine-tune side by side with the paired corrected tests."""
    from anatlearn.evaluate.probes import LOWER_IS_BETTER
    from anatlearn.evaluate.results import TABLE_COLUMNS, Results
    from anatlearn.provenance import provenance

    rows = table.assign(lower_is_better=table["metric"].isin(LOWER_IS_BETTER))
    config = {"methods": sorted(table["method"].unique()), **({"cohort": cohort} if cohort else {})}
    return Results(kind="finetune-comparison", table=rows.reindex(columns=TABLE_COLUMNS), paired=paired,
                   folds=folds, provenance=provenance(None, config))
