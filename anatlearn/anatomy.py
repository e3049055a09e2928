"""Anatomical similarity between subjects from FreeSurfer descriptors (AnatCL, Barbano et al. 2024).

Descriptors X_n have shape (K, D): K atlas regions (68 Desikan-Killiany, 148 Destrieux) by D descriptors
(cortical thickness CT, gray-matter volume GMV, surface area SA). With X~ the normalised descriptors:

- local:  A_nm = (1/K) sum_k cos( X~_n[k, :], X~_m[k, :] )   (cosine of the D-vectors of each region)
- global: A_nm = (1/D) sum_j cos( X~_n[:, j], X~_m[:, j] )   (cosine of each descriptor's K-profile)

Normalisation (the paper only says "normalised"):

- ``"minmax"``: per subject and descriptor, over regions: (x - min_k x) / (max_k x - min_k x).
- ``"zscore"``: per region and descriptor: (x - mu_kj) / sd_kj with mu, sd fitted on the training set
  (``stats``) or, when none are given, on the batch. Raw positive values make every cosine ~0.97: a flat,
  uninformative weight matrix; centring removes that common profile.
- ``None``: raw values.

Cosines lie in [-1, 1]; as contrastive weights they are mapped by ``weight_map``: ``"shift"`` (A+1)/2 or
``"clamp"`` max(A, 0); ``None`` returns raw cosines (not valid as weights).
"""

from __future__ import annotations

from typing import Mapping

import torch
import torch.nn.functional as F

from anatlearn.errors import ConfigError, DataError

MODES = ("local", "global")
NORMALISATIONS = (None, "minmax", "zscore")
WEIGHT_MAPS = (None, "shift", "clamp")
_EPS = 1e-8


def normalise_descriptors(x: torch.Tensor, method: str | None = "zscore",
                          stats: Mapping | None = None) -> torch.Tensor:
    """Normalise descriptors (B, K, D) as described in the module docstring."""
    if method not in NORMALISATIONS:
        raise ConfigError(f"unknown descriptor normalisation {method!r}; choose one of None, 'minmax', 'zscore'")
    if method is None:
        return x
    if method == "minmax":
        lo = x.amin(dim=1, keepdim=True)
        hi = x.amax(dim=1, keepdim=True)
        return (x - lo) / (hi - lo).clamp_min(_EPS)
    if stats is not None:
        mean = torch.as_tensor(stats["mean"], dtype=x.dtype, device=x.device)
        std = torch.as_tensor(stats["std"], dtype=x.dtype, device=x.device)
        if mean.shape != x.shape[1:] or std.shape != x.shape[1:]:
            raise DataError(f"zscore statistics have shape {tuple(mean.shape)} but descriptors are "
                            f"(K, D) = {tuple(x.shape[1:])}: were they fitted on another atlas or descriptor set?")
    else:
        mean = x.mean(dim=0)
        std = x.std(dim=0, unbiased=False)
    return (x - mean) / std.clamp_min(_EPS)


def anatomical_similarity(descriptors, mode: str = "global", normalise: str | None = "zscore",
                          stats: Mapping | None = None, weight_map: str | None = "shift") -> torch.Tensor:
    """Pairwise anatomical similarity (B, B) from descriptors (B, K, D); see the module docstring."""
    if mode not in MODES:
        raise ConfigError(f"unknown anatomical similarity mode {mode!r}; choose 'local' or 'global'")
    if weight_map not in WEIGHT_MAPS:
        raise ConfigError(f"unknown weight_map {weight_map!r}; choose one of None, 'shift', 'clamp'")
    x = torch.as_tensor(descriptors)
    if not torch.is_floating_point(x):
        x = x.to(torch.get_default_dtype())
    if x.ndim != 3:
        raise DataError(f"descriptors must have shape (B, K regions, D descriptors), got {tuple(x.shape)}")
    if not torch.isfinite(x).all():
        raise DataError("descriptors contain NaN or inf")
    x = normalise_descriptors(x, normalise, stats)
    # local: unit D-vectors per region, average the K cosines; global: unit K-profiles, average over D.
    unit = F.normalize(x, dim=2 if mode == "local" else 1, eps=_EPS)
    sim = torch.einsum("nkd,mkd->nm", unit, unit) / (x.shape[1] if mode == "local" else x.shape[2])
    if weight_map == "shift":
        return (sim + 1.0) / 2.0
    if weight_map == "clamp":
        return sim.clamp_min(0.0)
    return sim
