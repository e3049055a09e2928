"""The study's analyses (studies/): the README's headline table, the pre-registered predictions and the
write-up's tables, against hand-computed numbers and the paired rule of anatlearn.study.units."""

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from studies import headline_table, predictions, tables


def test_readme_headline_table_from_a_summary():
    summary = pd.DataFrame([
        {"name": "anatcl-global", "budget": 30, "metric": "anat_r2_GMV", "mean": 0.6321, "sd": 0.0114},
        {"name": "anatcl-global", "budget": 10, "metric": "anat_r2_GMV", "mean": 0.9, "sd": 0.1},
        {"name": "anatcl-global", "budget": 30, "metric": "brain_age_mae_external", "mean": 13.084, "sd": 0.382},
        {"name": "random-init", "budget": 0, "metric": "anat_r2_GMV", "mean": 0.7094, "sd": 0.0121},
    ])
    lines = headline_table.headline(summary, 30).splitlines()
    assert lines[0] == "| measure (30 epochs; mean ± sd over seeds) | anatcl-global | random-init |"
    assert "| GMV recovery R^2 | 0.632 ± 0.011 | 0.709 ± 0.012 |" in lines  # the 10-epoch row is not used
    assert "| brain-age MAE, external (y) | 13.08 ± 0.38 |  |" in lines  # two decimals from 10 up, sd alike
    variant = pd.DataFrame([{"name": "anatcl-global+no-aug", "budget": 30, "metric": "anat_r2_GMV", "mean": 0.7,
                             "sd": float("nan"), "n": 1}])
    rows = headline_table.ablation_table(pd.concat([summary.assign(n=3), variant]), 30).splitlines()
    assert [r.split(" | ")[0] for r in rows[2:]] == ["| anatcl-global", "| anatcl-global+no-aug", "| random-init"]
    assert rows[3].startswith("| anatcl-global+no-aug | 1 |  | 0.700 ± - |")  # no validation score; one seed


def test_prediction_check_reads_the_preregistered_rule():
    """studies/predictions.py: paired t over seeds against the textbook formula, and the verdicts of
    the pre-registered rule (called only at p < 0.05 with every seed's difference of one sign)."""
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
    r = predictions.compare(units, "anatcl-global+lambda-0.5", "anatcl-global", "anat_r2_GMV", 30)
    d = np.array([0.10, 0.09, 0.11])
    t = d.mean() / (d.std(ddof=1) / np.sqrt(3))
    assert r["diff"] == pytest.approx(0.10) and r["p"] == pytest.approx(2 * sps.t.sf(t, 2)) and r["called"]
    table = predictions.prediction_table(units, 30).splitlines()
    cells = [[x.strip() for x in line.strip("|").split("|")] for line in table[2:]]
    verdicts = {c[0]: c[-1] for c in cells if c[1] == "anatcl-global" and c[2] == "validation GMV R^2"}
    assert verdicts == {"(1) lambda-0.5 > base": "holds", "(1) base > lambda-2": "not yet run",
                        "(2) clamp > base": "reversed", "(2) kernel > base": "not distinguishable (as predicted)",
                        "(3) minmax <= base": "fails"}
    assert all(c[-1] == "not yet run" for c in cells if c[1] == "anatcl-local")


def test_pair_table_pairs_random_init_at_any_budget():
    units = pd.DataFrame([{"name": "a", "seed": s, "budget": 30, "anat_r2_GMV": v} for s, v in enumerate([0.8, 0.82, 0.81])]
                         + [{"name": "random-init", "seed": s, "budget": 0, "anat_r2_GMV": v}
                            for s, v in enumerate([0.70, 0.71, 0.71])])
    rows = predictions.pair_table(units, [("a", "random-init")], 30).splitlines()
    assert len(rows) == 3  # header, rule, the one metric present
    cells = [c.strip() for c in rows[2].strip("|").split("|")]
    assert cells[:6] == ["a", "random-init", "anat_r2_GMV", "0.810", "0.707", "+0.103"] and cells[-1] == "yes"


def test_tables_for_the_write_up_come_from_results_alone(tmp_path):
    """studies/tables.py: headline per budget, the selected configurations beside their bases, and
    their paired comparisons, from summary.tsv, units.tsv and selection.json."""
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
    text = tables.tables(tmp_path)
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
