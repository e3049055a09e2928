"""Intervals and paired tests against independent references."""

import math

import numpy as np
import pytest
from scipy import stats

from anatlearn.evaluate.stats import (bootstrap_interval, corrected_interval, corrected_paired_ttest,
                                      repeat_interval, wilcoxon_repeats)


def test_corrected_interval_matches_nadeau_bengio_by_hand():
    scores = np.array([0.70, 0.74, 0.68, 0.77, 0.72, 0.71, 0.69, 0.75, 0.73, 0.70])
    n_train, n_test = 80, 20
    mean, lo, hi = corrected_interval(scores, n_train, n_test)
    J = len(scores)
    m = sum(scores) / J
    s2 = sum((s - m) ** 2 for s in scores) / (J - 1)
    half = stats.t.ppf(0.975, J - 1) * math.sqrt((1 / J + n_test / n_train) * s2)
    assert mean == pytest.approx(m)
    assert (lo, hi) == pytest.approx((m - half, m + half))


def test_corrected_test_without_overlap_term_is_the_ordinary_paired_t_test():
    rng = np.random.default_rng(0)
    a, b = rng.normal(0.7, 0.05, 25), rng.normal(0.68, 0.05, 25)
    t, p = corrected_paired_ttest(a, b, n_train=1e12, n_test=1e-12)  # n_test/n_train -> 0
    ref = stats.ttest_rel(a, b)
    assert t == pytest.approx(ref.statistic, rel=1e-6)
    assert p == pytest.approx(ref.pvalue, rel=1e-6)


def test_correction_makes_the_test_more_conservative():
    rng = np.random.default_rng(1)
    a = rng.normal(0.72, 0.03, 25)
    b = a - 0.01 + rng.normal(0, 0.02, 25)
    _, p_naive = corrected_paired_ttest(a, b, 1e12, 1e-12)
    _, p_corr = corrected_paired_ttest(a, b, 80, 20)
    assert p_corr > p_naive


def test_identical_methods_give_no_difference():
    a = np.array([0.6, 0.7, 0.8])
    assert corrected_paired_ttest(a, a, 80, 20) == (0.0, 1.0)
    # equal non-zero differences on every fold: no spread measured, so no p-value (not p = 0)
    t, p = corrected_paired_ttest([0.75, 0.5], [0.5, 0.25], 80, 20)
    assert np.isnan(t) and np.isnan(p)
    assert math.isnan(wilcoxon_repeats(a, a))


def test_repeat_interval_is_student_t_over_repeats():
    x = np.array([1.0, 2.0, 3.0, 4.0])
    mean, lo, hi = repeat_interval(x)
    half = stats.t.ppf(0.975, 3) * np.std(x, ddof=1) / 2
    assert (mean, lo, hi) == pytest.approx((2.5, 2.5 - half, 2.5 + half))


def test_bootstrap_interval_covers_the_mean_of_a_large_sample():
    rng = np.random.default_rng(2)
    x = rng.normal(5.0, 1.0, 2000)
    lo, hi = bootstrap_interval(np.mean, x, n_boot=300, seed=0)
    assert lo < x.mean() < hi
    assert hi - lo == pytest.approx(2 * 1.96 / math.sqrt(2000), rel=0.25)


def test_intervals_stay_in_the_metric_range():
    from anatlearn.evaluate.stats import TOO_FEW, bounded_interval

    assert bounded_interval("balanced_accuracy", 0.55, 0.80) == (0.55, 0.80, "")
    assert bounded_interval("balanced_accuracy", 0.60, 1.30) == (0.60, 1.0, "")
    lo, hi, note = bounded_interval("balanced_accuracy", -2.376, 3.126)  # the quick demo's, before the rule
    assert math.isnan(lo) and math.isnan(hi) and note == TOO_FEW
    assert bounded_interval("mae", -36.0, 45.0) == (0.0, 45.0, "")  # MAE >= 0, no upper bound: clipped, kept
    assert bounded_interval("r2", -29.0, 1.7) == (-29.0, 1.0, "")
    assert bounded_interval("some_new_metric", -5.0, 5.0) == (-5.0, 5.0, "")


def test_task_results_never_print_an_impossible_interval():
    """Two folds of 8 subjects: the t interval of the balanced accuracy would leave [0, 1]."""
    import pandas as pd

    from anatlearn.evaluate.downstream import _summarise

    folds = pd.DataFrame({"method": "m", "task": "t", "metric": "balanced_accuracy", "repeat": 0, "fold": [0, 1],
                          "score": [0.25, 0.75], "n_train": 8, "n_test": 8})
    row = _summarise(folds, "corrected")[0]
    assert math.isnan(row["ci_low"]) and row["ci_note"] == "n too small"
    folds["score"] = [0.70, 0.72]
    row = _summarise(folds, "corrected")[0]
    assert 0.0 <= row["ci_low"] < 0.71 < row["ci_high"] <= 1.0 and row["ci_note"] == ""
