"""Cohort scale: ``anatlearn embed`` under torchrun (2 processes) against one process, peak memory per rank
as the cohort grows, and the merge of 50,000 x 512 features from part files (docs/scale.md).

Throughput: the whole ``anatlearn embed`` command, start-up and merge included, in fresh processes, on the
same synthetic cohort and seeded ResNet-18 weights: 1 process with 2 intra-op threads (what a user runs
today), 1 process with 1 thread (the per-core reference), and ``torchrun --nproc-per-node 2`` with 1 thread
per rank (torchrun's default). Peak RSS: VmHWM of each rank, read by a small wrapper around the CLI's
``main``. Merge: synthetic float32 chunks of 64 rows written as the embedding writes them, then
:func:`anatlearn.embed.sharding.merge_parts` against writing the same in-memory table (the baseline).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from common import Row, fmt_s

from anatlearn.models import build_model, default_model_config, save_checkpoint

ROOT = Path(__file__).resolve().parents[1]
WRAPPER = """import os, sys
from anatlearn.cli import main
code = main(sys.argv[1:])
peak = [l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')][0]
with open(os.path.join(os.environ['PEAK_DIR'], 'rank%s.kib' % os.environ.get('RANK', '0')), 'w') as fh:
    fh.write(peak)
sys.exit(code)
"""


def _checkpoint(path: Path, width: float) -> Path:
    torch.manual_seed(0)
    model = build_model(default_model_config("resnet18", width=width)).eval()
    save_checkpoint(path, {"format": "anatlearn", "format_version": 1, "model": model.state_dict(),
                           "model_config": model.model_config})
    return path


def _embed(tmp: Path, weights: Path, data: Path, nproc: int, threads: int, tag: str,
           extra: tuple[str, ...] = ()) -> tuple[float, list[float]]:
    """Wall seconds of one ``anatlearn embed`` command and the peak RSS (MiB) of each of its processes."""
    peaks = tmp / f"peaks-{tag}"
    peaks.mkdir(exist_ok=True)
    for f in peaks.iterdir():
        f.unlink()
    wrapper = tmp / "embed_with_peak.py"
    wrapper.write_text(WRAPPER)
    out = tmp / f"features-{tag}.parquet"
    args = ["embed", "--weights", str(weights), "--data", str(data), "--out", str(out), *extra]
    if nproc == 1:
        cmd = [sys.executable, str(wrapper), *args]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
               str(wrapper), *args]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PEAK_DIR": str(peaks), "PYTHONPATH": str(ROOT)}
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=3600)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"embed failed:\n{proc.stderr[-3000:]}")
    out.unlink()
    return seconds, [int(p.read_text()) / 1024 for p in sorted(peaks.iterdir())]


def throughput(tmp: Path, quick: bool) -> tuple[list[Row], str]:
    from anatlearn.synthetic import generate_cohort

    n, shape, repeats = (16, (32, 40, 32), 1) if quick else (96, (61, 73, 61), 2)
    chunk = n // 12  # 12 chunks: 6 per rank (the default 64 would give the 2 ranks 64 and 32 subjects)
    data = generate_cohort(tmp / "cohort", n, shape, seed=0, n_sites=2)
    weights = _checkpoint(tmp / "w.pt", 1.0)
    variants = {"1 process, 2 threads": (1, 2), "torchrun 2 processes x 1 thread": (2, 1),
                "1 process, 1 thread": (1, 1)}
    times: dict[str, list[float]] = {k: [] for k in variants}
    peaks: dict[str, list[float]] = {}
    for _ in range(repeats):  # interleaved: machine noise hits every variant alike
        for name, (nproc, threads) in variants.items():
            s, p = _embed(tmp, weights, data, nproc, threads, name.split()[0] + str(nproc) + str(threads),
                          ("--chunk-size", str(chunk)))
            times[name].append(s)
            peaks[name] = p
    med = {k: statistics.median(v) for k, v in times.items()}
    base = med["1 process, 2 threads"]
    lines = [f"| variant | wall time (median of {repeats}) | volumes/s | vs 1 process, 2 threads | peak RSS per process (MiB) |",
             "|---|---|---|---|---|"]
    for name, s in med.items():
        lines.append(f"| {name} | {fmt_s(s)} | {n / s:.1f} | {base / s:.2f}x | "
                     f"{', '.join(f'{p:.0f}' for p in peaks[name])} |")
    row = Row(f"embed {n} x {'x'.join(map(str, shape))} (ResNet-18): torchrun 2 ranks vs 1 process",
              f"{n / med['torchrun 2 processes x 1 thread']:.1f} vol/s", f"{n / base:.1f} vol/s",
              f"{base / med['torchrun 2 processes x 1 thread']:.2f}x", "",
              "whole command incl. start-up; 2 cores: compute-bound either way")
    return [row], "\n".join(lines) + (
        f"\n\nThe whole `anatlearn embed` command (start-up, TorchScript tracing, embedding, merge) on {n} synthetic "
        f"{'x'.join(map(str, shape))} volumes, width-1 ResNet-18, batches of 8, chunks of {chunk} (12 chunks, "
        f"6 per rank), fresh processes each time. "
        f"CPU count: {os.cpu_count()}.")


def memory_vs_n(tmp: Path, quick: bool) -> tuple[list[Row], str]:
    from anatlearn.synthetic import generate_cohort

    sizes = (32, 64) if quick else (250, 1000, 4000)
    weights = _checkpoint(tmp / "w-small.pt", 0.125)
    lines = ["| N subjects | rank 0 peak RSS (MiB) | rank 1 peak RSS (MiB) | wall time |", "|---|---|---|---|"]
    first = last = None
    for n in sizes:
        data = generate_cohort(tmp / f"mem-{n}", n, (32, 40, 32), seed=0, n_sites=2)
        s, peaks = _embed(tmp, weights, data, 2, 1, f"mem{n}")
        lines.append(f"| {n} | {peaks[0]:.0f} | {peaks[1]:.0f} | {fmt_s(s)} |")
        first = first or peaks
        last = peaks
    row = Row(f"embed peak RSS per rank, N {sizes[0]} -> {sizes[-1]} (torchrun 2 ranks)",
              f"{last[0]:.0f} / {last[1]:.0f} MiB", f"{first[0]:.0f} / {first[1]:.0f} MiB",
              f"{last[0] / first[0]:.2f}x", "flat in N", "rank 0 / rank 1 at the largest vs the smallest N")
    return [row], "\n".join(lines) + (
        "\n\n32x40x32 volumes, width-0.125 ResNet-18 (64 features), `torchrun --nproc-per-node 2`, chunks of 64. "
        "Each rank holds one batch of volumes and one chunk of features; rank 0 also holds the merged N x F table "
        "(N x 64 x 8 bytes: 2 MiB at N = 4,000).")


def merge(tmp: Path, quick: bool) -> tuple[list[Row], str]:
    from anatlearn.embed.sharding import ChunkPlan, merge_parts, write_chunk
    from anatlearn.features import make_feature_table, write_features

    n, f = (2_000, 512) if quick else (50_000, 512)
    plan = ChunkPlan(n, 64)
    ids = [f"sub{i:06d}" for i in range(n)]
    feats = np.random.default_rng(0).standard_normal((n, f)).astype(np.float32)
    parts = tmp / "merge.parquet.parts"
    parts.mkdir()
    t0 = time.perf_counter()
    for k in range(plan.n_chunks):
        r = plan.rows(k)
        write_chunk(parts, k, ids[r.start:r.stop], feats[r.start:r.stop])
    write_parts = time.perf_counter() - t0
    lines = ["| output | merge from parts (read + check + write) | write of the same table from memory | merge / write |",
             "|---|---|---|---|"]
    rows = []
    # CSV (text, %.9g per value) took ~13x longer than parquet in the quick run; parquet is the default
    for suffix in (".parquet",) if not quick else (".parquet", ".csv"):
        out = tmp / f"merged{suffix}"
        t0 = time.perf_counter()
        merge_parts(parts, plan, ids, {"bench": True}, out)
        t_merge = time.perf_counter() - t0
        t0 = time.perf_counter()
        write_features(make_feature_table(feats, ids, {"bench": True}), tmp / f"direct{suffix}")
        t_direct = time.perf_counter() - t0
        lines.append(f"| {suffix} | {fmt_s(t_merge)} | {fmt_s(t_direct)} | {t_merge / t_direct:.2f}x |")
        rows.append(Row(f"merge {n:,} x {f} features from {plan.n_chunks} parts -> {suffix}", fmt_s(t_merge),
                        f"{fmt_s(t_direct)} (write from memory)", f"{t_direct / t_merge:.2f}x", "",
                        "single run; ratio < 1 = merge slower than a plain write"))
    size = sum(p.stat().st_size for p in parts.iterdir()) / 2**20
    return rows, "\n".join(lines) + (
        f"\n\nSynthetic float32 rows, chunks of 64 ({plan.n_chunks} files, {size:.0f} MiB, written in "
        f"{fmt_s(write_parts)}). The merge reads every chunk, checks its ids against the plan, and writes the "
        "feature table atomically (float64, as every feature table). One run each.")


def run(quick: bool = False) -> tuple[list[Row], dict[str, str]]:
    rows, sections = [], {}
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        tmp = Path(tmp)
        for title, fn in (("Cohort scale: embedding throughput, torchrun 2 ranks vs 1 process", throughput),
                          ("Cohort scale: peak RSS per rank vs N", memory_vs_n),
                          ("Cohort scale: merging part files", merge)):
            r, text = fn(tmp, quick)
            rows += r
            sections[title] = text
    return rows, sections


if __name__ == "__main__":
    from common import main

    main(run)
