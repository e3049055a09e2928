"""Heads on top of an encoder, and the model that pairs them.

- :class:`ProjectionHead`: Linear(F, 512) - ReLU - Linear(512, 128) (SimCLR / SupCon / AnatCL); the
  contrastive losses use its L2-normalised output. Downstream tasks use the encoder's representation
  (head dropped), as in the paper.
- :class:`RegressionHead`: Linear(F, T), for the L1 brain-age baseline (T = 1) and the study's positive
  control that regresses the T = 68 regional GMVs.
- :class:`ProjectionRegressionHead`: a projection head and a separate regression head on the same
  representation (``anatcl-regression``, issue 28); the model's output is [z, r], the L2-normalised
  projection followed by the regression outputs.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn


class ProjectionHead(nn.Sequential):
    """Linear(in_features, hidden) - ReLU - Linear(hidden, out_features); state-dict keys ``0.*``, ``2.*``."""

    def __init__(self, in_features: int, hidden: int = 512, out_features: int = 128):
        super().__init__(nn.Linear(in_features, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, out_features))


class RegressionHead(nn.Linear):
    """Linear(in_features, out_features): predicts age (out_features = 1, output (B,)) or several targets
    (output (B, out_features)) from the representation."""

    def __init__(self, in_features: int, out_features: int = 1):
        super().__init__(in_features, out_features)

    def forward(self, x):
        out = super().forward(x)
        return out.squeeze(-1) if self.out_features == 1 else out


class ProjectionRegressionHead(nn.Module):
    """A :class:`ProjectionHead` (``projection``) and a :class:`RegressionHead` (``regression``) side by side:
    ``forward(h)`` returns [h_p / ||h_p||, r] with h_p the projection and r the T regression outputs."""

    def __init__(self, in_features: int, hidden: int = 512, out_features: int = 128, regression_outputs: int = 1):
        super().__init__()
        self.projection = ProjectionHead(in_features, hidden, out_features)
        self.regression = nn.Linear(in_features, regression_outputs)

    def forward(self, h):
        return torch.cat([F.normalize(self.projection(h), dim=1), self.regression(h)], dim=1)


class ContrastiveModel(nn.Module):
    """An encoder and an optional head.

    ``encode(x)`` is the raw representation (B, F) used downstream; ``project(x)`` is the L2-normalised
    projection z = h(f(x)) / ||h(f(x))|| used by the contrastive losses; ``forward = project`` (or the head's
    output for a regression head). ``model_config`` describes the architecture so checkpoints can rebuild it.
    """

    def __init__(self, encoder: nn.Module, head: nn.Module | None = None, model_config: dict | None = None):
        super().__init__()
        self.encoder = encoder
        self.head = head
        self.model_config = copy.deepcopy(model_config or {})

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def project(self, x: torch.Tensor) -> torch.Tensor:
        if isinstance(self.head, ProjectionRegressionHead):
            return F.normalize(self.head.projection(self.encoder(x)), dim=1)
        if not isinstance(self.head, ProjectionHead):
            raise TypeError("this model has no projection head (it was trained without one); use encode()")
        return F.normalize(self.head(self.encoder(x)), dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if isinstance(self.head, ProjectionHead):
            return self.project(x)
        if self.head is None:
            return self.encode(x)
        return self.head(self.encoder(x))  # a regression head, or [projection, regression] side by side
