"""Validation of the clinical tools on a synthetic cohort, where the truth is known (numbers in docs/clinical.md).

    python -m anatlearn.clinical.validation --healthy H --downstream D --weights CKPT --out OUT

Protocol, fixed before running (docs/clinical.md): models = the given pretrained checkpoint, a random-init
encoder of the same architecture (torch seed 0), and a linear reference (4x average-pooled voxels, as the
demo's "pooled voxels" baseline).
1. Brain age: BrainAgeModel fitted on the healthy ``train`` split; r(gap, age) before / after correction on
   the reference (CV predictions) and on ``internal_test``; MAE on ``internal_test``.
2. ComBat fitted on the healthy ``train`` split (covariates age + sex, and sex only: with age preserved the
   test subjects' own age enters their harmonised features), applied to ``internal_test``; OpenBHB-style
   probes trained on ``train``: site balanced accuracy and brain-age MAE on ``internal_test``, raw vs
   harmonised. Diagnosis: a harmoniser (age + sex) fitted on the whole healthy cohort (the downstream cohort
   also has the site held out of the healthy train split), applied to the downstream cohort;
   5 x 5-fold CV balanced accuracy of AD-like and SCZ-like vs controls, raw vs harmonised, corrected paired t.
3. Region maps: integrated gradients (16 steps, cohort-mean baseline) of the AD-like and SCZ-like probes for
   3 seeded subsets of 12 subjects; AUC of region importance vs the task's true regions (world.json).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from anatlearn.clinical.atlas import world_atlas
from anatlearn.clinical.brain_age import BrainAgeModel
from anatlearn.clinical.combat import ComBatHarmonizer
from anatlearn.clinical.explain import explain_regions
from anatlearn.data import open_dataset
from anatlearn.embed import AnatEncoder
from anatlearn.evaluate import evaluate_tasks, load_tasks, make_feature_table, read_participants
from anatlearn.evaluate.probes import make_probe
from anatlearn.io import atomic_write_text
from anatlearn.provenance import provenance

TASKS = ("AD-like-vs-CN", "SCZ-like-vs-CN")
SUBSET_SEEDS = (0, 1, 2)


def _pooled_encoder(factor: int = 4) -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.AvgPool3d(factor, ceil_mode=True), torch.nn.Flatten())


def _embed(model, dataset) -> pd.DataFrame:
    if isinstance(model, torch.nn.Sequential):
        rows = []
        with torch.inference_mode():
            for i in range(len(dataset)):
                rows.append(model(torch.from_numpy(np.asarray(dataset.volume(i), np.float32).reshape(1, 1, *np.shape(dataset.volume(i))[-3:])))[0].numpy())
        return make_feature_table(np.stack(rows), dataset.participants["participant_id"].astype(str))
    return AnatEncoder(model, batch_size=16).transform(dataset)


def _probe_scores(X_tr, y_tr, X_te, y_te, kind):
    from sklearn.metrics import balanced_accuracy_score

    probe = make_probe(kind, inner_cv=5 if kind == "classification" else None).fit(X_tr, y_tr)
    pred = probe.predict(X_te)
    return balanced_accuracy_score(y_te, pred) if kind == "classification" else float(np.mean(np.abs(pred - y_te)))


def brain_age_and_harmonisation(h_feats, p_h, d_feats, p_d, seed=0) -> dict:
    split = p_h.loc[h_feats.index, "split"]
    tr, te = h_feats.index[split == "train"], h_feats.index[split == "internal_test"]
    age = p_h["age"].astype(float)
    model = BrainAgeModel(seed=seed).fit(h_feats.loc[tr], age.loc[tr].to_numpy())
    test = model.gaps(h_feats.loc[te], age.loc[te].to_numpy())
    out = {"brain_age": {**model.summary(), "mae_internal_test": float(test["gap"].abs().mean()),
                         "r_gap_age_internal_test": float(np.corrcoef(test["gap"], test["age"])[0, 1]),
                         "r_corrected_gap_age_internal_test": float(np.corrcoef(test["corrected_gap"], test["age"])[0, 1])}}
    sites = p_h["site"].astype(str)
    rows = []
    for label, covs in (("raw", None), ("ComBat (age, sex)", ["age", "sex"]), ("ComBat (sex)", ["sex"])):
        Xtr, Xte = h_feats.loc[tr], h_feats.loc[te]
        if covs is not None:
            hm = ComBatHarmonizer(covs).fit(Xtr, p_h.loc[tr])
            Xtr, Xte = hm.transform(Xtr, p_h.loc[tr]), hm.transform(Xte, p_h.loc[te])
        rows.append({"features": label,
                     "site_bacc_internal": _probe_scores(Xtr.to_numpy(), sites.loc[tr].to_numpy(), Xte.to_numpy(),
                                                         sites.loc[te].to_numpy(), "classification"),
                     "age_mae_internal": _probe_scores(Xtr.to_numpy(), age.loc[tr].to_numpy(), Xte.to_numpy(),
                                                       age.loc[te].to_numpy(), "regression")})
    out["harmonisation_openbhb"] = rows
    out["site_chance"] = 1.0 / sites.loc[tr].nunique()
    # the downstream cohort spans every site, also the healthy cohort's held-out one: fit on all healthy subjects
    hm = ComBatHarmonizer(["age", "sex"]).fit(h_feats, p_h.loc[h_feats.index])
    d_h = hm.transform(d_feats, p_d.loc[d_feats.index])
    res = evaluate_tasks({"raw": d_feats, "ComBat": d_h}, p_d, load_tasks("synthetic", select=list(TASKS)), seed=seed)
    bacc = res.table[res.table["metric"] == "balanced_accuracy"]
    out["harmonisation_diagnosis"] = bacc[["method", "task", "mean", "ci_low", "ci_high"]].to_dict("records")
    paired = res.paired[res.paired["metric"] == "balanced_accuracy"]
    out["harmonisation_diagnosis_paired"] = paired[["task", "method_a", "method_b", "mean_diff", "p_corrected_t"]].to_dict("records")
    return out


def region_maps(model, d_dir, d_feats, p_d, atlas, n_subjects=12, n_steps=16) -> dict:
    dataset = open_dataset(d_dir)
    ids = dataset.participants["participant_id"].astype(str).tolist()
    out = {}
    for name in TASKS:
        (task,) = load_tasks("synthetic", select=[name])
        y = task.select(p_d)
        subset = dataset.subset([ids.index(i) for i in y.index])
        aucs, fraction = [], []
        for s in SUBSET_SEEDS:
            r = explain_regions(model, subset, y.to_numpy(), features=d_feats.loc[y.index].to_numpy(), atlas=atlas,
                                ids=list(y.index), explain=n_subjects, n_steps=n_steps, seed=s)
            aucs.append(r.truth_auc(task.positive[0]))
            fraction.append(r.fraction_in_atlas())
        out[name] = {"auc_per_subset": aucs, "auc_mean": float(np.mean(aucs)), "auc_sd": float(np.std(aucs, ddof=1)),
                     "fraction_in_atlas_mean": float(np.mean(fraction))}
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--healthy", required=True)
    ap.add_argument("--downstream", required=True)
    ap.add_argument("--weights", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip-maps", action="store_true",
                    help="Redo parts 1-2 only; keep the region maps of an existing OUT/validation.json.")
    args = ap.parse_args(argv)
    from anatlearn.models import build_model, load_pretrained

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    pretrained = load_pretrained(args.weights)
    torch.manual_seed(0)
    random_init = build_model(pretrained.model_config).eval()
    p_h, p_d = read_participants(args.healthy), read_participants(args.downstream)
    atlas = world_atlas(args.downstream)
    results = {"provenance": provenance(args.seed, vars(args))}
    previous = json.loads((out / "validation.json").read_text()) if args.skip_maps else {}
    for label, model in (("pretrained", pretrained), ("random-init", random_init), ("pooled voxels", _pooled_encoder())):
        h_feats, d_feats = _embed(model, open_dataset(args.healthy)), _embed(model, open_dataset(args.downstream))
        results[label] = brain_age_and_harmonisation(h_feats, p_h, d_feats, p_d, args.seed)
        results[label]["region_maps"] = (previous[label]["region_maps"] if args.skip_maps
                                         else region_maps(model, args.downstream, d_feats, p_d, atlas))
        atomic_write_text(out / "validation.json", json.dumps(results, indent=1, default=str))
        print(f"[validation] {label} done", flush=True)


if __name__ == "__main__":
    main()
