"""Linear probes saved by ``evaluate tasks --save-probes`` and applied to new subjects' features
(``anatlearn predict --model PROBE.json --features NEW``).

A saved probe is the probe of ``evaluate tasks`` (:class:`anatlearn.evaluate.probes.LinearProbe`: standardise,
then logistic regression or ridge with the penalty chosen by inner CV on the same grid) refitted on every
subject of the task. It is stored as plain JSON, not a pickle: the standardisation (mean, scale), the
linear weights ``w`` and intercept ``b``, the chosen penalty, the class names and which table values make
each class (the record a fine-tuned model carries), the feature columns and the encoder the features came
from (its identity, :mod:`anatlearn.data.lineage`: features of another encoder are refused by weight hash).
Prediction is the linear map itself, z = w . (x - mean) / scale + b: p(positive) = 1 / (1 + e^-z)
for a classification task (Cox 1958), the predicted value z for a regression task.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from anatlearn.errors import DataError
from anatlearn.evaluate.probes import GRID, LinearProbe
from anatlearn.evaluate.tasks import Task
from anatlearn.io import atomic_write_text
from anatlearn.data.lineage import identity_of, table_identity
from anatlearn.provenance import provenance

FORMAT = "anatlearn-linear-probe"


def probe_record(features: pd.DataFrame, participants: pd.DataFrame, task: Task, method: str, grid=GRID,
                 seed: int = 0, class_weight: str | None = None) -> dict:
    """``task``'s probe fitted on every subject it selects that has features, as a JSON-ready record."""
    y = task.select(participants)
    ids = y.index[y.index.isin(features.index)]
    if len(ids) == 0:
        raise DataError(f"task {task.name}: no subject of the task has features ({method})")
    probe = LinearProbe(task.kind, grid, seed, class_weight).fit(features.loc[ids].to_numpy(float), y.loc[ids].to_numpy())
    scaler, model = probe.pipeline_[0], probe.pipeline_[-1]
    classification = task.kind == "classification"
    meta = features.attrs.get("metadata", {}) or {}
    return {"format": FORMAT, "format_version": 1, "method": method, "task": task.name, "kind": task.kind,
            "classes": task.classes(), "target": task.column, "label_spec": task.label_spec(),
            "features": list(map(str, features.columns)), "encoder": meta.get("checkpoint"),
            "encoder_identity": identity_of(features), "fitted_on": table_identity(features, method),
            "mean": scaler.mean_.tolist(), "scale": scaler.scale_.tolist(), "coef": model.coef_.ravel().tolist(),
            "intercept": float(np.ravel(model.intercept_)[0]),
            "penalty": {"C": float(np.ravel(model.C_)[0])} if classification else {"alpha": float(model.alpha_)},
            "n_subjects": int(len(ids)), "provenance": provenance(seed, {"grid": list(map(float, grid)),
                                                                         "class_weight": class_weight})}


def save_probes(features: Mapping[str, pd.DataFrame], participants: pd.DataFrame, tasks: Sequence[Task], out,
                grid=GRID, seed: int = 0, class_weight: str | None = None) -> list[Path]:
    """Every (method, task) probe refitted on all its subjects: ``out/<method>/<task>.json``."""
    paths = []
    for method, table in features.items():
        for task in tasks:
            path = Path(out) / method / f"{task.name}.json"
            record = probe_record(table, participants, task, method, grid, seed, class_weight)
            atomic_write_text(path, json.dumps(record, indent=1))
            paths.append(path)
    return paths


def is_probe(path) -> bool:
    """A file written by :func:`save_probes`."""
    path = Path(path)
    if path.suffix != ".json" or not path.is_file():
        return False
    try:
        return json.loads(path.read_text()).get("format") == FORMAT
    except (OSError, ValueError, AttributeError):
        return False


def load_probe(path) -> dict:
    """A saved probe, checked: a file that is not one is refused, naming it."""
    try:
        record = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: not a readable saved probe ({exc})") from exc
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise DataError(f"{path}: not a saved linear probe (write one with `evaluate tasks --save-probes`)")
    return record


def load_linear_probe(path) -> LinearProbe:
    """A saved probe as a fitted :class:`~anatlearn.evaluate.probes.LinearProbe` (``predict``,
    ``predict_proba`` on feature tables with the probe's columns, in its order)."""
    return LinearProbe.from_record(load_probe(path))


def apply_probe(record: dict, features: pd.DataFrame, source: str) -> np.ndarray:
    """Class probabilities (n x 2: the negative class, then the positive) or predicted values (n) of every
    row of ``features``; a table without the probe's feature columns is refused, naming ``source``."""
    missing = [c for c in record["features"] if c not in features.columns]
    if missing:
        raise DataError(f"{source} lacks {len(missing)} of the {len(record['features'])} feature columns the probe "
                        f"was fitted on (e.g. {', '.join(missing[:3])}): embed the subjects with the same encoder")
    x = features[record["features"]].to_numpy(float)
    z = (x - np.asarray(record["mean"])) / np.asarray(record["scale"]) @ np.asarray(record["coef"]) + record["intercept"]
    if record["kind"] != "classification":
        return z
    p = 1.0 / (1.0 + np.exp(-z))
    return np.column_stack([1.0 - p, p])
