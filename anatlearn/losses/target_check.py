"""What a contrastive weighting asks the encoder for, before any training (``anatlearn weights``).

The weighted InfoNCE (:func:`anatlearn.losses.infonce.weighted_infonce`) trains each anchor a towards the
target distribution W~_ab = W_ab / sum_{c != a} W_ac over the other N - 1 = 2B - 1 samples of a batch of
B subjects with two views (W tiled 2 x 2, the anchor's own other view weighted W_aa = 1). Two numbers say how
much that target can teach:

- the **own-view share** W~_{a,a'}: 1 for SimCLR; small when the mass is spread over other subjects;
- the **perplexity** exp(H(W~_a)), the effective number of positives: 1 for SimCLR, 2B - 1 when every
  sample is alike. A cross-entropy towards a uniform target is minimised by making every pair equally
  similar, which erases which subjects are closer to which: a near-uniform target teaches little,
  however well W ranks the pairs.

Beside them, Spearman's rho between W and -|age gap| over all subject pairs and, on a synthetic cohort
(``truth/``), between W and the pair's true anatomical similarity (the same cosine on the noise-free log
CT, GMV and SA, z-scored). What these numbers mean for the study's cohort: docs/losses.md.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy.stats import spearmanr

from anatlearn.errors import ConfigError, DataError
from anatlearn.losses.anatomy import anatomical_similarity, anatomical_weights, matched_anat_bandwidth
from anatlearn.losses.kernels import age_kernel

NEAR_UNIFORM = 0.8  # perplexity above this share of the 2B - 1 targets: flagged as near-uniform
DESCRIPTORS = ("CT", "GMV", "SA")


def target_stats(w: np.ndarray, batch: int, n_batches: int = 200, seed: int = 0) -> tuple[float, float]:
    """Mean own-view share and mean perplexity of the weighted-InfoNCE targets of ``w`` (n x n subject
    weights, diagonal 1) over ``n_batches`` random batches of ``batch`` subjects with two views each."""
    w = np.asarray(w, dtype=np.float64)
    if w.ndim != 2 or w.shape[0] != w.shape[1] or w.shape[0] < batch or batch < 2:
        raise DataError(f"need a square weight matrix with at least batch = {batch} >= 2 subjects, got {w.shape}")
    rng = np.random.default_rng(seed)
    n = 2 * batch
    other_view = (np.arange(n) + batch) % n
    own, perp = [], []
    for _ in range(n_batches):
        idx = rng.choice(len(w), batch, replace=False)
        wb = np.tile(w[np.ix_(idx, idx)], (2, 2))
        np.fill_diagonal(wb, 0.0)
        t = wb / wb.sum(axis=1, keepdims=True)
        own.append(t[np.arange(n), other_view].mean())
        logs = np.log(np.where(t > 0, t, 1.0))
        perp.append(np.exp(-(t * logs).sum(axis=1)).mean())
    return float(np.mean(own)), float(np.mean(perp))


def _rho(w: np.ndarray, ref: np.ndarray | None, off: np.ndarray) -> float:
    if ref is None or w[off].std() == 0:
        return float("nan")
    return float(spearmanr(w[off], ref[off]).statistic)


def weightings(ages: np.ndarray, raw: np.ndarray, sigma: float = 2.0, kernel: str = "rbf") -> dict[str, np.ndarray]:
    """The weight matrices anatlearn can train with on these subjects: SimCLR, the age kernel, and the
    anatomical term for each mode (global, local), map (shift, clamp, kernel with the study's bandwidth
    rule) and normalisation (zscore fitted on these subjects; minmax with the shift map)."""
    from anatlearn.data.descriptors import DescriptorNormaliser

    out = {"simclr (identity)": np.eye(len(ages)),
           f"age kernel ({kernel}, sigma {sigma:g})": age_kernel(torch.tensor(ages), kernel, sigma).numpy()}
    for norm, maps in (("zscore", ("shift", "clamp", "kernel")), ("minmax", ("shift",))):
        x = torch.tensor(DescriptorNormaliser(norm).fit(raw).transform(raw))
        for mode in ("global", "local"):
            for wmap in maps:
                h = matched_anat_bandwidth(x.numpy(), ages, mode, kernel, sigma) if wmap == "kernel" else None
                label = f"anat {mode}, {norm}, {wmap}" + (f" (h {h:.3f})" if h else "")
                out[label] = anatomical_weights(x, mode, None, None, wmap, h).numpy().astype(np.float64)
    return out


def check_weights(data, split: str | None = "train", batch_size: int = 16, sigma: float = 2.0,
                  kernel: str = "rbf", atlas: str = "desikan", n_batches: int = 200, seed: int = 0) -> pd.DataFrame:
    """One row per weighting (:func:`weightings`) of the subjects in ``data`` (``split``): mean and sd of
    the off-diagonal weights, own-view share, perplexity, the number of targets 2B - 1, whether the target
    is near-uniform, and the rank correlations with -|age gap| and (synthetic cohorts) true anatomy."""
    from anatlearn.data import open_training_split

    if batch_size < 2:
        raise ConfigError(f"batch_size must be at least 2, got {batch_size}")
    ds, used = open_training_split(data, split)  # as pretraining: a table without splits is read whole
    ages = ds.participants["age"].to_numpy(float)
    if len(ages) < batch_size:
        where = f"in split {used!r}" if used else "in all"
        raise DataError(f"{data}: {len(ages)} subjects {where}, fewer than batch_size {batch_size}")
    raw = ds.descriptors(DESCRIPTORS, atlas)
    true_sim = _true_similarity(Path(data), ds.participants["participant_id"].tolist())
    off = ~np.eye(len(ages), dtype=bool)
    gap = -np.abs(ages[:, None] - ages[None, :])
    rows = []
    for label, w in weightings(ages, raw, sigma, kernel).items():
        own, perp = target_stats(w, batch_size, n_batches, seed)
        rows.append({"weighting": label, "mean_W_offdiag": float(w[off].mean()), "sd_W_offdiag": float(w[off].std()),
                     "own_view_share": own, "perplexity": perp, "n_targets": 2 * batch_size - 1,
                     "near_uniform": perp > NEAR_UNIFORM * (2 * batch_size - 1),
                     "rho_minus_age_gap": _rho(w, gap, off), "rho_true_anatomy": _rho(w, true_sim, off)})
    return pd.DataFrame(rows)


def _true_similarity(root: Path, ids) -> np.ndarray | None:
    """Global anatomical cosine on the noise-free truth of a synthetic cohort (None without ``truth/``)."""
    if not (root / "truth" / "anatomy.npy").is_file():
        return None
    from anatlearn.data.descriptors import DescriptorNormaliser
    from anatlearn.evaluate.anatomy_recovery import truth_targets

    truth = truth_targets(root, ids)
    true = np.stack([truth[c].to_numpy() for c in DESCRIPTORS], axis=2)  # (n, K, 3), log scale
    z = torch.tensor(DescriptorNormaliser("zscore").fit(true).transform(true))
    return anatomical_similarity(z, "global", None, None, None).numpy().astype(np.float64)


__all__ = ["target_stats", "weightings", "check_weights", "NEAR_UNIFORM"]
