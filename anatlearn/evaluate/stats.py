"""Intervals and paired tests for repeated K-fold cross-validation scores.

Scores from R repeats of K-fold CV on one data set are not independent: training sets overlap, so the
naive standard error sd/sqrt(R*K) is too small. Nadeau & Bengio (2003, "Inference for the generalization
error", Machine Learning 52:239-281) correct the variance of the mean of J = R*K resampled scores to

    Var_corr = (1/J + n_test/n_train) * S^2,

where S^2 is the sample variance of the J scores. Bouckaert & Frank (2004) use it for repeated K-fold
("corrected repeated k-fold cv test"): t = mean / sqrt(Var_corr), Student t with J - 1 degrees of freedom.
We use it both for the 95 % interval of one method's score and, on the per-fold *differences* between two
methods evaluated on identical splits, for the paired test. A Wilcoxon signed-rank test over the R
per-repeat means is offered as a non-parametric alternative.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats as sps

from anatlearn.errors import ConfigError


def corrected_variance(scores: np.ndarray, n_train: float, n_test: float) -> float:
    """Nadeau-Bengio corrected variance of the mean of resampled scores: (1/J + n_test/n_train) S^2."""
    scores = np.asarray(scores, dtype=float)
    if scores.size < 2:
        return float("nan")
    return (1.0 / scores.size + n_test / n_train) * float(np.var(scores, ddof=1))


def corrected_interval(scores, n_train: float, n_test: float, confidence: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high): mean +- t_{(1+c)/2, J-1} sqrt(Var_corr) over J = R*K fold scores."""
    scores = np.asarray(scores, dtype=float)
    mean = float(scores.mean())
    var = corrected_variance(scores, n_train, n_test)
    if not math.isfinite(var):
        return mean, float("nan"), float("nan")
    half = float(sps.t.ppf(0.5 + confidence / 2, scores.size - 1)) * math.sqrt(var)
    return mean, mean - half, mean + half


# The values each metric can take; an interval is never reported outside them.
METRIC_RANGES = {"balanced_accuracy": (0.0, 1.0), "roc_auc": (0.0, 1.0), "accuracy": (0.0, 1.0),
                 "mae": (0.0, math.inf), "r2": (-math.inf, 1.0), "icc": (-1.0, 1.0), "pearson_r": (-1.0, 1.0)}
TOO_FEW = "n too small"


def bounded_interval(metric: str, low: float, high: float) -> tuple[float, float, str]:
    """(low, high, note): a t interval clipped to the metric's range (:data:`METRIC_RANGES`).

    With few folds or subjects the t quantile and the fold variance can put a normal-theory interval far
    outside what the metric can take (a balanced accuracy of -2.4 to 3.1). Clipping keeps what the data do
    say; an interval that covers the whole range of a bounded metric says nothing, so it is dropped (nan,
    nan) with the note "n too small".
    """
    lo_b, hi_b = METRIC_RANGES.get(metric, (-math.inf, math.inf))
    if math.isnan(low) or math.isnan(high):
        return low, high, ""
    if math.isfinite(lo_b) and math.isfinite(hi_b) and low <= lo_b and high >= hi_b:
        return math.nan, math.nan, TOO_FEW
    return max(low, lo_b), min(high, hi_b), ""


def repeat_interval(repeat_means, confidence: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high): Student t interval over R per-repeat means (narrow: repeats share the data)."""
    x = np.asarray(repeat_means, dtype=float)
    mean = float(x.mean())
    if x.size < 2:
        return mean, float("nan"), float("nan")
    half = float(sps.t.ppf(0.5 + confidence / 2, x.size - 1)) * float(x.std(ddof=1)) / math.sqrt(x.size)
    return mean, mean - half, mean + half


def bootstrap_interval(stat, *arrays, n_boot: int = 1000, seed: int = 0,
                       confidence: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of ``stat(*arrays)``, resampling subjects (rows) with replacement."""
    rng = np.random.default_rng(seed)
    n = len(arrays[0])
    values = np.empty(n_boot)
    for b in range(n_boot):
        idx = rng.integers(0, n, n)
        values[b] = stat(*(a[idx] for a in arrays))
    lo, hi = np.nanquantile(values, [0.5 - confidence / 2, 0.5 + confidence / 2])
    return float(lo), float(hi)


def corrected_paired_ttest(scores_a, scores_b, n_train: float, n_test: float) -> tuple[float, float]:
    """(t, two-sided p) of the corrected resampled t-test on per-fold differences a - b (identical splits).

    t = mean(d) / sqrt((1/J + n_test/n_train) S_d^2), df = J - 1 (Nadeau & Bengio 2003). Identical
    scores give t = 0, p = 1. Differences that are all equal but not zero (S_d = 0, e.g. two folds whose
    balanced accuracies moved by the same step) leave the variance estimate degenerate: t and p are nan
    (undefined), not p = 0, since no spread was measured from which to claim certainty.
    """
    d = np.asarray(scores_a, dtype=float) - np.asarray(scores_b, dtype=float)
    if d.size < 2:
        raise ConfigError("a paired test needs at least 2 folds")
    var = corrected_variance(d, n_train, n_test)
    if var == 0:
        return (0.0, 1.0) if d.mean() == 0 else (math.nan, math.nan)
    t = float(d.mean() / math.sqrt(var))
    return t, float(2 * sps.t.sf(abs(t), d.size - 1))


def wilcoxon_repeats(repeat_means_a, repeat_means_b) -> float:
    """Two-sided p of the Wilcoxon signed-rank test over per-repeat means (nan if all differences are 0)."""
    d = np.asarray(repeat_means_a, dtype=float) - np.asarray(repeat_means_b, dtype=float)
    if np.all(d == 0):
        return float("nan")
    return float(sps.wilcoxon(d).pvalue)
