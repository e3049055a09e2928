"""Weighted InfoNCE, the loss behind every contrastive method (SimCLR, y-Aware, ExpW, threshold, AnatCL).

Notation (SPEC section 2): a batch of B subjects with V views each is stacked view-major into N = V*B rows;
z (N x d) are L2-normalised projections and s_ab = z_a . z_b / tau. A non-negative weight matrix W (B x B)
is tiled V x V to N x N; sums over b, c exclude the anchor a; W~_ab = W_ab / sum_{c != a} W_ac.

- ``yaware``, the y-Aware weighted InfoNCE (Dufumier et al., MICCAI 2021):
      l_a = -(tau / tau_base) * sum_{b != a} W~_ab * ( s_ab - log sum_{c != a} exp(s_ac) )
  With W = identity over subjects this is SupCon / SimCLR NT-Xent (Chen et al., 2020).
- ``expw`` (Barbano et al., ISBI 2023): same numerator, denominator sum_{c != a} exp(s'_ac (1 - W_ac)) where
  s' = s - max_c s_ac (the shift is applied before the (1 - W) factor, as in the reference code).
- ``threshold`` (Barbano et al., ISBI 2023): for anchor a and positive b, repel only the c with W_ac < W_ab:
      l_a = -(tau / tau_base) * sum_{b != a} W~_ab * ( s_ab - log( exp(s_ab) + sum_{c != a: W_ac < W_ab} exp(s_ac) ) )
  computed in O(N^2) memory by sorting each anchor's weights and gathering cumulative sums (the
  reference code materialises an N^3 mask).

The loss is the mean of l_a over the N anchors. All maths runs in float32 or float64, also under autocast.
"""

from __future__ import annotations

import torch

from anatlearn.errors import ConfigError, DataError

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


__all__ = ["WEIGHTED_METHODS", "weighted_infonce"]
