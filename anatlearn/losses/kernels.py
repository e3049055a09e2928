"""Age kernels: similarity weights between subjects from their age gap (y-Aware, Dufumier et al., MICCAI
2021; used by AnatCL, Barbano et al. 2024).

With dy = y_a - y_b:

- ``rbf``:      w = exp(-dy^2 / (2 sigma^2))                      (1 on the diagonal)
- ``gaussian``: w = exp(-dy^2 / (2 sigma^2)) / (sqrt(2 pi) sigma)  (the normalised density)
- ``cauchy``:   w = 1 / (sigma dy^2 + 1)
"""

from __future__ import annotations

import math

import torch

from anatlearn.errors import ConfigError, DataError

KERNELS = ("rbf", "gaussian", "cauchy")


def age_kernel(ages, kernel: str = "rbf", sigma: float = 2.0) -> torch.Tensor:
    """Pairwise age-similarity matrix (B, B) for a vector of B ages (years).

    Parameters
    ----------
    ages : tensor or array-like of shape (B,)
    kernel : ``"rbf"``, ``"gaussian"`` or ``"cauchy"`` (formulas in the module docstring).
    sigma : kernel width in years (> 0); the released AnatCL weights use rbf with sigma = 2.
    """
    if kernel not in KERNELS:
        raise ConfigError(f"unknown age kernel {kernel!r}; choose one of {', '.join(KERNELS)}")
    if not (isinstance(sigma, (int, float)) and math.isfinite(sigma) and sigma > 0):
        raise ConfigError(f"kernel sigma must be a positive number, got {sigma!r}")
    y = torch.as_tensor(ages)
    if not torch.is_floating_point(y):
        y = y.to(torch.get_default_dtype())
    if y.ndim != 1:
        raise DataError(f"ages must be a 1-D vector of length B, got shape {tuple(y.shape)}")
    if not torch.isfinite(y).all():
        raise DataError("ages contain NaN or inf")
    dy = y[:, None] - y[None, :]
    if kernel == "cauchy":
        return 1.0 / (sigma * dy**2 + 1.0)
    w = torch.exp(-(dy**2) / (2.0 * sigma**2))
    if kernel == "gaussian":
        w = w / (math.sqrt(2.0 * math.pi) * sigma)
    return w
