"""Exact resume after SIGKILL: a run killed mid-epoch (twice, at different points) and resumed ends with
bit-identical weights and the same per-step losses as an uninterrupted run; `last.pt` is never broken."""

import csv
import os
import signal
import subprocess
import sys
import time

import torch

from anatlearn.models import load_checkpoint
from anatlearn.pretrain import pretrain
from anatlearn.pretrain.config import TrainConfig

ARGS = ["--method", "anatcl-global", "--width", "0.125", "--batch-size", "6", "--epochs", "2", "--workers", "0",
        "--checkpoint-every", "2", "--seed", "3", "--lr", "1e-3"]


def _kill_after_checkpoint(data, out, resume: bool, min_step: int) -> int:
    """Start the CLI, SIGKILL it as soon as last.pt holds a step >= min_step; return that step."""
    cmd = [sys.executable, "-m", "anatlearn", "pretrain", "--data", str(data), "--out", str(out), *ARGS]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd + (["--resume"] if resume else []), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    last = out / "checkpoints" / "last.pt"
    deadline = time.time() + 240
    step = -1
    while time.time() < deadline and proc.poll() is None:
        if last.exists():
            try:
                step = load_checkpoint(last)["global_step"]
            except Exception:
                step = -1
            if step >= min_step:
                proc.send_signal(signal.SIGKILL)
                break
        time.sleep(0.005)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, f"run ended before it could be killed: {proc.stderr.read()[-2000:]}"
    # never a broken checkpoint: last.pt always loads
    state = load_checkpoint(last)
    assert state["global_step"] >= min_step
    return state["global_step"]


def test_sigkill_and_resume_reproduce_the_uninterrupted_run(tiny_cohort, tmp_path):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the killed runs use 1 thread too: identical float reductions
    try:
        _check(tiny_cohort, tmp_path)
    finally:
        torch.set_num_threads(threads)


def _check(tiny_cohort, tmp_path):
    cfg = dict(data=str(tiny_cohort), method="anatcl-global", width=0.125, batch_size=6, epochs=2, num_workers=0,
               checkpoint_every=2, seed=3, lr=1e-3, progress=False)
    ref = pretrain(TrainConfig(out=str(tmp_path / "ref"), **cfg))
    killed = tmp_path / "killed"
    first = _kill_after_checkpoint(tiny_cohort, killed, resume=False, min_step=2)
    second = _kill_after_checkpoint(tiny_cohort, killed, resume=True, min_step=first + 3)
    assert second > first
    pretrain(TrainConfig(out=str(killed), **cfg), resume=True)
    a = torch.load(ref / "checkpoints" / "last.pt", weights_only=True)
    b = torch.load(killed / "checkpoints" / "last.pt", weights_only=True)
    assert a["global_step"] == b["global_step"]
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key
    rows_a = list(csv.DictReader((ref / "metrics.csv").open()))
    rows_b = list(csv.DictReader((killed / "metrics.csv").open()))
    assert [r["step"] for r in rows_a] == [r["step"] for r in rows_b]
    assert [r["loss"] for r in rows_a] == [r["loss"] for r in rows_b]
