"""The fine-tuning measurement of docs/finetune.md ("Measurement plan"), resumable.

    python studies/finetune_measure.py --out finetune-measure [--study study-out] [--size full|tiny]

1. the study's world and cohorts (anatlearn.study.evaluation.make_cohorts, run 2's settings);
2. the encoders: AnatCL (anatcl-global) and y-Aware pretrained to the budget with the study's cell code
   (anatlearn.study.cells.train_config + anatlearn.pretrain.pretrain; reused from --study when its run holds
   exactly that budget), and the study's random-init encoder of each seed;
3. per (encoder, seed, task): ``anatlearn.finetune.finetune`` (nested CV, outer folds = evaluate tasks'
   repeat 0) and the linear probe of ``evaluate tasks`` on the frozen features over the same folds;
4. per (seed, task): every method compared on the same folds (paired corrected t-tests); then mean +- sd
   over seeds and paired t-tests over seeds, in OUT/summary.csv, OUT/paired_seeds.csv.

Each finished unit is written atomically (OUT/cells/*.json) and skipped on a re-run; a fine-tune killed
mid-fold resumes from its last epoch (anatlearn.finetune). Nothing here changes a number of the study.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from anatlearn.finetune import FinetuneConfig, compare, finetune, probe_on_splits
from anatlearn.io import atomic_write_text
from anatlearn.progress import note
from anatlearn.study.cells import random_init_checkpoint, train_config
from anatlearn.study.evaluation import make_cohorts
from anatlearn.study.grid import BASE, FULL, RANDOM_INIT, Cell, base_overrides

PRETRAINED = ("anatcl-global", "yaware")
ENCODERS = PRETRAINED + (RANDOM_INIT,)
TASKS = ("AD-like-vs-CN", "SCZ-like-vs-CN")
BUDGET = 30
# tiny: the same path at toy size (a smoke run: minutes, numbers meaningless)
TINY = dataclasses.replace(FULL, n_pretrain=40, n_validation=8, n_downstream=40, shape=(32, 32, 32), n_sites=3,
                           width=0.125, batch_size=8, seeds=(0, 1))
SIZES = {"full": (FULL, BUDGET, FinetuneConfig(folds=FULL.n_splits)),
         "tiny": (TINY, 1, FinetuneConfig(folds=2, inner_folds=3, epochs=2, warmup_epochs=1, lr_grid=(1e-3,)))}


def encoder_weights(out: Path, study: Path | None, s, method: str, seed: int, budget: int) -> Path:
    """The encoder of (method, seed) at ``budget`` epochs: the study's, if its run holds exactly that
    budget, else trained (or resumed) here with the study's cell configuration."""
    from anatlearn.models import load_checkpoint
    from anatlearn.pretrain import pretrain

    if method == RANDOM_INIT:
        return random_init_checkpoint(out / "encoders" / RANDOM_INIT / f"seed-{seed}" / "model.pt", s, seed)
    cell = Cell(method, BASE, seed, (budget,), "main", base_overrides(method, s))
    if study is not None:
        last = study / "cells" / cell.name / f"seed-{seed}" / "run" / "checkpoints" / "last.pt"
        if last.exists() and int(load_checkpoint(last)["epoch"]) == budget:
            return last
    run = out / "encoders" / cell.name / f"seed-{seed}" / "run"
    last = run / "checkpoints" / "last.pt"
    if not last.exists() or int(load_checkpoint(last)["epoch"]) < budget:
        cfg = train_config(cell, s, out / "data" / "healthy", run, budget)
        pretrain(cfg, resume=last.exists(), overwrite=not last.exists())
    return last


def run_unit(out: Path, weights: Path, encoder: str, seed: int, task: str, cfg: FinetuneConfig) -> Path:
    """Fine-tune and probe one encoder on one task; OUT/cells/<encoder>/seed-<s>/<task>.json when done."""
    from anatlearn.embed import AnatEncoder

    target = out / "cells" / encoder / f"seed-{seed}" / f"{task}.json"
    if target.exists():
        return target
    downstream = out / "data" / "downstream"
    run = out / "finetune" / encoder / f"seed-{seed}" / task
    t0 = time.perf_counter()
    finetune(str(weights), downstream, run, target=task, tasks="synthetic", config=cfg)
    t_ft = time.perf_counter() - t0
    from anatlearn.data import open_dataset

    features = AnatEncoder(weights, batch_size=16).transform(open_dataset(downstream, require_age=False))
    probe = probe_on_splits(features, run)
    ft = pd.read_csv(run / "folds.csv")
    doc = {"encoder": encoder, "seed": seed, "task": task, "weights": str(weights),
           "finetune": ft.drop(columns=["lr", "epoch"]).to_dict("records"), "probe": probe.to_dict("records"),
           "lr": ft.drop_duplicates("fold")["lr"].tolist(), "epoch": ft.drop_duplicates("fold")["epoch"].tolist(),
           "timing_s": {"finetune": round(t_ft, 1), "total": round(time.perf_counter() - t0, 1)}}
    atomic_write_text(target, json.dumps(doc, indent=1, allow_nan=True))
    return target


def summarise(out: Path, seeds, tasks) -> None:
    """Per (seed, task): all six methods on the same folds (paired corrected t); then over seeds."""
    seed_rows, paired_rows = [], []
    for seed in seeds:
        for task in tasks:
            cells = [json.loads(p.read_text()) for p in sorted((out / "cells").glob(f"*/seed-{seed}/{task}.json"))]
            if not cells:
                continue
            sources = {}
            for c in cells:
                sources[f"finetune:{c['encoder']}"] = pd.DataFrame(c["finetune"])
                sources[f"probe:{c['encoder']}"] = pd.DataFrame(c["probe"])
            result = compare(sources, out=out / "comparisons" / f"seed-{seed}" / task)
            seed_rows += [{**r, "seed": seed} for r in result["table"].to_dict("records")]
            paired_rows += [{**r, "seed": seed} for r in result["paired"].to_dict("records")]
    if not seed_rows:
        return
    per_seed = pd.DataFrame(seed_rows)
    summary = per_seed.groupby(["task", "method", "metric"])["mean"].agg(["mean", "std", "count"]).reset_index()
    atomic_write_text(out / "per_seed.csv", per_seed.to_csv(index=False))
    atomic_write_text(out / "summary.csv", summary.to_csv(index=False))
    atomic_write_text(out / "paired_folds.csv", pd.DataFrame(paired_rows).to_csv(index=False))
    atomic_write_text(out / "paired_seeds.csv", seed_tests(per_seed).to_csv(index=False))


def seed_tests(per_seed: pd.DataFrame) -> pd.DataFrame:
    """Paired t over seeds of the per-seed fold means (df = seeds - 1), every pair of methods; the sign count
    says on how many seeds a - b > 0 (the study's rule: p < 0.05 and one sign on every seed)."""
    from itertools import combinations

    from scipy import stats

    rows = []
    for (task, metric), g in per_seed.groupby(["task", "metric"]):
        wide = g.pivot(index="seed", columns="method", values="mean")
        for a, b in combinations(sorted(wide.columns), 2):
            d = (wide[a] - wide[b]).dropna()
            # equal differences on every seed leave no spread to test against: p undefined (as in the study)
            spread = len(d) > 1 and float(d.std(ddof=1)) > 0
            p = float(stats.ttest_rel(wide.loc[d.index, a], wide.loc[d.index, b]).pvalue) if spread else np.nan
            rows.append({"task": task, "metric": metric, "method_a": a, "method_b": b, "mean_diff": float(d.mean()),
                         "sd_diff": float(d.std(ddof=1)) if len(d) > 1 else np.nan, "p_paired_t": p,
                         "seeds_a_above_b": int((d > 0).sum()), "n_seeds": len(d)})
    return pd.DataFrame(rows)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--study", type=Path, default=None, help="a study directory whose 30-epoch runs to reuse")
    parser.add_argument("--size", choices=sorted(SIZES), default="full")
    parser.add_argument("--max-units", type=int, default=None, help="stop after this many new units (smoke runs)")
    parser.add_argument("--seeds", type=int, nargs="+", default=None,
                        help="run only these pretraining seeds (one process per seed shares the work of a machine; "
                             "the summary always covers every finished seed)")
    parser.add_argument("--encoders", nargs="+", choices=ENCODERS, default=list(ENCODERS),
                        help="run only these encoders (splits one seed's work over processes)")
    args = parser.parse_args(argv)
    s, budget, cfg = SIZES[args.size]
    cfg = dataclasses.replace(cfg, width=s.width)
    seeds = s.seeds if args.seeds is None else tuple(args.seeds)
    unknown = sorted(set(seeds) - set(s.seeds))
    if unknown:
        parser.error(f"--seeds: {unknown} not among the plan's seeds {list(s.seeds)}")
    make_cohorts(args.out, s)
    atomic_write_text(args.out / "measure.json", json.dumps({"size": args.size, "budget": budget,
                                                             "settings": s.to_dict(), "finetune": cfg.to_dict()}, indent=1))
    done = 0
    for seed in seeds:  # seed by seed: after each round every comparison has one more paired seed
        for encoder in [e for e in ENCODERS if e in args.encoders]:
            if all((args.out / "cells" / encoder / f"seed-{seed}" / f"{t}.json").exists() for t in TASKS):
                continue  # finished (e.g. restored from docs/finetune-measure/cells): no encoder needed
            weights = encoder_weights(args.out, args.study, s, encoder, seed, budget)
            for task in TASKS:
                if args.max_units is not None and done >= args.max_units:
                    summarise(args.out, s.seeds, TASKS)
                    return 0
                if not (args.out / "cells" / encoder / f"seed-{seed}" / f"{task}.json").exists():
                    done += 1
                path = run_unit(args.out, weights, encoder, seed, task, cfg)
                note(f"{encoder} seed {seed} {task}: {json.loads(path.read_text())['timing_s']}")
    summarise(args.out, s.seeds, TASKS)
    return 0


if __name__ == "__main__":
    sys.exit(main())
