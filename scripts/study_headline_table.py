"""The README's headline table from a study's ``results/summary.tsv``: measures as rows, methods as columns,
mean ± sd over seeds at one budget (random init: untrained).

    python scripts/study_headline_table.py docs/study-run2/results/summary.tsv --budget 30
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
    """Three decimals, two from 10 up (judged on ``like``, the mean, so mean and sd match)."""
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


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("summary")
    ap.add_argument("--budget", type=int, default=30)
    a = ap.parse_args(argv)
    print(headline(pd.read_csv(a.summary, sep="\t"), a.budget))


if __name__ == "__main__":
    main()
