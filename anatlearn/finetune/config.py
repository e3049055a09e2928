"""The settings of a fine-tuning run (defaults for small cohorts; docs/finetune.md explains each).

Every field that changes what is computed is written to the run's ``config.json``; a run directory is
resumed only with the same settings.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from anatlearn.errors import ConfigError

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
KINDS = ("classification", "regression")


@dataclass(frozen=True)
class FinetuneConfig:
    """Nested cross-validation of an encoder fine-tuned end to end with a fresh linear head.

    - ``folds``, ``seed``: the outer stratified folds, built by :func:`anatlearn.evaluate.make_splits`
      exactly as ``evaluate tasks`` builds its repeat 0 (the seed of repeat r is seed + r), so a linear
      probe and a fine-tune are paired fold by fold.
    - ``inner_folds``: the inner validation split is the first fold of a stratified ``inner_folds``-fold
      split of the outer-training part (1/inner_folds of it), for early stopping and the learning rate.
    - ``lr_grid``: learning rates of the head tried in turn; the one with the lowest validation loss wins.
    - ``warmup_epochs``: epochs training only the head, encoder frozen (linear probing then fine-tuning,
      LP-FT: Kumar et al. 2022, "Fine-Tuning can Distort Pretrained Features and Underperform
      Out-of-Distribution", ICLR).
    - ``layer_decay``: the encoder's stage at depth d below the head learns at lr * layer_decay^d
      (layer-wise learning-rate decay: Howard & Ruder 2018, ULMFiT; Clark et al. 2020, ELECTRA).
    - ``epochs`` (at most, warm-up included), ``patience`` (epochs without a better validation loss after
      the warm-up before stopping).
    """
    folds: int = 5
    seed: int = 0
    inner_folds: int = 5
    lr_grid: tuple = (1e-4, 1e-3)
    warmup_epochs: int = 2
    epochs: int = 30
    patience: int = 5
    layer_decay: float = 0.7
    weight_decay: float = 1e-2
    batch_size: int = 8
    augment: tuple = ()
    class_balanced: bool = True
    precision: str = "auto"
    model: str = "resnet18"  # the architecture of --weights random
    width: float = 1.0

    def validate(self) -> "FinetuneConfig":
        ints = {"folds": 2, "inner_folds": 2, "epochs": 1, "patience": 1, "batch_size": 2, "warmup_epochs": 0}
        for name, low in ints.items():
            value = getattr(self, name)
            if not isinstance(value, int) or value < low:
                raise ConfigError(f"`{name}` must be an integer >= {low}, got {value!r}")
        if self.warmup_epochs >= self.epochs:
            raise ConfigError(f"`warmup_epochs` ({self.warmup_epochs}) must be below `epochs` ({self.epochs})")
        if not self.lr_grid or not all(isinstance(v, (int, float)) and math.isfinite(v) and v > 0
                                       for v in self.lr_grid):
            raise ConfigError(f"`lr_grid` must hold positive learning rates, got {self.lr_grid!r}")
        if not 0 < self.layer_decay <= 1:
            raise ConfigError(f"`layer_decay` must be in (0, 1], got {self.layer_decay!r}")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"`precision` must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        return self

    def to_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, values: dict) -> "FinetuneConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ConfigError(f"unknown fine-tuning settings {sorted(unknown)}")
        return cls(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in values.items()})
