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
from sklearn.base import BaseEstimator
from sklearn.linear_model import LogisticRegressionCV, RidgeCV
from sklearn.metrics import balanced_accuracy_score, mean_absolute_error, r2_score, roc_auc_score
from sklearn.model_selection import KFold, StratifiedKFold
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import type_of_target
from sklearn.utils.validation import check_is_fitted, validate_data
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
    """The fitted pipeline (StandardScaler + LogisticRegressionCV / RidgeCV) of :class:`LinearProbe`."""
    return LinearProbe(kind, grid, seed, class_weight).fit(X, y).pipeline_


class LinearProbe(BaseEstimator):
    """The probe of ``evaluate tasks`` as a scikit-learn estimator: standardisation, then L2 logistic
    regression with C chosen by an inner stratified CV on balanced accuracy (as many folds as the smaller
    class allows, up to 3), or ridge with alpha chosen by efficient leave-one-out; both over ``grid``.

    ``task``: ``"classification"``, ``"regression"`` or ``"auto"`` (classification for binary or multiclass
    targets, regression for continuous ones, by :func:`sklearn.utils.multiclass.type_of_target`). Fitted:
    ``kind_``, ``pipeline_``, ``mean_``, ``scale_``, ``coef_``, ``intercept_``, ``penalty_`` and ``classes_``
    (classification). ``score`` is accuracy or R^2, as scikit-learn's classifiers and regressors.
    A probe saved by ``evaluate tasks --save-probes`` loads as a fitted LinearProbe
    (:func:`anatlearn.evaluate.saved_probes.load_linear_probe`).
    """

    def __init__(self, task: str = "auto", grid=GRID, seed: int = 0, class_weight: str | None = None):
        self.task, self.grid, self.seed, self.class_weight = task, grid, seed, class_weight

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.estimator_type = {"classification": "classifier", "regression": "regressor"}.get(self.task)
        if self.task == "classification":
            from sklearn.utils import ClassifierTags

            tags.classifier_tags = ClassifierTags()
        elif self.task == "regression":
            from sklearn.utils import RegressorTags

            tags.regressor_tags = RegressorTags()
        return tags

    def _kind(self, y) -> str:
        if self.task in KINDS:
            return self.task
        if self.task != "auto":
            raise ConfigError(f"`task` must be auto, {' or '.join(KINDS)}, got {self.task!r}")
        target = type_of_target(y, input_name="y")
        if target in ("binary", "multiclass"):
            return "classification"
        if target == "continuous":
            return "regression"
        raise DataError(f"Unknown label type: task='auto' cannot tell a probe for a {target} target; give task='classification' or "
                        f"'regression'")

    def fit(self, X, y) -> "LinearProbe":
        kind = self._kind(y)
        X, y = validate_data(self, X, y, dtype=np.float64, y_numeric=kind == "regression")
        if kind == "classification" and len(np.unique(y)) < 2:
            raise DataError(f"a classification probe needs at least 2 classes; y has 1 class ({np.unique(y)[0]})")
        probe = make_probe(kind, self.grid, inner_cv=_inner_folds(y, kind) if kind == "classification" else None,
                           seed=self.seed, class_weight=self.class_weight)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # tiny inner folds
            probe.fit(X, y)
        scaler, model = probe[0], probe[-1]
        self.kind_, self.pipeline_ = kind, probe
        self.mean_, self.scale_ = scaler.mean_, scaler.scale_
        self.coef_, self.intercept_ = model.coef_, model.intercept_
        if kind == "classification":
            self.classes_, self.penalty_ = model.classes_, {"C": float(np.ravel(model.C_)[0])}
        else:
            self.penalty_ = {"alpha": float(model.alpha_)}
        return self

    @classmethod
    def from_record(cls, record: dict) -> "LinearProbe":
        """A fitted (binary or regression) probe from a saved probe's record (``saved_probes``' JSON)."""
        probe = cls(record["kind"], seed=record.get("provenance", {}).get("seed") or 0)
        probe.kind_ = record["kind"]
        probe.mean_, probe.scale_ = np.asarray(record["mean"], float), np.asarray(record["scale"], float)
        probe.coef_, probe.intercept_ = np.asarray(record["coef"], float), float(record["intercept"])
        probe.n_features_in_, probe.penalty_ = len(probe.mean_), dict(record["penalty"])
        probe.feature_names_in_ = np.asarray(record["features"], dtype=object)
        if probe.kind_ == "classification":
            probe.coef_ = probe.coef_.reshape(1, -1)
            probe.classes_ = np.array([0, 1])
        return probe

    def _is_classifier(self):
        return getattr(self, "kind_", self.task) == "classification"

    def _linear(self, X) -> np.ndarray:
        """z = w . (x - mean) / scale + b of a probe loaded from its record."""
        X = validate_data(self, X, dtype=np.float64, reset=False)
        return ((X - self.mean_) / self.scale_ @ np.atleast_2d(self.coef_).T + self.intercept_).ravel()

    def _scores(self, X, method: str):
        """(``pipeline_.<method>(X)``, None) for a probe fitted here; (None, z) for one loaded from its record,
        which keeps only the linear part (:meth:`_linear`)."""
        check_is_fitted(self)
        if hasattr(self, "pipeline_"):
            return getattr(self.pipeline_, method)(validate_data(self, X, dtype=np.float64, reset=False)), None
        return None, self._linear(X)

    @available_if(_is_classifier)
    def decision_function(self, X) -> np.ndarray:
        """Log-odds of the positive class (binary) or per-class scores."""
        out, z = self._scores(X, "decision_function")
        return out if z is None else z

    def predict(self, X) -> np.ndarray:
        out, z = self._scores(X, "predict")
        if z is None:
            return out
        return self.classes_[(z > 0).astype(int)] if self.kind_ == "classification" else z

    @available_if(_is_classifier)
    def predict_proba(self, X) -> np.ndarray:
        out, z = self._scores(X, "predict_proba")
        if z is None:
            return out
        p = 1.0 / (1.0 + np.exp(-z))
        return np.column_stack([1.0 - p, p])

    def score(self, X, y, sample_weight=None) -> float:
        """Accuracy (classification) or R^2 (regression)."""
        from sklearn.metrics import accuracy_score

        pred = self.predict(X)
        if self.kind_ == "classification":
            return float(accuracy_score(y, pred, sample_weight=sample_weight))
        return float(r2_score(y, pred, sample_weight=sample_weight))


def _fit_and_score(X, y, kind: str, s: Split, grid, seed: int, class_weight) -> list[dict]:
    probe = LinearProbe(kind, grid, seed + s.repeat, class_weight).fit(X[s.train], y[s.train])
    pred = probe.predict(X[s.test])
    y_score = probe.predict_proba(X[s.test])[:, 1] if kind == "classification" else None
    return [{"repeat": s.repeat, "fold": s.fold, "metric": metric, "score": float(value),
             "n_train": len(s.train), "n_test": len(s.test)}
            for metric, value in score_predictions(kind, y[s.test], pred, y_score).items()]
