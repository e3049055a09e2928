"""The supervised baselines: a linear regression head on the representation, trained on a known target.

- ``l1-age``, brain-age regression (the supervised baseline of Barbano et al. 2024):
      L = (1/B) sum_n |f(x_n) - (y_n - mu_y) / sd_y|
  the mean absolute error on the standardised age, mu_y and sd_y the mean and standard deviation of the
  training subjects' ages (:func:`age_stats`).
- ``gmv-regression``, the positive control of the study: regress the normalised regional descriptors (the
  68 regional GMVs, z-scored per region on the training set) from the representation:
      L = (1/(B R)) sum_n sum_r (f(x_n)_r - g_nr)^2
  the mean squared error over subjects and the R = K * D descriptor values; the L1 brain-age baseline
  generalised from one target to many, with the truth itself as the target.

Both are called like every anatlearn loss, ``loss(outputs, ages=None, descriptors=None) -> dict``, with
``outputs`` (B, V, R) the regression head's outputs for the V views of each subject, of which the first
view is the prediction (a (B, R) matrix, or for ``l1-age`` a (B,) vector, is taken as the prediction).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from anatlearn.errors import DataError


def age_stats(ages) -> dict[str, float]:
    """Mean and standard deviation (population; 1 when all ages are equal) of the training subjects' ages."""
    ages = np.asarray(ages, dtype=np.float64)
    return {"mean": float(ages.mean()), "std": float(ages.std() or 1.0)}


def _first_view(outputs: torch.Tensor) -> torch.Tensor:
    outputs = outputs.float()
    return outputs[:, 0] if outputs.ndim == 3 else outputs


class L1AgeLoss(nn.Module):
    """Brain-age regression: L = (1/B) sum_n |f(x_n) - (y_n - age_mean) / age_std| (mean absolute error on the
    standardised age; the defaults 0 and 1 regress the raw age)."""

    needs_ages = True
    needs_descriptors = False

    def __init__(self, age_mean: float = 0.0, age_std: float = 1.0):
        super().__init__()
        self.age_mean, self.age_std = age_mean, age_std

    def forward(self, outputs: torch.Tensor, ages=None, descriptors=None) -> dict:
        if ages is None:
            raise DataError("brain-age regression needs the subjects' ages as targets")
        ages = torch.as_tensor(ages, device=outputs.device)
        targets = ((ages - self.age_mean) / self.age_std).to(torch.float32)
        predictions = _first_view(outputs).reshape(-1)
        if predictions.shape != targets.shape:
            raise DataError(f"predictions {tuple(predictions.shape)} and ages {tuple(targets.shape)} differ in shape")
        return {"loss": (predictions - targets).abs().mean()}


class DescriptorRegressionLoss(nn.Module):
    """Descriptor regression: L = (1/(B R)) sum_n sum_r (f(x_n)_r - g_nr)^2, with ``descriptors`` (B, K, D) the
    targets g flattened to R = K * D values."""

    needs_ages = False
    needs_descriptors = True

    def forward(self, outputs: torch.Tensor, ages=None, descriptors=None) -> dict:
        if descriptors is None:
            raise DataError("descriptor regression needs the subjects' descriptors as targets")
        targets = torch.as_tensor(descriptors, device=outputs.device, dtype=torch.float32)
        targets = targets.reshape(targets.shape[0], -1)
        predictions = _first_view(outputs)
        if predictions.shape != targets.shape:
            raise DataError(f"predictions {tuple(predictions.shape)} and targets {tuple(targets.shape)} differ in shape")
        return {"loss": ((predictions - targets) ** 2).mean()}


__all__ = ["DescriptorRegressionLoss", "L1AgeLoss", "age_stats"]
