"""``anatlearn report`` given fine-tuning runs and an ``evaluate tasks`` evaluation: the runs side by side
with the probes on their shared outer folds and the paired corrected tests (the same numbers as
``anatlearn.finetune.compare``); runs on other folds are shown each on its own, with the reason. And each
run's record of the folds where it predicted one class for everyone (what the CLI warns about)."""

import json

import numpy as np
import pandas as pd
import pytest

from anatlearn.cli import main
from anatlearn.evaluate import evaluate_tasks, load_tasks, make_feature_table, read_participants
from anatlearn.finetune import FinetuneConfig, compare, finetune
from anatlearn.synthetic import generate_cohort

TINY = dict(folds=2, inner_folds=3, epochs=2, warmup_epochs=1, patience=2, width=0.125, batch_size=8)
AD = dict(target="AD-like-vs-CN", tasks="synthetic")


@pytest.fixture(scope="module")
def setting(tmp_path_factory):
    """Two fine-tuning runs on the same folds (other learning rates), one on other folds (seed 1), and a
    tasks evaluation of a probe on informative random features (seed 0: the runs' folds)."""
    root = tmp_path_factory.mktemp("ftreport")
    cohort = generate_cohort(root / "adcohort", 40, (32, 32, 32), seed=3, n_sites=2, diseases=("AD-like",))
    runs = {}
    for name, extra in {"a": dict(lr_grid=(1e-3,)), "b": dict(lr_grid=(1e-4,)), "other": dict(lr_grid=(1e-3,), seed=1)}.items():
        runs[name] = root / name
        assert finetune("random", cohort, runs[name], config=FinetuneConfig(**TINY, **extra), **AD)
    participants = read_participants(cohort)
    y = (participants["diagnosis"] == "AD-like").to_numpy()
    feats = make_feature_table(np.random.default_rng(1).normal(size=(40, 6)) + 1.5 * y[:, None], list(participants.index))
    tasks = evaluate_tasks({"mine": feats}, participants, load_tasks("synthetic", select=["AD-like-vs-CN", "MMSE-like"]), n_splits=2, n_repeats=1, seed=0)
    tasks.write(root / "tasks")
    return root, runs


def test_runs_and_probe_side_by_side_with_the_paired_tests(setting):
    root, runs = setting
    out = root / "report.html"
    assert main(["report", str(runs["a"]), str(runs["b"]), str(root / "tasks"), "--out", str(out)]) == 0
    page = out.read_text()
    assert "Fine-tuning against linear probing" in page and "Not compared" not in page
    for name in ("finetune:a", "finetune:b", "probe:mine"):
        assert name in page
    # the numbers are compare's on the same folds (the probe: repeat 0 of the tasks evaluation, AD-like only)
    probe = pd.read_csv(root / "tasks" / "folds.csv")
    probe = probe[(probe.task == "AD-like-vs-CN") & (probe.repeat == 0)]
    paired = compare({"finetune:a": runs["a"], "probe:mine": probe.assign(method="probe:mine")})["paired"]
    p = paired.set_index("metric").loc["balanced_accuracy", "p_corrected_t"]
    assert f"{p:.4g}" in page
    # the headline is the tasks evaluation's (its probe rows are not repeated from fewer folds) ...
    headline = page[page.index("<h2>Headline"):page.index("Fine-tuning against linear probing")]
    assert "finetune:a" not in headline and "probe:mine" not in headline and "mine" in headline
    # ... and leads with the runs when nothing else is given: evaluation, recorded cohort, subjects scored
    alone = root / "report-runs.html"  # a new page: report refuses to replace an existing one
    assert main(["report", str(runs["a"]), str(runs["b"]), "--out", str(alone)]) == 0
    assert "fine-tuning and probes on the same outer folds, adcohort cohort, 2-fold CV, n = 40" in alone.read_text()


def test_runs_on_other_folds_are_not_paired(setting):
    root, runs = setting
    out = root / "apart.html"
    assert main(["report", str(runs["a"]), str(runs["other"]), "--out", str(out)]) == 0
    page = out.read_text()
    assert "Not compared: other and a were fine-tuned on different outer folds" in page
    assert "finetune:a" in page and "finetune:other" in page and "Paired corrected resampled" not in page


def test_one_class_folds_are_found_and_recorded(setting):
    from anatlearn.finetune.setup import one_class_folds

    table = pd.DataFrame({"fold": [0, 0, 1, 1, 2, 2], "predicted": ["CN", "AD", "CN", "CN", "AD", "AD"]})
    assert one_class_folds(table, "classification") == [1, 2]
    assert one_class_folds(table.assign(predicted=[1.0, 2, 3, 4, 5, 6]), "regression") == []
    _, runs = setting
    for run in runs.values():  # the runs' own record agrees with their written predictions
        preds = pd.read_csv(run / "predictions.csv")
        record = json.loads((run / "results.json").read_text())["one_class_folds"]
        assert record == [f for f, g in preds.groupby("fold") if g["predicted"].nunique() == 1]
