"""Downstream probes: known answers, identical splits, paired tests, bad input, results round trip."""

import numpy as np
import pandas as pd
import pytest

from anatlearn.errors import DataError
from anatlearn.evaluate import Results, Task, evaluate_tasks, make_feature_table
from anatlearn.evaluate.probes import make_splits

AD_CN = Task("AD-vs-CN", "classification", "diagnosis", ("AD",), ("CN",))
MMSE = Task("MMSE", "regression", "mmse")


def _row(res, method, task, metric):
    t = res.table
    return t[(t.method == method) & (t.task == task) & (t.metric == metric)].iloc[0]


@pytest.fixture
def methods(diagnosis_cohort):
    p = diagnosis_cohort
    rng = np.random.default_rng(5)
    n = len(p)
    ad = (p["diagnosis"] == "AD").to_numpy(float)
    good = np.c_[3 * ad + rng.normal(0, 0.5, n), p["mmse"].to_numpy() + rng.normal(0, 0.1, n), rng.normal(size=(n, 4))]
    return {"good": make_feature_table(good, p.index), "random": make_feature_table(rng.normal(size=(n, 6)), p.index)}


def test_known_answers_and_paired_test(diagnosis_cohort, methods):
    res = evaluate_tasks(methods, diagnosis_cohort, [AD_CN, MMSE], n_splits=5, n_repeats=3, seed=0)
    assert _row(res, "good", "AD-vs-CN", "balanced_accuracy")["mean"] > 0.97
    assert _row(res, "good", "AD-vs-CN", "roc_auc")["mean"] > 0.99
    assert abs(_row(res, "random", "AD-vs-CN", "balanced_accuracy")["mean"] - 0.5) < 0.1
    # the score is in the features up to noise sd 0.1: MAE ~ 0.1 sqrt(2/pi) = 0.08
    assert _row(res, "good", "MMSE", "mae")["mean"] < 0.12
    assert _row(res, "good", "MMSE", "r2")["mean"] > 0.99
    assert _row(res, "random", "MMSE", "r2")["mean"] < 0.05
    row = _row(res, "good", "AD-vs-CN", "balanced_accuracy")
    assert row["ci_low"] <= row["mean"] <= row["ci_high"] and row["n"] == 240
    assert not row["lower_is_better"] and _row(res, "good", "MMSE", "mae")["lower_is_better"]
    pair = res.paired[(res.paired.task == "AD-vs-CN") & (res.paired.metric == "balanced_accuracy")].iloc[0]
    assert (pair.method_a, pair.method_b) == ("good", "random")
    assert pair.mean_diff > 0.4 and pair.p_corrected_t < 1e-3 and pair.n_folds == 15
    # both methods were scored on the same folds
    f = res.folds[(res.folds.task == "AD-vs-CN") & (res.folds.metric == "roc_auc")]
    a, b = (f[f.method == m][["repeat", "fold", "n_train", "n_test"]].to_numpy() for m in ("good", "random"))
    np.testing.assert_array_equal(a, b)


def test_fixed_seed_reproduces_and_seed_changes_splits(diagnosis_cohort, methods):
    r1 = evaluate_tasks(methods, diagnosis_cohort, [AD_CN], n_splits=3, n_repeats=2, seed=7)
    r2 = evaluate_tasks(methods, diagnosis_cohort, [AD_CN], n_splits=3, n_repeats=2, seed=7)
    pd.testing.assert_frame_equal(r1.table, r2.table)
    y = np.array([0, 1] * 20)
    s7, s8 = make_splits(y, "classification", 4, 1, 7), make_splits(y, "classification", 4, 1, 8)
    assert not all(np.array_equal(a.test, b.test) for a, b in zip(s7, s8))


def test_site_stratified_splits_balance_sites():
    y = np.array([0, 1] * 60)
    sites = np.repeat(["a", "b", "c"], 40)
    for s in make_splits(y, "classification", 4, 2, 0, sites=sites):
        counts = pd.crosstab(y[s.test], sites[s.test]).to_numpy()
        assert counts.min() >= 4 and counts.max() <= 6  # 20 per (class, site) stratum / 4 folds = 5


def test_common_subjects_across_methods(diagnosis_cohort, methods):
    partial = {"good": methods["good"], "few": methods["random"].iloc[:200]}  # CN subjects s0120.. partly cut
    res = evaluate_tasks(partial, diagnosis_cohort, [AD_CN], n_splits=3, n_repeats=1)
    assert set(res.table["n"]) == {200}


def test_bad_input_errors(diagnosis_cohort, methods):
    p = diagnosis_cohort
    with pytest.raises(DataError, match="task T: column 'nope'"):
        evaluate_tasks(methods, p, [Task("T", "regression", "nope")])
    single = Task("AD-only", "classification", "diagnosis", ("AD",), ("CN",), where={"diagnosis": ["AD"]})
    with pytest.raises(DataError, match="AD-only: a single class"):
        evaluate_tasks(methods, p, [single])
    few = p.copy()
    few.loc[few.index[:117], "diagnosis"] = "other"  # 3 AD left
    with pytest.raises(DataError, match="class AD has 3 subjects, fewer than the 5 folds"):
        evaluate_tasks(methods, few, [AD_CN], n_splits=5)
    nan = methods["good"].copy()
    nan.iloc[3, 2] = np.nan
    with pytest.raises(DataError, match="NaN.*s0003"):
        evaluate_tasks({"nan": nan}, p, [AD_CN])
    with pytest.raises(DataError, match="no participant id in common"):
        evaluate_tasks({"other": make_feature_table(np.zeros((3, 2)), ["x", "y", "z"])}, p, [AD_CN])


def test_results_round_trip(tmp_path, diagnosis_cohort, methods):
    res = evaluate_tasks(methods, diagnosis_cohort, [MMSE], n_splits=3, n_repeats=1)
    res.write(tmp_path / "out")
    assert {"results.csv", "results.json", "folds.csv", "paired.csv"} <= {p.name for p in (tmp_path / "out").iterdir()}
    back = Results.read(tmp_path / "out")
    pd.testing.assert_frame_equal(back.table, res.table, check_dtype=False)
    assert back.kind == "tasks" and back.provenance["config"]["n_splits"] == 3
    assert "MMSE" in back.format_table() and "good" in back.format_table()


def test_small_regression_task_gets_valid_folds():
    # 20 subjects, 5 folds: five quantile bins of 4 would be smaller than K (sklearn refuses); anatlearn uses
    # 4 bins of 5, so every subject is tested exactly once per repeat and folds stay balanced in y.
    y = np.arange(20, dtype=float)
    splits = make_splits(y, "regression", 5, 2, 0)
    assert len(splits) == 10
    for r in range(2):
        tested = np.concatenate([s.test for s in splits if s.repeat == r])
        assert sorted(tested.tolist()) == list(range(20))
    for s in splits:  # one subject of each quartile in every test fold
        assert sorted((y[s.test] // 5).tolist()) == [0, 1, 2, 3]


def test_unsplittable_strata_are_a_clear_error():
    y = np.arange(10, dtype=float)
    with pytest.raises(DataError, match="task T: cannot make 5 stratified folds"):
        make_splits(y, "regression", 5, 1, 0, sites=np.arange(10), task="T")
