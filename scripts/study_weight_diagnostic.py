"""What the contrastive targets ask for: a diagnostic of the study's weightings, outside the protocol.

Reads only the healthy pretraining cohort of a study (train split: descriptors, ages, noise-free truth);
no model and no result enters it. For each weighting the study trains with, it reports

- the mean and sd of the off-diagonal weights W_ab over the training subjects;
- in batches of the study's size with two views per subject (as the trainer tiles W), the target
  distribution of the weighted InfoNCE for each anchor a, W~_ab = W_ab / sum_{c != a} W_ac
  (losses.weighted_infonce): the share of it on the anchor's own other view, and its perplexity
  exp(H(W~_a)), the effective number of positives (1: SimCLR; N - 1 = 31: every other sample alike);
- Spearman's rho over subject pairs between W and the pair's *true* anatomical similarity (the same
  cosine, on the noise-free truth: log CT, GMV, SA per region, z-scored on the training subjects), and
  between W and -|age gap|.

A target spread evenly over the batch asks every sample to be as close to every other: it teaches the
encoder little about which subjects differ, whatever W's ranking. ``python
scripts/study_weight_diagnostic.py study-out`` writes ``study-out/results/weight_diagnostic.tsv``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy.stats import spearmanr

from anatlearn.anatomy import anatomical_similarity
from anatlearn.data import open_dataset
from anatlearn.data.descriptors import DescriptorNormaliser
from anatlearn.evaluate.anatomy_recovery import truth_targets
from anatlearn.kernels import age_kernel
from anatlearn.losses import anatomical_weights, matched_anat_bandwidth

SIGMA = 2.0  # the study's age kernel: rbf, sigma 2 years


def target_stats(w: np.ndarray, batch: int, n_batches: int, rng: np.random.Generator) -> tuple[float, float]:
    """Mean own-view share and perplexity of the weighted-InfoNCE targets, two views per subject."""
    own, perp = [], []
    for _ in range(n_batches):
        idx = rng.choice(len(w), batch, replace=False)
        wb = np.tile(w[np.ix_(idx, idx)], (2, 2))
        np.fill_diagonal(wb, 0.0)
        t = wb / wb.sum(axis=1, keepdims=True)
        own.append(np.mean([t[a, (a + batch) % (2 * batch)] for a in range(2 * batch)]))
        with np.errstate(divide="ignore", invalid="ignore"):
            h = -np.nansum(np.where(t > 0, t * np.log(t), 0.0), axis=1)
        perp.append(np.exp(h).mean())
    return float(np.mean(own)), float(np.mean(perp))


def diagnose(study: Path, n_batches: int = 200, seed: int = 0) -> pd.DataFrame:
    settings = json.loads((study / "study.json").read_text())["settings"]
    batch = int(settings["batch_size"])
    root = study / "data" / "healthy"
    ds = open_dataset(root, split="train")
    ids = ds.participants["participant_id"].tolist()
    ages = ds.participants["age"].to_numpy(float)
    raw = ds.descriptors(("CT", "GMV", "SA"), "desikan")
    truth = truth_targets(root, ids)
    true = np.stack([truth[c].to_numpy() for c in ("CT", "GMV", "SA")], axis=2)  # (n, K, 3), log scale
    true_sim = anatomical_similarity(torch.tensor(DescriptorNormaliser("zscore").fit(true).transform(true)),
                                     "global", None, None, None).numpy()
    off = ~np.eye(len(ids), dtype=bool)
    gap = -np.abs(ages[:, None] - ages[None, :])
    weightings = {"age kernel (rbf, sigma 2)": age_kernel(torch.tensor(ages), "rbf", SIGMA).numpy(),
                  "SimCLR (identity)": np.eye(len(ids))}
    for norm in ("zscore", "minmax"):
        x = torch.tensor(DescriptorNormaliser(norm).fit(raw).transform(raw))
        for mode in ("global", "local"):
            maps = ("shift", "clamp", "kernel") if norm == "zscore" else ("shift",)
            for wmap in maps:
                h = matched_anat_bandwidth(x, ages, mode, "rbf", SIGMA) if wmap == "kernel" else None
                w = anatomical_weights(x, mode, None, None, wmap, h).numpy()
                label = f"anat {mode}, {norm}, {wmap}" + (f" (h {h:.3f})" if h else "")
                weightings[label] = w
    rows = []
    for label, w in weightings.items():
        own, perp = target_stats(w, batch, n_batches, np.random.default_rng(seed))
        rows.append({"weighting": label, "mean_W_offdiag": w[off].mean(), "sd_W_offdiag": w[off].std(),
                     "own_view_share": own, "perplexity": perp, "n_targets": 2 * batch - 1,
                     "rho_true_anatomy": spearmanr(w[off], true_sim[off]).statistic if w[off].std() > 0 else np.nan,
                     "rho_minus_age_gap": spearmanr(w[off], gap[off]).statistic if w[off].std() > 0 else np.nan})
    return pd.DataFrame(rows)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("study", type=Path)
    ap.add_argument("--batches", type=int, default=200)
    a = ap.parse_args(argv)
    df = diagnose(a.study, a.batches)
    out = a.study / "results" / "weight_diagnostic.tsv"
    out.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(out, sep="\t", index=False, float_format="%.4g")
    print(df.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"written: {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
