"""Brain age from frozen features, the brain-age gap and its linear bias correction (``anatlearn brain-age``).

Age model: the same linear probe as the evaluation (:func:`anatlearn.evaluate.probes.make_probe`:
standardisation + ridge, alpha in 10^[-2..2] chosen by efficient leave-one-out on the training data),
fitted on a healthy reference. The reference's own predictions are cross-validated (K folds stratified by
age quintile, :func:`anatlearn.evaluate.probes.make_splits`), so they are out-of-sample like everyone else's.

Regression to the mean makes the raw gap (predicted - chronological age) depend on age: young subjects look
older, old ones younger. The correction is fitted on the reference's cross-validated predictions by OLS,

    pred = a * age + b,

and applied to any subject (Cole et al. 2018, Mol Psychiatry 23:1385; de Lange & Cole 2020, NeuroImage:
Clinical 26:102229; ``correction="cole"``, the default):

    corrected pred = (pred - b) / a,        corrected gap = corrected pred - age = (pred - a age - b) / a.

``correction="beheshti"`` (Beheshti et al. 2019, NeuroImage: Clinical 24:102063; Le et al. 2018) regresses
the gap itself on age, gap = alpha age + beta, and keeps the residual: corrected gap = gap - alpha age - beta
= pred - a age - b (alpha = a - 1, beta = b). Both are OLS residuals up to the factor 1/a, so on the
reference the corrected gap is uncorrelated with age by construction (r = 0 up to rounding); on new data the
correction uses chronological age, as every such correction does (de Lange & Cole 2020 discuss why).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils.validation import check_is_fitted, validate_data
from threadpoolctl import threadpool_limits

from anatlearn.clinical.storage import load_model, save_model
from anatlearn.errors import ConfigError, DataError
from anatlearn.evaluate.probes import GRID, make_probe, make_splits
from anatlearn.data.lineage import identity_of
from anatlearn.provenance import provenance

CORRECTIONS = ("cole", "beheshti")
KIND = "brain-age"
MIN_SLOPE = 0.05  # below this the predictions hardly follow age and (pred - b) / a explodes
# An age model is "uninformative" when its cross-validated predictions on the reference explain less than half of
# the age variance (R^2 < 0.5) or miss by more than half the reference's age SD on average: its gaps then mostly
# measure the model's error, and group differences in them say little about brains (docs/clinical.md).
MIN_R2, MAX_MAE_SD = 0.5, 0.5
OUTPUT_COLUMNS = ["age", "predicted_age", "gap", "corrected_predicted_age", "corrected_gap"]


def as_matrix(X, feature_names: list[str] | None = None, source: str = "features") -> tuple[np.ndarray, list[str]]:
    """(n, F) float array and column names of a feature table or array; with ``feature_names`` the table's
    columns must be exactly those (named in the error otherwise)."""
    if isinstance(X, pd.DataFrame):
        cols = [str(c) for c in X.columns]
        if feature_names is not None and cols != list(feature_names):
            missing = [c for c in feature_names if c not in cols]
            raise DataError(f"feature table {source} has columns {cols[:3]}... ({len(cols)}) but the model was fitted "
                            f"on {len(feature_names)} columns {list(feature_names)[:3]}..."
                            + (f" (missing e.g. {missing[:3]})" if missing else " (different order)"))
        values = X.to_numpy(dtype=np.float64)
    else:
        values = np.asarray(X, dtype=np.float64)
        cols = list(feature_names) if feature_names is not None else [f"f{i:04d}" for i in range(values.shape[-1])]
        if values.ndim != 2 or values.shape[1] != len(cols):
            raise DataError(f"{source}: expected a (subjects x {len(cols)}) array, got shape {values.shape}")
    if not np.isfinite(values).all():
        raise DataError(f"{source} has NaN/inf values")
    return values, cols


def as_ages(age, n: int, source: str = "age") -> np.ndarray:
    out = pd.to_numeric(pd.Series(np.asarray(age).ravel()), errors="coerce").to_numpy(float)
    if len(out) != n:
        raise DataError(f"{source}: {len(out)} ages for {n} subjects")
    if not np.isfinite(out).all():
        raise DataError(f"{source}: missing or non-numeric age for {int((~np.isfinite(out)).sum())} subject(s)")
    return out


def fit_bias(age, predicted) -> tuple[float, float]:
    """(a, b) of the OLS line predicted = a * age + b (the age dependence the correction removes)."""
    a, b = np.polyfit(np.asarray(age, float), np.asarray(predicted, float), 1)
    return float(a), float(b)


def correct_predictions(predicted, age, slope: float, offset: float, correction: str = "cole") -> np.ndarray:
    """Bias-corrected predicted age: (pred - b) / a (cole) or age + pred - a age - b (beheshti)."""
    predicted, age = np.asarray(predicted, float), np.asarray(age, float)
    residual = predicted - slope * age - offset
    return age + (residual / slope if correction == "cole" else residual)


class BrainAgeModel:
    """Ridge brain-age model with a reference-fitted linear bias correction (scikit-learn style).

    >>> model = BrainAgeModel().fit(reference_features, reference_ages)   # doctest: +SKIP
    >>> table = model.gaps(features, ages)  # predicted_age, gap, corrected_predicted_age, corrected_gap
    """

    def __init__(self, correction: str = "cole", folds: int = 5, grid=GRID, seed: int = 0):
        if correction not in CORRECTIONS:
            raise ConfigError(f"unknown bias correction {correction!r}; choose one of {', '.join(CORRECTIONS)}")
        if folds < 2:
            raise ConfigError(f"`folds` must be >= 2, got {folds}")
        self.correction, self.folds, self.grid, self.seed = correction, folds, tuple(grid), seed

    # -- fitting ---------------------------------------------------------------------------------------
    def fit(self, X, age, ids=None, require_slope: bool = True) -> "BrainAgeModel":
        """Fit the age model on the reference, its cross-validated predictions and the bias correction.
        ``ids`` (default: the feature table's index) let :meth:`gaps` give reference subjects their
        cross-validated prediction later. ``require_slope=False`` keeps a model whose predictions do not
        follow age (slope < MIN_SLOPE; :meth:`correct` then refuses) instead of raising."""
        Xv, self.feature_names_ = as_matrix(X, source="reference features")
        self.encoder_identity_ = identity_of(X) if isinstance(X, pd.DataFrame) else None  # checked on re-use
        y = as_ages(age, len(Xv), "reference age")
        if len(y) < 2 * self.folds:
            raise DataError(f"the reference has {len(y)} subjects, too few for {self.folds}-fold cross-validation")
        if np.ptp(y) == 0:
            raise DataError("every reference subject has the same age; an age model needs an age range")
        cv_pred = np.empty_like(y)
        with threadpool_limits(1), warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            for split in make_splits(y, "regression", self.folds, 1, self.seed, task="brain age"):
                probe = make_probe("regression", self.grid, inner_cv=None).fit(Xv[split.train], y[split.train])
                cv_pred[split.test] = probe.predict(Xv[split.test])
            probe = make_probe("regression", self.grid, inner_cv=None).fit(Xv, y)
        scaler, ridge = probe[0], probe[-1]
        # The fitted pipeline as plain arrays: pred = ((x - mean) / scale) . coef + intercept.
        self.mean_, self.scale_ = scaler.mean_.copy(), scaler.scale_.copy()
        self.coef_, self.intercept_, self.alpha_ = ridge.coef_.copy(), float(ridge.intercept_), float(ridge.alpha_)
        slope, intercept = fit_bias(y, cv_pred)
        if slope < MIN_SLOPE and require_slope:
            raise DataError(f"the age model's cross-validated predictions do not follow age (slope {slope:.3f} of "
                            f"predicted on chronological age); the bias correction is undefined for these features")
        self.slope_, self.offset_ = float(slope), float(intercept)
        ref_ids = X.index if ids is None and isinstance(X, pd.DataFrame) else ids
        self.reference_ids_ = np.asarray([str(i) for i in (ref_ids if ref_ids is not None else range(len(y)))])
        self.reference_age_, self.reference_cv_pred_ = y, cv_pred
        self.reference_row_sums_ = Xv.sum(axis=1)
        return self

    def _check_fitted(self):
        if not hasattr(self, "coef_"):
            raise ConfigError("this BrainAgeModel is not fitted yet; call fit() or BrainAgeModel.load()")

    # -- prediction ------------------------------------------------------------------------------------
    def predict(self, X) -> np.ndarray:
        """Uncorrected predicted age of every subject (the model fitted on the whole reference)."""
        self._check_fitted()
        Xv, _ = as_matrix(X, self.feature_names_)
        return ((Xv - self.mean_) / self.scale_) @ self.coef_ + self.intercept_

    def correct(self, predicted, age) -> np.ndarray:
        """Bias-corrected predicted age: (pred - b) / a (cole) or age + (pred - a age - b) (beheshti)."""
        self._check_fitted()
        if self.slope_ < MIN_SLOPE:
            raise DataError(f"the age model's cross-validated predictions do not follow age (slope {self.slope_:.3f} "
                            f"of predicted on chronological age); the bias correction is undefined for these features")
        return correct_predictions(predicted, age, self.slope_, self.offset_, self.correction)

    def gaps(self, X, age, ids=None) -> pd.DataFrame:
        """Per subject: age, predicted_age, gap, corrected_predicted_age, corrected_gap and whether the
        prediction is the reference's cross-validated one (``cross_validated``). Subjects of the reference
        (same id and same features) get their out-of-sample prediction, never the in-sample one."""
        self._check_fitted()
        Xv, _ = as_matrix(X, self.feature_names_)
        age = as_ages(age, len(Xv))
        index = X.index if ids is None and isinstance(X, pd.DataFrame) else pd.Index(
            [str(i) for i in (ids if ids is not None else range(len(Xv)))], name="participant_id")
        pred = ((Xv - self.mean_) / self.scale_) @ self.coef_ + self.intercept_
        cv = np.zeros(len(Xv), dtype=bool)
        position = {pid: k for k, pid in enumerate(self.reference_ids_)}
        sums = Xv.sum(axis=1)
        for i, pid in enumerate(map(str, index)):
            k = position.get(pid)
            if k is not None and abs(sums[i] - self.reference_row_sums_[k]) <= 1e-6 * (1 + abs(sums[i])):
                pred[i], cv[i] = self.reference_cv_pred_[k], True
        corrected = self.correct(pred, age)
        out = pd.DataFrame({"age": age, "predicted_age": pred, "gap": pred - age,
                            "corrected_predicted_age": corrected, "corrected_gap": corrected - age,
                            "cross_validated": cv}, index=index)
        out.index.name = "participant_id"
        return out

    def reference_table(self) -> pd.DataFrame:
        """:meth:`gaps` of the reference itself (its cross-validated predictions)."""
        self._check_fitted()
        pred, age = self.reference_cv_pred_, self.reference_age_
        corrected = self.correct(pred, age)
        return pd.DataFrame({"age": age, "predicted_age": pred, "gap": pred - age, "corrected_predicted_age": corrected,
                             "corrected_gap": corrected - age, "cross_validated": True},
                            index=pd.Index(self.reference_ids_, name="participant_id"))

    def informativeness(self) -> dict:
        """Cross-validated R^2 and MAE of the reference, its age SD, and the verdict: ``informative`` is False
        when R^2 < 0.5 or MAE > 0.5 SD(age), with ``reason`` saying which and what it does to corrected gaps."""
        self._check_fitted()
        age, pred = self.reference_age_, self.reference_cv_pred_
        r2 = float(1 - np.sum((pred - age) ** 2) / np.sum((age - age.mean()) ** 2))
        mae, sd = float(np.mean(np.abs(pred - age))), float(np.std(age, ddof=1))
        out = {"r2_reference_cv": r2, "mae_reference_cv": mae, "age_sd_reference": sd,
               "informative": bool(r2 >= MIN_R2 and mae <= MAX_MAE_SD * sd)}
        if not out["informative"]:
            corrected = self.correct(pred, age) - age if self.slope_ >= MIN_SLOPE else np.zeros(1)
            out["reason"] = (
                f"the age model is uninformative: cross-validated R^2 {r2:.2f} (needs >= {MIN_R2}) and MAE {mae:.1f} y "
                f"(needs <= {MAX_MAE_SD} x the reference's age SD {sd:.1f} y = {MAX_MAE_SD * sd:.1f} y) on the reference; "
                f"its gaps mostly measure the model's error" + (
                    f", and the cole correction divides residuals by the slope a = {self.slope_:.2f}, so corrected gaps "
                    f"span {corrected.min():+.0f} to {corrected.max():+.0f} y on the reference itself"
                    if self.correction == "cole" and self.slope_ >= MIN_SLOPE else ""))
        return out

    def summary(self) -> dict:
        """Reference fit: MAE, r(gap, age) before and after correction, slope/offset, alpha, age range, and
        whether the model is informative (:meth:`informativeness`)."""
        ref = self.reference_table()
        verdict = self.informativeness()
        return {"informative": verdict["informative"], "r2_reference_cv": verdict["r2_reference_cv"],
                "age_sd_reference": verdict["age_sd_reference"], "n_reference": len(ref), "mae_reference_cv": float(np.mean(np.abs(ref["gap"]))),
                "mae_reference_cv_corrected": float(np.mean(np.abs(ref["corrected_gap"]))),
                "r_gap_age_reference": float(np.corrcoef(ref["gap"], ref["age"])[0, 1]),
                "r_corrected_gap_age_reference": float(np.corrcoef(ref["corrected_gap"], ref["age"])[0, 1]),
                "correction": self.correction, "slope_a": self.slope_, "offset_b": self.offset_,
                "ridge_alpha": self.alpha_, "age_range": [float(ref["age"].min()), float(ref["age"].max())]}

    # -- storage ---------------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        """Write the fitted model as plain arrays (``.npz``, no pickle); reload with :meth:`load`."""
        self._check_fitted()
        arrays = {"mean": self.mean_, "scale": self.scale_, "coef": self.coef_,
                  "feature_names": np.asarray(self.feature_names_), "reference_ids": self.reference_ids_,
                  "reference_age": self.reference_age_, "reference_cv_pred": self.reference_cv_pred_,
                  "reference_row_sums": self.reference_row_sums_}
        meta = {"intercept": self.intercept_, "alpha": self.alpha_, "slope": self.slope_, "offset": self.offset_,
                "correction": self.correction, "folds": self.folds, "grid": list(self.grid), "seed": self.seed,
                "summary": self.summary(), "provenance": provenance(self.seed),
                "encoder_identity": getattr(self, "encoder_identity_", None)}
        return save_model(path, KIND, arrays, meta)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "BrainAgeModel":
        arrays, meta = load_model(path, KIND)
        try:
            model = cls(meta["correction"], meta["folds"], meta["grid"], meta["seed"])
            model.mean_, model.scale_, model.coef_ = arrays["mean"], arrays["scale"], arrays["coef"]
            model.feature_names_ = [str(c) for c in arrays["feature_names"]]
            model.reference_ids_ = arrays["reference_ids"].astype(str)
            model.reference_age_, model.reference_cv_pred_ = arrays["reference_age"], arrays["reference_cv_pred"]
            model.reference_row_sums_ = arrays["reference_row_sums"]
            model.intercept_, model.alpha_ = float(meta["intercept"]), float(meta["alpha"])
            model.slope_, model.offset_ = float(meta["slope"]), float(meta["offset"])
            model.encoder_identity_ = meta.get("encoder_identity")  # absent in models of older versions
        except KeyError as exc:
            raise DataError(f"brain-age model file {path} lacks {exc}") from None
        return model


class BrainAge(RegressorMixin, BaseEstimator):
    """Brain age as a scikit-learn regressor: :class:`BrainAgeModel` (what ``anatlearn brain-age`` fits).

    ``fit(X, ages)`` fits the ridge age model and the bias correction on the training rows only (the
    correction on their cross-validated predictions); ``predict(X)`` returns predicted ages and
    ``gap(X, ages)`` the bias-corrected gaps (corrected predicted age minus ``ages``). Fitted attributes:
    ``model_`` (the :class:`BrainAgeModel`), ``slope_``, ``offset_``, ``r2_cv_``, ``mae_cv_`` and
    ``informative_`` (False when R^2 < 0.5 or MAE > half the training ages' SD).
    """

    def __init__(self, correction: str = "cole", folds: int = 5, grid=GRID, seed: int = 0):
        self.correction, self.folds, self.grid, self.seed = correction, folds, grid, seed

    def fit(self, X, y) -> "BrainAge":
        original = X
        X, y = validate_data(self, X, y, dtype=np.float64, y_numeric=True, ensure_min_samples=2 * int(self.folds))
        model = BrainAgeModel(self.correction, self.folds, self.grid, self.seed)
        self.model_ = model.fit(original if isinstance(original, pd.DataFrame) else X, y, require_slope=False)
        verdict = model.informativeness()
        self.slope_, self.offset_ = model.slope_, model.offset_
        self.r2_cv_, self.mae_cv_, self.informative_ = (verdict["r2_reference_cv"], verdict["mae_reference_cv"],
                                                        verdict["informative"])
        return self

    def predict(self, X) -> np.ndarray:
        """Predicted (uncorrected) age of every row."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, reset=False)
        return self.model_.predict(X)

    def gap(self, X, ages) -> np.ndarray:
        """Bias-corrected brain-age gap of every row: corrected predicted age - ``ages``."""
        predicted = self.predict(X)
        ages = as_ages(ages, len(predicted), "ages")
        return self.model_.correct(predicted, ages) - ages
