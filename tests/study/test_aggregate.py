"""Aggregation against hand-computed numbers: mean and sd over seeds, the paired t-test over seeds, the
corrected resampled t-test over seed-averaged folds, the selection rule and the positive-control criterion."""

import dataclasses
import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from anatlearn.study.aggregate import aggregate_study, paired_folds, paired_seeds, seed_summary
from anatlearn.study.grid import QUICK
from anatlearn.study.selection import positive_control, select_configurations
from anatlearn.study.units import load_folds, load_units

S = dataclasses.replace(QUICK, seeds=(0, 1, 2), methods=("anatcl-global", "yaware"),
                        ablations=(("anatcl-global", "kernel"),), budgets=(1, 2), ablation_budgets=(1,),
                        selection_budget=1, control_margin=0.05)


def _unit(out, name, seed, budget, metrics, folds=None, group="main"):
    method, _, variant = name.partition("+")
    path = out / "cells" / name / f"seed-{seed}" / "eval" / f"budget-{budget:04d}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"cell": f"{name}/seed-{seed}", "name": name, "method": method,
                                "variant": variant or "base", "seed": seed, "group": group, "budget": budget,
                                "metrics": metrics, "folds": folds or {}, "timing_s": {"total": 1.0}}))


def _study(out):
    """Hand-made evaluations: GMV recovery, a validation score and one task's fold scores."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "study.json").write_text(json.dumps({"grid": "test", "settings": S.to_dict(), "invocations": [],
                                                "wall_s_total": 0}))
    rand = [0.40, 0.45, 0.50]
    anat = {1: [0.42, 0.50, 0.49], 2: [0.50, 0.60, 0.70]}
    yaw = {1: [0.41, 0.44, 0.52], 2: [0.45, 0.40, 0.47]}
    for s in range(3):
        folds = lambda base: {"T balanced_accuracy": {"scores": [base + 0.01 * s, base + 0.02, base - 0.01 * s, base],
                                                      "n_train": 30.0, "n_test": 10.0}}
        _unit(out, "random-init", s, 0, {"anat_r2_GMV": rand[s], "val_anat_r2_GMV": 0.1}, folds(0.5), "reference")
        for b in (1, 2):
            _unit(out, "anatcl-global", s, b, {"anat_r2_GMV": anat[b][s], "val_anat_r2_GMV": 0.30}, folds(0.6))
            _unit(out, "yaware", s, b, {"anat_r2_GMV": yaw[b][s], "val_anat_r2_GMV": 0.2}, folds(0.55))
        _unit(out, "anatcl-global+kernel", s, 1, {"anat_r2_GMV": 0.3, "val_anat_r2_GMV": [0.2, 0.4, 0.35][s]},
              group="ablation")
        _unit(out, "gmv-regression", s, 1, {"anat_r2_GMV": rand[s] + [0.06, 0.1, 0.02][s], "val_anat_r2_GMV": 0.5},
              group="control")
    return out


def test_mean_and_sd_over_seeds_by_hand(tmp_path):
    units = load_units(_study(tmp_path / "st"))
    summ = seed_summary(units).set_index(["name", "budget", "metric"])
    row = summ.loc[("anatcl-global", 2, "anat_r2_GMV")]
    assert row["n"] == 3
    assert row["mean"] == pytest.approx(0.6)
    # sample sd of 0.5, 0.6, 0.7: sqrt(((-0.1)^2 + 0 + 0.1^2) / 2) = 0.1
    assert row["sd"] == pytest.approx(0.1)
    row = summ.loc[("yaware", 1, "anat_r2_GMV")]
    m = (0.41 + 0.44 + 0.52) / 3
    assert row["mean"] == pytest.approx(m)
    assert row["sd"] == pytest.approx(math.sqrt(((0.41 - m) ** 2 + (0.44 - m) ** 2 + (0.52 - m) ** 2) / 2))


def test_paired_t_test_over_seeds_by_hand(tmp_path):
    units = load_units(_study(tmp_path / "st"))
    res = paired_seeds(units, [("anatcl-global", "random-init")], ["anat_r2_GMV"], [2]).iloc[0]
    # d = (0.10, 0.15, 0.20): mean 0.15, sd 0.05, t = 0.15 / (0.05 / sqrt 3), 2 degrees of freedom
    t = 0.15 / (0.05 / math.sqrt(3))
    assert res["mean_diff"] == pytest.approx(0.15)
    assert res["t"] == pytest.approx(t)
    assert res["p"] == pytest.approx(2 * sps.t.sf(t, 2))
    assert res["same_sign"] and res["n_seeds"] == 3
    mixed = paired_seeds(units, [("yaware", "random-init")], ["anat_r2_GMV"], [1]).iloc[0]
    assert not mixed["same_sign"]  # 0.01, -0.01, 0.02


def test_corrected_t_test_on_seed_averaged_folds_by_hand(tmp_path):
    folds = load_folds(_study(tmp_path / "st"))
    res = paired_folds(folds, [("anatcl-global", "random-init")], [1]).iloc[0]
    # per fold, averaged over seeds 0..2: base + (0.01, 0.02, -0.01, 0); the difference is 0.1 on every fold
    assert res["mean_diff"] == pytest.approx(0.1)
    # no spread between folds: the corrected t-test is undefined (nan), not p = 0, so nothing is "called"
    assert math.isnan(res["t"]) and math.isnan(res["p"])
    res = paired_folds(folds, [("anatcl-global", "yaware")], [2]).iloc[0]
    assert res["mean_diff"] == pytest.approx(0.05)


def test_selection_uses_the_validation_metric_and_ties_go_to_the_base(tmp_path):
    units = load_units(_study(tmp_path / "st"))
    sel = select_configurations(units, S)["anatcl-global"]
    assert sel["scores"]["anatcl-global+kernel"] == pytest.approx((0.2 + 0.4 + 0.35) / 3)
    assert sel["selected"] == "anatcl-global+kernel"
    # the downstream metric (anat_r2_GMV: base 0.47 > kernel 0.3) does not enter
    tied = units.copy()
    tied.loc[tied["name"] == "anatcl-global+kernel", "val_anat_r2_GMV"] = 0.30
    assert select_configurations(tied, S)["anatcl-global"]["selected"] == "anatcl-global"


def test_positive_control_needs_the_margin_and_every_seed(tmp_path):
    units = load_units(_study(tmp_path / "st"))
    ctrl = positive_control(units, S)
    assert ctrl["mean_difference"] == pytest.approx(0.06)
    assert ctrl["passed"]
    assert not positive_control(units, dataclasses.replace(S, control_margin=0.07))["passed"]
    worse = units.copy()
    worse.loc[(worse["name"] == "gmv-regression") & (worse["seed"] == 2), "anat_r2_GMV"] = 0.49  # seed 2: -0.01
    assert not positive_control(worse, S)["passed"]


def test_aggregate_writes_tables_figure_and_summary(tmp_path):
    out = _study(tmp_path / "st")
    summary = aggregate_study(out)
    text = summary.read_text()
    assert "**passed**" in text
    assert "| anatcl-global | 3 |" in text and "0.600 ± 0.100" in text
    tab = pd.read_csv(out / "results" / "summary.tsv", sep="\t")
    assert set(tab["name"]) == {"random-init", "anatcl-global", "yaware", "anatcl-global+kernel", "gmv-regression"}
    key = pd.read_csv(out / "results" / "key_comparisons.tsv", sep="\t")
    assert {("anatcl-global", "yaware"), ("anatcl-global", "random-init"), ("gmv-regression", "random-init"),
            ("anatcl-global+kernel", "random-init")} <= set(zip(key["a"], key["b"]))
    assert (out / "results" / "budget_curves.png").stat().st_size > 10_000
    assert np.isfinite(json.loads((out / "results" / "summary.json").read_text())["positive_control"]["mean_difference"])


def test_selected_variant_is_resumed_to_the_full_budget(tmp_path):
    from anatlearn.study.grid import build_cells
    from anatlearn.study.selection import extend_selected

    out = _study(tmp_path / "st")
    extended = extend_selected(out, S, build_cells(S))
    assert sorted(c.id for c in extended) == [f"anatcl-global+kernel/seed-{s}" for s in range(3)]
    assert all(c.budgets == (1, 2) for c in extended)  # the ablation budget plus the largest main budget
    assert json.loads((out / "selection.json").read_text())["anatcl-global"]["selected"] == "anatcl-global+kernel"


def test_control_progress_reports_the_budgets_the_control_reached():
    """Before the control reaches the selection budget the summary shows where it stands, per budget."""
    from anatlearn.study.summary import control_progress

    summary = pd.DataFrame([
        {"name": "gmv-regression", "budget": 10, "metric": "anat_r2_GMV", "mean": 0.705, "sd": float("nan"), "n": 1},
        {"name": "random-init", "budget": 0, "metric": "anat_r2_GMV", "mean": 0.709, "sd": 0.012, "n": 3},
        {"name": "yaware", "budget": 10, "metric": "anat_r2_GMV", "mean": 0.66, "sd": 0.01, "n": 3}])
    lines = control_progress(summary)
    assert lines == ["- at 10 epochs (1 seed(s)): gmv-regression GMV-recovery R^2 0.705; random init 0.709 ± 0.012.",
                     ""]
    assert control_progress(summary[summary["name"] != "gmv-regression"]) == []
