"""Does this machine reproduce a study's committed evaluation? Retrain one cell to one budget from scratch,
in a temporary directory beside the study (its cohorts are reused, read-only), evaluate it exactly as the
study does, and compare every metric with the committed evaluation of the same cell and budget.

    python -m studies.reproduce --study study-out --reference docs/study-run2 --cell anatcl-global/seed-0 --budget 10

Why: a long study runs over several sessions and, when its untracked directory is lost, continues on
another machine (studies/restore.sh). Training on CPUs of different instruction sets (AVX2, AVX-512)
can round differently and then diverge; this says, with numbers, whether cells trained here are the runs
the earlier machine would have produced, or independent runs of the same protocol. ``--threads`` should
match the study's workers (``--workers 2`` on 2 cores: one thread each). Prints one line per metric and the
largest absolute difference; exits 0 either way (it measures, it does not judge).
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import tempfile
from pathlib import Path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--study", type=Path, required=True, help="a study directory (its data/ and study.json)")
    ap.add_argument("--reference", type=Path, required=True,
                    help="where the committed evaluations are: a snapshot (docs/study-run2) or the study itself")
    ap.add_argument("--cell", required=True, help="e.g. anatcl-global/seed-0 (a main-grid or ablation cell)")
    ap.add_argument("--budget", type=int, required=True)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)

    import torch

    from anatlearn.study.cells import run_cell
    from anatlearn.study.evaluation import Evaluator, cohort_paths
    from anatlearn.study.grid import build_cells, settings_from_dict

    torch.set_num_threads(args.threads)
    name, _, seed = args.cell.partition("/seed-")
    ref = next((p for p in (args.reference / name / f"seed-{seed}" / f"budget-{args.budget:04d}.json",
                            args.reference / "cells" / name / f"seed-{seed}" / "eval" / f"budget-{args.budget:04d}.json")
                if p.exists()), None)
    if ref is None:
        sys.exit(f"studies.reproduce: no committed evaluation of {args.cell} at budget {args.budget} in {args.reference}")
    s = settings_from_dict(json.loads((args.study / "study.json").read_text())["settings"])
    cell = next((c for c in build_cells(s) if c.id == args.cell), None)
    if cell is None:
        sys.exit(f"studies.reproduce: {args.cell} is not a cell of {args.study}'s grid")
    cell = cell.with_budgets((args.budget,))
    tmp = Path(tempfile.mkdtemp(prefix=".reproduce-", dir=args.study))
    try:
        (tmp / "data").symlink_to((args.study / "data").resolve())
        ev = Evaluator(cohort_paths(tmp), s)
        run_cell(cell, tmp, s, ev.evaluate, cohort_paths(tmp)["healthy"])
        here = json.loads(next(tmp.glob("cells/*/seed-*/eval/budget-*.json")).read_text())["metrics"]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    there = json.loads(ref.read_text())["metrics"]
    worst = 0.0
    for k in sorted(set(here) & set(there)):
        a, b = float(here[k]), float(there[k])
        d = abs(a - b) if not (math.isnan(a) or math.isnan(b)) else (0.0 if math.isnan(a) and math.isnan(b) else math.inf)
        worst = max(worst, d)
        print(f"{k}\tcommitted {b:.6g}\there {a:.6g}\t|diff| {d:.3g}")
    print(f"{args.cell} at {args.budget} epochs: largest |difference| {worst:.3g} over {len(set(here) & set(there))} "
          f"metrics ({'identical' if worst == 0 else 'not identical'}; threads {args.threads}; torch {torch.__version__})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
