"""Descriptor normalisation fitted on training subjects and stored in checkpoints.

- ``zscore``: per region k and descriptor j, x~ = (x - mu_kj) / sd_kj with mu, sd from the training set.
- ``minmax``: per subject and descriptor over regions, x~ = (x - min_k x) / (max_k x - min_k x) (needs
  no fitted statistics).

``state_dict()`` holds plain lists so that ``torch.load(weights_only=True)`` can read it back; its
``mean``/``std`` are what :func:`anatlearn.losses.anatomy.anatomical_similarity` takes as ``stats``.
"""

from __future__ import annotations

import numpy as np

from anatlearn.errors import ConfigError, DataError

METHODS = (None, "none", "zscore", "minmax")


class DescriptorNormaliser:
    def __init__(self, method: str | None = "zscore"):
        if method not in METHODS:
            raise ConfigError(f"unknown descriptor normalisation {method!r}; choose zscore, minmax or none")
        self.method = None if method == "none" else method
        self.mean_: np.ndarray | None = None
        self.std_: np.ndarray | None = None

    def fit(self, x) -> "DescriptorNormaliser":
        x = _check(x)
        if self.method == "zscore":
            if x.shape[0] < 2:
                raise DataError("zscore normalisation needs at least 2 training subjects")
            self.mean_ = x.mean(axis=0)
            self.std_ = np.maximum(x.std(axis=0), 1e-8)
        return self

    def transform(self, x) -> np.ndarray:
        x = _check(x)
        if self.method is None:
            return x.astype(np.float32)
        if self.method == "minmax":
            lo, hi = x.min(axis=1, keepdims=True), x.max(axis=1, keepdims=True)
            return ((x - lo) / np.maximum(hi - lo, 1e-8)).astype(np.float32)
        if self.mean_ is None:
            raise DataError("DescriptorNormaliser.transform called before fit")
        if x.shape[1:] != self.mean_.shape:
            raise DataError(f"descriptors have (K, D) = {x.shape[1:]} but the normaliser was fitted on {self.mean_.shape}")
        return ((x - self.mean_) / self.std_).astype(np.float32)

    @property
    def stats(self) -> dict | None:
        """``{"mean", "std"}`` for the loss, or None when the method needs no fitted statistics."""
        if self.method != "zscore" or self.mean_ is None:
            return None
        return {"mean": self.mean_.tolist(), "std": self.std_.tolist()}

    def state_dict(self) -> dict:
        return {"method": self.method or "none", **(self.stats or {})}

    @classmethod
    def from_state_dict(cls, state: dict) -> "DescriptorNormaliser":
        norm = cls(state.get("method"))
        if norm.method == "zscore":
            norm.mean_ = np.asarray(state["mean"], dtype=np.float64)
            norm.std_ = np.asarray(state["std"], dtype=np.float64)
        return norm


def _check(x) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 3:
        raise DataError(f"descriptors must be (n subjects, K regions, D descriptors), got shape {x.shape}")
    if not np.isfinite(x).all():
        bad = np.unique(np.nonzero(~np.isfinite(x))[0])[:5]
        raise DataError(f"descriptors contain NaN/inf for subjects at rows {bad.tolist()}")
    return x
