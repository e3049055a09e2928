"""Linear probes on frozen features and the repeated cross-validation that scores them.

Probes (as in the AnatCL paper's linear evaluation): features are standardised (statistics fitted on the
training fold only), then
- classification: L2 logistic regression, C chosen by an inner stratified CV on balanced accuracy over the
  grid 10^[-2..2];
- regression: ridge regression, alpha chosen over the grid 10^[-2..2] by efficient leave-one-out (GCV)
  on the training fold, or by an inner K-fold when ``inner_cv`` is given.

Outer evaluation: R repeats of stratified K-fold (classification: stratified by class; regression: by
quintile of the target; optionally also by site). The splits depend only on the labels and the seed, so
every method (feature table) is scored on identical splits, which the paired tests require.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from sklearn.linear_model import LogisticRegressionCV, RidgeCV
from sklearn.metrics import balanced_accuracy_score, mean_absolute_error, r2_score, roc_auc_score
from sklearn.model_selection import KFold, StratifiedKFold
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from anatlearn.errors import ConfigError, DataError

GRID = tuple(10.0 ** np.arange(-2, 3))  # 10^[-2..2], the paper's alpha / C grid
KINDS = ("classification", "regression")
METRICS = {"classification": ("balanced_accuracy", "roc_auc"), "regression": ("mae", "r2")}
LOWER_IS_BETTER = {"mae"}


def make_probe(kind: str, grid=GRID, inner_cv: int | None = 3, seed: int = 0,
               class_weight: str | None = None) -> Pipeline:
    """StandardScaler + LogisticRegressionCV (``classification``) or + RidgeCV (``regression``)."""
    if kind == "classification":
        model = LogisticRegressionCV(Cs=list(grid), cv=StratifiedKFold(inner_cv or 3, shuffle=True, random_state=seed),
                                     l1_ratios=(0.0,), scoring="balanced_accuracy", max_iter=2000,
                                     class_weight=class_weight, use_legacy_attributes=False)
    elif kind == "regression":
        cv = KFold(inner_cv, shuffle=True, random_state=seed) if inner_cv else None  # None: efficient LOO
        model = RidgeCV(alphas=list(grid), cv=cv)
    else:
        raise ConfigError(f"unknown probe kind {kind!r}; choose one of {', '.join(KINDS)}")
    return make_pipeline(StandardScaler(), model)


@dataclass(frozen=True)
class Split:
    """One outer fold: indices into the aligned subject order."""
    repeat: int
    fold: int
    train: np.ndarray
    test: np.ndarray


def _regression_strata(y: np.ndarray, n_bins: int = 5) -> np.ndarray:
    edges = np.quantile(y, np.linspace(0, 1, n_bins + 1)[1:-1])
    return np.searchsorted(edges, y, side="right").astype(str)


def make_splits(y: np.ndarray, kind: str, n_splits: int = 5, n_repeats: int = 5, seed: int = 0,
                sites: np.ndarray | None = None, task: str = "task", class_names: dict | None = None) -> list[Split]:
    """R x K outer splits (repeat r uses seed + r). Classification requires >= ``n_splits`` subjects per
    class (named in the error, through ``class_names`` if given); with ``sites`` the strata are (class, site)
    pairs."""
    y = np.asarray(y)
    if n_splits < 2 or n_repeats < 1:
        raise ConfigError(f"need folds >= 2 and repeats >= 1, got folds={n_splits}, repeats={n_repeats}")
    if kind == "classification":
        classes, counts = np.unique(y, return_counts=True)
        names = [str((class_names or {}).get(c.item(), c.item())) for c in classes]
        if len(classes) < 2:
            raise DataError(f"task {task}: a single class ({names[0] if names else 'none'}) among the "
                            f"subjects with features; a classification task needs two")
        if counts.min() < n_splits:
            raise DataError(f"task {task}: class {names[counts.argmin()]} has {counts.min()} subjects, fewer than "
                            f"the {n_splits} folds requested (lower `n_splits` or add subjects)")
        strata = y.astype(str)
    else:
        if len(y) < 2 * n_splits:
            raise DataError(f"task {task}: {len(y)} subjects is too few for {n_splits}-fold cross-validation")
        # At most len(y) // K quantile bins, so a bin can hold at least K subjects (StratifiedKFold's need).
        strata = _regression_strata(y.astype(float), n_bins=max(1, min(5, len(y) // n_splits)))
    if sites is not None:
        strata = np.char.add(np.char.add(strata.astype(str), "|"), np.asarray(sites).astype(str))
    out = []
    for r in range(n_repeats):
        skf = StratifiedKFold(n_splits, shuffle=True, random_state=seed + r)
        with warnings.catch_warnings():  # rare (class, site) strata: sklearn warns, splits stay valid
            warnings.simplefilter("ignore", UserWarning)
            try:
                folds = list(skf.split(np.zeros(len(y)), strata))
            except ValueError as exc:  # every stratum smaller than K (e.g. one subject per site)
                raise DataError(f"task {task}: cannot make {n_splits} stratified folds ({exc}); lower `n_splits` "
                                f"or drop the site stratification (`sites`)") from None
            for k, (tr, te) in enumerate(folds):
                if kind == "classification" and len(np.unique(y[tr])) < 2:
                    raise DataError(f"task {task}: a training fold holds a single class; use fewer folds")
                out.append(Split(r, k, tr, te))
    return out


def score_predictions(kind: str, y_true: np.ndarray, y_pred: np.ndarray, y_score: np.ndarray | None = None) -> dict:
    """Metrics of one fold: balanced accuracy and ROC AUC (classification) or MAE and R^2 (regression)."""
    if kind == "classification":
        out = {"balanced_accuracy": balanced_accuracy_score(y_true, y_pred)}
        if y_score is not None and len(np.unique(y_true)) == 2:
            out["roc_auc"] = roc_auc_score(y_true, y_score)
        else:
            out["roc_auc"] = float("nan")
        return out
    return {"mae": mean_absolute_error(y_true, y_pred), "r2": r2_score(y_true, y_pred)}


def _inner_folds(y_train: np.ndarray, kind: str, wanted: int = 3) -> int:
    if kind != "classification":
        return wanted
    return max(2, min(wanted, int(np.unique(y_train, return_counts=True)[1].min())))


def cross_validate(X: np.ndarray, y: np.ndarray, kind: str, splits: list[Split], grid=GRID, seed: int = 0,
                   class_weight: str | None = None) -> list[dict]:
    """Fit a fresh probe on each split's training part and score its test part.

    Returns one record per (split, metric): ``{"repeat", "fold", "metric", "score", "n_train", "n_test"}``.
    Runs with one BLAS/OpenMP thread: probes fit small matrices, where threads gain nothing and, on a shared
    busy CPU, spin-wait (measured on the 2-core machine at load ~5: 15 logistic folds of 300 x 64 took
    26-30 s with the default threads, 0.86 s with one).
    """
    records = []
    with threadpool_limits(1):
        for s in splits:
            records += _fit_and_score(X, y, kind, s, grid, seed, class_weight)
    return records


def fit_probe(X: np.ndarray, y: np.ndarray, kind: str, grid=GRID, seed: int = 0,
              class_weight: str | None = None) -> Pipeline:
    """The probe of ``evaluate tasks`` fitted on ``X, y``: :func:`make_probe` with the penalty chosen by an
    inner CV (stratified, as many folds as the smaller class allows, up to 3) or, for regression, leave-one-out."""
    probe = make_probe(kind, grid, inner_cv=_inner_folds(y, kind) if kind == "classification" else None,
                       seed=seed, class_weight=class_weight)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # tiny inner folds
        probe.fit(X, y)
    return probe


def _fit_and_score(X, y, kind: str, s: Split, grid, seed: int, class_weight) -> list[dict]:
    probe = fit_probe(X[s.train], y[s.train], kind, grid, seed + s.repeat, class_weight)
    pred = probe.predict(X[s.test])
    y_score = probe.predict_proba(X[s.test])[:, 1] if kind == "classification" else None
    return [{"repeat": s.repeat, "fold": s.fold, "metric": metric, "score": float(value),
             "n_train": len(s.train), "n_test": len(s.test)}
            for metric, value in score_predictions(kind, y[s.test], pred, y_score).items()]
