"""ICC against a brute-force two-way ANOVA written independently, and known answers."""

import numpy as np
import pandas as pd
import pytest

from anatlearn.errors import DataError
from anatlearn.evaluate import icc, icc_summary, make_feature_table


def _anova_icc(a, b, kind):
    """Shrout & Fleiss ICC from explicit sums of squares, one feature at a time."""
    rows = list(zip(a, b))
    n, k = len(rows), 2
    grand = sum(a + b for a, b in rows) / (n * k)
    ss_rows = sum(k * ((r[0] + r[1]) / 2 - grand) ** 2 for r in rows)
    col_means = [sum(r[j] for r in rows) / n for j in range(k)]
    ss_cols = sum(n * (c - grand) ** 2 for c in col_means)
    ss_tot = sum((v - grand) ** 2 for r in rows for v in r)
    ss_err = ss_tot - ss_rows - ss_cols
    msr, msc, mse = ss_rows / (n - 1), ss_cols / (k - 1), ss_err / ((n - 1) * (k - 1))
    if kind == "consistency":
        return (msr - mse) / (msr + (k - 1) * mse)
    return (msr - mse) / (msr + (k - 1) * mse + k * (msc - mse) / n)


@pytest.mark.parametrize("kind", ["agreement", "consistency"])
def test_icc_matches_brute_force_anova(kind):
    rng = np.random.default_rng(0)
    true = rng.normal(size=(30, 4))
    a = true + rng.normal(0, 0.5, true.shape)
    b = true + 0.3 + rng.normal(0, 0.5, true.shape)  # a systematic shift: agreement < consistency
    ids = [f"s{i}" for i in range(30)]
    got = icc(make_feature_table(a, ids), make_feature_table(b, ids), kind)
    for j in range(4):
        assert got.iloc[j] == pytest.approx(_anova_icc(a[:, j], b[:, j], kind), rel=1e-10)


def test_known_answers_identical_and_independent():
    rng = np.random.default_rng(1)
    ids = [f"s{i}" for i in range(500)]
    x = make_feature_table(rng.normal(size=(500, 3)), ids)
    assert np.allclose(icc(x, x), 1.0)
    y = make_feature_table(rng.normal(size=(500, 3)), ids)
    assert np.all(np.abs(icc(x, y)) < 0.15)
    summary = icc_summary(icc(x, x))
    assert summary["frac_good"] == 1.0 and summary["n_features"] == 3


def test_retest_rows_are_matched_by_id_not_position():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(20, 2))
    ids = [f"s{i}" for i in range(20)]
    a = make_feature_table(x, ids)
    b = make_feature_table(x[::-1], ids[::-1])
    assert np.allclose(icc(a, b), 1.0)


def test_mismatched_feature_sizes_are_an_error():
    a = make_feature_table(np.zeros((5, 3)), list("abcde"))
    b = make_feature_table(np.zeros((5, 4)), list("abcde"))
    with pytest.raises(DataError, match="3 vs 4"):
        icc(a, b)
    c = make_feature_table(np.zeros((2, 3)), ["a", "b"])
    with pytest.raises(DataError, match="share 2 subjects"):
        icc(a, c)
