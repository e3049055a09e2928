"""Ctrl-C or SIGTERM during pretraining: one line that says what is safe on disk and the exact command that
continues; that command alone (`--out RUN --resume`, no other option) finishes the run from its stored config."""

import os
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest

from anatlearn.models import load_checkpoint

ARGS = ["--method", "yaware", "--width", "0.125", "--batch-size", "6", "--epochs", "40", "--workers", "0",
        "--seed", "3"]


REPO = str(Path(__file__).resolve().parents[2])  # the checkout under test, also from another directory


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_names_the_resume_command_and_it_finishes_the_run(tiny_cohort, tmp_path, sig):
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    # a terminal's Ctrl-C: SIGINT at its default even when the suite itself runs as a background job (a shell
    # starts those with SIGINT ignored, and a child inherits that)
    # started with relative paths from tmp_path; resumed below from the repository's directory: the printed
    # command names the run by its absolute path and the run stored where its data is
    proc = subprocess.Popen([sys.executable, "-m", "anatlearn", "pretrain", "--data", os.path.relpath(tiny_cohort, tmp_path),
                             "--out", "run", *ARGS], env={**env, "PYTHONPATH": os.pathsep.join([REPO, env.get("PYTHONPATH", "")])}, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    first = out / "checkpoints" / "last.pt"  # the resume point: written after epoch-0001.pt
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None and not first.exists():
        time.sleep(0.01)
    assert proc.poll() is None, f"the run ended before it could be interrupted: {proc.stderr.read()[-2000:]}"
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    lines = [line for line in err.splitlines() if line.startswith("anatlearn:")]
    assert len(lines) == 1 and "Traceback" not in err, err[-2000:]
    assert "pretraining interrupted" in lines[0] and "last.pt" in lines[0]
    assert lines[0].endswith(f"continue with: anatlearn pretrain --out {out} --resume")
    done = load_checkpoint(out / "checkpoints" / "last.pt")["epoch"]
    assert 1 <= done < 40
    stored = tomllib.loads((out / "config.toml").read_text())
    assert stored["data"] == os.path.abspath(tiny_cohort) and stored["out"] == str(out)  # absolute, as run

    # the printed command, as printed (only --epochs lowered so that the test ends soon), finishes the run
    resumed = subprocess.run([sys.executable, "-m", "anatlearn", "pretrain", "--out", str(out), "--resume",
                              "--epochs", str(done + 1)], env=env, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"resuming {out} at epoch {done + 1} of {done + 1}" in resumed.stderr
    state = load_checkpoint(out / "checkpoints" / "last.pt")
    assert state["epoch"] == done + 1 and state["config"]["method"] == "yaware" and state["config"]["width"] == 0.125
    # the run's stored config now asks for what it has: `--resume` alone says so and trains nothing
    again = subprocess.run([sys.executable, "-m", "anatlearn", "pretrain", "--out", str(out), "--resume"], env=env,
                           capture_output=True, text=True)
    assert again.returncode == 0 and f"{out} is complete ({done + 1} epochs trained)" in again.stderr
