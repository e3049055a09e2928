"""anatlearn finetune / predict on tiny synthetic cohorts (32^3 volumes, width 0.125, a few epochs)."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import balanced_accuracy_score, roc_auc_score

from anatlearn.cli import main
from anatlearn.synthetic import generate_cohort
from anatlearn.errors import DataError
from anatlearn.evaluate import evaluate_tasks, load_tasks, make_feature_table, read_participants
from anatlearn.finetune import FinetuneConfig, LeakError, compare, finetune, predict, probe_on_splits
from anatlearn.models import build_model, default_model_config, load_checkpoint, save_checkpoint

SHAPE = (32, 32, 32)
TINY = dict(inner_folds=3, epochs=3, warmup_epochs=1, patience=2, width=0.125, lr_grid=(1e-3,), batch_size=8)
AD = dict(target="AD-like-vs-CN", tasks="synthetic")


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    """40 subjects of one world with AD-like patients and their matched controls (20 + 20)."""
    return generate_cohort(tmp_path_factory.mktemp("ft") / "ad", 40, SHAPE, seed=3, n_sites=2, diseases=("AD-like",))


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """An anatlearn checkpoint with a projection head (what pretrain writes), width 0.125."""
    torch.manual_seed(5)
    model = build_model(default_model_config("resnet18", 0.125))
    path = tmp_path_factory.mktemp("ckpt") / "pretrained.pt"
    save_checkpoint(path, {"format": "anatlearn", "format_version": 1, "model": model.state_dict(),
                           "model_config": model.model_config})
    return path


def _oof(run):
    return pd.read_csv(run / "predictions.csv", dtype={"participant_id": str})


def test_pretrained_encoder_fine_tuned_and_scored_from_its_own_predictions(cohort, pretrained, tmp_path):
    from anatlearn.finetune.setup import initial_model

    cfg = FinetuneConfig(folds=2, **TINY)
    model_config, state = initial_model(str(pretrained), cfg, 2)
    start = load_checkpoint(pretrained)["model"]
    assert all(torch.equal(state[k], v) for k, v in start.items() if k.startswith("encoder."))
    assert model_config["head"] == {"kind": "regression", "out_features": 2}

    run = tmp_path / "run"
    assert finetune(str(pretrained), cohort, run, config=cfg, **AD)
    labels = load_tasks("synthetic", select=["AD-like-vs-CN"])[0].select(read_participants(cohort))
    oof = _oof(run)
    assert sorted(oof["participant_id"]) == sorted(labels.index)  # every subject exactly once
    folds = pd.read_csv(run / "folds.csv")
    assert len(folds) == 4 and set(folds["metric"]) == {"balanced_accuracy", "roc_auc"}
    for fold, part in oof.groupby("fold"):  # the fold scores are those of the written predictions
        y = (part["target"] == "AD-like").astype(int)
        score = folds.set_index(["fold", "metric"])["score"]
        assert score[(fold, "balanced_accuracy")] == pytest.approx(
            balanced_accuracy_score(y, (part["predicted"] == "AD-like").astype(int)))
        assert score[(fold, "roc_auc")] == pytest.approx(roc_auc_score(y, part["prob_AD-like"]))
    np.testing.assert_allclose(oof[["prob_CN", "prob_AD-like"]].sum(axis=1), 1, atol=1e-5)
    table = pd.read_csv(run / "results.csv").set_index("metric")
    assert table.loc["balanced_accuracy", "mean"] == pytest.approx(
        folds[folds.metric == "balanced_accuracy"]["score"].mean())
    curves = pd.read_csv(run / "curves.csv")
    assert set(curves["phase"]) == {"warmup", "full"} and curves["epoch"].between(1, cfg.epochs).all()
    assert json.loads((run / "provenance.json").read_text())["seed"] == 0


def test_random_init_cli_final_model_and_predict(cohort, tmp_path, capsys):
    run, preds = tmp_path / "run", tmp_path / "preds.csv"
    args = ["finetune", "--weights", "random", "--data", str(cohort), "--task", "AD-like-vs-CN", "--tasks",
            "synthetic", "--folds", "2", "--width", "0.125", "--epochs", "2", "--warmup-epochs", "1",
            "--lr-grid", "1e-3", "--out", str(run), "--final"]
    assert main(args) == 0
    printed = capsys.readouterr().out  # a table like evaluate's: mean [low, high], 3 decimals
    import re

    assert "balanced_accuracy" in printed and re.search(r"\d\.\d{3} \[-?\d\.\d{3}, \d\.\d{3}\]", printed)
    assert not re.search(r"\d\.\d{5,}", printed), printed
    assert main(["predict", "--fitted", str(run / "final" / "model.pt"), "--data", str(cohort), "--out", str(preds)]) == 0
    new = pd.read_csv(preds, dtype={"participant_id": str}).set_index("participant_id")
    own = pd.read_csv(run / "final" / "predictions.csv", dtype={"participant_id": str}).set_index("participant_id")
    assert len(new) == 40 and len(own) == 40  # the labelled subjects are all 40 here
    np.testing.assert_allclose(new.loc[own.index, ["prob_CN", "prob_AD-like"]], own[["prob_CN", "prob_AD-like"]],
                               atol=1e-6)
    assert list(new.loc[own.index, "predicted"]) == list(own["predicted"])
    record = torch.load(run / "final" / "model.pt", weights_only=True)["finetune"]
    assert record["classes"] == ["CN", "AD-like"] and record["input"]["shape"] == list(SHAPE)


def test_predict_refuses_another_grid_and_unseen_labels(cohort, tmp_path):
    run = tmp_path / "run"
    assert finetune("random", cohort, run, config=FinetuneConfig(folds=2, **{**TINY, "epochs": 2}), final=True, **AD)
    other = generate_cohort(tmp_path / "other", 4, (32, 40, 32), seed=3, n_sites=2, diseases=("AD-like",))
    with pytest.raises(DataError, match=r"on grid 32x40x32 but the encoder of .*model\.pt was trained on 32x32x32"):
        predict(run / "final" / "model.pt", other)
    # the explicit override proceeds (the same one rule as embed: anatlearn.data.lineage.check_grid)
    with pytest.warns(UserWarning, match="proceeding as asked"):
        assert len(predict(run / "final" / "model.pt", other, allow_grid_mismatch=True)) == 4
    table = pd.read_csv(cohort / "participants.tsv", sep="\t", dtype={"participant_id": str})
    table.loc[3, "diagnosis"] = "MCI"
    table.to_csv(tmp_path / "labels.tsv", sep="\t", index=False)
    out = tmp_path / "p.csv"
    assert main(["predict", "--fitted", str(run / "final" / "model.pt"), "--data", str(cohort), "--participants",
                 str(tmp_path / "labels.tsv"), "--out", str(out)]) == 2
    assert not out.exists()
    with pytest.raises(DataError, match=r"\['MCI'\].*never saw"):
        predict(run / "final" / "model.pt", cohort, participants=tmp_path / "labels.tsv")


def test_test_fold_never_reaches_training_or_validation(cohort, tmp_path):
    seen = []
    assert finetune("random", cohort, tmp_path / "run", config=FinetuneConfig(folds=3, **TINY),
                    observer=lambda role, pos: seen.append((role, set(pos.tolist()))), **AD)
    splits = json.loads((tmp_path / "run" / "splits.json").read_text())["folds"]
    assert len(splits) == 3
    # replay the events: a fold is its train / validation batches, then its test batches
    phases, current = [], {"fit": set(), "test": set()}
    for role, pos in seen:
        if role != "test" and current["test"]:
            phases.append(current)
            current = {"fit": set(), "test": set()}
        current["fit" if role != "test" else "test"] |= pos
    phases.append(current)
    assert len(phases) == 3
    assert all(not (p["fit"] & p["test"]) for p in phases)
    assert set().union(*(p["test"] for p in phases)) == set(range(40))
    assert sum(len(p["test"]) for p in phases) == 40  # each subject scored once


def test_a_planted_leak_is_caught(cohort, tmp_path, monkeypatch):
    import anatlearn.finetune.run as run_module

    real = run_module._inner

    def leaky(problem, outer_train, key):
        train, val = real(problem, outer_train, key)
        test = np.setdiff1d(np.arange(len(problem.labels.ids)), outer_train)
        return train, np.append(val, test[:1])  # one test subject in the validation split

    monkeypatch.setattr(run_module, "_inner", leaky)
    with pytest.raises(LeakError, match="outer test fold"):
        finetune("random", cohort, tmp_path / "run", config=FinetuneConfig(folds=2, **TINY), **AD)


def test_killed_run_resumes_to_the_same_predictions(cohort, tmp_path):
    cfg = FinetuneConfig(folds=2, **{**TINY, "lr_grid": (1e-3, 3e-4)})
    assert finetune("random", cohort, tmp_path / "whole", config=cfg, **AD)
    killed = tmp_path / "killed"
    assert not finetune("random", cohort, killed, config=cfg, stop_after_steps=15, **AD)
    assert (killed / "folds" / "fold-0" / "result.json").exists()  # fold 0 was finished before the kill
    assert (killed / "folds" / "fold-1" / "state.pt").exists()  # stopped inside fold 1
    assert finetune("random", cohort, killed, config=cfg, **AD)
    pd.testing.assert_frame_equal(_oof(killed), _oof(tmp_path / "whole"))
    assert (killed / "curves.csv").read_text() == (tmp_path / "whole" / "curves.csv").read_text()


def test_shuffled_labels_give_chance_out_of_fold(tmp_path):
    data = generate_cohort(tmp_path / "big", 120, SHAPE, seed=4, n_sites=2)
    table = pd.read_csv(data / "participants.tsv", sep="\t", dtype={"participant_id": str})
    table["label"] = np.random.default_rng(0).permutation(np.repeat(["a", "b"], 60))
    table.to_csv(tmp_path / "labels.tsv", sep="\t", index=False)
    cfg = FinetuneConfig(folds=5, **{**TINY, "epochs": 2, "batch_size": 16})
    assert finetune("random", data, tmp_path / "run", target="label", participants=tmp_path / "labels.tsv",
                    config=cfg)
    oof = _oof(tmp_path / "run")
    assert len(oof) == 120
    bacc = balanced_accuracy_score(oof["target"], oof["predicted"])
    assert 0.35 <= bacc <= 0.65


def test_folds_are_evaluate_tasks_folds_and_compare_pairs_them(cohort, tmp_path):
    run = tmp_path / "run"
    assert finetune("random", cohort, run, config=FinetuneConfig(folds=2, **{**TINY, "epochs": 2}), **AD)
    rng = np.random.default_rng(1)
    participants = read_participants(cohort)
    ids = list(participants.index)
    y = (participants["diagnosis"] == "AD-like").to_numpy()
    feats = make_feature_table(rng.normal(size=(40, 6)) + 1.5 * y[:, None], ids)
    tasks = load_tasks("synthetic", select=["AD-like-vs-CN"])
    reference = evaluate_tasks({"probe": feats}, participants, tasks, n_splits=2, n_repeats=1, seed=0).folds
    mine = probe_on_splits(feats, run)
    # the same probe on the same folds gives the same scores only if the folds are the same
    np.testing.assert_allclose(mine.sort_values(["fold", "metric"])["score"],
                               reference.sort_values(["fold", "metric"])["score"])
    result = compare({"finetune": run, "probe": mine}, out=tmp_path / "cmp")
    paired = result["paired"].set_index("metric")
    ft = pd.read_csv(run / "folds.csv")
    for metric in ("balanced_accuracy", "roc_auc"):
        diff = ft[ft.metric == metric]["score"].mean() - mine[mine.metric == metric]["score"].mean()
        assert paired.loc[metric, "mean_diff"] == pytest.approx(diff)
    assert (tmp_path / "cmp" / "comparison_paired.csv").exists()
    # the report shows the comparison with its paired tests (a results directory of kind finetune-comparison)
    from anatlearn.report import build_report

    build_report([tmp_path / "cmp"], tmp_path / "report.html")
    page = (tmp_path / "report.html").read_text()
    assert "Fine-tuning against linear probing" in page and "Paired corrected resampled t-tests" in page
    p_value = result["paired"].set_index("metric").loc["balanced_accuracy", "p_corrected_t"]
    assert f"{p_value:.4g}" in page
    other = mine.assign(n_test=mine["n_test"] + 1)
    with pytest.raises(DataError, match=r"not scored on the same folds: 4\d subjects against 4\d; use the same "
                                        r"participants table"):
        compare({"finetune": run, "probe": other})
    fewer = mine[mine["fold"] == 0]  # as from a run with --folds 1 (the number of folds differs)
    with pytest.raises(DataError, match="finetune and probe were not scored on the same folds: 2 outer folds "
                                        "against 1; compare runs made with the same number of folds"):
        compare({"finetune": run, "probe": fewer})
    swapped = mine.assign(n_test=mine["fold"].map({0: 19, 1: 21}), n_train=mine["fold"].map({0: 21, 1: 19}))
    with pytest.raises(DataError, match=r"test folds of \[20, 20\] subjects against \[19, 21\]"):
        compare({"finetune": run, "probe": swapped})


def test_bad_input_is_refused_before_anything_is_written(cohort, tmp_path):
    with pytest.raises(DataError, match="fewer than the 25 folds"):
        finetune("random", cohort, tmp_path / "run", config=FinetuneConfig(folds=25, **TINY), **AD)
    with pytest.raises(DataError, match="target column 'nosuch' not found"):
        finetune("random", cohort, tmp_path / "run", target="nosuch", config=FinetuneConfig(**TINY))
    assert not (tmp_path / "run").exists()
