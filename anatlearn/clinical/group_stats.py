"""Patients vs controls: standardised mean difference with a 95 % interval and Welch's t-test.

Hedges' g (Hedges & Olkin 1985, "Statistical Methods for Meta-Analysis", ch. 5):

    d = (mean_1 - mean_0) / s_p,   s_p^2 = ((n_1 - 1) s_1^2 + (n_0 - 1) s_0^2) / (n_1 + n_0 - 2)
    g = J d,                       J = 1 - 3 / (4 (n_1 + n_0) - 9)        (small-sample bias correction)
    SE(g) = sqrt((n_1 + n_0) / (n_1 n_0) + g^2 / (2 (n_1 + n_0)))        (large-sample approximation)
    95 % CI = g -+ z_{0.975} SE(g)

The test is Welch's unequal-variance t-test (Welch 1947), df by the Welch-Satterthwaite equation
(``scipy.stats.ttest_ind(equal_var=False)``).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats as sps

from anatlearn.errors import DataError

TEST_NAME = "Welch's t-test (two-sided)"


def hedges_g(x1, x0, confidence: float = 0.95) -> tuple[float, float, float]:
    """(g, low, high): Hedges' g of group 1 minus group 0 with its normal-approximation interval."""
    x1, x0 = np.asarray(x1, float), np.asarray(x0, float)
    n1, n0 = len(x1), len(x0)
    if n1 < 2 or n0 < 2:
        raise DataError(f"Hedges' g needs at least 2 subjects per group, got {n1} and {n0}")
    sp2 = ((n1 - 1) * x1.var(ddof=1) + (n0 - 1) * x0.var(ddof=1)) / (n1 + n0 - 2)
    if sp2 == 0:
        raise DataError("both groups have zero variance: the standardised difference is undefined")
    g = (1 - 3 / (4 * (n1 + n0) - 9)) * (x1.mean() - x0.mean()) / math.sqrt(sp2)
    se = math.sqrt((n1 + n0) / (n1 * n0) + g**2 / (2 * (n1 + n0)))
    z = float(sps.norm.ppf(0.5 + confidence / 2))
    return float(g), float(g - z * se), float(g + z * se)


def compare_groups(values: pd.Series, groups: pd.Series, control: str, what: str = "value") -> pd.DataFrame:
    """Every group other than ``control`` against ``control``: sizes, means, Hedges' g [95 % CI], Welch t, df,
    p. ``values`` and ``groups`` share their index (subjects); subjects without a group are left out."""
    groups = groups.dropna().astype(str)
    values = values.loc[groups.index].astype(float)
    if control not in set(groups):
        raise DataError(f"control group {control!r} not found (groups: {', '.join(sorted(set(groups)))})")
    x0 = values[groups == control].to_numpy()
    rows = []
    for name in sorted(set(groups) - {control}):
        x1 = values[groups == name].to_numpy()
        if len(x1) < 2 or len(x0) < 2:
            continue
        g, lo, hi = hedges_g(x1, x0)
        test = sps.ttest_ind(x1, x0, equal_var=False)
        rows.append({"measure": what, "group": name, "control": control, "n_group": len(x1), "n_control": len(x0),
                     "mean_group": float(x1.mean()), "mean_control": float(x0.mean()), "hedges_g": g,
                     "g_ci_low": lo, "g_ci_high": hi, "test": TEST_NAME, "t": float(test.statistic),
                     "df": float(test.df), "p": float(test.pvalue)})
    return pd.DataFrame(rows)
