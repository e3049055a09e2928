"""What pretraining trains on, said before the first epoch and recorded in every checkpoint; epochs
numbered from 1 in metrics.csv as on the console and in checkpoint names; runs of earlier releases (epochs
numbered from 0 in metrics.csv) still resume."""

import csv

import pandas as pd
import torch

from anatlearn.cli import main

ARGS = ["--method", "yaware", "--width", "0.125", "--batch-size", "16", "--workers", "0", "--seed", "0"]


def _epochs(run):
    return [int(r["epoch"]) for r in csv.DictReader((run / "metrics.csv").open())]


def test_data_without_a_split_column_trains_on_every_subject(tiny_downstream, tmp_path, capfd):
    assert "split" not in pd.read_csv(tiny_downstream / "participants.tsv", sep="\t").columns
    run = tmp_path / "run"
    assert main(["pretrain", "--data", str(tiny_downstream), "--out", str(run), "--epochs", "1", *ARGS]) == 0
    err = capfd.readouterr().err
    line = next(ln for ln in err.splitlines() if ln.startswith("training on"))
    assert line.startswith(f"training on 40 subjects of {tiny_downstream} (all of them: ") and "'split'" in line
    assert err.index(line) < err.index("epoch 1/1")  # said before the first epoch
    record = torch.load(run / "checkpoints" / "last.pt", weights_only=True)["training_data"]
    assert record["n_subjects"] == 40 and record["split"] is None and record["split_ignored"] == "train"
    assert record["synthetic"]["n_subjects"] == 40


def test_a_split_column_selects_and_the_count_is_said(tiny_cohort, tmp_path, capfd):
    n_train = int((pd.read_csv(tiny_cohort / "participants.tsv", sep="\t")["split"] == "train").sum())
    run = tmp_path / "run"
    assert main(["pretrain", "--data", str(tiny_cohort), "--out", str(run), "--epochs", "2", *ARGS]) == 0
    err = capfd.readouterr().err
    assert f"training on {n_train} subjects of split 'train' of {tiny_cohort}\n" in err
    steps = n_train // 16
    assert _epochs(run) == [1] * steps + [2] * steps  # as on the console ("epoch 1/2") and in epoch-0002.pt
    assert "epoch 1/2" in err and "epoch 2/2" in err and "epoch 0/" not in err
    assert (run / "checkpoints" / "epoch-0002.pt").is_file()


def test_a_run_of_an_earlier_release_resumes_and_is_renumbered(tiny_cohort, tmp_path, capfd):
    run = tmp_path / "run"
    assert main(["pretrain", "--data", str(tiny_cohort), "--out", str(run), "--epochs", "1", *ARGS]) == 0
    old = pd.read_csv(run / "metrics.csv")
    old["epoch"] -= 1  # as an earlier release wrote it: epochs from 0
    old.to_csv(run / "metrics.csv", index=False)
    assert main(["pretrain", "--out", str(run), "--resume", "--epochs", "2"]) == 0
    steps = len(old)
    assert _epochs(run) == [1] * steps + [2] * steps
    assert torch.load(run / "checkpoints" / "last.pt", weights_only=True)["epoch"] == 2
