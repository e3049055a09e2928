"""Brain age: the bias correction (known linear bias removed; |r(corrected gap, age)| < 0.05 on the
reference), cross-validated reference predictions, save/load round trip, group statistics."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from anatlearn.clinical.brain_age import BrainAgeModel, correct_predictions, fit_bias
from anatlearn.clinical.group_stats import compare_groups, hedges_g
from anatlearn.errors import DataError


def noisy_age_features(n, seed, n_features=20, noise=8.0):
    """Features = age + independent noise: a ridge model on them regresses towards the mean age."""
    rng = np.random.default_rng(seed)
    age = rng.uniform(10, 85, n)
    X = age[:, None] + rng.normal(0, noise, (n, n_features)) * rng.uniform(1, 4, n_features)
    ids = [f"s{seed}-{i:03d}" for i in range(n)]
    return pd.DataFrame(X, index=pd.Index(ids, name="participant_id"),
                        columns=[f"f{i:04d}" for i in range(n_features)]), age


@pytest.mark.parametrize("correction", ["cole", "beheshti"])
def test_known_linear_bias_is_removed(correction):
    rng = np.random.default_rng(0)
    age = rng.uniform(20, 80, 500)
    error = rng.normal(0, 3, 500)
    pred = 0.6 * age + 20 + error  # regression to the mean: young look older, old look younger
    a, b = fit_bias(age, pred)
    assert a == pytest.approx(0.6, abs=0.02) and b == pytest.approx(20, abs=1.0)
    corrected_gap = correct_predictions(pred, age, a, b, correction) - age
    assert abs(np.corrcoef(pred - age, age)[0, 1]) > 0.8
    assert abs(np.corrcoef(corrected_gap, age)[0, 1]) < 1e-10  # OLS residual: exactly uncorrelated in sample
    expected = error / 0.6 if correction == "cole" else error  # what is left once the line is removed
    assert np.corrcoef(corrected_gap, expected)[0, 1] > 0.999


@pytest.mark.parametrize("correction", ["cole", "beheshti"])
def test_reference_corrected_gap_uncorrelated_with_age(correction):
    X, age = noisy_age_features(200, seed=1)
    model = BrainAgeModel(correction=correction, folds=5, seed=0).fit(X, age)
    ref = model.reference_table()
    assert np.corrcoef(ref["gap"], ref["age"])[0, 1] < -0.2  # the raw gap has the bias
    assert abs(np.corrcoef(ref["corrected_gap"], ref["age"])[0, 1]) < 0.05
    assert model.summary()["r_corrected_gap_age_reference"] == pytest.approx(0, abs=0.05)
    # a new cohort from the same population: the correction fitted on the reference carries over
    X_new, age_new = noisy_age_features(400, seed=2)
    new = model.gaps(X_new, age_new)
    assert abs(np.corrcoef(new["corrected_gap"], new["age"])[0, 1]) < 0.15
    assert not new["cross_validated"].any()


def test_reference_subjects_keep_cross_validated_predictions_and_round_trip(tmp_path):
    X, age = noisy_age_features(60, seed=3)
    model = BrainAgeModel(folds=3).fit(X, age)
    again = model.gaps(X, age)
    assert again["cross_validated"].all()
    np.testing.assert_allclose(again["predicted_age"], model.reference_cv_pred_)
    # in-sample predictions are better than the CV ones: using them would understate the gap
    assert np.mean(np.abs(model.predict(X) - age)) < np.mean(np.abs(model.reference_cv_pred_ - age))
    path = model.save(tmp_path / "model.npz")
    with np.load(path, allow_pickle=False) as f:  # no object arrays: loadable without pickle
        assert "coef" in f.files
    loaded = BrainAgeModel.load(path)
    X_new, age_new = noisy_age_features(30, seed=4)
    pd.testing.assert_frame_equal(loaded.gaps(X_new, age_new), model.gaps(X_new, age_new))
    with pytest.raises(DataError, match="columns"):
        loaded.gaps(X_new.iloc[:, :5], age_new)


def test_unrelated_features_refused():
    rng = np.random.default_rng(5)
    X = pd.DataFrame(rng.normal(size=(60, 5)), index=[str(i) for i in range(60)])
    with pytest.raises(DataError, match="do not follow age"):
        BrainAgeModel().fit(X, rng.uniform(20, 80, 60))


def test_hedges_g_and_welch_test():
    x1 = np.array([3.1, 4.2, 5.0, 6.3, 4.8, 5.5])
    x0 = np.array([2.0, 2.5, 3.9, 3.1, 2.2])
    n1, n0 = len(x1), len(x0)
    sp = np.sqrt(((n1 - 1) * x1.var(ddof=1) + (n0 - 1) * x0.var(ddof=1)) / (n1 + n0 - 2))
    g_expected = (1 - 3 / (4 * (n1 + n0) - 9)) * (x1.mean() - x0.mean()) / sp
    g, lo, hi = hedges_g(x1, x0)
    assert g == pytest.approx(g_expected, rel=1e-12)
    se = np.sqrt((n1 + n0) / (n1 * n0) + g**2 / (2 * (n1 + n0)))
    assert (hi - lo) / 2 == pytest.approx(1.959964 * se, rel=1e-5)
    groups = pd.Series(["AD"] * n1 + ["CN"] * n0)
    table = compare_groups(pd.Series(np.r_[x1, x0]), groups, "CN", "gap")
    welch = stats.ttest_ind(x1, x0, equal_var=False)
    assert table.loc[0, "p"] == pytest.approx(welch.pvalue) and table.loc[0, "test"].startswith("Welch")
    with pytest.raises(DataError, match="control group 'HC' not found"):
        compare_groups(pd.Series(np.r_[x1, x0]), groups, "HC")


def test_hedges_g_interval_covers_true_effect():
    rng = np.random.default_rng(7)
    covered = 0
    for _ in range(200):
        _, lo, hi = hedges_g(rng.normal(0.5, 1, 40), rng.normal(0, 1, 40))
        covered += lo <= 0.5 <= hi
    assert 0.90 <= covered / 200 <= 0.99
