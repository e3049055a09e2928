"""The follow-up on the views (docs/study.md, Part 4): crop-only and noise-only views against run 2's base
(crop + noise) and no-aug cells of the same seeds.

The follow-up study (``anatlearn study --grid views``) regenerates run 2's cohorts from the same settings and
seeds, so its cells can be paired seed by seed with run 2's. That the cohorts (and the evaluation) are the
same is checked, not assumed: both studies evaluate the same random-init encoders, and their metrics must
agree (the largest difference is printed; the comparison is refused above ``--tolerance``).

    python -m studies.views docs/study-run2/results/units.tsv docs/study-views/results/units.tsv

Comparisons: paired t-test over seeds, read with the study's rule (called at p < 0.05 with one sign on every
seed), as in studies/predictions.py.
"""

from __future__ import annotations

import argparse
import numpy as np
import pandas as pd

from studies.predictions import pair_table

METHODS = ("anatcl-global", "yaware")
CONFIGS = ("", "+no-aug", "+crop-only", "+noise-only")
METRICS = (("val_anat_r2_GMV", "val GMV R^2"), ("anat_r2_GMV", "GMV R^2"), ("anat_r2_CT", "CT R^2"),
           ("anat_r2_latents", "latents R^2"), ("AD-like-vs-CN balanced_accuracy", "AD BAcc"))
PAIRS = (("+crop-only", "+no-aug"), ("+noise-only", "+no-aug"), ("+crop-only", ""), ("+noise-only", ""))


def same_cohorts(run2: pd.DataFrame, views: pd.DataFrame) -> float:
    """Largest absolute difference between the two studies' random-init metrics (same seeds)."""
    cols = [m for m, _ in METRICS if m in run2 and m in views]
    a = run2[run2["name"] == "random-init"].set_index("seed")[cols].sort_index()
    b = views[views["name"] == "random-init"].set_index("seed")[cols].sort_index()
    seeds = a.index.intersection(b.index)
    if len(seeds) == 0:
        raise SystemExit("no random-init cell in common: cannot check that the cohorts are the same")
    return float(np.nanmax(np.abs(a.loc[seeds].to_numpy(float) - b.loc[seeds].to_numpy(float))))


def views_report(run2: pd.DataFrame, views: pd.DataFrame, budget: int = 30) -> str:
    units = pd.concat([run2, views[views["name"] != "random-init"]], ignore_index=True)
    at = units[units["budget"] == budget]
    lines = ["| configuration | n | " + " | ".join(label for _, label in METRICS) + " |",
             "|---|---|" + "---|" * len(METRICS)]
    for method in METHODS:
        for c in CONFIGS:
            rows = at[at["name"] == method + c]
            if rows.empty:
                continue
            cells = [f"{rows[m].mean():.3f} ± {rows[m].std(ddof=1):.3f}" if len(rows) > 1 else f"{rows[m].mean():.3f}"
                     for m, _ in METRICS]
            lines.append(f"| {method + c} | {len(rows)} | " + " | ".join(cells) + " |")
    pairs = [(method + left, method + right) for method in METHODS for left, right in PAIRS]
    lines += ["", pair_table(units, pairs, budget, metrics=[m for m, _ in METRICS[:3]])]
    return "\n".join(lines)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run2_units")
    ap.add_argument("views_units")
    ap.add_argument("--budget", type=int, default=30)
    ap.add_argument("--tolerance", type=float, default=0.02,
                    help="largest random-init metric difference accepted between the two studies")
    a = ap.parse_args(argv)
    run2, views = (pd.read_csv(p, sep="\t") for p in (a.run2_units, a.views_units))
    gap = same_cohorts(run2, views)
    print(f"random init, largest metric difference between the two studies: {gap:.2e}")
    if gap > a.tolerance:
        raise SystemExit(f"the studies' random-init metrics differ by {gap:.3f} > {a.tolerance}: "
                         "not the same cohorts or evaluation, so their cells cannot be paired")
    print(views_report(run2, views, a.budget))


if __name__ == "__main__":
    main()
