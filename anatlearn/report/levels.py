"""What each number of the report is measured against: its chance or trivial level, its direction, and the
words a reader needs instead of the column names of the results tables.

Levels come from the data of each results directory, not from constants where the data decide them: site
balanced accuracy's chance is 1 / number of training sites (the OpenBHB evaluation's
``chance_balanced_accuracy``), RankMe's maximum is min(subjects, features) (RankMe = exp of the entropy of the
normalised singular values, Garrido et al., ICML 2023, so it cannot exceed the rank of the matrix), the
trivial brain-age MAE is that of predicting every external subject the training subjects' mean age. A
binary task's balanced accuracy is 0.5 by chance, an R^2 is 0 when predicting the mean of the training
folds, and an ICC of 0 means no agreement between sessions.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import pandas as pd

from anatlearn.evaluate.results import Results

_KIND_WORDS = {"balanced_accuracy": "balanced accuracy (chance 0.5)", "roc_auc": "ROC AUC (chance 0.5)",
               "mae": "mean absolute error (lower is better)",
               "r2": "R² (0: no better than predicting the mean; below 0: worse)",
               "mae_internal": "brain-age MAE, internal test, years (lower is better)",
               "mae_external": "brain-age MAE, external sites, years (lower is better)",
               "balanced_accuracy_internal": "site balanced accuracy (chance 1 / sites; lower: less site information)",
               "score": "challenge score = site BAcc^0.3 × external MAE (lower is better)",
               "rankme": "RankMe, effective rank (higher: features use more dimensions)",
               "rankme_centred": "RankMe of the centred features (between-subject variation)",
               "ICC median": "median ICC over features (1: identical sessions, 0: no agreement)"}


def metric_words(metric: str) -> str:
    """A metric in words (``r2_GMV`` -> R² of the true GMV), for the rows of the results tables."""
    if metric.startswith("r2_"):
        return f"R² of the true {metric[3:]} (0: no better than the mean)"
    return _KIND_WORDS.get(metric, metric.replace("_", " "))


def task_words(task: str) -> str:
    """An evaluation's task in words (``brain_age`` -> brain age)."""
    return {"brain_age": "brain age", "challenge": "OpenBHB challenge"}.get(str(task), str(task))


def target_words(name: str) -> str:
    """A target of anatomy recovery in words: the latent factors u0..u6, v0..v4 of the synthetic world
    (docs/synthetic.md: u0 global thickness, v0 total area, the others network factors)."""
    s = str(name)
    if len(s) >= 2 and s[0] in "uv" and s[1:].isdigit():
        what = "thickness" if s[0] == "u" else "area"
        return f"{what} factor {s[1:]}" + (" (global)" if s[1:] == "0" else " (network)")
    return s


def _n_features(res: Results, method: str) -> int | None:
    cfg = res.provenance.get("config", {}) or {}
    n = (cfg.get("n_features") or {}).get(method) if isinstance(cfg.get("n_features"), dict) else None
    if n is None:
        meta = (cfg.get("feature_metadata") or {}).get(method) or {}
        n = meta.get("n_features") or meta.get("feature_dim")
    return int(n) if n else None


def _trivial_mae(res: Results, method: str, split: str = "external_test") -> float | None:
    """MAE on a test split of predicting every subject the training subjects' mean age."""
    pred = res.predictions
    if pred is None or not {"split", "age", "method"} <= set(pred.columns):
        return None
    p = pred[pred["method"].astype(str) == method]
    train, ext = p[p["split"] == "train"]["age"], p[p["split"] == split]["age"]
    if train.empty or ext.empty:
        return None
    return float(np.mean(np.abs(ext.astype(float) - float(train.astype(float).mean()))))


def _one(values: list[float], fmt: str) -> str:
    values = sorted(set(round(v, 3) for v in values if v is not None and math.isfinite(v)))
    if not values:
        return ""
    return format(values[0], fmt) if len(values) == 1 else f"{values[0]:{fmt}} to {values[-1]:{fmt}} (by method)"


def levels(results: Sequence[Results]) -> dict[tuple[str, str], tuple[float | None, str]]:
    """(task, metric) -> (level, words) for every row of the results: chance for balanced accuracies, 0 for
    R² and ICC, RankMe's maximum, the trivial brain-age MAE, the challenge score's direction."""
    out: dict[tuple[str, str], tuple[float | None, str]] = {}
    for res in results:
        if res.table is None or res.table.empty:
            continue
        methods = list(dict.fromkeys(res.table["method"].astype(str)))
        for task, metric in res.table[["task", "metric"]].drop_duplicates().itertuples(index=False):
            task, metric = str(task), str(metric)
            level = _level(res, methods, task, metric)
            if level is not None:
                out[(task, metric)] = level
    return out


def _level(res: Results, methods: list[str], task: str, metric: str) -> tuple[float | None, str] | None:
    if metric in ("balanced_accuracy", "roc_auc") and res.kind in ("tasks", "finetune-comparison"):
        return 0.5, "0.5 (chance, 2 classes)"
    if metric == "r2" or metric.startswith("r2_"):
        return 0.0, "0 (predicting the mean)"
    if metric == "ICC median":
        return 0.0, "0 (no agreement)"
    if metric == "balanced_accuracy_internal":
        chances = [(res.extra.get(m) or {}).get("chance_balanced_accuracy") for m in methods]
        chances = [float(c) for c in chances if c is not None]
        if not chances:
            return None
        sites = sorted({round(1 / c) for c in chances})
        n = str(sites[0]) if len(sites) == 1 else f"{sites[0]} to {sites[-1]}"
        return (chances[0] if len(set(chances)) == 1 else None), f"{_one(chances, '.3f')} (chance: 1 / {n} sites)"
    if metric in ("mae_external", "mae_internal"):
        maes = [_trivial_mae(res, m, "external_test" if metric == "mae_external" else "internal_test") for m in methods]
        maes = [v for v in maes if v is not None]
        return ((maes[0] if len(set(maes)) == 1 else None), f"{_one(maes, '.1f')} (predicting the training mean age)") \
            if maes else None
    if metric in ("rankme", "rankme_centred"):
        n_subjects = pd.to_numeric(res.table.loc[res.table["metric"] == metric, "n"], errors="coerce").max()
        n_subjects -= metric == "rankme_centred"  # centring removes one dimension
        feats = [_n_features(res, m) for m in methods]
        if any(f is None for f in feats) or not math.isfinite(n_subjects):
            return None, "max: min(subjects, features)"
        maxima = [float(min(int(n_subjects), f)) for f in feats]
        return (maxima[0] if len(set(maxima)) == 1 else None), f"max {_one(maxima, '.0f')} (min of subjects, features)"
    if metric == "score":
        return None, "lower is better"
    return None


LEGEND = ("BAcc: balanced accuracy, the mean over classes of the share predicted right; MAE: mean absolute "
          "error; R²: share of the variance predicted. Chance or trivial level: what a method with no information "
          "scores. Balanced accuracy of a two-class "
          "task: 0.5; site balanced accuracy: 1 / the number of sites (lower is better there: less site "
          "information); R²: 0 when predicting the mean, below 0 worse than that; brain-age MAE: predicting every "
          "subject the training subjects' mean age; RankMe: its maximum, min(subjects, features), is reached by "
          "features spread evenly over all dimensions; ICC: 0 means no agreement between sessions.")


def input_checks(loaded: Sequence[tuple[str, Results]], features: dict | None = None) -> list[str]:
    """One sentence per feature table whose metadata records an input check (``input_check``: n_subjects,
    n_flagged, flagged participant ids, reference), from the report's feature tables and the tables the
    results directories (``loaded``: (folder name, results)) record having used; none where no check was
    recorded. Two different tables under one method name (the healthy and the downstream features) are
    told apart by the results folder that used them."""
    import json

    seen: dict[str, list[tuple[str, dict]]] = {}
    sources = [("--features", name, ((getattr(t, "attrs", {}) or {}).get("metadata") or {}).get("input_check"))
               for name, t in (features or {}).items()]
    sources += [(folder, name, (m or {}).get("input_check") if isinstance(m, dict) else None)
                for folder, res in loaded
                for name, m in ((res.provenance.get("config", {}) or {}).get("feature_metadata") or {}).items()]
    for where, name, check in sources:
        if isinstance(check, dict):
            same = [c for _, c in seen.get(str(name), []) if json.dumps(c, sort_keys=True, default=str)
                    == json.dumps(check, sort_keys=True, default=str)]
            if not same:
                seen.setdefault(str(name), []).append((where, check))
    found = {(name if len(checks) == 1 else f"{name} as used in {where}"): check
             for name, checks in seen.items() for where, check in checks}
    out, clean = [], []
    for name, check in found.items():
        ref = check.get("reference")
        if isinstance(ref, dict):  # a described reference: its name or path
            ref = ref.get("name") or ref.get("cohort") or ref.get("path") or ref.get("source")
        ref = f" (reference: {ref})" if ref else ""
        if check.get("skipped"):
            out.append(f"Input check of {name}: not run ({check['skipped']}).")
            continue
        n, k = check.get("n_subjects"), check.get("n_flagged", len(check.get("flagged") or []))
        ids = [str(i) for i in (check.get("flagged") or [])]
        if not k:
            clean.append(f"{name}, {n} subjects{ref}" if n is not None else f"{name}{ref}")
            continue
        shown = ", ".join(ids[:8]) + (", ..." if len(ids) > 8 else "")
        of = f" of {n}" if n is not None else ""
        out.append(f"Input check of {name}{ref}: {k}{of} subjects flagged as unlike the training data"
                   + (f" ({shown})." if ids else "."))
    if clean:
        out.append(f"Input check: no subject flagged as unlike the training data ({'; '.join(clean)}).")
    return out
