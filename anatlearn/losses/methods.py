"""The registry of pretraining methods: what each one needs (ages? descriptors?), which model head produces
the ``outputs`` its loss takes, how its loss is built (:func:`build_loss`) and how it is prepared on the
training subjects (:func:`fit_loss`). The training loop asks this module and never branches on a method's
name.

Every loss is called the same way: ``loss(outputs, ages=None, descriptors=None) -> dict`` with ``outputs``
(B, V, d) the head's outputs for the V views of the B subjects of the (global) batch and ``"loss"`` in the
returned dict (formulas: :mod:`~anatlearn.losses.contrastive`, :mod:`~anatlearn.losses.regression`,
:mod:`~anatlearn.losses.anatcl_regression`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np
from torch import nn

from anatlearn.errors import ConfigError
from anatlearn.losses.anatcl_regression import LAMBDA_REG, AnatCLRegressionLoss
from anatlearn.losses.anatomy import matched_anat_bandwidth
from anatlearn.losses.contrastive import AnatCLLoss, ExpWLoss, SimCLRLoss, ThresholdLoss, YAwareLoss
from anatlearn.losses.regression import DescriptorRegressionLoss, L1AgeLoss, age_stats


@dataclass(frozen=True)
class Method:
    """What a pretraining method needs from the data and the model.

    ``head``: ``"projection"`` (contrastive: L2-normalised projections), ``"regression"`` (linear outputs) or
    ``"projection+regression"`` (both, side by side: a contrastive loss plus a regression term);
    ``descriptors``: the descriptors the method reads when it fixes them (otherwise the configured ones);
    ``regresses_descriptors``: the regression head has one output per descriptor value (R = K * D);
    ``regresses_age``: and one more for the standardised age."""

    name: str
    head: str
    needs_ages: bool
    needs_descriptors: bool
    descriptors: tuple[str, ...] | None = None
    regresses_descriptors: bool = False
    regresses_age: bool = False

    @property
    def contrastive(self) -> bool:
        return self.head.startswith("projection")

    def head_outputs(self, descriptors) -> int | None:
        """Width of the regression head for these (n, K, D) descriptors, or None for the model's default."""
        if not self.regresses_descriptors:
            return None
        return int(np.prod(descriptors.shape[1:])) + int(self.regresses_age)


_REGISTRY = {m.name: m for m in (
    Method("simclr", "projection", needs_ages=False, needs_descriptors=False),
    Method("yaware", "projection", needs_ages=True, needs_descriptors=False),
    Method("expw", "projection", needs_ages=True, needs_descriptors=False),
    Method("threshold", "projection", needs_ages=True, needs_descriptors=False),
    Method("anatcl-local", "projection", needs_ages=True, needs_descriptors=True),
    Method("anatcl-global", "projection", needs_ages=True, needs_descriptors=True),
    Method("anat-only", "projection", needs_ages=False, needs_descriptors=True),
    Method("l1-age", "regression", needs_ages=True, needs_descriptors=False),
    Method("gmv-regression", "regression", needs_ages=False, needs_descriptors=True, descriptors=("GMV",),
           regresses_descriptors=True),
    Method("descriptor-regression", "regression", needs_ages=True, needs_descriptors=True,
           regresses_descriptors=True, regresses_age=True),
    Method("anatcl-regression", "projection+regression", needs_ages=True, needs_descriptors=True,
           regresses_descriptors=True, regresses_age=True),
)}
METHODS = tuple(_REGISTRY)
REGRESSION_METHODS = tuple(m for m in METHODS if not _REGISTRY[m].contrastive)
CONTRASTIVE_METHODS = tuple(m for m in METHODS if _REGISTRY[m].contrastive)
# Descriptors a method reads, when it fixes them (otherwise the configuration's ``descriptors``).
METHOD_DESCRIPTORS = {m.name: m.descriptors for m in _REGISTRY.values() if m.descriptors}
_ANATOMICAL = ("anatcl-local", "anatcl-global", "anat-only", "anatcl-regression")


def method_spec(name: str) -> Method:
    """The registry entry of a pretraining method (one of :data:`METHODS`)."""
    if name not in _REGISTRY:
        raise ConfigError(f"unknown method {name!r}; choose one of {', '.join(METHODS)}")
    return _REGISTRY[name]


def method_needs(name: str) -> tuple[bool, bool]:
    """(needs ages, needs descriptors) for a pretraining method."""
    spec = method_spec(name)
    return spec.needs_ages, spec.needs_descriptors


def build_loss(method: str, temperature: float = 0.1, base_temperature: float | None = None,
               kernel: str = "rbf", sigma: float = 2.0, lambda_age: float = 1.0, lambda_anat: float = 1.0,
               normalise: str | None = "zscore", stats: Mapping | None = None, weight_map: str = "shift",
               mode: str | None = None, anat_bandwidth: float | None = None, age_mean: float = 0.0,
               age_std: float = 1.0, lambda_reg: float = LAMBDA_REG) -> nn.Module:
    """The loss module of a pretraining ``method`` (one of :data:`METHODS`) with the given options.

    ``anatcl-local`` / ``anatcl-global`` fix the similarity mode; ``anat-only`` is AnatCL with
    lambda_age = 0 (global mode unless ``mode`` is given). ``age_mean`` / ``age_std`` standardise the age
    target of ``l1-age``, ``descriptor-regression`` and ``anatcl-regression``; ``lambda_reg`` weighs the
    regression term of ``anatcl-regression`` (its contrastive term is AnatCL global).
    """
    tau = dict(temperature=temperature, base_temperature=base_temperature)
    if method == "simclr":
        return SimCLRLoss(**tau)
    if method in ("yaware", "expw", "threshold"):
        cls = {"yaware": YAwareLoss, "expw": ExpWLoss, "threshold": ThresholdLoss}[method]
        return cls(kernel=kernel, sigma=sigma, **tau)
    if method in ("descriptor-regression", "anatcl-regression"):
        regression = DescriptorRegressionLoss(regress_age=True, age_mean=age_mean, age_std=age_std)
        if method == "descriptor-regression":
            return regression
        contrastive = build_loss("anatcl-global", temperature, base_temperature, kernel, sigma, lambda_age,
                                 lambda_anat, normalise, stats, weight_map, None, anat_bandwidth)
        return AnatCLRegressionLoss(contrastive, regression, lambda_reg)
    if method in _ANATOMICAL:
        return AnatCLLoss(lambda_age=0.0 if method == "anat-only" else lambda_age, lambda_anat=lambda_anat,
                          mode=_anatomical_mode(method, mode), kernel=kernel, sigma=sigma, normalise=normalise,
                          stats=stats, weight_map=weight_map, anat_bandwidth=anat_bandwidth, **tau)
    if method == "l1-age":
        return L1AgeLoss(age_mean, age_std)
    if method == "gmv-regression":
        return DescriptorRegressionLoss()
    raise ConfigError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")


def _anatomical_mode(method: str, mode: str | None = None) -> str:
    return method.split("-")[1] if method in ("anatcl-local", "anatcl-global") else (mode or "global")


def fit_loss(cfg, ages, descriptors) -> tuple[nn.Module, dict[str, dict]]:
    """The loss of ``cfg.method`` prepared on the training subjects, and what was fitted on them.

    ``cfg`` is a :class:`~anatlearn.pretrain.config.TrainConfig`; ``ages`` (n,) and ``descriptors`` (n, K, D,
    already normalised, or None) are the training subjects'. Fitted here, deterministically in the data (a
    resumed run fits the same values): the age target's standardisation (:func:`age_stats`) and, for
    the anatomical methods with ``weight_map="kernel"``, the bandwidth: ``cfg.anat_bandwidth``, or at 0 the
    rule of :func:`~anatlearn.losses.anatomy.matched_anat_bandwidth`. Returns ``(loss, records)`` with
    records ``{file name: JSON}`` for the run directory (``anat_bandwidth.json``).
    """
    bandwidth, records = None, {}
    if cfg.method in _ANATOMICAL and cfg.weight_map == "kernel" and descriptors is not None:
        bandwidth = cfg.anat_bandwidth or matched_anat_bandwidth(descriptors, ages, _anatomical_mode(cfg.method),
                                                                 cfg.kernel, cfg.sigma)
        records["anat_bandwidth.json"] = {"anat_bandwidth": bandwidth,
                                          "rule": "given" if cfg.anat_bandwidth else "matched to the age kernel"}
    standard = age_stats(ages)
    loss = build_loss(cfg.method, temperature=cfg.temperature, base_temperature=cfg.base_temperature or None,
                      kernel=cfg.kernel, sigma=cfg.sigma, lambda_age=cfg.lambda_age, lambda_anat=cfg.lambda_anat,
                      normalise=None, weight_map=cfg.weight_map,  # descriptors arrive normalised
                      anat_bandwidth=bandwidth, age_mean=standard["mean"], age_std=standard["std"],
                      lambda_reg=cfg.lambda_reg)
    return loss, records


__all__ = ["CONTRASTIVE_METHODS", "METHODS", "METHOD_DESCRIPTORS", "Method", "REGRESSION_METHODS", "build_loss",
           "fit_loss", "method_needs", "method_spec"]
