"""Telling the report's inputs apart when they share names (issue: no silent wrong result).

Two results directories can hold the same method name for the same evaluation (``report A A``, or two runs
whose features were both called ``healthy.parquet``); a headline built from both would put two numbers in
one cell. The same directory given twice is shown once; otherwise every method whose name occurs in more
than one input of the same kind is renamed ``method (folder)``, with as many parent folders as it takes to
tell the inputs apart (:func:`short_names`), in every part of the results (table, folds, paired tests,
predictions, per-method extras). Feature tables given to the report are named the same way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import pandas as pd

from anatlearn.evaluate.results import Results


def short_names(paths: Sequence[str | Path]) -> list[str]:
    """The last folder of each path, with as many parent folders as it takes to make the names distinct."""
    parts = [Path(p).resolve().parts for p in paths]
    depth = [1] * len(parts)
    while True:
        names = ["/".join(p[-d:]) for p, d in zip(parts, depth)]
        clash = [i for i, n in enumerate(names) if names.count(n) > 1 and depth[i] < len(parts[i])]
        if not clash:
            return names
        for i in clash:
            depth[i] += 1


def unique_inputs(paths: Sequence[Path]) -> tuple[list[Path], list[str]]:
    """The paths with repeats (the same directory, however spelled) left out, and a note per repeat."""
    seen, kept, notes = set(), [], []
    for p in paths:
        key = Path(p).resolve()
        if key.is_file() and key.name == "results.json":
            key = key.parent
        if key in seen:
            notes.append(f"{p} was given more than once; it is shown once.")
            continue
        seen.add(key)
        kept.append(Path(p))
    return kept, notes


def rename_methods(res: Results, mapping: dict[str, str]) -> Results:
    """``res`` with its methods renamed everywhere they appear (in place, returned for chaining)."""
    if not mapping:
        return res
    for frame in (res.table, res.folds, res.predictions):
        if frame is not None and "method" in frame.columns:
            frame["method"] = frame["method"].astype(str).replace(mapping)
    if res.paired is not None:
        for col in ("method_a", "method_b"):
            if col in res.paired.columns:
                res.paired[col] = res.paired[col].astype(str).replace(mapping)
    res.extra = {mapping.get(k, k): v for k, v in res.extra.items()}
    if isinstance(res.extra.get("per_target"), dict):
        res.extra["per_target"] = {mapping.get(k, k): v for k, v in res.extra["per_target"].items()}
    if isinstance(res.extra.get("methods"), dict):
        res.extra["methods"] = {mapping.get(k, k): v for k, v in res.extra["methods"].items()}
    cfg = res.provenance.get("config") or {}
    if isinstance(cfg.get("feature_metadata"), dict):
        cfg["feature_metadata"] = {mapping.get(k, k): v for k, v in cfg["feature_metadata"].items()}
    return res


def _methods(res: Results) -> list[str]:
    return [] if res.table is None or "method" not in res.table.columns else \
        list(dict.fromkeys(res.table["method"].astype(str)))


def disambiguate(loaded: Sequence[tuple[Path, Results]]) -> list[str]:
    """Rename, in place, the methods that occur in more than one results input of the same kind; returns a
    plain-words note per renamed method ("" notes are not returned)."""
    notes = []
    for kind in dict.fromkeys(r.kind for _, r in loaded):
        of_kind = [(p, r) for p, r in loaded if r.kind == kind]
        counts = pd.Series([m for _, r in of_kind for m in _methods(r)]).value_counts()
        shared = set(counts[counts > 1].index)
        if not shared:
            continue
        holders = [(p, r) for p, r in of_kind if shared & set(_methods(r))]
        labels = short_names([p.parent if p.suffix == ".json" else p for p, _ in holders])
        for (p, r), label in zip(holders, labels):
            rename_methods(r, {m: f"{m} ({label})" for m in _methods(r) if m in shared})
        for m in sorted(shared):
            notes.append(f"The method name {m} occurs in several {kind} results; each is named by its folder: "
                         + ", ".join(f"{m} ({label})" for (p, r), label in zip(holders, labels)
                                     if f"{m} ({label})" in _methods(r)) + ".")
    return notes


def feature_names(specs: Sequence[str]) -> list[tuple[str, str]]:
    """``NAME=PATH`` or ``PATH`` strings -> (name, path) pairs, names made distinct: a name given twice
    becomes ``name (folder)`` with the folders that tell the files apart."""
    pairs = []
    for spec in specs:
        name, sep, path = spec.partition("=")
        pairs.append((name, path) if sep else (Path(spec).stem, spec))
    counts = pd.Series([n for n, _ in pairs]).value_counts()
    clashing = [i for i, (n, _) in enumerate(pairs) if counts[n] > 1]
    if clashing:
        labels = short_names([Path(pairs[i][1]).parent for i in clashing])
        if len(set(labels)) < len(labels):  # the same file twice: its full path tells nothing apart
            labels = [f"{label} #{k + 1}" for k, label in enumerate(labels)]
        for i, label in zip(clashing, labels):
            pairs[i] = (f"{pairs[i][0]} ({label})", pairs[i][1])
    return pairs


def read_feature_args(specs: Sequence[str]) -> dict[str, pd.DataFrame]:
    """Feature tables of ``anatlearn report --features``: like the evaluations' ``--features``, but a name
    given twice is told apart by its folder instead of refused (a report shows what it is given)."""
    from anatlearn.features import read_features

    return {name: read_features(path) for name, path in feature_names(specs)}
