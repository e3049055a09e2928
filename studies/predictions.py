"""Check the ablation predictions that docs/study.md wrote down before any ablation result was read.

The predictions (docs/study.md, "Diagnostic outside the protocol"): at 30 epochs, on validation GMV recovery
(the selection metric) and on downstream GMV recovery, for both AnatCL variants,
(1) ``lambda-0.5`` > base > ``lambda-2``; (2) ``clamp`` and ``kernel`` > base; (3) ``minmax`` <= base.

Each comparison is the paired t-test over seeds read with the study's pre-registered rule (both from
:mod:`anatlearn.study.units`: called only when p < 0.05 and every seed's difference has the same sign). A strict prediction (">") holds when the difference
is called in the predicted direction, is "reversed" when it is called the other way, and is otherwise "not
distinguishable" (the direction of the mean is given). A "<=" prediction holds unless the opposite is called.

    python -m studies.predictions docs/study-run2/results/units.tsv --budget 30
    python -m studies.predictions docs/study-run2/results/units.tsv --pair anatcl-global+no-aug yaware+no-aug

``--pair A B`` (repeatable) prints A against B on the study's key metrics instead, with the same test and rule
(random init, evaluated once, is paired at any budget).
"""

from __future__ import annotations

import argparse

import pandas as pd

from anatlearn.study.units import paired_by_seed

METHODS = ("anatcl-global", "anatcl-local")
METRICS = (("val_anat_r2_GMV", "validation GMV R^2"), ("anat_r2_GMV", "downstream GMV R^2"))
# (prediction label, left configuration, relation, right configuration); "" is the method's base
PREDICTIONS = (
    ("(1) lambda-0.5 > base", "+lambda-0.5", ">", ""),
    ("(1) base > lambda-2", "", ">", "+lambda-2"),
    ("(2) clamp > base", "+clamp", ">", ""),
    ("(2) kernel > base", "+kernel", ">", ""),
    ("(3) minmax <= base", "+minmax", "<=", ""),
)


def compare(units: pd.DataFrame, a: str, b: str, metric: str, budget: int) -> dict | None:
    """The study's paired test (:func:`anatlearn.study.units.paired_by_seed`) over the seeds that both
    configurations have at ``budget`` (random init at any budget); None if fewer than 2."""
    r = paired_by_seed(units, a, b, metric, budget)
    if r.n < 2:
        return None
    return {"mean_a": r.mean_a, "mean_b": r.mean_b, "diff": r.mean_diff, "p": r.p, "n": r.n, "called": r.called}


def verdict(relation: str, r: dict) -> str:
    """The pre-registered reading of one comparison (left minus right = ``r['diff']``)."""
    if relation == ">":
        if r["called"]:
            return "holds" if r["diff"] > 0 else "reversed"
        return "not distinguishable (" + ("as predicted" if r["diff"] > 0 else "opposite") + ")"
    # "<=": only a called difference the other way refutes it
    return "fails" if r["called"] and r["diff"] > 0 else "holds"


def prediction_table(units: pd.DataFrame, budget: int = 30) -> str:
    lines = ["| prediction | method | metric | left | right | left - right | p | seeds | verdict |",
             "|---|---|---|---|---|---|---|---|---|"]
    for method in METHODS:
        for label, left, relation, right in PREDICTIONS:
            a, b = method + left, method + right
            for metric, mlabel in METRICS:
                r = compare(units, a, b, metric, budget)
                if r is None:
                    lines.append(f"| {label} | {method} | {mlabel} | | | | | 0-1 | not yet run |")
                    continue
                lines.append(f"| {label} | {method} | {mlabel} | {r['mean_a']:.3f} | {r['mean_b']:.3f} | "
                             f"{r['diff']:+.3f} | {r['p']:.3f} | {r['n']} | {verdict(relation, r)} |")
    return "\n".join(lines)


PAIR_METRICS = ("val_anat_r2_GMV", "anat_r2_GMV", "anat_r2_CT", "anat_r2_SA", "anat_r2_latents",
                "AD-like-vs-CN balanced_accuracy", "SCZ-like-vs-CN balanced_accuracy", "MMSE-like r2",
                "brain_age_mae_external", "site_bacc", "icc_median", "rankme")


def pair_table(units: pd.DataFrame, pairs, budget: int = 30, metrics=PAIR_METRICS) -> str:
    """Each (A, B) on ``metrics``: means, A - B, p and whether the rule calls it (random init, untrained, is
    paired at any budget)."""
    lines = ["| A | B | metric | A | B | A - B | p | seeds | called |", "|---|---|---|---|---|---|---|---|---|"]
    for a, b in pairs:
        for metric in metrics:
            r = compare(units, a, b, metric, budget) if metric in units else None
            if r is not None:
                lines.append(f"| {a} | {b} | {metric} | {r['mean_a']:.3f} | {r['mean_b']:.3f} | {r['diff']:+.3f} | "
                             f"{r['p']:.3f} | {r['n']} | {'yes' if r['called'] else 'no'} |")
    return "\n".join(lines)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("units", help="a study's results/units.tsv (one row per cell and budget)")
    ap.add_argument("--budget", type=int, default=30)
    ap.add_argument("--pair", nargs=2, action="append", metavar=("A", "B"), help="compare A with B instead")
    a = ap.parse_args(argv)
    units = pd.read_csv(a.units, sep="\t")
    print(pair_table(units, a.pair, a.budget) if a.pair else prediction_table(units, a.budget))


if __name__ == "__main__":
    main()
