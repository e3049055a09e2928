"""The pre-written readings of the fine-tuning measurement (docs/finetune.md, "Measurement plan"), computed
as the plan words them, from the measurement's ``summary.csv`` and ``paired_seeds.csv``
(:mod:`studies.finetune_measure`).

- A difference is **called** by the study's rule: paired t over seeds p < 0.05 and the same sign on every
  seed; it then reads *ahead* or *behind*, otherwise *level*.
- Primary metric: balanced accuracy; ROC AUC is secondary (same readings, never decisive).
- The comparisons, in the plan's order, each beside the outcome written before the run (``EXPECTED``):

  1. fine-tune vs probe, per pretrained encoder: *level*, within +-0.05;
  2. fine-tune from AnatCL / y-Aware vs fine-tune from random init: *ahead*, by less than the probe's
     pretrained-vs-random gap (the plan names run 2's gap; the probes here are on the same encoders,
     run 2's configuration and seeds, so their gap is the one measured here, on the same folds);
  3. fine-tune from random init vs probe on random init: *ahead* on AD-like, *level* on SCZ-like;
  4. AnatCL vs y-Aware after fine-tuning: *level*.

    python -m studies.finetune_readings docs/finetune-measure
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

ANATCL, YAWARE, RANDOM = "anatcl-global", "yaware", "random-init"
PRETRAINED = (ANATCL, YAWARE)
TASKS = ("AD-like-vs-CN", "SCZ-like-vs-CN")
METRICS = (("balanced_accuracy", "BAcc"), ("roc_auc", "ROC AUC"))
ALPHA, PROBE_MARGIN = 0.05, 0.05


def ft(encoder: str) -> str:
    return f"finetune:{encoder}"


def pr(encoder: str) -> str:
    return f"probe:{encoder}"


def paired(tests: pd.DataFrame, task: str, metric: str, a: str, b: str) -> dict:
    """The over-seeds test of ``a - b`` (``paired_seeds.csv`` holds each pair once, in name order)."""
    hit = tests[(tests.task == task) & (tests.metric == metric)]
    row = hit[(hit.method_a == a) & (hit.method_b == b)]
    sign = 1.0
    if row.empty:
        row, sign = hit[(hit.method_a == b) & (hit.method_b == a)], -1.0
    if row.empty:
        raise KeyError(f"no paired test of {a} and {b} on {task} ({metric})")
    r = row.iloc[0]
    n = int(r["n_seeds"])
    above = int(r["seeds_a_above_b"]) if sign > 0 else n - int(r["seeds_a_above_b"])
    diff = sign * float(r["mean_diff"])
    # one sign on every seed: all above, or none above (and no tie: a tie leaves the mean at 0 or p undefined)
    called = bool(r["p_paired_t"] < ALPHA) and above in (0, n)
    word = ("ahead" if diff > 0 else "behind") if called else "level"
    return {"task": task, "metric": metric, "a": a, "b": b, "diff": diff, "p": float(r["p_paired_t"]),
            "seeds_a_above_b": above, "n_seeds": n, "reading": word}


def readings(tests: pd.DataFrame, metric: str = "balanced_accuracy") -> pd.DataFrame:
    """Every pre-written comparison on ``metric``, with the expected reading and whether it was met."""
    rows = []
    for task in TASKS:
        for enc in PRETRAINED:
            r = paired(tests, task, metric, ft(enc), pr(enc))
            rows.append({**r, "comparison": "1 fine-tune vs probe", "expected": f"level, |diff| <= {PROBE_MARGIN}",
                         "met": r["reading"] == "level" and abs(r["diff"]) <= PROBE_MARGIN})
        for enc in PRETRAINED:
            r = paired(tests, task, metric, ft(enc), ft(RANDOM))
            gap = paired(tests, task, metric, pr(enc), pr(RANDOM))["diff"]
            rows.append({**r, "comparison": "2 pretrained vs random, fine-tuned",
                         "expected": f"ahead, by less than the probe gap {gap:+.3f}",
                         "met": r["reading"] == "ahead" and r["diff"] < gap})
        r = paired(tests, task, metric, ft(RANDOM), pr(RANDOM))
        want = "ahead" if task.startswith("AD") else "level"
        rows.append({**r, "comparison": "3 fine-tune vs probe, random init", "expected": want,
                     "met": r["reading"] == want})
        r = paired(tests, task, metric, ft(ANATCL), ft(YAWARE))
        rows.append({**r, "comparison": "4 AnatCL vs y-Aware, fine-tuned", "expected": "level",
                     "met": r["reading"] == "level"})
    cols = ["comparison", "task", "a", "b", "diff", "p", "seeds_a_above_b", "n_seeds", "reading", "expected", "met"]
    return pd.DataFrame(rows)[cols].sort_values(["comparison", "task"], kind="stable").reset_index(drop=True)


def score_table(summary: pd.DataFrame) -> pd.DataFrame:
    """Mean +- sd over seeds per (task, method), one column per metric, methods in a fixed order."""
    order = [f"{kind}:{enc}" for enc in (ANATCL, YAWARE, RANDOM) for kind in ("finetune", "probe")]
    rows = []
    for task in TASKS:
        for method in order:
            row = {"task": task, "method": method}
            for metric, label in METRICS:
                hit = summary[(summary.task == task) & (summary.method == method) & (summary.metric == metric)]
                row[label] = (f"{hit['mean'].iloc[0]:.3f} +- {hit['std'].iloc[0]:.3f} (n={int(hit['count'].iloc[0])})"
                              if len(hit) else "")
            rows.append(row)
    return pd.DataFrame(rows)


def markdown(df: pd.DataFrame) -> str:
    """A pipe table (floats to 3 decimals, p to 4)."""
    def cell(col, v):
        if isinstance(v, float):
            return f"{v:.4f}" if col == "p" else f"{v:+.3f}" if col == "diff" else f"{v:.3f}"
        return str(v)
    lines = ["| " + " | ".join(df.columns) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(cell(c, v) for c, v in zip(df.columns, row)) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("measure", type=Path, help="the measurement's output (summary.csv, paired_seeds.csv)")
    args = parser.parse_args(argv)
    summary = pd.read_csv(args.measure / "summary.csv")
    tests = pd.read_csv(args.measure / "paired_seeds.csv")
    print("## Scores (mean +- sd over seeds of the 5-fold means)\n")
    print(markdown(score_table(summary)))
    for metric, label in METRICS:
        kind = "primary" if metric == "balanced_accuracy" else "secondary, never decisive"
        print(f"\n## Readings on {label} ({kind})\n")
        print(markdown(readings(tests, metric)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
