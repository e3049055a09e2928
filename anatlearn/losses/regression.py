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
- ``descriptor-regression`` (issue 28): the same with every descriptor the data has (CT, GMV and SA per
  region, each z-scored per region on the training set) and the standardised age as one more target:
      L = (1/(B (R + 1))) [sum_n sum_r (f(x_n)_r - g_nr)^2 + sum_n (f(x_n)_{R+1} - (y_n - mu_y) / sd_y)^2]

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
    """Descriptor regression: L = (1/(B T)) sum_n sum_t (f(x_n)_t - g_nt)^2, the mean squared error over the B
    subjects and the T targets g: the R = K * D values of ``descriptors`` (B, K, D) flattened and, with
    ``regress_age``, the standardised age (y_n - age_mean) / age_std as target R + 1."""

    needs_descriptors = True

    def __init__(self, regress_age: bool = False, age_mean: float = 0.0, age_std: float = 1.0):
        super().__init__()
        self.regress_age, self.age_mean, self.age_std = regress_age, age_mean, age_std
        self.needs_ages = regress_age

    def targets(self, descriptors, ages=None, device=None) -> torch.Tensor:
        """The (B, T) regression targets: the flattened descriptors, then the standardised age if regressed."""
        if descriptors is None:
            raise DataError("descriptor regression needs the subjects' descriptors as targets")
        targets = torch.as_tensor(descriptors, device=device, dtype=torch.float32)
        targets = targets.reshape(targets.shape[0], -1)
        if not self.regress_age:
            return targets
        if ages is None:
            raise DataError("descriptor regression with age needs the subjects' ages as a target")
        ages = torch.as_tensor(ages, device=device).to(torch.float32).reshape(-1, 1)
        return torch.cat([targets, (ages - self.age_mean) / self.age_std], dim=1)

    def forward(self, outputs: torch.Tensor, ages=None, descriptors=None) -> dict:
        targets = self.targets(descriptors, ages, outputs.device)
        predictions = _first_view(outputs)
        if predictions.shape != targets.shape:
            raise DataError(f"predictions {tuple(predictions.shape)} and targets {tuple(targets.shape)} differ in shape")
        return {"loss": ((predictions - targets) ** 2).mean()}


__all__ = ["DescriptorRegressionLoss", "L1AgeLoss", "age_stats"]
