"""The contrastive losses: SimCLR, y-Aware, ExpW, threshold and AnatCL, each the weighted InfoNCE of
:mod:`anatlearn.losses.infonce` (notation there) with its own subject-similarity matrix W.

- SimCLR NT-Xent (Chen et al., 2020):   W = I over subjects (the only positives are the other views)
- y-Aware (Dufumier et al., 2021):      W_ab = K(y_a - y_b), the age kernel (:mod:`anatlearn.losses.kernels`)
- ExpW, threshold (Barbano et al., ISBI 2023): the age kernel with the ``expw`` / ``threshold`` InfoNCE
- AnatCL (Barbano et al., 2024):        L = lambda_age L_w(W_age) + lambda_anat L_w(W_anat), W_anat the
  anatomical weights of :func:`anatlearn.losses.anatomy.anatomical_weights`

Every loss of anatlearn is called ``loss(outputs, ages=None, descriptors=None) -> dict``: here ``outputs``
(B, V, d) are the L2-normalised projections of the B subjects' V views; the dict holds ``"loss"`` and, for
AnatCL, its ``"age"`` and ``"anat"`` terms.
"""

from __future__ import annotations

from typing import Mapping

import torch
from torch import nn

from anatlearn.errors import ConfigError, DataError
from anatlearn.losses.anatomy import anatomical_similarity, anatomical_weights
from anatlearn.losses.infonce import WEIGHTED_METHODS, weighted_infonce
from anatlearn.losses.kernels import age_kernel


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

    def forward(self, outputs, ages=None, descriptors=None):
        eye = torch.eye(outputs.shape[0], device=outputs.device)
        return {"loss": weighted_infonce(outputs, eye, self.temperature, self.base_temperature, "yaware")}


class _AgeWeighted(_Contrastive):
    method = "yaware"
    needs_ages = True

    def __init__(self, kernel: str = "rbf", sigma: float = 2.0, temperature: float = 0.1,
                 base_temperature: float | None = None):
        super().__init__(temperature, base_temperature)
        self.kernel, self.sigma = kernel, sigma
        age_kernel(torch.zeros(1), kernel, sigma)  # validate the options now, not at the first batch

    def forward(self, outputs, ages=None, descriptors=None):
        if ages is None:
            raise DataError(f"{type(self).__name__} needs the subjects' ages")
        w = age_kernel(torch.as_tensor(ages, device=outputs.device), self.kernel, self.sigma)
        return {"loss": weighted_infonce(outputs, w, self.temperature, self.base_temperature, self.method)}


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


class AnatCLLoss(_Contrastive):
    """AnatCL (Barbano et al., 2024): L = lambda_age * L_w(W_age) + lambda_anat * L_w(W_anat), with L_w the
    weighted InfoNCE of ``method``, W_age the age kernel and W_anat the anatomical similarity
    (:func:`anatlearn.losses.anatomy.anatomical_similarity`, ``mode`` local or global). lambda_age = 0 gives the
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

    def forward(self, outputs, ages=None, descriptors=None):
        out = {}
        total = outputs.new_zeros((), dtype=torch.float32)
        if self.lambda_age > 0:
            if ages is None:
                raise DataError("AnatCL's age term needs the subjects' ages")
            w = age_kernel(torch.as_tensor(ages, device=outputs.device), self.kernel, self.sigma)
            out["age"] = weighted_infonce(outputs, w, self.temperature, self.base_temperature, self.method)
            total = total + self.lambda_age * out["age"]
        if self.lambda_anat > 0:
            if descriptors is None:
                raise DataError("AnatCL's anatomical term needs FreeSurfer descriptors (CT, GMV, SA per region)")
            w = anatomical_weights(torch.as_tensor(descriptors, device=outputs.device), self.mode, self.normalise,
                                   self.stats, self.weight_map, self.anat_bandwidth)
            out["anat"] = weighted_infonce(outputs, w, self.temperature, self.base_temperature, self.method)
            total = total + self.lambda_anat * out["anat"]
        out["loss"] = total
        return out


__all__ = ["AnatCLLoss", "ExpWLoss", "SimCLRLoss", "ThresholdLoss", "YAwareLoss"]
