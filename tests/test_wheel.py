"""The wheel is a complete install: built here, installed into a fresh venv (torch first, as the Makefile does),
it runs ``anatlearn demo --quick`` from an empty directory; so presets and configs are inside the package."""
from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def run(cmd, **kw):
    proc = subprocess.run(cmd, capture_output=True, text=True, **kw)
    assert proc.returncode == 0, f"{cmd}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    dist = tmp_path_factory.mktemp("dist")
    run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(dist), str(ROOT)])
    (path,) = dist.glob("anatlearn-*.whl")
    return path


def test_wheel_carries_the_package_data(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert any(n.startswith("anatlearn/evaluate/presets/") and n.endswith("synthetic.toml") for n in names)
    assert any(n.endswith(".toml") and "/configs/" in n for n in names), "the pretraining configs are missing"
    meta = next(n for n in names if n.endswith("METADATA"))
    requires = [line for line in zipfile.ZipFile(wheel).read(meta).decode().splitlines() if line.startswith("Requires-Dist")]
    assert requires and not [r for r in requires if "==" in r.split(";")[0]], requires


@pytest.mark.skipif(os.environ.get("ANATLEARN_SKIP_WHEEL_INSTALL") == "1", reason="ANATLEARN_SKIP_WHEEL_INSTALL=1")
def test_fresh_venv_runs_the_quick_demo(wheel, tmp_path):
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", str(venv)])
    py = venv / "bin" / "python"
    run([str(py), "-m", "pip", "install", "-q", "torch==2.13.0"])  # first: a range would pull a CUDA build
    run([str(py), "-m", "pip", "install", "-q", "-c", str(ROOT / "constraints.txt"), str(wheel)])
    work = tmp_path / "empty"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    proc = run([str(venv / "bin" / "anatlearn"), "demo", "--quick", "--out", "demo"], cwd=work, env=env)
    assert (work / "demo" / "report.html").is_file()
    assert (work / "demo" / "results.csv").stat().st_size > 0
    where = run([str(py), "-c", "import anatlearn; print(anatlearn.__file__)"], cwd=work, env=env).stdout
    assert str(venv) in where, where  # the wheel's copy ran, not this checkout's
