"""Contrastive losses with soft, weighted positives (y-Aware, ExpW, threshold, AnatCL) and baselines.

Notation (SPEC section 2): a batch of B subjects with V views each is stacked view-major into N = V*B rows;
z (N x d) are L2-normalised projections and s_ab = z_a . z_b / tau. A non-negative weight matrix W (B x B)
is tiled V x V to N x N; sums over b, c exclude the anchor a; W~_ab = W_ab / sum_{c != a} W_ac.

- y-Aware weighted InfoNCE (Dufumier et al., MICCAI 2021):
      l_a = -(tau / tau_base) * sum_{b != a} W~_ab * ( s_ab - log sum_{c != a} exp(s_ac) )
  With W = identity over subjects this is SupCon / SimCLR NT-Xent (Chen et al., 2020).
- ExpW (Barbano et al., ISBI 2023): same numerator, denominator sum_{c != a} exp(s'_ac (1 - W_ac)) where
  s' = s - max_c s_ac (the shift is applied before the (1 - W) factor, as in the reference code).
- Threshold (Barbano et al., ISBI 2023): for anchor a and positive b, repel only the c with W_ac < W_ab:
      l_a = -(tau / tau_base) * sum_{b != a} W~_ab * ( s_ab - log( exp(s_ab) + sum_{c != a: W_ac < W_ab} exp(s_ac) ) )
  computed in O(N^2) memory by sorting each anchor's weights and gathering cumulative sums (the
  reference code materialises an N^3 mask).

The loss is the mean of l_a over the N anchors. All maths runs in float32 or float64, also under autocast.
"""

from __future__ import annotations

import math
from typing import Mapping

import numpy as np
import torch
from torch import nn

from anatlearn.anatomy import anatomical_similarity
from anatlearn.errors import ConfigError, DataError
from anatlearn.kernels import age_kernel

WEIGHTED_METHODS = ("yaware", "expw", "threshold")


def _check_inputs(features: torch.Tensor, weights: torch.Tensor) -> None:
    if features.ndim != 3:
        raise DataError(f"features must have shape (B subjects, V views, d), got {tuple(features.shape)}")
    b = features.shape[0]
    if b < 2:
        raise DataError(f"a contrastive loss needs at least 2 subjects in the batch (negatives); got B={b}")
    if weights.shape != (b, b):
        raise DataError(f"weights must have shape (B, B) = ({b}, {b}) to match features, got {tuple(weights.shape)}")
    if not torch.isfinite(features).all():
        raise DataError("features contain NaN or inf")
    if not torch.isfinite(weights).all():
        raise DataError("weights contain NaN or inf")
    if (weights < 0).any():
        raise DataError(f"weights must be non-negative; minimum is {weights.min().item():.4g}")


def weighted_infonce(features: torch.Tensor, weights: torch.Tensor, temperature: float = 0.1,
                     base_temperature: float | None = None, method: str = "yaware") -> torch.Tensor:
    """Weighted InfoNCE of ``method`` in {"yaware", "expw", "threshold"} (formulas in the module docstring).

    features: (B, V, d) L2-normalised projections; weights: (B, B) non-negative similarities.
    Returns a scalar: the mean over the N = V*B anchors.
    """
    if method not in WEIGHTED_METHODS:
        raise ConfigError(f"unknown weighted InfoNCE method {method!r}; choose one of {', '.join(WEIGHTED_METHODS)}")
    if not temperature > 0:
        raise ConfigError(f"temperature must be positive, got {temperature!r}")
    weights = torch.as_tensor(weights, device=features.device)
    _check_inputs(features, weights)
    dtype = torch.float64 if features.dtype == torch.float64 else torch.float32
    with torch.autocast(device_type=features.device.type, enabled=False):
        b, v, d = features.shape
        z = features.to(dtype).transpose(0, 1).reshape(v * b, d)  # view-major: row i = view i//B of subject i%B
        w = weights.to(dtype).repeat(v, v)
        n = v * b
        eye = torch.eye(n, dtype=torch.bool, device=z.device)
        w = w.masked_fill(eye, 0.0)
        w_sum = w.sum(dim=1, keepdim=True)
        if (w_sum <= 0).any():
            raise DataError("an anchor has zero total weight on the other samples (no positive): with one view "
                            "per subject the weight matrix needs non-zero off-diagonal entries")
        w_norm = w / w_sum
        s = z @ z.T / temperature
        if method == "yaware":
            log_prob = s - torch.logsumexp(s.masked_fill(eye, float("-inf")), dim=1, keepdim=True)
        elif method == "expw":
            shifted = s - s.max(dim=1, keepdim=True).values.detach()
            denom = torch.logsumexp((shifted * (1.0 - w)).masked_fill(eye, float("-inf")), dim=1, keepdim=True)
            log_prob = shifted - denom
        else:
            log_prob = _threshold_log_prob(s, w, eye)
        log_prob = log_prob.masked_fill(eye, 0.0)  # self-pairs carry zero weight; keep their gradient finite
        scale = temperature / (base_temperature if base_temperature is not None else temperature)
        return -scale * (w_norm * log_prob).sum(dim=1).mean()


def _threshold_log_prob(s: torch.Tensor, w: torch.Tensor, eye: torch.Tensor) -> torch.Tensor:
    """log( exp(s_ab) / (exp(s_ab) + sum_{c != a, W_ac < W_ab} exp(s_ac)) ) for every (a, b), O(N^2) memory.

    For each anchor a the other samples are sorted by W_ac; the prefix sums P of exp(s_ac - m_a) in that
    order give sum_{W_ac < W_ab} exp(s_ac - m_a) = P[r_ab], where r_ab = #{c : W_ac < W_ab} is found by a
    left-sided searchsorted (ties are not "<", so they are not repelled).
    """
    m = s.masked_fill(eye, float("-inf")).max(dim=1, keepdim=True).values.detach()
    shifted = s - m
    e = torch.exp(shifted).masked_fill(eye, 0.0)
    key = w.masked_fill(eye, float("inf"))  # the anchor itself sorts last and is never "< W_ab"
    sorted_key, order = torch.sort(key, dim=1)
    prefix = torch.cumsum(torch.gather(e, 1, order), dim=1)
    prefix = torch.cat([torch.zeros_like(prefix[:, :1]), prefix], dim=1)  # prefix[:, r] = sum of first r
    rank = torch.searchsorted(sorted_key.contiguous(), w.contiguous(), right=False)
    repelled = torch.gather(prefix, 1, rank)
    # clamp: log(0) would be -inf and its gradient inf * 0 = NaN where nothing is repelled
    return shifted - torch.logaddexp(shifted, torch.log(repelled.clamp_min(torch.finfo(s.dtype).tiny)))


class _Contrastive(nn.Module):
    needs_ages = False
    needs_descriptors = False

    def __init__(self, temperature: float = 0.1, base_temperature: float | None = None):
        super().__init__()
        self.temperature = temperature
        self.base_temperature = base_temperature


class SimCLRLoss(_Contrastive):
    """SimCLR NT-Xent (Chen et al., 2020): weighted InfoNCE with W = I over subjects, so the only positive of
    an anchor is the other view(s) of the same scan:
    l_a = -(1/(V-1)) sum_{b in views(a), b != a} ( s_ab - log sum_{c != a} exp(s_ac) )."""

    def forward(self, features, ages=None, descriptors=None):
        eye = torch.eye(features.shape[0], device=features.device)
        return {"loss": weighted_infonce(features, eye, self.temperature, self.base_temperature, "yaware")}


class _AgeWeighted(_Contrastive):
    method = "yaware"
    needs_ages = True

    def __init__(self, kernel: str = "rbf", sigma: float = 2.0, temperature: float = 0.1,
                 base_temperature: float | None = None):
        super().__init__(temperature, base_temperature)
        self.kernel, self.sigma = kernel, sigma
        age_kernel(torch.zeros(1), kernel, sigma)  # validate the options now, not at the first batch

    def forward(self, features, ages=None, descriptors=None):
        if ages is None:
            raise DataError(f"{type(self).__name__} needs the subjects' ages")
        w = age_kernel(torch.as_tensor(ages, device=features.device), self.kernel, self.sigma)
        return {"loss": weighted_infonce(features, w, self.temperature, self.base_temperature, self.method)}


class YAwareLoss(_AgeWeighted):
    """y-Aware InfoNCE (Dufumier et al., 2021): W_ab = K(y_a - y_b), the age kernel;
    l_a = -(tau/tau_base) sum_{b != a} W~_ab ( s_ab - log sum_{c != a} exp(s_ac) )."""


class ExpWLoss(_AgeWeighted):
    """ExpW (Barbano et al., ISBI 2023): l_a = -(tau/tau_base) sum_b W~_ab ( s'_ab - log sum_{c != a}
    exp(s'_ac (1 - W_ac)) ), s' = s - max_c s_ac; W the age kernel. Negatives similar in age repel less."""

    method = "expw"


class ThresholdLoss(_AgeWeighted):
    """Threshold (Barbano et al., ISBI 2023): for anchor a and positive b, only c with W_ac < W_ab repel:
    l_a = -(tau/tau_base) sum_b W~_ab ( s_ab - log( exp(s_ab) + sum_{c != a: W_ac < W_ab} exp(s_ac) ) )."""

    method = "threshold"


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
    """The bandwidth rule of the study's kernel ablation (docs/study.md, fixed before the runs): the h for
    which the mean off-diagonal anatomical kernel weight exp(-(1 - A_ab)/h) over the given (training)
    subjects equals the mean off-diagonal age-kernel weight K(y_a - y_b) over the same subjects.

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


class AnatCLLoss(_Contrastive):
    """AnatCL (Barbano et al., 2024): L = lambda_age * L_w(W_age) + lambda_anat * L_w(W_anat), with L_w the
    weighted InfoNCE of ``method``, W_age the age kernel and W_anat the anatomical similarity
    (:func:`anatlearn.anatomy.anatomical_similarity`, ``mode`` local or global). lambda_age = 0 gives the
    anatomy-only ablation. The released weights used lambda_age = lambda_anat = 1, rbf sigma 2, tau 0.1.
    ``weight_map="kernel"`` replaces the map of the cosine A by exp(-(1 - A) / anat_bandwidth) (see
    :func:`anatomical_weights`)."""

    def __init__(self, lambda_age: float = 1.0, lambda_anat: float = 1.0, mode: str = "global",
                 kernel: str = "rbf", sigma: float = 2.0, temperature: float = 0.1,
                 base_temperature: float | None = None, normalise: str | None = "zscore",
                 stats: Mapping | None = None, weight_map: str = "shift", method: str = "yaware",
                 anat_bandwidth: float | None = None):
        super().__init__(temperature, base_temperature)
        if lambda_age < 0 or lambda_anat < 0 or lambda_age + lambda_anat == 0:
            raise ConfigError(f"lambdas must be non-negative and not both zero, got lambda_age={lambda_age}, "
                              f"lambda_anat={lambda_anat}")
        if method not in WEIGHTED_METHODS:
            raise ConfigError(f"unknown weighted InfoNCE method {method!r}; choose one of {', '.join(WEIGHTED_METHODS)}")
        if weight_map is None:
            raise ConfigError("AnatCL needs non-negative weights: weight_map must be 'shift', 'clamp' or 'kernel'")
        if weight_map == "kernel" and not (anat_bandwidth is not None and anat_bandwidth > 0):
            raise ConfigError(f"weight_map 'kernel' needs a positive anatomical bandwidth, got {anat_bandwidth!r}")
        self.anat_bandwidth = anat_bandwidth
        self.lambda_age, self.lambda_anat = lambda_age, lambda_anat
        self.mode, self.kernel, self.sigma = mode, kernel, sigma
        self.normalise, self.stats, self.weight_map, self.method = normalise, stats, weight_map, method
        self.needs_ages = lambda_age > 0
        self.needs_descriptors = lambda_anat > 0
        if self.needs_ages:
            age_kernel(torch.zeros(1), kernel, sigma)
        anatomical_similarity(torch.ones(1, 2, 2), mode, None, None, None if weight_map == "kernel" else weight_map)

    def forward(self, features, ages=None, descriptors=None):
        out = {}
        total = features.new_zeros((), dtype=torch.float32)
        if self.lambda_age > 0:
            if ages is None:
                raise DataError("AnatCL's age term needs the subjects' ages")
            w = age_kernel(torch.as_tensor(ages, device=features.device), self.kernel, self.sigma)
            out["age"] = weighted_infonce(features, w, self.temperature, self.base_temperature, self.method)
            total = total + self.lambda_age * out["age"]
        if self.lambda_anat > 0:
            if descriptors is None:
                raise DataError("AnatCL's anatomical term needs FreeSurfer descriptors (CT, GMV, SA per region)")
            w = anatomical_weights(torch.as_tensor(descriptors, device=features.device), self.mode, self.normalise,
                                   self.stats, self.weight_map, self.anat_bandwidth)
            out["anat"] = weighted_infonce(features, w, self.temperature, self.base_temperature, self.method)
            total = total + self.lambda_anat * out["anat"]
        out["loss"] = total
        return out


class L1AgeLoss(nn.Module):
    """Supervised brain-age regression baseline: L = (1/B) sum_n |f(x_n) - y_n| (mean absolute error)."""

    needs_ages = True
    needs_descriptors = False

    def forward(self, predictions: torch.Tensor, ages) -> dict:
        ages = torch.as_tensor(ages, device=predictions.device, dtype=torch.float32)
        predictions = predictions.float().reshape(-1)
        if predictions.shape != ages.shape:
            raise DataError(f"predictions {tuple(predictions.shape)} and ages {tuple(ages.shape)} differ in shape")
        return {"loss": (predictions - ages).abs().mean()}


class DescriptorRegressionLoss(nn.Module):
    """Positive control of the study: regress the normalised regional descriptors (for ``gmv-regression``
    the 68 regional GMVs, z-scored per region on the training set) from the representation by a linear head:
    L = (1/(B R)) sum_n sum_r (f(x_n)_r - g_nr)^2 (mean squared error over subjects and regions). It is the
    L1 brain-age baseline generalised from one target to many, with the truth itself as the target.

    Called like the contrastive losses (the training step gathers the head outputs of every view and rank):
    ``features`` (B, V, R) head outputs, of which the first view is the prediction; ``descriptors`` (B, K, D)
    the targets, flattened to R = K * D."""

    needs_ages = False
    needs_descriptors = True

    def forward(self, features: torch.Tensor, ages=None, descriptors=None) -> dict:
        if descriptors is None:
            raise DataError("descriptor regression needs the subjects' descriptors as targets")
        targets = torch.as_tensor(descriptors, device=features.device, dtype=torch.float32)
        targets = targets.reshape(targets.shape[0], -1)
        predictions = features.float()
        if predictions.ndim == 3:
            predictions = predictions[:, 0]
        if predictions.shape != targets.shape:
            raise DataError(f"predictions {tuple(predictions.shape)} and targets {tuple(targets.shape)} differ in shape")
        return {"loss": ((predictions - targets) ** 2).mean()}


METHODS = ("simclr", "yaware", "expw", "threshold", "anatcl-local", "anatcl-global", "anat-only", "l1-age",
           "gmv-regression")
REGRESSION_METHODS = ("l1-age", "gmv-regression")
CONTRASTIVE_METHODS = tuple(m for m in METHODS if m not in REGRESSION_METHODS)
# Descriptors a method reads, when it fixes them (otherwise the configuration's ``descriptors``).
METHOD_DESCRIPTORS = {"gmv-regression": ("GMV",)}


def build_loss(method: str, temperature: float = 0.1, base_temperature: float | None = None,
               kernel: str = "rbf", sigma: float = 2.0, lambda_age: float = 1.0, lambda_anat: float = 1.0,
               normalise: str | None = "zscore", stats: Mapping | None = None, weight_map: str = "shift",
               mode: str | None = None, anat_bandwidth: float | None = None) -> nn.Module:
    """The loss module of a pretraining ``method`` (one of :data:`METHODS`) with the given options.

    ``anatcl-local`` / ``anatcl-global`` fix the similarity mode; ``anat-only`` is AnatCL with
    lambda_age = 0 (global mode unless ``mode`` is given).
    """
    tau = dict(temperature=temperature, base_temperature=base_temperature)
    if method == "simclr":
        return SimCLRLoss(**tau)
    if method in ("yaware", "expw", "threshold"):
        cls = {"yaware": YAwareLoss, "expw": ExpWLoss, "threshold": ThresholdLoss}[method]
        return cls(kernel=kernel, sigma=sigma, **tau)
    if method in ("anatcl-local", "anatcl-global", "anat-only"):
        anat_mode = method.split("-")[1] if method.startswith("anatcl") else (mode or "global")
        return AnatCLLoss(lambda_age=0.0 if method == "anat-only" else lambda_age, lambda_anat=lambda_anat,
                          mode=anat_mode, kernel=kernel, sigma=sigma, normalise=normalise, stats=stats,
                          weight_map=weight_map, anat_bandwidth=anat_bandwidth, **tau)
    if method == "l1-age":
        return L1AgeLoss()
    if method == "gmv-regression":
        return DescriptorRegressionLoss()
    raise ConfigError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")


def method_needs(method: str) -> tuple[bool, bool]:
    """(needs ages, needs descriptors) for a pretraining method."""
    if method not in METHODS:
        raise ConfigError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    return (method not in ("simclr", "anat-only", "gmv-regression"),
            method in ("anatcl-local", "anatcl-global", "anat-only", "gmv-regression"))
