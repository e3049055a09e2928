"""One results format for every evaluation (OpenBHB protocol, downstream tasks), read by the report and demo.

A results directory holds:
- ``results.csv``: the tidy table, one row per (method, task, metric) with columns
  ``method, task, metric, mean, ci_low, ci_high, n, lower_is_better, ci_note`` (n = subjects scored;
  intervals lie within the metric's range, and ci_note says "n too small" where none could be given);
- ``folds.csv``: per-fold scores (``method, task, metric, repeat, fold, score, n_train, n_test``), if any;
- ``paired.csv``: paired tests between methods, if any;
- ``predictions.csv``: per-subject predictions (OpenBHB: age and site), if any;
- ``results.json``: all of the above plus ``extra`` (e.g. site confusion matrices), provenance and ``inputs``:
  the identity of every feature table used (file, content hash, encoder weight hash:
  :func:`anatlearn.data.lineage.tables_identity`) and the participants table.
All files are written atomically; ``results.json`` last, so its presence means the directory is complete.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from anatlearn.errors import DataError
from anatlearn.io import atomic_write_text

TABLE_COLUMNS = ["method", "task", "metric", "mean", "ci_low", "ci_high", "n", "lower_is_better", "ci_note"]
_PARTS = ("folds", "paired", "predictions")


def _records(df: pd.DataFrame | None) -> list[dict] | None:
    if df is None:
        return None
    return json.loads(df.to_json(orient="records", double_precision=15))


@dataclass
class Results:
    """Evaluation results: the tidy ``table`` plus optional per-fold scores, paired tests, predictions."""
    kind: str
    table: pd.DataFrame
    folds: pd.DataFrame | None = None
    paired: pd.DataFrame | None = None
    predictions: pd.DataFrame | None = None
    extra: dict = field(default_factory=dict)
    provenance: dict = field(default_factory=dict)
    inputs: dict = field(default_factory=dict)  # the feature tables (and labels) used: anatlearn.data.lineage

    def write(self, out: str | os.PathLike) -> Path:
        """Write the results directory ``out`` (see module docstring); returns the path of results.json."""
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / "results.csv", self.table.to_csv(index=False))
        for name in _PARTS:
            df = getattr(self, name)
            if df is not None:
                atomic_write_text(out / f"{name}.csv", df.to_csv(index=False))
        doc = {"kind": self.kind, "table": _records(self.table), **{n: _records(getattr(self, n)) for n in _PARTS},
               "extra": self.extra, "provenance": self.provenance, "inputs": self.inputs}
        atomic_write_text(out / "results.json", json.dumps(doc, indent=1, allow_nan=True))
        return out / "results.json"

    @classmethod
    def read(cls, path: str | os.PathLike) -> "Results":
        """Read a results directory (or its results.json)."""
        path = Path(path)
        if path.is_dir():
            path = path / "results.json"
        if not path.is_file():
            raise DataError(f"no results found at {path} (expected a results directory with results.json)")
        try:
            doc = json.loads(path.read_text())
            frames = {n: (pd.DataFrame(doc[n]) if doc.get(n) is not None else None) for n in ("table", *_PARTS)}
            return cls(kind=doc["kind"], extra=doc.get("extra", {}), provenance=doc.get("provenance", {}),
                       inputs=doc.get("inputs", {}), **frames)
        except (ValueError, KeyError, TypeError) as exc:
            raise DataError(f"results file {path} is malformed ({type(exc).__name__}: {exc})") from None

    def format_table(self) -> str:
        """The tidy table as aligned text: ``mean [ci_low, ci_high]`` per method (rows) and task/metric."""
        return format_table(self.table)


def _fmt(mean: float, lo: float, hi: float, note: str = "") -> str:
    digits = 3 if abs(mean) < 10 else 2
    if math.isnan(lo) or math.isnan(hi):
        return f"{mean:.{digits}f}" + (f" ({note})" if isinstance(note, str) and note else "")
    return f"{mean:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def pivot_table(table: pd.DataFrame) -> pd.DataFrame:
    """The tidy table pivoted: one row per (task, metric), one column per method, cells 'mean [low, high]'."""
    notes = table["ci_note"].astype(object).fillna("") if "ci_note" in table else [""] * len(table)
    cells = table.assign(cell=[_fmt(m, lo, hi, note) for m, lo, hi, note
                               in zip(table["mean"], table["ci_low"], table["ci_high"], notes)])
    return cells.pivot_table(index=["task", "metric"], columns="method", values="cell", aggfunc="first", sort=False)


def format_table(table: pd.DataFrame) -> str:
    """:func:`pivot_table` as aligned text."""
    if table.empty:
        return "(no results)"
    return pivot_table(table).to_string()
