"""``anatcl-regression`` (issue 28): the AnatCL global loss on the projection head plus lambda_reg times the
descriptor-and-age regression on a separate linear head, so the contrastive geometry and the regression
share only the encoder:

    L = L_AnatCL(z) + lambda_reg * (1/(B T)) sum_n sum_t (r(x_n)_t - g_nt)^2

with z = h(f(x)) / ||h(f(x))|| the L2-normalised projections (Barbano et al. 2024; :class:`AnatCLLoss`),
r(x) = W f(x) + b the regression head's outputs and g the targets of ``descriptor-regression``
(:class:`~anatlearn.losses.regression.DescriptorRegressionLoss` with age). The model's head
(:class:`~anatlearn.models.heads.ProjectionRegressionHead`) returns both side by side, [z, r], so the loss is
called like every other one, ``loss(outputs, ages, descriptors)``, with ``outputs`` (B, V, P + T).
"""

from __future__ import annotations

import torch
from torch import nn

from anatlearn.errors import ConfigError, DataError
from anatlearn.losses.contrastive import AnatCLLoss
from anatlearn.losses.defaults import LAMBDA_REG
from anatlearn.losses.regression import DescriptorRegressionLoss


class AnatCLRegressionLoss(nn.Module):
    """L = ``contrastive``(outputs[..., :projection_dim]) + lambda_reg * ``regression``(outputs[..., projection_dim:]).

    Returns the AnatCL terms (``age``, ``anat``), ``contrastive``, ``regression`` and the total ``loss``."""

    needs_ages = True
    needs_descriptors = True

    def __init__(self, contrastive: AnatCLLoss, regression: DescriptorRegressionLoss, lambda_reg: float = LAMBDA_REG,
                 projection_dim: int = 128):
        super().__init__()
        if not (lambda_reg >= 0 and lambda_reg < float("inf")):
            raise ConfigError(f"lambda_reg must be a non-negative number, got {lambda_reg!r}")
        self.contrastive, self.regression = contrastive, regression
        self.lambda_reg, self.projection_dim = float(lambda_reg), int(projection_dim)

    def forward(self, outputs: torch.Tensor, ages=None, descriptors=None) -> dict:
        if outputs.shape[-1] <= self.projection_dim:
            raise DataError(f"outputs have {outputs.shape[-1]} values per view; anatcl-regression needs the "
                            f"{self.projection_dim} projections followed by the regression outputs")
        projections, predictions = outputs[..., :self.projection_dim], outputs[..., self.projection_dim:]
        terms = self.contrastive(projections, ages, descriptors)
        regression = self.regression(predictions, ages, descriptors)["loss"]
        return {**{k: v for k, v in terms.items() if k != "loss"}, "contrastive": terms["loss"],
                "regression": regression, "loss": terms["loss"] + self.lambda_reg * regression}


__all__ = ["AnatCLRegressionLoss", "LAMBDA_REG"]
