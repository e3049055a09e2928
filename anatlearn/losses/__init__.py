"""Every pretraining loss, one per module, each with its formula in the docstring (docs/losses.md):

- :mod:`~anatlearn.losses.infonce`      the weighted InfoNCE (y-Aware, ExpW, threshold forms)
- :mod:`~anatlearn.losses.contrastive`  SimCLR, y-Aware, ExpW, threshold, AnatCL
- :mod:`~anatlearn.losses.regression`   L1 brain-age and descriptor regression (GMV; every descriptor and age)
- :mod:`~anatlearn.losses.anatcl_regression`  AnatCL global plus lambda_reg x descriptor regression
- :mod:`~anatlearn.losses.kernels`      age kernels
- :mod:`~anatlearn.losses.anatomy`      anatomical similarity and weights from FreeSurfer descriptors
- :mod:`~anatlearn.losses.methods`      the registry: METHODS, what each needs, build_loss, fit_loss
- :mod:`~anatlearn.losses.target_check` what a weighting asks the encoder for (``anatlearn weights``)

Every loss is called ``loss(outputs, ages=None, descriptors=None) -> dict``.
"""

from anatlearn.losses.anatcl_regression import AnatCLRegressionLoss
from anatlearn.losses.anatomy import ANAT_WEIGHT_MAPS, anatomical_similarity, anatomical_weights, matched_anat_bandwidth
from anatlearn.losses.contrastive import AnatCLLoss, ExpWLoss, SimCLRLoss, ThresholdLoss, YAwareLoss
from anatlearn.losses.infonce import WEIGHTED_METHODS, weighted_infonce
from anatlearn.losses.kernels import KERNELS, age_kernel
from anatlearn.losses.methods import (CONTRASTIVE_METHODS, METHOD_DESCRIPTORS, METHODS, REGRESSION_METHODS, Method,
                                      build_loss, fit_loss, method_needs, method_spec)
from anatlearn.losses.regression import DescriptorRegressionLoss, L1AgeLoss, age_stats

__all__ = ["ANAT_WEIGHT_MAPS", "AnatCLLoss", "AnatCLRegressionLoss", "CONTRASTIVE_METHODS", "DescriptorRegressionLoss", "ExpWLoss", "KERNELS",
           "L1AgeLoss", "METHODS", "METHOD_DESCRIPTORS", "Method", "REGRESSION_METHODS", "SimCLRLoss", "ThresholdLoss",
           "WEIGHTED_METHODS", "YAwareLoss", "age_kernel", "age_stats", "anatomical_similarity", "anatomical_weights",
           "build_loss", "fit_loss", "matched_anat_bandwidth", "method_needs", "method_spec", "weighted_infonce"]
