"""Shared harness for anatlearn's benchmarks.

Every measure is a *ratio* of two implementations run side by side in the same process (ours and the
baseline a user would otherwise pick), each repeated several times; the median is reported. Benchmarks
report, they never assert.
"""

from __future__ import annotations

import gc
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Callable

import torch


@dataclass
class Row:
    """One line of benchmarks/RESULTS.md."""

    measure: str
    ours: str
    baseline: str
    ratio: str
    target: str = ""
    note: str = ""
    extra: dict = field(default_factory=dict)


def median_time(fn: Callable[[], object], repeats: int = 5, warmup: int = 1) -> float:
    """Median wall-clock seconds of ``fn()`` over ``repeats`` runs after ``warmup`` runs."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        gc.collect()
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def interleaved_samples(fns: dict[str, Callable[[], object]], repeats: int = 5,
                        warmup: int = 1) -> dict[str, list[float]]:
    """Every repeat's seconds of each function, run in interleaved order so machine noise hits all alike."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    samples: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            gc.collect()
            t0 = time.perf_counter()
            fn()
            samples[name].append(time.perf_counter() - t0)
    return samples


def interleaved_times(fns: dict[str, Callable[[], object]], repeats: int = 5, warmup: int = 1) -> dict[str, float]:
    """Median seconds of each function, run in interleaved order so machine noise hits all alike."""
    return {k: statistics.median(v) for k, v in interleaved_samples(fns, repeats, warmup).items()}


def peak_rss_of(code: str, env: dict | None = None, timeout: int = 900) -> tuple[float, str]:
    """Run ``code`` in a fresh Python process; return (peak RSS in MiB, its stdout).

    A fresh process is the honest way to measure peak memory: ru_maxrss is a high-water mark.
    """
    # VmHWM (not ru_maxrss, which Linux carries across fork+exec from the parent) is this process's own peak.
    wrapper = code + ("\nprint('__PEAK_KIB__', [l.split()[1] for l in open('/proc/self/status') "
                      "if l.startswith('VmHWM')][0])\n")
    proc = subprocess.run([sys.executable, "-c", wrapper], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark subprocess failed:\n{proc.stderr[-3000:]}")
    peak = [ln for ln in proc.stdout.splitlines() if ln.startswith("__PEAK_KIB__")][-1]
    return int(peak.split()[1]) / 1024.0, proc.stdout


def machine() -> str:
    """A one-line description of the machine the numbers were taken on."""
    dev = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{platform.machine()}, {os.cpu_count()} CPU cores, torch {torch.__version__} ({torch.get_num_threads()} threads), {dev}"


def fmt_s(seconds: float) -> str:
    return f"{seconds * 1e3:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"


# glibc malloc returns every large (>= 128 KiB..32 MiB) block to the kernel on free, so each training step or
# embedding batch re-faults its activations page by page (measured: ~1M minor faults and 45 % of a 121x145x121
# ResNet-18 step in the kernel). These two mallopt calls keep freed memory in the process for reuse instead.
MALLOC_TUNING = ("import ctypes\n_libc = ctypes.CDLL('libc.so.6')\n"
                 "_libc.mallopt(-4, 0)  # M_MMAP_MAX = 0: large blocks from the heap, not fresh mmaps\n"
                 "_libc.mallopt(-1, 2**31 - 1)  # M_TRIM_THRESHOLD: do not hand the heap top back on every free\n")


def child_timing(code: str, malloc_tuned: bool = False, timeout: int = 900) -> tuple[float, float]:
    """Run ``code`` (which prints ``__T__ <seconds>``) in a fresh process, optionally with the malloc tuning
    applied first; return (seconds, peak RSS in MiB)."""
    peak, out = peak_rss_of((MALLOC_TUNING if malloc_tuned else "") + code, timeout=timeout)
    line = [ln for ln in out.splitlines() if ln.startswith("__T__")][-1]
    return float(line.split()[1]), peak


def main(run: Callable[..., tuple[list, dict]]) -> None:
    """Run one suite on its own (``python benchmarks/bench_X.py [--quick]``) and print its rows and sections."""
    rows, sections = run(quick="--quick" in sys.argv)
    for row in rows:
        print(row)
    for title, text in sections.items():
        print(title, text, sep="\n")
