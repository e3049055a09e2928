"""The downstream task registry: a task is a label column of the participants table plus a subject filter.

- classification (diagnosis): ``column`` holds group labels; subjects whose value is in ``positive`` get
  label 1, in ``negative`` label 0; everyone else is left out. Scored by balanced accuracy and ROC AUC.
- regression (clinical score): ``column`` is numeric; scored by MAE and R^2.
Both accept ``where = {column = [values...]}``: keep only subjects whose value in that column is listed.

Tasks are read from TOML. Presets ship with the package (``anatlearn/evaluate/presets/<name>.toml``) and
use *canonical* column names (``diagnosis``, ``mmse``...); a user file maps them onto the columns of their
own table and may add tasks::

    preset = "adni"               # or presets = ["adni", "oasis3"]
    [columns]                     # canonical name -> your column
    diagnosis = "DX_bl"
    mmse = "MMSE_bl"
    [tasks.MY-TASK]
    kind = "classification"
    column = "DX_bl"              # user tasks name their own columns directly
    positive = ["EMCI", "LMCI"]
    negative = ["CN"]
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from anatlearn.errors import ConfigError, DataError, listed
from anatlearn.evaluate.probes import KINDS

_TASK_KEYS = {"kind", "column", "positive", "negative", "where", "description"}


def _label_strings(values: pd.Series) -> pd.Series:
    """Column values as comparable strings: integral floats (1.0 read from a CSV) become '1'; NaN stays NaN."""
    def one(v):
        if v is None or (isinstance(v, float) and np.isnan(v)):
            return np.nan
        if isinstance(v, (float, np.floating)) and float(v).is_integer():
            v = int(v)
        return str(v).strip()
    return values.map(one)


@dataclass(frozen=True)
class Task:
    """A downstream task. ``select(participants)`` returns the subjects it uses and their labels."""
    name: str
    kind: str
    column: str
    positive: tuple[str, ...] = ()
    negative: tuple[str, ...] = ()
    where: dict = field(default_factory=dict)
    description: str = ""
    task_set: str = ""  # the preset or TOML file it was loaded from (names the report's section)

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ConfigError(f"task {self.name}: kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if self.kind == "classification":
            if not self.positive or not self.negative:
                raise ConfigError(f"task {self.name}: a classification task needs 'positive' and 'negative' values")
            overlap = set(self.positive) & set(self.negative)
            if overlap:
                raise ConfigError(f"task {self.name}: values {sorted(overlap)} are both positive and negative")

    def columns(self) -> list[str]:
        return [self.column, *self.where]

    def classes(self) -> list[str]:
        """Names of the labels 0 and 1 of :meth:`select` (negative, then positive values joined by "/");
        none for a regression task."""
        return ["/".join(self.negative), "/".join(self.positive)] if self.kind == "classification" else []

    def label_spec(self) -> dict:
        """Which table values make each class (and which rows count): what a saved model records so that
        prediction can refuse labels it never saw."""
        values = [list(self.negative), list(self.positive)] if self.kind == "classification" else []
        return {"column": self.column, "where": {c: list(v) for c, v in self.where.items()}, "class_values": values}

    def select(self, participants: pd.DataFrame) -> pd.Series:
        """Labels (index: participant ids) of the subjects this task uses: 0/1 for classification, floats
        for regression. Missing columns and non-numeric scores are errors naming the task and table."""
        source = participants.attrs.get("source", "the participants table")
        for col in self.columns():
            if col not in participants.columns:
                raise DataError(f"task {self.name}: column {col!r} not found in {source} "
                                f"(columns: {listed(participants.columns)})")
        keep = pd.Series(True, index=participants.index)
        for col, allowed in self.where.items():
            keep &= _label_strings(participants[col]).isin([str(a) for a in allowed])
        values = participants.loc[keep, self.column]
        if self.kind == "classification":
            labels = _label_strings(values)
            y = pd.Series(np.nan, index=labels.index)
            y[labels.isin(self.positive)] = 1
            y[labels.isin(self.negative)] = 0
            return y.dropna().astype(int)
        y = pd.to_numeric(values, errors="coerce")
        bad = values.notna() & y.isna()
        if bad.any():
            raise DataError(f"task {self.name}: column {self.column!r} of {source} has non-numeric values "
                            f"(e.g. {values[bad].iloc[0]!r} for {bad[bad].index[0]})")
        return y.dropna().astype(float)


def available_presets() -> list[str]:
    """Names of the shipped presets (``adni``, ``oasis3``, ``schizconnect``, ``abide``, ``synthetic``)."""
    folder = resources.files("anatlearn.evaluate") / "presets"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".toml"))


def _read_toml(text: str, source: str) -> dict:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"task file {source} is not valid TOML: {exc}") from None


def _parse_tasks(table: dict, source: str, columns: dict[str, str] | None = None) -> dict[str, Task]:
    """Build tasks from a ``[tasks.NAME]`` table, renaming canonical columns through ``columns``."""
    columns = columns or {}
    out = {}
    for name, spec in table.items():
        if not isinstance(spec, dict):
            raise ConfigError(f"{source}: [tasks.{name}] must be a table")
        unknown = set(spec) - _TASK_KEYS
        if unknown:
            raise ConfigError(f"{source}: task {name} has unknown keys {sorted(unknown)}; allowed: {sorted(_TASK_KEYS)}")
        if "kind" not in spec or "column" not in spec:
            raise ConfigError(f"{source}: task {name} needs 'kind' and 'column'")
        where = {columns.get(c, c): [str(v) for v in vals] for c, vals in spec.get("where", {}).items()}
        out[name] = Task(name=name, kind=spec["kind"], column=columns.get(spec["column"], spec["column"]),
                         positive=tuple(str(v) for v in spec.get("positive", ())),
                         negative=tuple(str(v) for v in spec.get("negative", ())),
                         where=where, description=str(spec.get("description", "")))
    return out


def load_preset(name: str, columns: dict[str, str] | None = None) -> dict[str, Task]:
    """Tasks of a shipped preset, with canonical columns renamed through ``columns`` (and the preset's own
    ``[columns]`` defaults)."""
    if name not in available_presets():
        raise ConfigError(f"unknown task preset {name!r}; choose one of {', '.join(available_presets())} or give a TOML file")
    text = (resources.files("anatlearn.evaluate") / "presets" / f"{name}.toml").read_text()
    data = _read_toml(text, f"preset {name}")
    mapping = {**data.get("columns", {}), **(columns or {})}
    return _parse_tasks(data.get("tasks", {}), f"preset {name}", mapping)


def load_tasks(spec: str | os.PathLike, columns: dict[str, str] | None = None,
               select: list[str] | None = None) -> list[Task]:
    """Tasks from a preset name or a TOML file (see module docstring); ``select`` keeps the named tasks.

    ``columns`` (canonical -> actual) overrides the file's ``[columns]`` mapping for preset tasks.
    """
    spec_s = str(spec)
    if spec_s in available_presets():
        tasks = load_preset(spec_s, columns)
    else:
        path = Path(spec)
        if not path.is_file():
            raise ConfigError(f"`spec` {spec_s}: neither a preset ({', '.join(available_presets())}) nor a file")
        data = _read_toml(path.read_text(), str(path))
        unknown = set(data) - {"preset", "presets", "columns", "tasks"}
        if unknown:
            raise ConfigError(f"task file {path}: unknown top-level keys {sorted(unknown)}")
        mapping = {**data.get("columns", {}), **(columns or {})}
        presets = data.get("presets", [])
        if "preset" in data:
            presets = [data["preset"], *presets]
        tasks = {}
        for name in presets:
            tasks.update(load_preset(name, mapping))
        tasks.update(_parse_tasks(data.get("tasks", {}), str(path)))
    task_set = spec_s if spec_s in available_presets() else Path(spec).stem
    tasks = {name: replace(t, task_set=task_set) for name, t in tasks.items()}
    if select:
        missing = [s for s in select if s not in tasks]
        if missing:
            raise ConfigError(f"unknown task(s) {', '.join(missing)}; available: {', '.join(tasks)}")
        tasks = {s: tasks[s] for s in select}
    if not tasks:
        raise ConfigError(f"`spec` {spec_s} defines no task")
    return list(tasks.values())


def rename_columns(task: Task, columns: dict[str, str]) -> Task:
    """The same task reading renamed columns (used when a caller maps columns after loading)."""
    return replace(task, column=columns.get(task.column, task.column),
                   where={columns.get(c, c): v for c, v in task.where.items()})
