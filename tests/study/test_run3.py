"""Run 3's path at toy size (docs/study.md Part 6): the two regression objectives train, evaluate and
aggregate inside a study, and a lambda_reg variant reaches its run's config."""

import dataclasses
import json
import tomllib

import pandas as pd
import torch

from anatlearn.study.grid import QUICK
from anatlearn.study.runner import run_study


def test_run3_shape_trains_evaluates_and_pairs_the_new_methods(tmp_path):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        toy = dataclasses.replace(QUICK, methods=("descriptor-regression",), control=False, seeds=(0,), augment=(),
                                  budgets=(1,), ablation_budgets=(1,), lambda_reg=3.0,
                                  ablations=(("anatcl-regression", "lambda-reg-0.3"),))
        doc = run_study(tmp_path, grid="test", settings=toy, progress=False)
    finally:
        torch.set_num_threads(threads)
    assert doc["complete"]
    cells = tmp_path / "cells"
    assert sorted(p.relative_to(cells).as_posix() for p in cells.glob("*/seed-0/eval/budget-*.json")) == [
        "anatcl-regression+lambda-reg-0.3/seed-0/eval/budget-0001.json",
        "descriptor-regression/seed-0/eval/budget-0001.json", "random-init/seed-0/eval/budget-0000.json"]
    config = tomllib.loads((cells / "anatcl-regression+lambda-reg-0.3/seed-0/run/config.toml").read_text())
    assert config["lambda_reg"] == 0.3 and config["augment"] == []  # the variant wins over the grid's 3.0
    selection = json.loads((tmp_path / "selection.json").read_text())
    assert selection["anatcl-regression"]["selected"] == "anatcl-regression+lambda-reg-0.3"
    paired = pd.read_csv(tmp_path / "results" / "paired_seeds.tsv", sep="\t")
    assert ("descriptor-regression", "random-init") in set(zip(paired["a"], paired["b"]))
