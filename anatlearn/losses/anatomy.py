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

Cosines lie in [-1, 1]; as contrastive weights (:func:`anatomical_weights`) they are mapped by
``weight_map``: ``"shift"`` (A+1)/2, ``"clamp"`` max(A, 0), or ``"kernel"`` exp(-(1 - A)/h), an exponential
kernel on the cosine distance with bandwidth h (given, or :func:`matched_anat_bandwidth` on the training
subjects); ``None`` returns raw cosines (not valid as weights).
"""

from __future__ import annotations

import math
from typing import Mapping

import numpy as np
import torch
import torch.nn.functional as F

from anatlearn.errors import ConfigError, DataError
from anatlearn.losses.kernels import age_kernel

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


ANAT_WEIGHT_MAPS = ("shift", "clamp", "kernel")


def anatomical_weights(descriptors, mode: str = "global", normalise: str | None = "zscore",
                       stats: Mapping | None = None, weight_map: str = "shift",
                       bandwidth: float | None = None) -> torch.Tensor:
    """Anatomical contrastive weights (B, B): the cosine similarity A of :func:`anatomical_similarity`
    mapped by ``weight_map``: ``shift`` (A+1)/2, ``clamp`` max(A, 0), or ``kernel``
    W_ab = exp(-(1 - A_ab) / h), an exponential kernel on the cosine distance 1 - A in [0, 2] with bandwidth
    h = ``bandwidth`` (the diagonal is 1, like the rbf age kernel's)."""
    if weight_map != "kernel":
        return anatomical_similarity(descriptors, mode, normalise, stats, weight_map)
    if bandwidth is None or not bandwidth > 0:
        raise ConfigError(f"weight_map 'kernel' needs a positive bandwidth, got {bandwidth!r}")
    a = anatomical_similarity(descriptors, mode, normalise, stats, None)
    return torch.exp((a - 1.0) / bandwidth)


def matched_anat_bandwidth(descriptors, ages, mode: str = "global", kernel: str = "rbf", sigma: float = 2.0,
                           tol: float = 1e-6) -> float:
    """The bandwidth rule of ``weight_map="kernel"`` (docs/losses.md): the h for which the mean off-diagonal
    anatomical kernel weight exp(-(1 - A_ab)/h) over the given (training) subjects equals the mean
    off-diagonal age-kernel weight K(y_a - y_b) over the same subjects.

    ``descriptors`` (n, K, D) are already normalised. The mean m(h) = mean_{a!=b} exp(-d_ab/h), d = 1 - A >= 0,
    increases monotonically from 0 (h -> 0) to 1 (h -> inf), so the root is found by bisection on log h.
    """
    x = torch.tensor(np.array(descriptors, dtype=np.float64))
    y = torch.tensor(np.array(ages, dtype=np.float64))
    n = x.shape[0]
    if n < 2 or y.shape != (n,):
        raise DataError(f"the bandwidth rule needs >= 2 subjects with one age each, got descriptors "
                        f"{tuple(x.shape)} and ages {tuple(y.shape)}")
    off = ~torch.eye(n, dtype=torch.bool)
    target = float(age_kernel(y, kernel, sigma)[off].mean())
    d = (1.0 - anatomical_similarity(x, mode, None, None, None))[off].clamp_min(0.0)
    if not 0.0 < target < 1.0 or float(d.max()) <= 0.0:
        raise DataError(f"the bandwidth rule has no solution: mean age-kernel weight {target:.4g}, "
                        f"largest anatomical distance {float(d.max()):.4g}")
    lo, hi = math.log(1e-6), math.log(1e3)
    while hi - lo > tol:
        mid = 0.5 * (lo + hi)
        if float(torch.exp(-d / math.exp(mid)).mean()) < target:
            lo = mid
        else:
            hi = mid
    return math.exp(0.5 * (lo + hi))


__all__ = ["ANAT_WEIGHT_MAPS", "MODES", "NORMALISATIONS", "anatomical_similarity", "anatomical_weights",
           "matched_anat_bandwidth", "normalise_descriptors"]
