"""The one paired rule of the study (anatlearn.study.units): the paired t-test over seeds against the
textbook test (scipy.stats.ttest_rel) and by hand, its degenerate cases, and its use by both the
package's tables and the studies' analyses."""

import math
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from anatlearn.study.aggregate import paired_seeds
from anatlearn.study.units import is_called, paired_by_seed, paired_seed_test
from studies.predictions import compare


def _series(values, seeds=None):
    return pd.Series(values, index=list(range(len(values))) if seeds is None else seeds, dtype=float)


@pytest.mark.parametrize("n", [2, 3, 5, 8])
def test_paired_t_equals_the_textbook_test(n):
    rng = np.random.default_rng(n)
    a, b = rng.normal(0.6, 0.05, n), rng.normal(0.58, 0.05, n)
    r = paired_seed_test(_series(a), _series(b))
    ref = sps.ttest_rel(a, b)
    d = a - b
    t = d.mean() / (d.std(ddof=1) / math.sqrt(n))  # Student's paired t, n - 1 degrees of freedom
    assert r.t == pytest.approx(ref.statistic, rel=1e-12) and r.t == pytest.approx(t, rel=1e-12)
    assert r.p == pytest.approx(ref.pvalue, rel=1e-12) and r.p == pytest.approx(2 * sps.t.sf(abs(t), n - 1))
    assert r.mean_diff == pytest.approx(d.mean()) and r.sd_diff == pytest.approx(d.std(ddof=1)) and r.n == n
    assert r.called == (ref.pvalue < 0.05 and (np.all(d > 0) or np.all(d < 0)))


def test_only_the_seeds_both_have_are_paired():
    a = _series([0.5, 0.6, 0.7, 0.9], seeds=[0, 1, 2, 3])
    b = _series([0.4, 0.45, 0.62], seeds=[1, 2, 3])
    r = paired_seed_test(a, b)
    assert r.n == 3 and r.mean_a == pytest.approx(0.733333333) and r.p == pytest.approx(
        sps.ttest_rel([0.6, 0.7, 0.9], [0.4, 0.45, 0.62]).pvalue)


def test_the_same_difference_on_every_seed_is_called():
    """sd(d) = 0 with a non-zero difference: t is the limit +-inf, p = 0, and the rule calls it (scipy's
    ttest_rel gives the same limit when the differences are equal as floats)."""
    r = paired_seed_test(_series([0.7, 0.8, 0.9]), _series([0.6, 0.7, 0.8]))  # 0.1 up to rounding
    assert r.t == math.inf and r.p == 0.0 and r.same_sign and r.called
    r = paired_seed_test(_series([0.5, 0.5, 0.5]), _series([0.75, 0.75, 0.75]))  # -0.25 exactly
    assert r.t == -math.inf and r.p == 0.0 and r.called and r.mean_diff == -0.25 and r.sd_diff == 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # scipy warns of the zero variance it then handles
        assert sps.ttest_rel([0.5, 0.5, 0.5], [0.75, 0.75, 0.75]).pvalue == 0.0


def test_no_difference_and_one_seed_are_never_called():
    r = paired_seed_test(_series([0.7, 0.8, 0.9]), _series([0.7, 0.8, 0.9]))
    assert math.isnan(r.t) and math.isnan(r.p) and not r.same_sign and not r.called
    r = paired_seed_test(_series([0.9]), _series([0.1]))
    assert r.n == 1 and math.isnan(r.p) and r.same_sign and not r.called
    assert not is_called(0.01, same_sign=False) and not is_called(0.05, same_sign=True)
    assert is_called(0.0499, same_sign=True) and not is_called(float("nan"), same_sign=True)


def test_package_tables_and_studies_read_the_same_rule():
    """aggregate.paired_seeds (summary.md, key_comparisons.tsv) and studies.predictions.compare (tables.md,
    the replication and views reports) give the same p and call, the degenerate case included; random init
    is paired at any budget."""
    rows = [{"name": n, "seed": s, "budget": b, "m": v}
            for n, b, vs in (("a", 30, [0.80, 0.82, 0.81]), ("c", 30, [0.71, 0.72, 0.72]),
                             ("random-init", 0, [0.70, 0.71, 0.71]))
            for s, v in enumerate(vs)]
    units = pd.DataFrame(rows)
    for a, b in (("a", "random-init"), ("c", "random-init"), ("a", "c")):
        table = paired_seeds(units, [(a, b)], ["m"], [30]).iloc[0]
        script = compare(units, a, b, "m", 30)
        direct = paired_by_seed(units, a, b, "m", 30)
        assert table["p"] == script["p"] == direct.p
        assert is_called(table["p"], table["same_sign"]) == script["called"] == direct.called
    # c - random init = 0.01 on every seed: the degenerate case, called by both
    assert compare(units, "c", "random-init", "m", 30)["called"] and compare(units, "c", "random-init", "m", 30)["p"] == 0
