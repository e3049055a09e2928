"""Region maps of a linear probe on frozen features (``anatlearn explain``): which regions move the probe.

1. Fit the probe (:func:`anatlearn.evaluate.probes.make_probe`) on the frozen features of the cohort.
2. Integrated Gradients through encoder + probe for (a subset of) subjects, against the cohort's mean image
   (:mod:`anatlearn.clinical.attribution`).
3. Per subject s and region k, the region's share of the score difference R_sk = sum_{i in k} IG_si.
   Region importance I_k = mean_s |R_sk| (how much region k moves the score, either way); also reported:
   the signed mean (direction), the share I_k / sum_k I_k, the density I_k / |k| (per voxel).
4. Outputs: a region table (TSV), NIfTI maps (region importance painted on the atlas; voxel-wise mean |IG|),
   a nilearn figure, and ``explain.json``. On the synthetic cohort, where the disease regions are known,
   the AUC of I_k separating true disease regions from the others measures how right the map is.
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from threadpoolctl import threadpool_limits

from anatlearn.clinical.atlas import Atlas, patch_grid
from anatlearn.clinical.attribution import LinearProbeHead, ProbedEncoder, integrated_gradients
from anatlearn.errors import ConfigError, DataError
from anatlearn.io import atomic_path, atomic_write_text

IMPORTANCE = "mean |region sum of IG|"


class _Volumes:
    """Uniform access to volumes: an (n, X, Y, Z) / (n, 1, X, Y, Z) array, a list of arrays, or a dataset
    with ``volume(i)`` (read one at a time, so large cohorts never sit in memory)."""

    def __init__(self, source):
        self.source = source
        self.n = len(source)

    def __len__(self):
        return self.n

    def __getitem__(self, i: int) -> np.ndarray:
        vol = self.source.volume(i) if hasattr(self.source, "volume") else self.source[i]
        vol = np.asarray(vol, dtype=np.float32)
        return vol[0] if vol.ndim == 4 and vol.shape[0] == 1 else vol

    def mean(self, indices) -> np.ndarray:
        total = None
        for i in indices:
            v = self[i].astype(np.float64)
            total = v if total is None else total + v
        return (total / len(indices)).astype(np.float32)


@dataclass
class RegionExplanation:
    """Attributions of one probe aggregated over an atlas (see module docstring)."""
    atlas: Atlas
    region_sums: np.ndarray            # (m, K) per explained subject
    voxel_map: np.ndarray              # (X, Y, Z) mean |IG| over explained subjects
    mean_image: np.ndarray             # (X, Y, Z) the baseline (cohort mean image)
    ids: list[str]
    convergence_delta: np.ndarray      # (m,) |sum IG - (s(x) - s(x'))|
    score_difference: np.ndarray       # (m,) s(x) - s(x')
    info: dict = field(default_factory=dict)

    def table(self) -> pd.DataFrame:
        """One row per region, most important first: importance, signed mean, share, density, voxels."""
        imp = np.abs(self.region_sums).mean(axis=0)
        n_vox = self.atlas.voxel_counts()
        total = imp.sum()
        df = pd.DataFrame({"region": self.atlas.names, "n_voxels": n_vox, "importance": imp,
                           "signed_mean": self.region_sums.mean(axis=0),
                           "share": imp / total if total > 0 else np.zeros_like(imp),
                           "density": np.divide(imp, n_vox, out=np.zeros_like(imp), where=n_vox > 0)})
        df = df.sort_values("importance", ascending=False, kind="stable").reset_index(drop=True)
        df.insert(0, "rank", np.arange(1, len(df) + 1))
        return df

    def fraction_in_atlas(self) -> float:
        """Share of the summed |IG| (voxel map) that falls inside the atlas regions."""
        total = float(self.voxel_map.sum())
        return float(self.voxel_map[self.atlas.labels >= 0].sum() / total) if total > 0 else float("nan")

    def truth_auc(self, disease: str) -> float | None:
        """ROC AUC of region importance separating the disease's true regions from the others (synthetic
        cohort only; None when the atlas carries no truth for ``disease``)."""
        from sklearn.metrics import roc_auc_score

        true = set(self.atlas.truth.get(disease, ()))
        if not true:
            return None
        is_true = np.array([n in true for n in self.atlas.names])
        if is_true.all() or not is_true.any():
            return None
        return float(roc_auc_score(is_true, np.abs(self.region_sums).mean(axis=0)))

    def summary(self, top: int = 10) -> dict:
        tab = self.table()
        out = {**self.info, "atlas": self.atlas.source, "n_regions": len(self.atlas.names),
               "n_explained": len(self.ids), "importance": IMPORTANCE,
               "fraction_of_attribution_in_atlas": self.fraction_in_atlas(),
               "median_relative_convergence_delta": float(np.median(
                   self.convergence_delta / np.maximum(np.abs(self.score_difference), 1e-12))),
               "top_regions": tab.head(top)[["region", "importance", "share", "signed_mean"]].to_dict("records")}
        aucs = {d: self.truth_auc(d) for d in self.atlas.truth}
        out["truth_auc"] = {d: a for d, a in aucs.items() if a is not None}
        return out

    def write(self, out: str | os.PathLike, title: str = "region importance") -> dict:
        """Write regions.tsv, region_importance.nii.gz, voxel_attribution.nii.gz, regions.png and
        explain.json (written last: its presence means the directory is complete)."""
        import nibabel as nib

        from anatlearn.clinical.figures import region_map_figure

        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        tab = self.table()
        atomic_write_text(out / "regions.tsv", tab.to_csv(sep="\t", index=False, float_format="%.6g"))
        imp = np.abs(self.region_sums).mean(axis=0)
        region_img = nib.Nifti1Image(self.atlas.paint(imp), self.atlas.affine)
        region_img.header["descrip"] = b"anatlearn region importance"
        for name, img in (("region_importance.nii.gz", region_img),
                          ("voxel_attribution.nii.gz", nib.Nifti1Image(self.voxel_map.astype(np.float32),
                                                                       self.atlas.affine))):
            with atomic_path(out / name) as tmp:
                nib.save(img, str(tmp.with_suffix(".nii.gz")))
                tmp.with_suffix(".nii.gz").replace(tmp)
        bg = nib.Nifti1Image(self.mean_image.astype(np.float32), self.atlas.affine)
        with atomic_path(out / "regions.png") as tmp:
            tmp.write_bytes(region_map_figure(region_img, bg, title))
        summary = self.summary()
        atomic_write_text(out / "explain.json", json.dumps(summary, indent=1, default=str))
        return summary


def _load_model(model):
    if isinstance(model, torch.nn.Module):
        return model
    from anatlearn.models import load_pretrained

    return load_pretrained(model)


def _embed(net, vols: _Volumes, batch_size: int) -> np.ndarray:
    """Frozen features of every volume: anatlearn models through AnatEncoder (its fast CPU path), any other
    module by plain batched inference."""
    from anatlearn.models import ContrastiveModel

    if isinstance(net, ContrastiveModel):
        from anatlearn.embed import AnatEncoder

        return AnatEncoder(net, batch_size=batch_size, channels_last=False).transform(
            [vols[i] for i in range(len(vols))]).to_numpy()
    rows = []
    with torch.inference_mode():
        for start in range(0, len(vols), batch_size):
            batch = torch.from_numpy(np.stack([vols[i] for i in range(start, min(start + batch_size, len(vols)))]))
            rows.append(net(batch[:, None]).float().numpy())
    return np.concatenate(rows)


def fit_probe(features: np.ndarray, y: np.ndarray, kind: str, seed: int = 0):
    """The evaluation's probe fitted on every given subject (inner CV picks C / alpha)."""
    from anatlearn.evaluate.probes import _inner_folds, make_probe

    inner = _inner_folds(y, kind) if kind == "classification" else None
    probe = make_probe(kind, inner_cv=inner, seed=seed)
    with threadpool_limits(1), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return probe.fit(features, y)


def explain_regions(model, volumes, y=None, *, kind: str = "classification", probe=None, features=None,
                    atlas: Atlas | None = None, ids=None, explain: int | list[int] = 48, n_steps: int = 32,
                    batch_size: int = 8, seed: int = 0, grid: int = 4, progress=None,
                    device: str = "cpu") -> RegionExplanation:
    """Region importance of a probe through a frozen encoder.

    ``model``: an encoder (``nn.Module`` with ``encode`` or mapping (B, 1, X, Y, Z) -> (B, F)) or a checkpoint
    path. ``volumes``: (n, X, Y, Z) array, list of arrays or dataset. ``probe``: a fitted scikit-learn probe;
    if None it is fitted on ``features`` (embedded with the encoder when None) and labels ``y`` of ``kind``.
    ``atlas``: an :class:`~anatlearn.clinical.atlas.Atlas` (default: a ``grid``^3 patch grid). ``explain``:
    how many subjects to attribute (a seeded random subset) or their indices. ``device``: where the
    attributions run (e.g. ``cuda``; the probe is fitted on CPU).
    """
    vols = _Volumes(volumes)
    if len(vols) == 0:
        raise DataError("no volume to explain")
    net = _load_model(model).eval()
    ids = [str(i) for i in (ids if ids is not None else range(len(vols)))]
    shape = vols[0].shape
    atlas = atlas or patch_grid(shape, grid)
    atlas.check_shape(shape)
    if probe is None:
        if y is None:
            raise ConfigError("give a fitted probe or the labels y to fit one")
        y = np.asarray(y)
        if len(y) != len(vols):
            raise DataError(f"{len(y)} labels for {len(vols)} volumes")
        if features is None:
            features = _embed(net, vols, batch_size)
        probe = fit_probe(np.asarray(features, dtype=np.float64), y, kind, seed)
    if isinstance(explain, int):
        order = np.random.default_rng(seed).permutation(len(vols))
        chosen = sorted(order[:max(1, min(explain, len(vols)))].tolist())
    else:
        chosen = [int(i) for i in explain]
    baseline = vols.mean(range(len(vols)))
    scorer = ProbedEncoder(net, LinearProbeHead(probe)).float()
    batch = [vols[i] for i in chosen]
    attr, deltas = integrated_gradients(scorer, batch, baseline, n_steps=n_steps, batch_size=batch_size,
                                        progress=progress, device=device)
    scorer = scorer.cpu()
    with torch.no_grad():
        s_x = scorer(torch.from_numpy(np.stack(batch))[:, None]).numpy()
        s_0 = float(scorer(torch.from_numpy(baseline)[None, None]).item())
    info = {"method": "integrated gradients (Captum)", "baseline": "cohort mean image", "n_steps": n_steps,
            "probe_kind": kind, "n_probe_subjects": len(vols), "seed": seed}
    return RegionExplanation(atlas=atlas, region_sums=atlas.aggregate(attr), voxel_map=np.abs(attr).mean(axis=0),
                             mean_image=baseline, ids=[ids[i] for i in chosen], convergence_delta=deltas,
                             score_difference=s_x - s_0, info=info)
