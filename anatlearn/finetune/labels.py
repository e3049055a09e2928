"""Which subjects a fine-tune uses, their labels, and the outer and inner splits.

Labels come either from a task of ``evaluate tasks`` (a preset or TOML file: the same subjects and the same
0/1 coding, hence the same folds) or from a bare column of the participants table (classification: one
class per distinct value, sorted; regression: the numeric value).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from anatlearn.errors import ConfigError, DataError, listed
from anatlearn.evaluate import Task, make_splits

from anatlearn.finetune.config import KINDS


def as_label(value) -> str | None:
    """A table value as a label string: integral floats (1.0 read from a CSV) become '1'; missing is None."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        value = int(value)
    return str(value).strip()


@dataclass
class Labels:
    """Subjects (participant ids, table order) and their targets: class codes 0..K-1 or floats.

    ``spec`` records how raw table values map to targets, so that prediction can refuse values the model
    never saw: ``{"column", "where": {column: [values]}, "class_values": [[raw values of class k], ...]}``.
    """
    name: str
    kind: str
    ids: list
    y: np.ndarray
    classes: list = field(default_factory=list)
    spec: dict = field(default_factory=dict)

    def subset(self, keep: np.ndarray) -> "Labels":
        keep = np.asarray(keep, dtype=bool)
        return Labels(self.name, self.kind, [i for i, k in zip(self.ids, keep) if k], self.y[keep],
                      list(self.classes), dict(self.spec))


def labels_from_task(task: Task, participants: pd.DataFrame) -> Labels:
    """The subjects and 0/1 (or numeric) labels that ``evaluate tasks`` uses for ``task``."""
    y = task.select(participants)
    return Labels(task.name, task.kind, [str(i) for i in y.index], y.to_numpy(), task.classes(), task.label_spec())


def labels_from_column(participants: pd.DataFrame, column: str, kind: str | None = None) -> Labels:
    """Labels from a bare column; ``kind`` None: regression for a numeric column with more than 10 values."""
    source = participants.attrs.get("source", "the participants table")
    if column not in participants.columns:
        raise DataError(f"target column {column!r} not found in {source} "
                        f"(columns: {listed(participants.columns)})")
    values = participants[column]
    numeric = pd.to_numeric(values, errors="coerce")
    if kind is None:
        kind = "regression" if numeric.notna().sum() == values.notna().sum() and numeric.nunique() > 10 \
            else "classification"
    if kind not in KINDS:
        raise ConfigError(f"`kind` must be one of {', '.join(KINDS)}, got {kind!r}")
    if kind == "regression":
        bad = values.notna() & numeric.isna()
        if bad.any():
            raise DataError(f"target column {column!r} of {source} has non-numeric values (e.g. "
                            f"{values[bad].iloc[0]!r} for {bad[bad].index[0]}); is it a classification target?")
        keep = numeric.dropna()
        return Labels(column, kind, [str(i) for i in keep.index], keep.to_numpy(float), [],
                      {"column": column, "where": {}, "class_values": []})
    strings = values.map(as_label).dropna()
    classes = sorted(strings.unique())
    if len(classes) < 2:
        raise DataError(f"target column {column!r} of {source} holds a single class ({classes[0] if classes else 'none'})")
    code = {c: k for k, c in enumerate(classes)}
    return Labels(column, kind, [str(i) for i in strings.index], strings.map(code).to_numpy(int), classes,
                  {"column": column, "where": {}, "class_values": [[c] for c in classes]})


def align(labels: Labels, image_ids: list[str], source: str) -> tuple[Labels, np.ndarray]:
    """The labelled subjects that have an image (table order) and their rows in the image dataset."""
    row_of = {str(p).strip(): r for r, p in enumerate(image_ids)}
    keep = np.array([i in row_of for i in labels.ids], dtype=bool)
    if not keep.any():
        raise DataError(f"no labelled subject ({labels.name}) has an image in {source}")
    kept = labels.subset(keep)
    return kept, np.array([row_of[i] for i in kept.ids], dtype=int)


def outer_splits(labels: Labels, folds: int, seed: int):
    """The outer folds: repeat 0 of ``evaluate tasks``' splits for the same labels and seed."""
    names = dict(enumerate(labels.classes)) if labels.kind == "classification" else None
    return make_splits(labels.y, labels.kind, folds, 1, seed, task=labels.name, class_names=names)


def inner_split(y: np.ndarray, kind: str, inner_folds: int, seed: int, task: str) -> tuple[np.ndarray, np.ndarray]:
    """(train, validation) positions into ``y`` (the outer-training part only): the first fold of a
    stratified ``inner_folds``-fold split, seeded apart from the outer folds."""
    split = make_splits(y, kind, inner_folds, 1, seed + 7919, task=f"{task} (inner split)")[0]
    return split.train, split.test


def prediction_table(ids, pred: np.ndarray, kind: str, classes) -> pd.DataFrame:
    """One row per participant: the predicted class and each class's probability, or the predicted value."""
    table = pd.DataFrame({"participant_id": list(ids)})
    if kind == "classification":
        pred = np.asarray(pred, dtype=float).reshape(len(table), len(classes))
        table["predicted"] = [classes[k] for k in pred.argmax(1)]
        for k, name in enumerate(classes):
            table[f"prob_{name}"] = pred[:, k]
    else:
        table["predicted"] = np.asarray(pred, dtype=float).reshape(-1)
    return table
