"""The README's headline table from a study's ``results/summary.tsv``: measures as rows, methods as columns,
mean ± sd over seeds at one budget (random init: untrained); ``--ablations``: one row per configuration of
the methods with variants (base first), the selection metric first.

    python -m studies.headline_table docs/study-run2/results/summary.tsv --budget 30
    python -m studies.headline_table docs/study-run2/results/summary.tsv --budget 10 --ablations
    python -m studies.headline_table docs/study-run2/results/summary.tsv --budget 30 \
        --methods anatcl-global+no-aug anatcl-local+no-aug yaware+no-aug random-init
"""

from __future__ import annotations

import argparse

import pandas as pd

MEASURES = [
    ("AD-like-vs-CN balanced_accuracy", "AD-like BAcc"),
    ("SCZ-like-vs-CN balanced_accuracy", "SCZ-like BAcc"),
    ("MMSE-like r2", "MMSE-like R^2"),
    ("brain_age_mae_external", "brain-age MAE, external (y)"),
    ("site_bacc", "site BAcc (lower: less site)"),
    ("icc_median", "test-retest ICC"),
    ("anat_r2_GMV", "GMV recovery R^2"),
    ("anat_r2_CT", "CT recovery R^2"),
    ("anat_r2_latents", "latents recovery R^2"),
    ("rankme", "RankMe"),
]
METHODS = ["anatcl-global", "anatcl-local", "yaware", "simclr", "l1-age", "gmv-regression", "random-init"]


def fmt(x: float, like: float) -> str:
    """Three decimals, two from 10 up (judged on ``like``, the mean, so mean and sd match); an sd of one
    seed (nan) as "-"."""
    if x != x:
        return "-"
    return f"{x:.3f}" if abs(like) < 10 else f"{x:.2f}"


def headline(summary: pd.DataFrame, budget: int, methods=METHODS) -> str:
    at = summary[(summary["budget"] == budget) | (summary["name"] == "random-init")]
    methods = [m for m in methods if m in set(at["name"])]
    lines = [f"| measure ({budget} epochs; mean ± sd over seeds) | " + " | ".join(methods) + " |",
             "|---|" + "---|" * len(methods)]
    for metric, label in MEASURES:
        cells = []
        for m in methods:
            row = at[(at["name"] == m) & (at["metric"] == metric)]
            cells.append("" if row.empty else f"{fmt(row['mean'].iloc[0], row['mean'].iloc[0])} ± {fmt(row['sd'].iloc[0], row['mean'].iloc[0])}")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


ABLATION_MEASURES = [("val_anat_r2_GMV", "val GMV R^2 (selection)"), ("anat_r2_GMV", "GMV R^2"),
                     ("anat_r2_CT", "CT R^2"), ("anat_r2_latents", "latents R^2"), ("rankme", "RankMe"),
                     ("AD-like-vs-CN balanced_accuracy", "AD BAcc"), ("SCZ-like-vs-CN balanced_accuracy", "SCZ BAcc")]


def ablation_table(summary: pd.DataFrame, budget: int, methods=("anatcl-global", "anatcl-local", "yaware")) -> str:
    """Every configuration of ``methods`` at ``budget`` (base, then its variants in file order), plus
    random init for reference; ``n`` is the number of seeds."""
    at = summary[(summary["budget"] == budget) | (summary["name"] == "random-init")]
    names = [n for m in methods for n in dict.fromkeys(at["name"]) if n == m or n.startswith(m + "+")]
    names += ["random-init"] if "random-init" in set(at["name"]) else []
    lines = ["| configuration | n | " + " | ".join(label for _, label in ABLATION_MEASURES) + " |",
             "|---|---|" + "---|" * len(ABLATION_MEASURES)]
    for name in names:
        rows = at[at["name"] == name].set_index("metric")
        cells = [f"{fmt(rows.loc[m, 'mean'], rows.loc[m, 'mean'])} ± {fmt(rows.loc[m, 'sd'], rows.loc[m, 'mean'])}"
                 if m in rows.index else "" for m, _ in ABLATION_MEASURES]
        n = int(rows["n"].max()) if "n" in rows and len(rows) else 0
        lines.append(f"| {name} | {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("summary")
    ap.add_argument("--budget", type=int, default=30)
    ap.add_argument("--ablations", action="store_true", help="the table of every configuration instead")
    ap.add_argument("--methods", nargs="+", default=METHODS, help="the configurations (columns) of the headline")
    a = ap.parse_args(argv)
    summary = pd.read_csv(a.summary, sep="\t")
    print(ablation_table(summary, a.budget) if a.ablations else headline(summary, a.budget, a.methods))


if __name__ == "__main__":
    main()
