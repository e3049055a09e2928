"""studies/finetune_measure.py's analysis on hand-made units: the per-seed fold means, their mean +- sd over
seeds and the paired t over seeds against the textbook formula; and a restored, finished unit needs no
encoder (a fresh checkout continuing the measurement does not retrain it)."""

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from studies import finetune_measure as fm

TASK = "AD-like-vs-CN"


def rows(method, scores):
    return [{"method": method, "task": TASK, "repeat": 0, "fold": k, "metric": "balanced_accuracy", "score": s,
             "n_train": 16, "n_test": 4} for k, s in enumerate(scores)]


def write_unit(out, encoder, seed, ft, probe):
    path = out / "cells" / encoder / f"seed-{seed}" / f"{TASK}.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"encoder": encoder, "seed": seed, "task": TASK, "finetune": rows("finetune", ft),
                                "probe": rows("probe", probe)}))


def test_summary_and_paired_seed_tests(tmp_path):
    ft = {0: [0.6, 0.7, 0.8, 0.7, 0.6], 1: [0.7, 0.7, 0.7, 0.8, 0.6], 2: [0.5, 0.6, 0.7, 0.6, 0.6]}
    probe = {0: [0.5, 0.6, 0.6, 0.6, 0.5], 1: [0.6, 0.6, 0.7, 0.7, 0.6], 2: [0.5, 0.6, 0.6, 0.5, 0.6]}
    for seed in ft:
        write_unit(tmp_path, "yaware", seed, ft[seed], probe[seed])
    fm.summarise(tmp_path, (0, 1, 2), (TASK,))
    summary = pd.read_csv(tmp_path / "summary.csv").set_index("method")
    a = np.array([np.mean(ft[s]) for s in ft])
    b = np.array([np.mean(probe[s]) for s in probe])
    assert summary.loc["finetune:yaware", "mean"] == pytest.approx(a.mean())
    assert summary.loc["finetune:yaware", "std"] == pytest.approx(a.std(ddof=1))
    assert summary.loc["probe:yaware", "count"] == 3
    paired = pd.read_csv(tmp_path / "paired_seeds.csv").iloc[0]
    d = a - b if paired["method_a"] == "finetune:yaware" else b - a
    t = d.mean() / (d.std(ddof=1) / np.sqrt(3))
    assert paired["mean_diff"] == pytest.approx(d.mean())
    assert paired["p_paired_t"] == pytest.approx(2 * sps.t.sf(abs(t), 2))
    assert paired["seeds_a_above_b"] == int((d > 0).sum()) and paired["n_seeds"] == 3
    # per (seed, task): the corrected fold test of every pair, on the same folds
    assert (tmp_path / "comparisons" / "seed-0" / TASK).is_dir()


def test_finished_units_need_no_encoder(tmp_path, monkeypatch):
    for encoder in fm.ENCODERS:
        for task in fm.TASKS:
            path = tmp_path / "cells" / encoder / "seed-0" / f"{task}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps({"encoder": encoder, "seed": 0, "task": task, "finetune": [], "probe": []}))
    calls = []
    monkeypatch.setattr(fm, "make_cohorts", lambda out, s: None)
    monkeypatch.setattr(fm, "encoder_weights", lambda *a: calls.append(a))
    monkeypatch.setattr(fm, "summarise", lambda *a: None)
    assert fm.main(["--out", str(tmp_path), "--size", "tiny", "--seeds", "0"]) == 0
    assert calls == []


def test_encoders_option_restricts_the_work(tmp_path, monkeypatch):
    calls = []

    def fake_unit(out, weights, encoder, seed, task, cfg):
        path = out / "cells" / encoder / f"seed-{seed}" / f"{task}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"timing_s": {}}))
        return path

    monkeypatch.setattr(fm, "make_cohorts", lambda out, s: None)
    monkeypatch.setattr(fm, "encoder_weights", lambda out, study, s, method, seed, budget: calls.append(method))
    monkeypatch.setattr(fm, "run_unit", fake_unit)
    monkeypatch.setattr(fm, "summarise", lambda *a: None)
    assert fm.main(["--out", str(tmp_path), "--size", "tiny", "--seeds", "0", "--encoders", "yaware",
                    fm.RANDOM_INIT]) == 0
    assert calls == ["yaware", fm.RANDOM_INIT]
    assert not (tmp_path / "cells" / "anatcl-global").exists()
