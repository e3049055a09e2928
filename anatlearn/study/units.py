"""The evaluated units of a study, the metric constants every table shares, and the one paired rule.

A *unit* is one evaluated (cell, budget): ``cells/<name>/seed-<s>/eval/budget-NNNN.json``. Every analysis of
a study (:mod:`anatlearn.study.aggregate`, :mod:`anatlearn.study.summary`, the ``studies`` package) reads
units through :func:`load_units` and compares two configurations through :func:`paired_seed_test`.

The paired rule (pre-registered, docs/study.md): seed s of configuration A is paired with seed s of B, and
the paired t-test over seeds (Student 1908; ``scipy.stats.ttest_rel``) is

    d_s = a_s - b_s,   t = mean(d) / (sd(d) / sqrt(n)),   n - 1 degrees of freedom, two-sided p.

A difference is *called* when p < :data:`ALPHA` and every seed's difference has the same (non-zero) sign.
When every seed gives the same difference (sd(d) = 0), t is the limit of the formula as sd(d) -> 0: +-inf
with p = 0 for a non-zero difference (called: every seed agrees, exactly), and undefined (NaN, not called)
when the difference is zero. Fewer than two seeds: t and p undefined, never called.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from anatlearn.study.grid import RANDOM_INIT

ID_COLUMNS = ["cell", "name", "method", "variant", "seed", "group", "budget"]
LOWER_IS_BETTER = frozenset({"brain_age_mae_internal", "brain_age_mae_external", "site_bacc"})
ALPHA = 0.05
SEED_TEST = "paired t-test over seeds"  # the ``test`` column of the tables' rows of this test
FOLD_COLUMNS = ["name", "seed", "budget", "metric", "fold", "score", "n_train", "n_test"]


def unit_files(out: Path) -> list[Path]:
    """Every evaluation file of the study directory ``out``."""
    return sorted(Path(out).glob("cells/*/seed-*/eval/budget-*.json"))


def load_units(out: Path) -> pd.DataFrame:
    """Every evaluated unit of the study in ``out``: the id columns and one column per metric."""
    rows = []
    for path in unit_files(out):
        doc = json.loads(path.read_text())
        rows.append({**{k: doc[k] for k in ID_COLUMNS}, **doc["metrics"]})
    if not rows:
        return pd.DataFrame(columns=ID_COLUMNS)
    return pd.DataFrame(rows).sort_values(["name", "budget", "seed"], ignore_index=True)


def load_folds(out: Path) -> pd.DataFrame:
    """Per-fold downstream scores: name, seed, budget, metric ("<task> <metric>"), fold, score, n_train, n_test."""
    rows = []
    for path in unit_files(out):
        doc = json.loads(path.read_text())
        for key, f in doc.get("folds", {}).items():
            rows += [{"name": doc["name"], "seed": doc["seed"], "budget": doc["budget"], "metric": key, "fold": i,
                      "score": v, "n_train": f["n_train"], "n_test": f["n_test"]} for i, v in enumerate(f["scores"])]
    return pd.DataFrame(rows, columns=FOLD_COLUMNS)


def metric_columns(units: pd.DataFrame) -> list[str]:
    return [c for c in units.columns if c not in ID_COLUMNS]


def seed_values(units: pd.DataFrame, name: str, metric: str, budget: int) -> pd.Series:
    """``metric`` of configuration ``name`` at ``budget`` by seed, missing values left out; random init,
    evaluated once untrained, stands at every budget."""
    rows = units[units["name"] == name]
    if name != RANDOM_INIT:
        rows = rows[rows["budget"] == budget]
    return rows.set_index("seed")[metric].dropna().astype(float)


@dataclass(frozen=True)
class PairedTest:
    """The paired t-test over seeds of A against B (see the module docstring)."""

    mean_a: float
    mean_b: float
    mean_diff: float
    sd_diff: float
    t: float
    p: float
    n: int
    same_sign: bool

    @property
    def called(self) -> bool:
        return is_called(self.p, self.same_sign)


def is_called(p: float, same_sign: bool) -> bool:
    """The pre-registered rule: p < ALPHA and one sign on every seed."""
    return bool(same_sign) and not math.isnan(p) and p < ALPHA


def paired_seed_test(a: pd.Series, b: pd.Series) -> PairedTest:
    """Paired t-test of ``a`` against ``b`` (indexed by seed) over the seeds both have."""
    seeds = sorted(set(a.index) & set(b.index))
    va, vb = a.loc[seeds].to_numpy(float), b.loc[seeds].to_numpy(float)
    d = va - vb
    n = len(d)
    t = p = sd = float("nan")
    if n > 1:
        sd = float(np.std(d, ddof=1))
        mean = float(d.mean())
        # sd(d) = 0 up to rounding (differences of floats that are equal in exact arithmetic): the limit
        if np.std(d) <= 1e-12 * max(1.0, float(np.abs(d).max())):
            if mean != 0.0:
                t, p = math.copysign(math.inf, mean), 0.0
        else:
            from scipy import stats

            res = stats.ttest_rel(va, vb)
            t, p = float(res.statistic), float(res.pvalue)
    return PairedTest(mean_a=float(va.mean()) if n else float("nan"), mean_b=float(vb.mean()) if n else float("nan"),
                      mean_diff=float(d.mean()) if n else float("nan"), sd_diff=sd, t=float(t), p=float(p), n=n,
                      same_sign=bool(n > 0 and (np.all(d > 0) or np.all(d < 0))))


def paired_by_seed(units: pd.DataFrame, a: str, b: str, metric: str, budget: int) -> PairedTest:
    """Configuration ``a`` against ``b`` on ``metric`` at ``budget``, seed by seed."""
    return paired_seed_test(seed_values(units, a, metric, budget), seed_values(units, b, metric, budget))
