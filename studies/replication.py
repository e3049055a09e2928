"""The replication of run 2's thickness finding (docs/study.md, Part 5): AnatCL against y-Aware, both with the
released recipe's views, on three new pretraining seeds.

Run 2 called one difference between AnatCL and y-Aware with the selected configurations at 100 epochs: more
cortical-thickness recovery (CT R^2) for anatcl-global and anatcl-local. The replication study
(``anatlearn study --grid replication``: the same world, cohorts, training settings and evaluation, seeds
3, 4, 5) tests it again, with the reading fixed before it ran:

- **primary**, per AnatCL variant: CT R^2 at 100 epochs against ``yaware`` on the new seeds, paired t over
  seeds read with the study's rule (called at p < 0.05 with one sign on every seed): *replicated* if called
  in run 2's direction (AnatCL higher), *reversed* if called the other way, else *not replicated*;
- **secondary** (reported, never decisive): the other key metrics on the new seeds at 30 and 100 epochs, and
  all six seeds pooled (run 2's ``+no-aug`` cells with the new ones).

That the two studies share world, cohorts, training and evaluation settings is checked from their
``study.json`` (the comparison is refused otherwise); their seeds must not overlap.

    python -m studies.replication docs/study-run2 docs/study-replication
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

from studies.predictions import PAIR_METRICS, compare, pair_table

ANATCL = ("anatcl-global", "anatcl-local")
BASELINE = "yaware"
PRIMARY_METRIC, PRIMARY_BUDGET = "anat_r2_CT", 100
# what must be equal for cells of the two studies to be paired (world, cohorts, training, evaluation)
SHARED = ("n_pretrain", "n_validation", "n_downstream", "shape", "n_sites", "world_seed", "width", "batch_size",
          "lr", "n_splits", "n_repeats", "n_boot")


def load(study: Path) -> tuple[dict, pd.DataFrame]:
    settings = json.loads((study / "study.json").read_text())["settings"]
    return settings, pd.read_csv(study / "results" / "units.tsv", sep="\t")


def check_pairable(run2: dict, rep: dict) -> None:
    """Refuse (SystemExit naming the setting) unless the replication can be read beside run 2."""
    for key in SHARED:
        if run2.get(key) != rep.get(key):
            raise SystemExit(f"study.json setting {key!r} differs ({run2.get(key)!r} in run 2, {rep.get(key)!r} "
                             "in the replication): not the same world, cohorts or evaluation")
    if list(rep.get("augment", [None])):
        raise SystemExit(f"the replication must train with no augmentation (augment = [], got {rep['augment']!r})")
    if set(run2["seeds"]) & set(rep["seeds"]):
        raise SystemExit(f"the replication's seeds {rep['seeds']} overlap run 2's {run2['seeds']}: not new seeds")


def run2_selected(units: pd.DataFrame) -> pd.DataFrame:
    """Run 2's ``method+no-aug`` cells named as their method (the replication's base is that configuration)."""
    keep = units[units["name"].isin([f"{m}+no-aug" for m in (*ANATCL, BASELINE)])].copy()
    keep["name"] = keep["name"].str.replace("+no-aug", "", regex=False)
    return keep


def primary(units: pd.DataFrame) -> list[dict]:
    rows = []
    for method in ANATCL:
        r = compare(units, method, BASELINE, PRIMARY_METRIC, PRIMARY_BUDGET)
        if r is None:
            rows.append({"method": method, "verdict": "not yet run"})
            continue
        verdict = ("replicated" if r["diff"] > 0 else "reversed") if r["called"] else "not replicated"
        rows.append({"method": method, **r, "verdict": verdict})
    return rows


def report(run2_units: pd.DataFrame, rep_units: pd.DataFrame) -> str:
    lines = [f"## Primary: {PRIMARY_METRIC} at {PRIMARY_BUDGET} epochs, AnatCL minus {BASELINE}, new seeds only",
             "", "| AnatCL | AnatCL | yaware | difference | p | seeds | verdict |", "|---|---|---|---|---|---|---|"]
    for r in primary(rep_units):
        if "diff" not in r:
            lines.append(f"| {r['method']} | | | | | 0-1 | {r['verdict']} |")
            continue
        lines.append(f"| {r['method']} | {r['mean_a']:.3f} | {r['mean_b']:.3f} | {r['diff']:+.3f} | {r['p']:.3f} | "
                     f"{r['n']} | {r['verdict']} |")
    pairs = [(m, BASELINE) for m in ANATCL] + [(m, "random-init") for m in (*ANATCL, BASELINE)]
    for budget in (30, 100):
        lines += ["", f"## Secondary: new seeds at {budget} epochs", "", pair_table(rep_units, pairs, budget)]
    pooled = pd.concat([run2_selected(run2_units), rep_units[rep_units["name"] != "random-init"]],
                       ignore_index=True)
    keep = [m for m in PAIR_METRICS if m not in ("site_bacc", "brain_age_mae_external")]
    lines += ["", "## Secondary: run 2's seeds and the new ones pooled, 100 epochs (AnatCL against y-Aware)", "",
              pair_table(pooled, [(m, BASELINE) for m in ANATCL], 100, metrics=keep)]
    return "\n".join(lines)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run2", type=Path, help="run 2's study directory or snapshot (study.json, results/units.tsv)")
    ap.add_argument("replication", type=Path, help="the replication's study directory or snapshot")
    a = ap.parse_args(argv)
    (s2, u2), (sr, ur) = load(a.run2), load(a.replication)
    check_pairable(s2, sr)
    print(report(u2, ur))


if __name__ == "__main__":
    main()
