"""Aggregation of a study: tables over seeds, paired comparisons, budget curves.

- ``units.tsv``: one row per evaluated (cell, budget), every metric a column.
- ``summary.tsv`` / ``summary.json``: per configuration, budget and metric, the mean and sample standard
  deviation (ddof = 1) over seeds and the number of seeds n.
- ``paired_seeds.tsv``: the paired t-test over seeds (:mod:`anatlearn.study.units`), with the mean
  difference A - B and whether every seed's difference has the same sign. Random init (budget 0) is
  compared at every budget.
- ``paired_folds.tsv``: for the downstream probes, the corrected resampled t-test (Nadeau & Bengio 2003;
  :func:`anatlearn.evaluate.stats.corrected_paired_ttest`) on the per-fold scores averaged over seeds (the
  folds are identical for every cell).
- ``key_comparisons.tsv``: the rows of both tests for AnatCL against each baseline, and the control
  against random init.
- ``budget_curves.png``: each headline metric against epochs, mean +- sd over seeds per configuration.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pandas as pd
from anatlearn.evaluate.stats import corrected_paired_ttest
from anatlearn.io import atomic_write_text
from anatlearn.study.grid import (ANATCL_METHODS, CONTROL, MAIN_METHODS, RANDOM_INIT, REGRESSION_OBJECTIVES,
                                  settings_from_dict)
from anatlearn.study.selection import positive_control, select_configurations
from anatlearn.study.units import (ID_COLUMNS, LOWER_IS_BETTER, SEED_TEST, load_folds, load_units,
                                   metric_columns, paired_by_seed)
from anatlearn.study.summary import write_summary

HEADLINE_METRICS = ["AD-like-vs-CN balanced_accuracy", "SCZ-like-vs-CN balanced_accuracy", "MMSE-like r2",
                    "PANSS-like r2", "brain_age_mae_internal", "brain_age_mae_external", "site_bacc", "icc_median",
                    "anat_r2_GMV", "anat_r2_CT", "anat_r2_SA", "anat_r2_latents", "rankme", "val_anat_r2_GMV"]
SEED_COLUMNS = ["budget", "metric", "a", "b", "mean_a", "mean_b", "mean_diff", "sd_diff", "t", "p", "n_seeds",
                "same_sign", "test"]
FOLD_COLUMNS = ["budget", "metric", "a", "b", "mean_diff", "t", "p", "n_folds", "test"]
BASELINES = ("yaware", "simclr", "l1-age", RANDOM_INIT)


def seed_summary(units: pd.DataFrame) -> pd.DataFrame:
    """Mean, sample sd (ddof = 1; NaN for one seed) and n over seeds per (name, group, budget, metric)."""
    long = units.melt(id_vars=ID_COLUMNS, value_vars=metric_columns(units), var_name="metric").dropna(subset=["value"])
    long["value"] = long["value"].astype(float)
    g = long.groupby(["name", "group", "budget", "metric"], sort=True)["value"]
    return g.agg(mean="mean", sd=lambda v: float(np.std(v, ddof=1)) if len(v) > 1 else float("nan"),
                 n="count").reset_index()


def paired_seeds(units: pd.DataFrame, pairs, metrics, budgets) -> pd.DataFrame:
    """The paired t-test over seeds (:func:`anatlearn.study.units.paired_seed_test`) for each (budget,
    metric, pair) with at least one seed in common."""
    rows = []
    for budget, metric, (a, b) in itertools.product(budgets, metrics, pairs):
        if metric not in units.columns:
            continue
        r = paired_by_seed(units, a, b, metric, budget)
        if r.n == 0:
            continue
        rows.append({"budget": budget, "metric": metric, "a": a, "b": b, "mean_a": r.mean_a, "mean_b": r.mean_b,
                     "mean_diff": r.mean_diff, "sd_diff": r.sd_diff, "t": r.t, "p": r.p, "n_seeds": r.n,
                     "same_sign": r.same_sign, "test": SEED_TEST})
    return pd.DataFrame(rows, columns=SEED_COLUMNS)


def paired_folds(folds: pd.DataFrame, pairs, budgets) -> pd.DataFrame:
    """Corrected resampled t-tests over CV folds on seed-averaged fold scores (see module docstring)."""
    rows = []
    if folds.empty:
        return pd.DataFrame(rows, columns=FOLD_COLUMNS)
    mean = folds.groupby(["name", "budget", "metric", "fold"], as_index=False).agg(
        score=("score", "mean"), n_train=("n_train", "mean"), n_test=("n_test", "mean"))
    for budget, (a, b) in itertools.product(budgets, pairs):
        fa = mean[(mean["name"] == a) & ((mean["budget"] == budget) | (a == RANDOM_INIT))]
        fb = mean[(mean["name"] == b) & ((mean["budget"] == budget) | (b == RANDOM_INIT))]
        for metric in sorted(set(fa["metric"]) & set(fb["metric"])):
            sa = fa[fa["metric"] == metric].sort_values("fold")
            sb = fb[fb["metric"] == metric].sort_values("fold")
            if len(sa) != len(sb) or len(sa) < 2 or sa["score"].isna().any() or sb["score"].isna().any():
                continue
            t, p = corrected_paired_ttest(sa["score"], sb["score"], sa["n_train"].mean(), sa["n_test"].mean())
            rows.append({"budget": budget, "metric": metric, "a": a, "b": b,
                         "mean_diff": float(sa["score"].mean() - sb["score"].mean()), "t": t, "p": p,
                         "n_folds": len(sa), "test": "corrected resampled t over CV folds (Nadeau-Bengio)"})
    return pd.DataFrame(rows, columns=FOLD_COLUMNS)


def comparison_names(units: pd.DataFrame, selection: dict) -> tuple[list[str], list[tuple[str, str]]]:
    """(configurations in the headline, key pairs): the main methods, the control, random init and the
    selected variants; key pairs are every AnatCL configuration against each baseline (and the baselines'
    selected variants), and the control against random init."""
    present = set(units["name"])
    selected = [v["selected"] for v in selection.values() if "+" in v["selected"]]
    names = [n for n in (*MAIN_METHODS, *REGRESSION_OBJECTIVES, *selected, CONTROL, RANDOM_INIT) if n in present]
    anatcl = [n for n in names if n.split("+")[0] in ANATCL_METHODS]
    baselines = [n for n in names if n.split("+")[0] in BASELINES]
    pairs = [(a, b) for a in anatcl for b in baselines]
    # run 3: each objective that learns the descriptors against each AnatCL configuration and random init
    pairs += [(n, b) for n in names if n in REGRESSION_OBJECTIVES for b in (*anatcl, RANDOM_INIT) if b in names]
    if CONTROL in present and RANDOM_INIT in present:
        pairs.append((CONTROL, RANDOM_INIT))
    return names, pairs


def budget_curves(summary: pd.DataFrame, names, path: Path, metrics=HEADLINE_METRICS) -> Path:
    """One panel per metric: mean +- sd over seeds against epochs (log axis); random init a dashed line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = [m for m in metrics if m in set(summary["metric"])]
    cols = 4
    rows = max(1, -(-len(metrics) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3 * rows), squeeze=False)
    colours = dict(zip(names, plt.cm.tab10.colors * 2))
    trained_budgets = sorted(set(summary.loc[summary["budget"] > 0, "budget"]))
    for ax, metric in zip(axes.flat, metrics):
        m = summary[summary["metric"] == metric]
        for name in names:
            r = m[m["name"] == name].sort_values("budget")
            if r.empty:
                continue
            sd = r["sd"].fillna(0).to_numpy()
            if name == RANDOM_INIT:
                y, s = float(r["mean"].iloc[0]), float(sd[0])
                ax.axhline(y, color="k", ls="--", lw=1, label=name)
                ax.axhspan(y - s, y + s, color="k", alpha=0.08)
                continue
            ax.plot(r["budget"], r["mean"], marker="o", ms=3, color=colours[name], label=name)
            ax.fill_between(r["budget"], r["mean"] - sd, r["mean"] + sd, color=colours[name], alpha=0.15)
        ax.set_title(metric + (" (lower better)" if metric in LOWER_IS_BETTER else ""), fontsize=9)
        if len(trained_budgets) > 1 and min(trained_budgets) > 0:
            ax.set_xscale("log")
        ax.set_xticks(trained_budgets, [str(b) for b in trained_budgets])
        ax.minorticks_off()  # a log axis labels its minor ticks ("2x10^1") between the budgets otherwise
        ax.set_xlabel("epochs", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(metrics):]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 5), fontsize=8, frameon=False)
    fig.suptitle("Budget curves: mean ± sd over pretraining seeds; dashed: random init", fontsize=11)
    fig.tight_layout(rect=(0, 0.06, 1, 0.97))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _write_tsv(path: Path, df: pd.DataFrame) -> None:
    atomic_write_text(path, df.to_csv(sep="\t", index=False, float_format="%.6g"))


def aggregate_study(out: Path) -> Path:
    """Write ``out/results/*`` and ``out/summary.md`` from the evaluated units; returns the summary path."""
    out = Path(out)
    doc = json.loads((out / "study.json").read_text())
    s = settings_from_dict(doc["settings"])
    res = out / "results"
    res.mkdir(parents=True, exist_ok=True)
    units = load_units(out)
    folds = load_folds(out)
    summary = seed_summary(units)
    selection = select_configurations(units, s)
    control = positive_control(units, s)
    names, key_pairs = comparison_names(units, selection)
    budgets = sorted(set(units.loc[units["budget"] > 0, "budget"]))
    metrics = [m for m in HEADLINE_METRICS if m in units.columns]
    all_pairs = list(itertools.combinations(names, 2))
    seeds_all = paired_seeds(units, all_pairs, metrics, budgets)
    folds_all = paired_folds(folds, all_pairs, budgets)
    key = pd.concat([paired_seeds(units, key_pairs, metrics, budgets),
                     paired_folds(folds, key_pairs, budgets)], ignore_index=True)
    _write_tsv(res / "units.tsv", units)
    _write_tsv(res / "summary.tsv", summary)
    atomic_write_text(res / "summary.json", json.dumps({
        "summary": json.loads(summary.to_json(orient="records")), "selection": selection,
        "positive_control": control, "names": names, "key_pairs": key_pairs}, indent=1))
    _write_tsv(res / "paired_seeds.tsv", seeds_all)
    _write_tsv(res / "paired_folds.tsv", folds_all)
    _write_tsv(res / "key_comparisons.tsv", key)
    atomic_write_text(res / "selection.json", json.dumps(selection, indent=1))
    atomic_write_text(res / "positive_control.json", json.dumps(control, indent=1))
    figure = budget_curves(summary, names, res / "budget_curves.png")
    return write_summary(out, s, doc, summary, selection, control, names, key, figure)
