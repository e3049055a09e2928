"""The pre-registered readings of run 3 (docs/study.md, Part 6), computed exactly as the protocol words them.

- **Best AnatCL variant** (chosen without a test metric): the higher mean validation GMV recovery
  (``val_anat_r2_GMV``) over the seeds at 30 epochs; ties go to ``anatcl-global``.
- **(A)** ``anatcl-global`` and ``anatcl-local`` against ``yaware`` at 100 epochs on GMV recovery R^2 and
  AD-like BAcc (4 tests). Each test is *ahead*, *behind* or *level* by the study's rule
  (:func:`anatlearn.study.units.paired_by_seed`: paired t over seeds, p < 0.05, one sign on every seed).
  The claim is *contradicted* if any test is behind; otherwise *confirmed* if one variant is ahead on both
  metrics, *partly supported* if some test is ahead, *not confirmed* if none is.
- **(B)** ``descriptor-regression`` and ``anatcl-regression`` each against the best AnatCL variant and
  against random init, on the same two metrics at 100 epochs (8 tests).
- **Recommendation rule**: a new method qualifies if it is ahead of the best AnatCL variant on at least one
  primary metric and behind it or random init on none; of two that qualify, the one ahead on more of its
  four (B) tests, then the higher mean GMV recovery at 100 epochs.

Every reading is printed beside the outcome written before the run (``EXPECTED``). Secondary tables (never
decisive) follow: the primary pairs at 30 epochs and the new methods against y-Aware and each other.

    python -m studies.run3 docs/study-run3
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

from anatlearn.study.units import paired_by_seed, seed_values
from studies.predictions import PAIR_METRICS, pair_table

ANATCL = ("anatcl-global", "anatcl-local")
BASELINE = "yaware"
NEW = ("descriptor-regression", "anatcl-regression")
RANDOM = "random-init"
PRIMARY = (("anat_r2_GMV", "GMV recovery R^2"), ("AD-like-vs-CN balanced_accuracy", "AD-like BAcc"))
BUDGET, SELECT_BUDGET, SELECT_METRIC = 100, 30, "val_anat_r2_GMV"
# the outcome written in Part 6 before the run: the set of readings each test was expected to give
EXPECTED_A = {"level", "ahead"}  # AnatCL higher in the mean; a call ahead possible, none behind expected
EXPECTED_B = {("anat_r2_GMV", "best AnatCL"): {"ahead"}, ("anat_r2_GMV", RANDOM): {"ahead"},
              ("AD-like-vs-CN balanced_accuracy", "best AnatCL"): {"level"},
              ("AD-like-vs-CN balanced_accuracy", RANDOM): {"level", "ahead"}}


def reading(units: pd.DataFrame, a: str, b: str, metric: str, budget: int = BUDGET) -> dict:
    """One primary test: means, difference, p, seeds and ``ahead`` / ``behind`` / ``level`` (or ``not yet
    run`` with fewer than 2 paired seeds)."""
    r = paired_by_seed(units, a, b, metric, budget)
    word = "not yet run" if r.n < 2 else ("ahead" if r.mean_diff > 0 else "behind") if r.called else "level"
    return {"a": a, "b": b, "metric": metric, "mean_a": r.mean_a, "mean_b": r.mean_b, "diff": r.mean_diff,
            "p": r.p, "n": r.n, "reading": word}


def best_anatcl(units: pd.DataFrame) -> tuple[str, dict[str, float]]:
    """The variant with the higher mean validation GMV R^2 at 30 epochs (ties: ``anatcl-global``)."""
    means = {m: float(seed_values(units, m, SELECT_METRIC, SELECT_BUDGET).mean()) for m in ANATCL}
    best = ANATCL[1] if means[ANATCL[1]] > means[ANATCL[0]] else ANATCL[0]
    return best, means


def claim_a(rows: list[dict]) -> str:
    words = [r["reading"] for r in rows]
    if "not yet run" in words:
        return "not yet decidable"
    if "behind" in words:
        return "contradicted"
    if any(all(r["reading"] == "ahead" for r in rows if r["a"] == v) for v in ANATCL):
        return "confirmed"
    return "partly supported" if "ahead" in words else "not confirmed"


def readings_a(units: pd.DataFrame) -> list[dict]:
    return [{**reading(units, v, BASELINE, m), "expected": EXPECTED_A} for v in ANATCL for m, _ in PRIMARY]


def readings_b(units: pd.DataFrame, best: str) -> list[dict]:
    rows = []
    for new in NEW:
        for ref, ref_key in ((best, "best AnatCL"), (RANDOM, RANDOM)):
            for m, _ in PRIMARY:
                rows.append({**reading(units, new, ref, m), "ref": ref_key, "expected": EXPECTED_B[(m, ref_key)]})
    return rows


def recommendation(units: pd.DataFrame, rows_b: list[dict]) -> tuple[str | None, dict[str, bool]]:
    """The method the rule recommends (None if neither qualifies) and which methods qualify."""
    qualifies, n_ahead = {}, {}
    for new in NEW:
        mine = [r for r in rows_b if r["a"] == new]
        if any(r["reading"] == "not yet run" for r in mine):
            qualifies[new] = False
            continue
        ahead_best = any(r["reading"] == "ahead" for r in mine if r["ref"] == "best AnatCL")
        qualifies[new] = ahead_best and not any(r["reading"] == "behind" for r in mine)
        n_ahead[new] = sum(r["reading"] == "ahead" for r in mine)
    winners = [m for m in NEW if qualifies[m]]
    if not winners:
        return None, qualifies
    gmv = {m: float(seed_values(units, m, "anat_r2_GMV", BUDGET).mean()) for m in winners}
    return max(winners, key=lambda m: (n_ahead[m], gmv[m])), qualifies


def _row(r: dict) -> str:
    if r["n"] < 2:
        return f"| {r['a']} | {r['b']} | {r['metric']} | | | | | {r['n']} | not yet run | |"
    match = "as expected" if r["reading"] in r["expected"] else "not as expected"
    return (f"| {r['a']} | {r['b']} | {r['metric']} | {r['mean_a']:.3f} | {r['mean_b']:.3f} | {r['diff']:+.3f} | "
            f"{r['p']:.3f} | {r['n']} | **{r['reading']}** | {match} ({' or '.join(sorted(r['expected']))}) |")


HEAD = ["| A | B | metric | A | B | A - B | p | seeds | reading | against the expectation |",
        "|---|---|---|---|---|---|---|---|---|---|"]


def devices(study: Path) -> dict[tuple[int, int], set[str]]:
    """The CPU capability (or GPU) each (seed, budget)'s evaluations ran on, from their provenance."""
    found: dict[tuple[int, int], set[str]] = {}
    for path in sorted(Path(study).glob("*/seed-*/budget-*.json")) + sorted(Path(study).glob("cells/*/seed-*/eval/budget-*.json")):
        doc = json.loads(path.read_text())
        machine = doc.get("provenance", {}).get("machine", {})
        kind = machine.get("cuda") or machine.get("cpu_capability") or "unknown"
        found.setdefault((doc["seed"], doc["budget"]), set()).add(str(kind))
    return found


def report(units: pd.DataFrame, study: Path | None = None) -> str:
    best, means = best_anatcl(units)
    rows_a, lines = readings_a(units), []
    lines += ["## Best AnatCL variant (validation GMV R^2, 30 epochs, mean over seeds)", "",
              ", ".join(f"{m}: {v:.3f}" for m, v in means.items()) + f" -> **{best}**", "",
              f"## (A) AnatCL against y-Aware, {BUDGET} epochs: claim **{claim_a(rows_a)}** (expected: partly "
              "supported; not confirmed would not surprise; contradicted not expected)", "", *HEAD,
              *map(_row, rows_a)]
    rows_b = readings_b(units, best)
    rec, qualifies = recommendation(units, rows_b)
    lines += ["", f"## (B) The new methods against {best} (best AnatCL) and random init, {BUDGET} epochs", "",
              *HEAD, *map(_row, rows_b), "",
              "Recommendation rule: " + ", ".join(f"{m} {'qualifies' if q else 'does not qualify'}"
                                                  for m, q in qualifies.items())
              + f" -> **{rec or 'no new method is recommended'}**"]
    if study is not None:
        lines += ["", "## Devices (CPU capability or GPU of each seed's evaluations, by budget)", "",
                  "| seed | budget | device |", "|---|---|---|"]
        lines += [f"| {s} | {b} | {', '.join(sorted(k))} |" for (s, b), k in sorted(devices(study).items())]
    pairs = [(v, BASELINE) for v in ANATCL] + [(n, best) for n in NEW]
    lines += ["", "## Secondary (never decisive): the primary pairs at 30 epochs", "", pair_table(units, pairs, 30)]
    more = [(n, BASELINE) for n in NEW] + [(NEW[1], NEW[0])]
    for budget in (30, BUDGET):
        lines += ["", f"## Secondary: the new methods against y-Aware and each other, {budget} epochs", "",
                  pair_table(units, more, budget, metrics=PAIR_METRICS)]
    return "\n".join(lines)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("study", type=Path, help="run 3's study directory or snapshot (results/units.tsv)")
    a = ap.parse_args(argv)
    table = a.study / "results" / "units.tsv"
    if not table.is_file():
        raise SystemExit(f"{table} not found: aggregate the study first (studies/snapshot.sh or --aggregate-only)")
    print(report(pd.read_csv(table, sep="\t"), a.study))


if __name__ == "__main__":
    main()
