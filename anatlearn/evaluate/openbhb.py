"""The OpenBHB linear-evaluation protocol (``anatlearn evaluate openbhb``), on frozen features.

Following the OpenBHB challenge and the papers it serves (Dufumier et al. 2022; Barbano et al. ISBI 2023,
PRL 2026):
- Brain age: standardise, then Ridge with alpha in 10^[-2..2] chosen by 5-fold CV on the ``train`` split;
  MAE (years) on ``internal_test`` (sites seen in training) and ``external_test`` (unseen sites).
- Site: standardise, then L2 logistic regression with C in 10^[-2..2] chosen by 5-fold stratified CV (on
  balanced accuracy) on ``train``; balanced accuracy on ``internal_test`` (the only split whose sites the
  classifier knows). Lower is better: less site information in the representation.
- Challenge score = BAcc_site^0.3 x MAE_external (lower is better).
Intervals: 95 % percentile bootstrap over test subjects (1,000 resamples; the score's interval resamples
both test sets independently).
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegressionCV, RidgeCV
from sklearn.metrics import confusion_matrix
from sklearn.model_selection import KFold, StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from anatlearn.errors import ConfigError, DataError
from anatlearn.features import match_ids, validate_features
from anatlearn.evaluate.probes import GRID
from anatlearn.evaluate.results import TABLE_COLUMNS, Results
from anatlearn.evaluate.stats import bootstrap_interval
from anatlearn.data.lineage import tables_identity
from anatlearn.provenance import provenance

SPLITS = ("train", "internal_test", "external_test")
SITE_EXPONENT = 0.3


def challenge_score(bacc_site: float, mae_external: float) -> float:
    """OpenBHB challenge score BAcc_site^0.3 * MAE_external (lower is better)."""
    return float(bacc_site) ** SITE_EXPONENT * float(mae_external)


def _mae(y, p):
    return float(np.mean(np.abs(y - p)))


def _bacc(y, p):
    """Balanced accuracy: mean over the classes present in y of the recall (fast, for the bootstrap)."""
    classes, inverse = np.unique(y, return_inverse=True)
    hits = np.bincount(inverse, weights=(y == p).astype(float), minlength=len(classes))
    return float(np.mean(hits / np.bincount(inverse, minlength=len(classes))))


def _check_split(participants: pd.DataFrame, split_column: str, age_column: str, site_column: str, source: str):
    for col in (split_column, age_column, site_column):
        if col not in participants.columns:
            raise DataError(f"{source} has no {col!r} column (needed by the OpenBHB protocol)")
    unknown = sorted(set(participants[split_column].astype(str)) - set(SPLITS))
    if unknown:
        raise DataError(f"{source}: column {split_column!r} has values {unknown}; expected {', '.join(SPLITS)}")
    age = pd.to_numeric(participants[age_column], errors="coerce")
    if age.isna().any():
        raise DataError(f"{source}: non-numeric or missing age for participant {age[age.isna()].index[0]}")


def _evaluate_one(X: pd.DataFrame, p: pd.DataFrame, split_column, age_column, site_column, seed, cv, grid, n_boot,
                  method: str):
    split = p[split_column].astype(str).to_numpy()
    age = pd.to_numeric(p[age_column]).to_numpy(float)
    site = p[site_column].astype(str).to_numpy()
    tr, it, et = (split == s for s in SPLITS)
    for name, mask in zip(SPLITS, (tr, it, et)):
        if not mask.any():
            raise DataError(f"feature table {method}: no subject of split {name!r} has features")
    Xv = X.to_numpy()

    age_model = make_pipeline(StandardScaler(), RidgeCV(alphas=list(grid), cv=KFold(cv, shuffle=True, random_state=seed)))
    age_model.fit(Xv[tr], age[tr])
    age_pred = age_model.predict(Xv)

    sites, counts = np.unique(site[tr], return_counts=True)
    if counts.min() < cv:
        raise DataError(f"site {sites[counts.argmin()]!r} has {counts.min()} training subjects, fewer than the {cv} "
                        f"CV folds of the site probe")
    unseen = sorted(set(site[it]) - set(sites))
    if unseen:
        raise DataError(f"internal_test sites {unseen} do not occur in train (internal test must use training sites)")
    site_model = make_pipeline(StandardScaler(), LogisticRegressionCV(
        Cs=list(grid), cv=StratifiedKFold(cv, shuffle=True, random_state=seed), l1_ratios=(0.0,),
        scoring="balanced_accuracy", max_iter=2000, use_legacy_attributes=False))
    site_model.fit(Xv[tr], site[tr])
    site_pred = site_model.predict(Xv)

    mae_int, mae_ext = _mae(age[it], age_pred[it]), _mae(age[et], age_pred[et])
    bacc = _bacc(site[it], site_pred[it])
    ci_int = bootstrap_interval(_mae, age[it], age_pred[it], n_boot=n_boot, seed=seed)
    ci_ext = bootstrap_interval(_mae, age[et], age_pred[et], n_boot=n_boot, seed=seed + 1)
    ci_bacc = bootstrap_interval(_bacc, site[it], site_pred[it], n_boot=n_boot, seed=seed + 2)
    rng = np.random.default_rng(seed + 3)
    boot_scores = []
    for _ in range(n_boot):
        i = rng.integers(0, it.sum(), it.sum())
        e = rng.integers(0, et.sum(), et.sum())
        boot_scores.append(challenge_score(_bacc(site[it][i], site_pred[it][i]),
                                           _mae(age[et][e], age_pred[et][e])))
    ci_score = tuple(np.quantile(boot_scores, [0.025, 0.975]))
    n_it, n_et = int(it.sum()), int(et.sum())
    rows = [("brain_age", "mae_internal", mae_int, *ci_int, n_it, True),
            ("brain_age", "mae_external", mae_ext, *ci_ext, n_et, True),
            ("site", "balanced_accuracy_internal", bacc, *ci_bacc, n_it, True),
            ("challenge", "score", challenge_score(bacc, mae_ext), *ci_score, n_it + n_et, True)]
    table = [dict(zip(TABLE_COLUMNS, (method, *r))) for r in rows]
    preds = pd.DataFrame({"method": method, "participant_id": p.index, "split": split, "age": age,
                          "age_pred": age_pred, "site": site, "site_pred": site_pred})
    labels = [str(s) for s in sites]
    cm = confusion_matrix(site[it], site_pred[it], labels=labels)
    extra = {"site_confusion": {"labels": labels, "matrix": cm.tolist()},
             "chosen": {"ridge_alpha": float(age_model[-1].alpha_), "logistic_C": float(np.ravel(site_model[-1].C_)[0])},
             "chance_balanced_accuracy": 1.0 / len(labels)}
    return table, preds, extra


def evaluate_openbhb(features: Mapping[str, pd.DataFrame] | pd.DataFrame, participants: pd.DataFrame, seed: int = 0,
                     cv: int = 5, grid=GRID, split_column: str = "split", age_column: str = "age",
                     site_column: str = "site", n_boot: int = 1000) -> Results:
    """Run the OpenBHB protocol on one feature table or several (method name -> table).

    ``participants`` (indexed by participant_id) must hold the split, age and site columns. Subjects without
    features are skipped; each method uses the subjects it has features for. Returns :class:`Results` with
    the tidy table (tasks ``brain_age``, ``site``, ``challenge``), per-subject predictions and, in
    ``extra[method]``, the internal-test site confusion matrix and chosen hyper-parameters.
    """
    if isinstance(features, pd.DataFrame):
        features = {"features": features}
    if not features:
        raise ConfigError("no feature table given")
    if cv < 2:
        raise ConfigError(f"cv must be >= 2, got {cv}")
    source = participants.attrs.get("source", "the participants table")
    _check_split(participants, split_column, age_column, site_column, source)
    rows, preds, extra = [], [], {}
    for method, f in features.items():
        X = match_ids(validate_features(f, method), participants, method)
        with threadpool_limits(1):  # small matrices: threads only spin on a busy CPU (see probes.cross_validate)
            t, pr, ex = _evaluate_one(X, participants.loc[X.index], split_column, age_column, site_column, seed, cv,
                                      grid, n_boot, method)
        rows += t
        preds.append(pr)
        extra[method] = ex
    config = {"cv": cv, "grid": list(map(float, grid)), "split_column": split_column, "age_column": age_column,
              "site_column": site_column, "n_boot": n_boot,
              "participants": participants.attrs.get("source"),
              "feature_metadata": {m: f.attrs.get("metadata", {}) for m, f in features.items()}}
    return Results(kind="openbhb", table=pd.DataFrame(rows, columns=TABLE_COLUMNS),
                   predictions=pd.concat(preds, ignore_index=True), extra=extra, provenance=provenance(seed, config),
                   inputs={"features": tables_identity(features), "participants": participants.attrs.get("source")})
