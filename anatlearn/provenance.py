"""Provenance recorded with every output: versions, seed, config, machine."""

from __future__ import annotations

import platform
import random
import sys
from datetime import datetime, timezone
from typing import Any

import numpy as np
import torch


def versions() -> dict[str, str]:
    """Versions of Python and of the libraries whose behaviour changes results."""
    import anatlearn

    out = {"anatlearn": anatlearn.__version__, "python": sys.version.split()[0], "torch": torch.__version__,
           "numpy": np.__version__}
    for name in ("sklearn", "nibabel", "nilearn", "pandas", "scipy"):
        try:
            out[name] = __import__(name).__version__
        except ImportError:  # optional at this point of the pipeline
            pass
    # plain str: torch.__version__ is a str subclass that weights-only checkpoints cannot hold
    return {k: str(v) for k, v in out.items()}


def provenance(seed: int | None = None, config: dict[str, Any] | None = None) -> dict[str, Any]:
    """A dict to store beside results: seed, config, versions, machine and UTC time."""
    return {
        "seed": seed,
        "config": config or {},
        "versions": versions(),
        "machine": {"platform": platform.platform(), "processor": platform.machine(),
                    "torch_threads": torch.get_num_threads(),
                    # the kernels torch dispatches to (AVX2, AVX512, ...): training rounds differently across
                    # them, so two machines with the same seed give different runs (docs/study.md, "Run 2")
                    "cpu_capability": torch.backends.cpu.get_cpu_capability(),
                    "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None},
        "time_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
