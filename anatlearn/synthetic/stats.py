"""Realism checks of a generated synthetic cohort, from its files (docs/synthetic.md quotes their output).

    python -m anatlearn.synthetic.stats HEALTHY_COHORT [DOWNSTREAM_COHORT]

Healthy structure, on the noise-free truth (truth/anatomy.npy), log scale, age (degree-4 polynomial) and sex
regressed out: share of variance in the top 3 principal components, number of components for 90 %, the
inter-regional correlations of CT (median, quartiles), the region-specific share (variance not explained by the
true latent factors, median over regions) and the share of variance explained by age. Downstream: the realised
Cohen's d of each disease (pattern-weighted mean log-CT difference patients - controls over the controls' SD,
at the epicentre region and along the pattern), and the descriptor ceiling of diagnosis: balanced accuracy of a
5-fold cross-validated logistic regression on the measured log descriptors (CT, GMV, SA) - a realism check of
task difficulty, not a method comparison.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

CHANNELS = {"CT": 0, "GMV": 1, "SA": 2}


def _confounds(age: np.ndarray, male: np.ndarray) -> np.ndarray:
    z = (age - age.mean()) / age.std()
    return np.column_stack([np.ones_like(z), z, z**2, z**3, z**4, male])


def _residual(y: np.ndarray, design: np.ndarray) -> np.ndarray:
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    return y - design @ coef


def residual_structure(log_x: np.ndarray, age: np.ndarray, male: np.ndarray, latents: np.ndarray | None = None) -> dict:
    """Covariance structure of (n, K) log descriptors after age and sex (see module docstring)."""
    conf = _confounds(age, male)
    res = _residual(log_x, conf)
    val = np.linalg.eigvalsh(np.cov(res, rowvar=False))[::-1]
    share = np.cumsum(val) / val.sum()
    corr = np.corrcoef(res, rowvar=False)[np.triu_indices(log_x.shape[1], 1)]
    total = log_x.var(0)
    out = {"top3_pc_share": float(share[2]), "top1_pc_share": float(share[0]),
           "pcs_for_90pct": int(np.searchsorted(share, 0.9) + 1),
           "corr_median": float(np.median(corr)), "corr_q25": float(np.quantile(corr, 0.25)),
           "corr_q75": float(np.quantile(corr, 0.75)),
           "age_sex_share_median": float(np.median(1 - res.var(0) / total))}
    if latents is not None:
        spec = _residual(log_x, np.column_stack([conf, latents]))
        out["specific_share_median"] = float(np.median(spec.var(0) / res.var(0)))
    return out


def healthy_report(root: Path) -> dict:
    root = Path(root)
    anatomy = np.load(root / "truth" / "anatomy.npy").astype(np.float64)
    part = pd.read_csv(root / "participants.tsv", sep="\t", dtype={"participant_id": str})
    lat = pd.read_csv(root / "truth" / "latents.tsv", sep="\t", dtype={"participant_id": str})
    age, male = part["age"].to_numpy(float), (part["sex"] == "M").to_numpy(float)
    out = {}
    for name, col in CHANNELS.items():
        prefix = {"CT": "u", "SA": "v"}.get(name)
        latents = lat[[c for c in lat if prefix and c[0] == prefix and c[1:].isdigit()]].to_numpy() if prefix else None
        out[name] = residual_structure(np.log(anatomy[..., col]), age, male, latents)
    return out


def realised_effects(root: Path) -> dict:
    """Per disease: Cohen's d (controls' SD, age and sex regressed within the disease's cohort) of true log CT."""
    root = Path(root)
    anatomy = np.log(np.load(root / "truth" / "anatomy.npy").astype(np.float64)[..., 0])
    part = pd.read_csv(root / "participants.tsv", sep="\t", dtype={"participant_id": str})
    info = json.loads((root / "truth" / "world.json").read_text())
    names = info["region_names"]
    out = {}
    for disease in sorted(set(part["cohort"])):
        sel = (part["cohort"] == disease).to_numpy()
        patient = (part.loc[sel, "diagnosis"] == disease).to_numpy(float)
        age, male = part.loc[sel, "age"].to_numpy(float), (part.loc[sel, "sex"] == "M").to_numpy(float)
        design = np.column_stack([_confounds(age, male), patient])
        x = anatomy[sel]
        coef, *_ = np.linalg.lstsq(design, x, rcond=None)
        resid = x - design @ coef
        sd = resid[patient == 0].std(0, ddof=1)
        d = -coef[-1] / sd
        spec = info["diseases"][disease]
        idx = [names.index(r) for r in spec["regions"]]
        w = np.zeros(len(names))
        w[idx] = spec["weights"]
        unit = w / np.linalg.norm(w)
        proj = resid[patient == 0] @ unit
        out[disease] = {"d_epicentre": float(d[idx[int(np.argmax(spec['weights']))]]),
                        "d_along_pattern": float(-(coef[-1] @ unit) / proj.std(ddof=1)),
                        "n_patients": int(patient.sum()), "n_controls": int((1 - patient).sum())}
    return out


def descriptor_ceiling(root: Path, seed: int = 0) -> dict:
    """Balanced accuracy of patients vs controls from measured log CT, GMV, SA (5-fold CV logistic regression)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.metrics import balanced_accuracy_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from anatlearn.data import open_dataset

    ds = open_dataset(root)
    x = np.log(ds.descriptors(("CT", "GMV", "SA")).reshape(len(ds.participants), -1))
    part = ds.participants
    out = {}
    for disease in sorted(set(part["cohort"])):
        sel = (part["cohort"] == disease).to_numpy()
        y = (part.loc[sel, "diagnosis"] == disease).to_numpy(int)
        model = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000))
        pred = cross_val_predict(model, x[sel], y, cv=StratifiedKFold(5, shuffle=True, random_state=seed))
        out[disease] = float(balanced_accuracy_score(y, pred))
    return out


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    report = {"healthy": healthy_report(Path(argv[0]))}
    if len(argv) > 1:
        report["realised_effects"] = realised_effects(Path(argv[1]))
        report["descriptor_ceiling_bacc"] = descriptor_ceiling(Path(argv[1]))
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
