"""The study's cohorts and the evaluation of one checkpoint (one unit of the grid).

Cohorts (one world, docs/study.md): ``healthy`` (pretraining split ``train``; brain age and site on the
OpenBHB protocol), ``validation`` (new healthy subjects of the same world: anatomy recovery for the selection
rule only), ``downstream`` (diagnosis and clinical-score probes, anatomy recovery, RankMe) and ``retest``
(the downstream subjects re-scanned: test-retest ICC).

Metrics of a unit (flat names, one float each):
- ``brain_age_mae_internal``, ``brain_age_mae_external``, ``site_bacc`` (lower is better);
- ``<task> <metric>`` for every downstream task and probe metric (balanced_accuracy, roc_auc, mae, r2);
- ``icc_median`` (ICC(2,1) median over features);
- ``anat_r2_<GMV|CT|SA|latents>`` on the downstream cohort, ``val_anat_r2_<...>`` on the validation cohort
  (mean over targets of the cross-validated ridge R^2);
- ``rankme`` (effective rank of the downstream features).
Per-fold scores of the downstream probes are kept for the corrected resampled t-test across folds.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from anatlearn.study.grid import StudySettings

COHORTS = ("healthy", "validation", "downstream", "retest")


def cohort_paths(out: Path) -> dict[str, Path]:
    return {c: Path(out) / "data" / c for c in COHORTS}


def make_cohorts(out: Path, s: StudySettings) -> dict[str, Path]:
    """Generate the four cohorts once (each is written atomically by ``generate_cohort``, so an existing
    directory is complete and is kept on a re-run)."""
    from anatlearn.synthetic import generate_cohort

    paths = cohort_paths(out)
    common = dict(shape=tuple(s.shape), seed=s.world_seed, n_sites=s.n_sites, overwrite=True)
    diseases = ("AD-like", "SCZ-like")
    specs = {"healthy": dict(n_subjects=s.n_pretrain, held_out_sites=1),
             "validation": dict(n_subjects=s.n_validation, held_out_sites=0, cohort_code=2),
             "downstream": dict(n_subjects=s.n_downstream, diseases=diseases),
             "retest": dict(n_subjects=s.n_downstream, diseases=diseases, noise_seed=1)}
    for name, spec in specs.items():
        if not (paths[name] / "participants.tsv").exists():
            generate_cohort(paths[name], **spec, **common)
    return paths


class Evaluator:
    """Evaluates checkpoints on the study's cohorts; cohorts, labels and truth are read once per process."""

    def __init__(self, paths: dict[str, Path], s: StudySettings, device: str = "cpu"):
        from anatlearn.data import open_dataset
        from anatlearn.evaluate import load_tasks, read_participants, truth_targets

        self.s, self.device = s, device
        self.datasets = {c: open_dataset(p, require_age=False) for c, p in paths.items()}
        self.p_healthy = read_participants(paths["healthy"])
        self.p_down = read_participants(paths["downstream"])
        self.tasks = load_tasks("synthetic")
        self.truth = {c: truth_targets(paths[c]) for c in ("downstream", "validation")}

    def features(self, weights) -> dict:
        from anatlearn.embed import AnatEncoder

        enc = AnatEncoder(weights, batch_size=16, device=self.device)
        return {c: enc.transform(ds) for c, ds in self.datasets.items()}

    def evaluate(self, weights) -> dict:
        """``{"metrics": {name: value}, "folds": {"<task> <metric>": {"scores", "n_train", "n_test"}},
        "timing_s"}`` for the checkpoint ``weights``."""
        from anatlearn.evaluate import (anatomy_recovery, effective_rank, evaluate_openbhb, evaluate_tasks, icc,
                                        icc_summary)

        t0 = time.perf_counter()
        feats = self.features(weights)
        t_embed = time.perf_counter() - t0
        metrics: dict[str, float] = {}
        obhb = evaluate_openbhb({"m": feats["healthy"]}, self.p_healthy, seed=0, n_boot=self.s.n_boot).table
        names = {"mae_internal": "brain_age_mae_internal", "mae_external": "brain_age_mae_external",
                 "balanced_accuracy_internal": "site_bacc"}
        for _, row in obhb.iterrows():
            if row["metric"] in names:
                metrics[names[row["metric"]]] = float(row["mean"])
        res = evaluate_tasks({"m": feats["downstream"]}, self.p_down, self.tasks, n_splits=self.s.n_splits,
                             n_repeats=self.s.n_repeats, seed=0)
        for _, row in res.table.iterrows():
            metrics[f"{row['task']} {row['metric']}"] = float(row["mean"])
        folds = {}
        for (task, metric), g in res.folds.groupby(["task", "metric"], sort=False):
            g = g.sort_values(["repeat", "fold"])
            folds[f"{task} {metric}"] = {"scores": [float(v) for v in g["score"]],
                                         "n_train": float(g["n_train"].mean()), "n_test": float(g["n_test"].mean())}
        metrics["icc_median"] = float(icc_summary(icc(feats["downstream"], feats["retest"]))["median"])
        for cohort, prefix in (("downstream", "anat_r2_"), ("validation", "val_anat_r2_")):
            for target, table in self.truth[cohort].items():
                metrics[prefix + target] = anatomy_recovery(feats[cohort], table, n_splits=5, seed=0)["r2_mean"]
        metrics["rankme"] = float(effective_rank(feats["downstream"].to_numpy()))
        bad = [k for k, v in metrics.items() if not np.isfinite(v)]
        metrics = {k: (None if k in bad else v) for k, v in metrics.items()}
        return {"metrics": metrics, "folds": folds,
                "timing_s": {"embed": round(t_embed, 2), "total": round(time.perf_counter() - t0, 2)}}
