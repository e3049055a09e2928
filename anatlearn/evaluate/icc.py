"""Test-retest reliability of features: intraclass correlation per feature between two feature tables.

Two tables of the same subjects (e.g. the same people scanned twice, or the synthetic cohort re-generated
with a different ``noise_seed``), k = 2 "raters" (sessions), n subjects. From the two-way ANOVA of each
feature's n x k matrix x (Shrout & Fleiss 1979; McGraw & Wong 1996):

    MSR = k/(n-1) sum_i (xbar_i. - xbar)^2          (between subjects)
    MSC = n/(k-1) sum_j (xbar_.j - xbar)^2          (between sessions)
    MSE = (SST - (n-1) MSR - (k-1) MSC) / ((n-1)(k-1))

    ICC(3,1), consistency:        (MSR - MSE) / (MSR + (k-1) MSE)
    ICC(2,1), absolute agreement: (MSR - MSE) / (MSR + (k-1) MSE + k (MSC - MSE) / n)

Agreement (the default) also penalises a systematic shift between sessions.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from anatlearn.errors import ConfigError, DataError
from anatlearn.features import validate_features

KINDS = ("agreement", "consistency")


def icc(test: pd.DataFrame, retest: pd.DataFrame, kind: str = "agreement") -> pd.Series:
    """ICC of every feature (column) between two tables over their common subjects (index: feature name).

    Both tables must have the same columns; at least 3 common subjects are needed. A feature constant in
    both sessions has no between-subject variance: its ICC is NaN.
    """
    if kind not in KINDS:
        raise ConfigError(f"unknown ICC kind {kind!r}; choose one of {', '.join(KINDS)}")
    test, retest = validate_features(test, "test"), validate_features(retest, "retest")
    if list(test.columns) != list(retest.columns):
        raise DataError(f"test and retest feature tables differ in their features ({test.shape[1]} vs "
                        f"{retest.shape[1]} columns): were they made by the same model?")
    common = test.index[test.index.isin(retest.index)]
    if len(common) < 3:
        raise DataError(f"test and retest feature tables share {len(common)} subjects; ICC needs at least 3")
    x = np.stack([test.loc[common].to_numpy(), retest.loc[common].to_numpy()], axis=1)  # (n, k, F)
    n, k = x.shape[:2]
    grand = x.mean(axis=(0, 1))
    msr = k * ((x.mean(axis=1) - grand) ** 2).sum(axis=0) / (n - 1)
    msc = n * ((x.mean(axis=0) - grand) ** 2).sum(axis=0) / (k - 1)
    sst = ((x - grand) ** 2).sum(axis=(0, 1))
    mse = (sst - (n - 1) * msr - (k - 1) * msc) / ((n - 1) * (k - 1))
    denom = msr + (k - 1) * mse
    if kind == "agreement":
        denom = denom + k * (msc - mse) / n
    with np.errstate(invalid="ignore", divide="ignore"):
        values = np.where(denom > 0, (msr - mse) / np.where(denom > 0, denom, 1.0), np.nan)
    return pd.Series(values, index=test.columns, name=f"icc_{kind}")


def icc_summary(values: pd.Series) -> dict:
    """Median, quartiles and the fraction of features with ICC >= 0.75 ("good", Koo & Li 2016)."""
    v = values.dropna().to_numpy()
    if v.size == 0:
        return {"n_features": 0, "median": float("nan"), "q25": float("nan"), "q75": float("nan"), "frac_good": float("nan")}
    return {"n_features": int(v.size), "median": float(np.median(v)), "q25": float(np.quantile(v, 0.25)),
            "q75": float(np.quantile(v, 0.75)), "frac_good": float(np.mean(v >= 0.75))}


def icc_row(method: str, summary: dict) -> dict:
    """The results-table row of one method's ICC: median [q25, q75] over its scored features (n = features)."""
    return {"method": method, "task": "test-retest", "metric": "ICC median", "mean": summary.get("median"),
            "ci_low": summary.get("q25"), "ci_high": summary.get("q75"), "n": summary.get("n_features"),
            "lower_is_better": False}


def evaluate_icc(test: dict[str, pd.DataFrame], retest: dict[str, pd.DataFrame], kind: str = "agreement"):
    """Test-retest ICC of every method's features, as a :class:`~anatlearn.evaluate.results.Results` (kind "icc").

    ``test`` and ``retest`` map method names to the feature tables of the two sessions. Every feature is
    accounted for: a feature constant in both sessions has no between-subject variance and no ICC; it is
    not scored, and ``extra["methods"][name]["unscored"]`` names it. ``extra["per_feature"]`` holds every ICC.
    """
    from anatlearn.evaluate.results import Results
    from anatlearn.data.lineage import tables_identity
    from anatlearn.provenance import provenance

    missing = sorted(set(test) ^ set(retest))
    if missing:
        raise ConfigError(f"test and retest tables must name the same methods; unmatched: {', '.join(missing)}")
    rows, per_feature, methods = [], [], {}
    for name, table in test.items():
        values = icc(table, retest[name], kind)
        summary = icc_summary(values)
        unscored = [str(f) for f in values.index[values.isna()]]
        methods[name] = {**summary, "n_features": int(values.size), "n_scored": summary["n_features"],
                         "unscored": unscored, "n_subjects": int(table.index.isin(retest[name].index).sum())}
        rows.append(icc_row(name, summary))
        per_feature += [{"method": name, "feature": str(f), "icc": float(v)} for f, v in values.items()]
    return Results(kind="icc", table=pd.DataFrame(rows),
                   extra={"icc_kind": kind, "methods": methods, "per_feature": per_feature},
                   provenance=provenance(None, {"kind": kind}),
                   inputs={"features": tables_identity(test), "retest": tables_identity(retest)})
