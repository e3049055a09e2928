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

The public names are imported on first use (PEP 562 ``__getattr__``): the pretraining configuration and the
command line's help read :mod:`~anatlearn.losses.defaults` without importing torch.
"""

from __future__ import annotations

from anatlearn import lazy_exports

_PUBLIC = {
    "AnatCLRegressionLoss": "anatcl_regression",
    "ANAT_WEIGHT_MAPS": "anatomy", "anatomical_similarity": "anatomy", "anatomical_weights": "anatomy",
    "matched_anat_bandwidth": "anatomy",
    "AnatCLLoss": "contrastive", "ExpWLoss": "contrastive", "SimCLRLoss": "contrastive", "ThresholdLoss": "contrastive",
    "YAwareLoss": "contrastive",
    "WEIGHTED_METHODS": "infonce", "weighted_infonce": "infonce",
    "KERNELS": "kernels", "age_kernel": "kernels",
    "CONTRASTIVE_METHODS": "methods", "METHOD_DESCRIPTORS": "methods", "METHODS": "methods",
    "REGRESSION_METHODS": "methods", "Method": "methods", "build_loss": "methods", "fit_loss": "methods",
    "method_needs": "methods", "method_spec": "methods",
    "DescriptorRegressionLoss": "regression", "L1AgeLoss": "regression", "age_stats": "regression",
}

__getattr__, __dir__ = lazy_exports(__name__, _PUBLIC)


__all__ = sorted(_PUBLIC)
