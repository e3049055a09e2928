"""The synthetic preset runs on the generator's downstream cohort; descriptor features beat random ones."""

import numpy as np
import pandas as pd

from anatlearn.data import open_dataset
from anatlearn.evaluate import evaluate_tasks, load_tasks, make_feature_table, read_participants


def test_synthetic_preset_on_generated_cohort(tiny_downstream):
    ds = open_dataset(tiny_downstream)
    participants = read_participants(tiny_downstream)
    ids = ds.participants["participant_id"]
    desc = ds.descriptors(("CT", "GMV", "SA"))
    ct = np.log(desc[..., 0])  # regional thickness carries the atrophy pattern (SPEC s.7)
    rng = np.random.default_rng(0)
    tables = {"thickness": make_feature_table(ct, ids), "random": make_feature_table(rng.normal(size=ct.shape), ids)}
    tasks = load_tasks("synthetic")
    res = evaluate_tasks(tables, participants, tasks, n_splits=3, n_repeats=2, seed=0)
    assert set(res.table.task) == {t.name for t in tasks}
    t = res.table.set_index(["method", "task", "metric"])["mean"]
    assert t["thickness", "AD-like-vs-CN", "roc_auc"] > t["random", "AD-like-vs-CN", "roc_auc"] + 0.2
    assert res.table["n"].min() >= 10
