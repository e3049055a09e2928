"""Provenance recorded with every output: versions, source commit, seed, config, machine."""

from __future__ import annotations

import functools
import os
import platform
import random
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
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


def source_commit(package_dir: str | os.PathLike | None = None) -> str | None:
    """The git commit of the anatlearn source (``-dirty`` appended when tracked files differ from it), or None
    when the package is not the ``anatlearn/`` folder of a git checkout (an installed wheel, no git, any git
    error). ``package_dir`` defaults to this package's folder."""
    if package_dir is None:
        package_dir = Path(__file__).parent
    return _source_commit(str(Path(package_dir).resolve()))


@functools.lru_cache(maxsize=4)
def _source_commit(package_dir: str) -> str | None:
    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", *args], cwd=package_dir, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):  # no git, no such folder, a hung repository
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    top = git("rev-parse", "--show-toplevel")
    # a wheel installed into a virtual environment inside some other repository is not that repository's code
    if top is None or Path(top).resolve() / Path(package_dir).name != Path(package_dir) \
            or not (Path(package_dir) / "__init__.py").is_file():
        return None
    head = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    if head is None or status is None:
        return None
    return head + ("-dirty" if status else "")


def _cpu_model() -> str:
    """The CPU's model name (Linux: /proc/cpuinfo), else what the platform reports ("" when unknown)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def machine() -> dict[str, Any]:
    """The machine a result was computed on: platform, CPU, how many cores, the kernels torch uses, GPU."""
    return {"platform": platform.platform(), "processor": platform.machine(), "cpu_model": _cpu_model(),
            "cpu_count": os.cpu_count(),
            "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            # the kernels torch dispatches to (AVX2, AVX512, ...): training rounds differently across them,
            # so two machines with the same seed give different runs (docs/study.md, "Run 2")
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}


def provenance(seed: int | None = None, config: dict[str, Any] | None = None) -> dict[str, Any]:
    """A dict to store beside results: seed, config, versions, source commit, machine and UTC time."""
    return {
        "seed": seed,
        "config": config or {},
        "versions": versions(),
        "source_commit": source_commit(),
        "machine": machine(),
        "time_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
