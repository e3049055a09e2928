"""studies/finetune_readings.py: every pre-written comparison read from the measurement's paired seed tests,
oriented as the plan words it (a - b), against the textbook paired t and the study's calling rule."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from studies import finetune_measure as fm
from studies import finetune_readings as fr

METHODS = [f"{k}:{e}" for e in (fr.ANATCL, fr.YAWARE, fr.RANDOM) for k in ("finetune", "probe")]


def per_seed(values):
    """values[(task, method)] = three per-seed fold means (the same on both metrics)."""
    return pd.DataFrame([{"task": t, "method": m, "metric": metric, "mean": v, "seed": s}
                         for (t, m), vs in values.items() for s, v in enumerate(vs)
                         for metric, _ in fr.METRICS])


def test_readings_follow_the_rule_and_orientation():
    rng = np.random.default_rng(0)
    values = {(t, m): list(0.6 + 0.05 * rng.standard_normal(3)) for t in fr.TASKS for m in METHODS}
    ad = fr.TASKS[0]
    # planted: y-Aware fine-tuned clearly above random-init fine-tuned (the pair is stored as random - yaware)
    values[(ad, "finetune:random-init")] = [0.60, 0.62, 0.61]
    values[(ad, "finetune:yaware")] = [0.70, 0.73, 0.71]
    values[(ad, "probe:yaware")] = [0.80, 0.84, 0.82]
    # planted: fine-tune from random init clearly below its probe on AD-like (expected ahead: not met)
    values[(ad, "probe:random-init")] = [0.70, 0.73, 0.715]
    tests = fm.seed_tests(per_seed(values))
    table = fr.readings(tests)
    assert len(table) == 12  # 6 comparisons per task
    for r in table.itertuples():
        a, b = np.array(values[(r.task, r.a)]), np.array(values[(r.task, r.b)])
        d = a - b
        p = sps.ttest_rel(a, b).pvalue
        assert r.diff == pytest.approx(d.mean()) and r.p == pytest.approx(p)
        assert r.seeds_a_above_b == int((d > 0).sum())
        called = p < 0.05 and len(set(np.sign(d))) == 1
        assert r.reading == (("ahead" if d.mean() > 0 else "behind") if called else "level")
    row = table[(table.task == ad) & (table.a == "finetune:yaware") & (table.b == "finetune:random-init")].iloc[0]
    assert row.reading == "ahead" and row["diff"] == pytest.approx(0.1033333, abs=1e-6)
    # the probe gap it must stay under (0.82 - 0.715 ≈ 0.105 on average): met
    assert "+0.105" in row.expected and row.met
    row = table[(table.task == ad) & (table.comparison.str.startswith("3"))].iloc[0]
    assert row.reading == "behind" and row.expected == "ahead" and not row.met


def test_score_table_and_markdown():
    summary = pd.DataFrame([{"task": fr.TASKS[0], "method": "finetune:yaware", "metric": "balanced_accuracy",
                             "mean": 0.71234, "std": 0.0456, "count": 3}])
    table = fr.score_table(summary)
    cell = table[(table.task == fr.TASKS[0]) & (table.method == "finetune:yaware")]["BAcc"].iloc[0]
    assert cell == "0.712 +- 0.046 (n=3)"
    assert table["ROC AUC"].eq("").all() and len(table) == 12
    text = fr.markdown(table)
    assert text.splitlines()[1] == "|---|---|---|---|" and "0.712 +- 0.046 (n=3)" in text
