"""Voxel attributions through a frozen encoder and a linear probe, with Captum's Integrated Gradients.

The probe (standardisation + logistic or ridge regression, :func:`anatlearn.evaluate.probes.make_probe`)
is folded into one linear layer, so the explained function is the probe's score on the image,

    s(x) = w . (f(x) - mu) / sd + c      (f: the frozen encoder; logit for classification, value for regression).

Integrated Gradients (Sundararajan, Taly & Yan 2017, ICML) attributes s(x) - s(x') to each voxel i:

    IG_i(x) = (x_i - x'_i) * integral_0^1 ds/dx_i (x' + t (x - x')) dt,

approximated with Gauss-Legendre quadrature over ``n_steps`` points (Captum). Its completeness property,
sum_i IG_i = s(x) - s(x'), is what makes sums over a region meaningful: a region's sum is its share of the
score difference, and summing over several atlases (or a patch grid) needs one attribution pass only.
The baseline x' is the cohort's mean image, so attributions say what in *this* brain, relative to the
average brain, moves the probe (a black image would attribute the mere presence of tissue).

Why not region occlusion: it must be recomputed for every atlas (one forward pass per region and subject),
it scores each region by the response to an image with a hole the encoder never saw during training, and it
gives no voxel map. Captum's ``convergence_delta`` (quadrature error of completeness) is reported.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from anatlearn.errors import ConfigError


class LinearProbeHead(nn.Module):
    """A fitted scikit-learn probe (StandardScaler + linear model with ``coef_``/``intercept_``) as one
    ``nn.Linear``: weight = coef / scale, bias = intercept - coef . (mean / scale)."""

    def __init__(self, probe):
        super().__init__()
        scaler, model = (probe[0], probe[-1]) if hasattr(probe, "steps") else (None, probe)
        coef = np.atleast_2d(np.asarray(model.coef_, dtype=np.float64))
        if coef.shape[0] != 1:
            raise ConfigError(f"only binary classification or single-output regression probes can be explained "
                              f"(got {coef.shape[0]} outputs)")
        intercept = float(np.ravel(model.intercept_)[0])
        mean = scaler.mean_ if scaler is not None and scaler.with_mean else np.zeros(coef.shape[1])
        scale = scaler.scale_ if scaler is not None and scaler.with_std else np.ones(coef.shape[1])
        weight = coef / scale
        self.linear = nn.Linear(coef.shape[1], 1)
        with torch.no_grad():
            self.linear.weight.copy_(torch.from_numpy(weight).float())
            self.linear.bias.fill_(intercept - float(weight[0] @ mean))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.linear(features)[:, 0]


class ProbedEncoder(nn.Module):
    """encoder -> probe score: the scalar function of the image that the attributions explain."""

    def __init__(self, encoder: nn.Module, head: LinearProbeHead):
        super().__init__()
        self.encoder, self.head = encoder, head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = self.encoder.encode(x) if hasattr(self.encoder, "encode") else self.encoder(x)
        return self.head(feats.float())


def integrated_gradients(model: nn.Module, volumes: np.ndarray, baseline: np.ndarray, n_steps: int = 32,
                         batch_size: int = 8, progress=None, device: str = "cpu") -> tuple[np.ndarray, np.ndarray]:
    """(attributions (n, X, Y, Z) float32, convergence deltas (n,)) of ``model``'s scalar output for each
    volume against ``baseline`` (X, Y, Z), with Captum's IntegratedGradients (gausslegendre, ``n_steps``)."""
    from captum.attr import IntegratedGradients

    if n_steps < 2:
        raise ConfigError(f"`n_steps` must be >= 2, got {n_steps}")
    model = model.eval().to(device)
    for p in model.parameters():
        p.requires_grad_(False)
    ig = IntegratedGradients(model)
    base = torch.from_numpy(np.ascontiguousarray(baseline, dtype=np.float32))[None, None].to(device)
    out = np.empty((len(volumes), *baseline.shape), dtype=np.float32)
    deltas = np.empty(len(volumes))
    for i, vol in enumerate(volumes):
        x = torch.from_numpy(np.ascontiguousarray(vol, dtype=np.float32))[None, None].to(device)
        attr, delta = ig.attribute(x, baselines=base, n_steps=n_steps, internal_batch_size=batch_size,
                                   return_convergence_delta=True)
        out[i] = attr[0, 0].detach().cpu().numpy()
        deltas[i] = float(delta.abs().item())
        if progress:
            progress(i + 1, len(volumes))
    return out, deltas
