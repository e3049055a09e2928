"""Aggregation against hand-computed numbers: mean and sd over seeds, the paired t-test over seeds, the
corrected resampled t-test over seed-averaged folds, the selection rule and the positive-control criterion."""

import dataclasses
import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from anatlearn.study.aggregate import aggregate_study, load_units, paired_folds, paired_seeds, seed_summary
from anatlearn.study.grid import QUICK
from anatlearn.study.selection import positive_control, select_configurations

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
    from anatlearn.study.aggregate import load_folds

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


def test_readme_headline_table_from_a_summary():
    import importlib.util
    from pathlib import Path

    import pandas as pd

    path = Path(__file__).resolve().parents[2] / "scripts" / "study_headline_table.py"
    spec = importlib.util.spec_from_file_location("study_headline_table", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    summary = pd.DataFrame([
        {"name": "anatcl-global", "budget": 30, "metric": "anat_r2_GMV", "mean": 0.6321, "sd": 0.0114},
        {"name": "anatcl-global", "budget": 10, "metric": "anat_r2_GMV", "mean": 0.9, "sd": 0.1},
        {"name": "anatcl-global", "budget": 30, "metric": "brain_age_mae_external", "mean": 13.084, "sd": 0.382},
        {"name": "random-init", "budget": 0, "metric": "anat_r2_GMV", "mean": 0.7094, "sd": 0.0121},
    ])
    lines = mod.headline(summary, 30).splitlines()
    assert lines[0] == "| measure (30 epochs; mean ± sd over seeds) | anatcl-global | random-init |"
    assert "| GMV recovery R^2 | 0.632 ± 0.011 | 0.709 ± 0.012 |" in lines  # the 10-epoch row is not used
    assert "| brain-age MAE, external (y) | 13.08 ± 0.38 |  |" in lines  # two decimals from 10 up, sd alike
    variant = pd.DataFrame([{"name": "anatcl-global+no-aug", "budget": 30, "metric": "anat_r2_GMV", "mean": 0.7,
                             "sd": float("nan"), "n": 1}])
    rows = mod.ablation_table(pd.concat([summary.assign(n=3), variant]), 30).splitlines()
    assert [r.split(" | ")[0] for r in rows[2:]] == ["| anatcl-global", "| anatcl-global+no-aug", "| random-init"]
    assert rows[3].startswith("| anatcl-global+no-aug | 1 |  | 0.700 ± - |")  # no validation score; one seed


def test_prediction_check_reads_the_preregistered_rule():
    """scripts/study_predictions.py: paired t over seeds against the textbook formula, and the verdicts of
    the pre-registered rule (called only at p < 0.05 with every seed's difference of one sign)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "scripts" / "study_predictions.py"
    spec = importlib.util.spec_from_file_location("study_predictions", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    rows = []
    values = {"anatcl-global": [0.60, 0.62, 0.61], "anatcl-global+lambda-0.5": [0.70, 0.71, 0.72],
              "anatcl-global+clamp": [0.50, 0.53, 0.51],  # clearly below the base: "reversed"
              "anatcl-global+kernel": [0.61, 0.61, 0.62],  # +0.003, 1 seed negative: not called
              "anatcl-global+minmax": [0.70, 0.70, 0.71]}  # above the base, called: (3) fails
    for name, vs in values.items():
        for seed, v in enumerate(vs):
            rows.append({"name": name, "seed": seed, "budget": 30, "val_anat_r2_GMV": v, "anat_r2_GMV": v})
            rows.append({"name": name, "seed": seed, "budget": 10, "val_anat_r2_GMV": 0.0, "anat_r2_GMV": 0.0})
    units = pd.DataFrame(rows)
    r = mod.compare(units, "anatcl-global+lambda-0.5", "anatcl-global", "anat_r2_GMV", 30)
    d = np.array([0.10, 0.09, 0.11])
    t = d.mean() / (d.std(ddof=1) / np.sqrt(3))
    assert r["diff"] == pytest.approx(0.10) and r["p"] == pytest.approx(2 * sps.t.sf(t, 2)) and r["called"]
    table = mod.prediction_table(units, 30).splitlines()
    cells = [[x.strip() for x in line.strip("|").split("|")] for line in table[2:]]
    verdicts = {c[0]: c[-1] for c in cells if c[1] == "anatcl-global" and c[2] == "validation GMV R^2"}
    assert verdicts == {"(1) lambda-0.5 > base": "holds", "(1) base > lambda-2": "not yet run",
                        "(2) clamp > base": "reversed", "(2) kernel > base": "not distinguishable (as predicted)",
                        "(3) minmax <= base": "fails"}
    assert all(c[-1] == "not yet run" for c in cells if c[1] == "anatcl-local")


def test_pair_table_pairs_random_init_at_any_budget():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "scripts" / "study_predictions.py"
    spec = importlib.util.spec_from_file_location("study_predictions", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    units = pd.DataFrame([{"name": "a", "seed": s, "budget": 30, "anat_r2_GMV": v} for s, v in enumerate([0.8, 0.82, 0.81])]
                         + [{"name": "random-init", "seed": s, "budget": 0, "anat_r2_GMV": v}
                            for s, v in enumerate([0.70, 0.71, 0.71])])
    rows = mod.pair_table(units, [("a", "random-init")], 30).splitlines()
    assert len(rows) == 3  # header, rule, the one metric present
    cells = [c.strip() for c in rows[2].strip("|").split("|")]
    assert cells[:6] == ["a", "random-init", "anat_r2_GMV", "0.810", "0.707", "+0.103"] and cells[-1] == "yes"


def test_tables_for_the_write_up_come_from_results_alone(tmp_path):
    """scripts/study_tables.py: headline per budget, the selected configurations beside their bases, and
    their paired comparisons, from summary.tsv, units.tsv and selection.json."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "scripts" / "study_tables.py"
    spec = importlib.util.spec_from_file_location("study_tables", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    values = {("anatcl-global", 30): [0.60, 0.62, 0.61], ("anatcl-global+no-aug", 30): [0.74, 0.73, 0.75],
              ("anatcl-global+no-aug", 100): [0.76, 0.75, 0.77], ("simclr", 30): [0.60, 0.61, 0.60],
              ("random-init", 0): [0.70, 0.71, 0.72]}
    units = pd.DataFrame([{"name": n, "method": n.split("+")[0], "seed": s, "budget": b, "anat_r2_GMV": v,
                           "val_anat_r2_GMV": v} for (n, b), vs in values.items() for s, v in enumerate(vs)])
    summary = (units.melt(id_vars=["name", "method", "seed", "budget"], var_name="metric")
               .groupby(["name", "budget", "metric"])["value"].agg(["mean", "std", "count"]).reset_index()
               .rename(columns={"std": "sd", "count": "n"}))
    units.to_csv(tmp_path / "units.tsv", sep="\t", index=False)
    summary.to_csv(tmp_path / "summary.tsv", sep="\t", index=False)
    (tmp_path / "selection.json").write_text(json.dumps(
        {"anatcl-global": {"selected": "anatcl-global+no-aug", "budget": 30, "metric": "val_anat_r2_GMV"}}))
    text = mod.tables(tmp_path)
    heads = [line for line in text.splitlines() if line.startswith("## ")]
    assert heads == ["## Headline at 30 epochs", "## Headline at 100 epochs",
                     "## Selected configurations at 30 epochs (with their bases)",
                     "## Selected configurations at 100 epochs (with their bases)",
                     "## Ablations at 30 epochs", "## Pre-registered predictions at 30 epochs",
                     "## Selected configurations compared at 30 epochs",
                     "## Selected configurations compared at 100 epochs"]
    at100 = text.split("## Selected configurations at 100 epochs")[1].split("##")[0]
    assert "| anatcl-global+no-aug | random-init |" in at100 and "| GMV recovery R^2 | 0.760 ± 0.010 | 0.710 ± 0.010 |" in at100
    # at 30: against its base (+0.130 on every seed), SimCLR and random init; at 100 only random init is there
    assert "| anatcl-global+no-aug | anatcl-global | anat_r2_GMV | 0.740 | 0.610 | +0.130 |" in text
    compared100 = text.split("## Selected configurations compared at 100 epochs")[1]
    assert [r.split(" | ")[1] for r in compared100.splitlines() if r.startswith("| anatcl")] == ["random-init"] * 2
