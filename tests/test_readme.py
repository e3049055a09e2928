"""The README's Python examples run as written (with file names pointed at generated data)."""

import re
from pathlib import Path

import numpy as np
import pytest
import torch

README = Path(__file__).resolve().parents[1] / "README.md"


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def _block(word: str) -> str:
    (block,) = [b for b in _python_blocks() if word in b]
    return block


def run_python_examples(directory, monkeypatch) -> list[dict]:
    """Every Python block of the README except the loss example, as written, in ``directory``; their scopes."""
    import sklearn

    monkeypatch.chdir(directory)
    scopes = []
    try:
        for i, code in enumerate(b for b in _python_blocks() if "AnatCLLoss" not in b):
            scopes.append({})
            exec(compile(code, f"README.md[python block {i}]", "exec"), scopes[-1])
    finally:
        sklearn.set_config(enable_metadata_routing=False)
    return scopes


def test_readme_has_the_examples():
    blocks = _python_blocks()
    assert len(blocks) == 3
    assert "Encoder" in blocks[0] and "load_pretrained" in blocks[1] and "AnatCLLoss" in blocks[2]


def test_loss_example_runs():
    scope: dict = {}
    exec(compile(_block("AnatCLLoss"), "README.md[loss example]", "exec"), scope)
    out = scope["out"]
    assert set(out) == {"age", "anat", "loss"}
    assert torch.isclose(out["loss"], out["age"] + out["anat"])
    assert scope["proj"].grad is not None and torch.isfinite(scope["proj"].grad).all()


def test_python_examples_run_on_stand_ins(tiny_cohort, tiny_downstream, tmp_path, monkeypatch):
    """The examples as written, in a directory laid out as the Quickstart leaves it (its small cohorts and a
    width-0.125 checkpoint in their places); the slow test below runs them after the Quickstart itself."""
    from anatlearn.models import build_model, default_model_config, save_checkpoint

    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "healthy").symlink_to(tiny_cohort)
    (tmp_path / "data" / "downstream").symlink_to(tiny_downstream)
    torch.manual_seed(0)
    net = build_model(default_model_config("resnet18", 0.125))
    save_checkpoint(tmp_path / "runs/anatcl/checkpoints/last.pt", {"format": "anatlearn", "format_version": 1,
                                                                   "model": net.state_dict(),
                                                                   "model_config": net.model_config, "seed": 0})
    estimators, tensors = run_python_examples(tmp_path, monkeypatch)
    check_examples(estimators, tensors, n_healthy=48, n_downstream=40)


def check_examples(estimators: dict, tensors: dict, n_healthy: int, n_downstream: int) -> None:
    assert estimators["features"].shape == (n_healthy, 64) and estimators["scores"].shape == (5,)
    assert np.isfinite(estimators["scores"]).all()
    assert isinstance(estimators["brain_age"].informative_, bool)
    assert estimators["down"].shape == (n_downstream, 64)
    table = estimators["results"].table
    assert {"AD-like-vs-CN", "SCZ-like-vs-CN"} <= set(table["task"]) and table["mean"].notna().all()
    assert estimators["accuracy"].shape == (3,) and ((estimators["accuracy"] >= 0) & (estimators["accuracy"] <= 1)).all()
    assert tuple(tensors["z"].shape) == (2, 64)


def quickstart_block() -> str:
    """The first fenced bash block of the README's Quickstart section."""
    section = README.read_text().split("\n## Quickstart", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.*?)```", section, flags=re.S)[0]


@pytest.fixture(scope="module")
def quickstart(tmp_path_factory):
    """The Quickstart block, unchanged, in an empty directory under umask 022: (directory, the process)."""
    import os
    import subprocess
    import sys

    block = quickstart_block()
    assert block.count("anatlearn ") >= 11 and "--resume" in block
    tmp_path = tmp_path_factory.mktemp("quickstart")
    bindir = Path(sys.executable).parent  # the environment's `anatlearn` script
    env = {**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}", "OMP_NUM_THREADS": "2"}
    proc = subprocess.run(["bash", "-euo", "pipefail", "-c", "umask 022\n" + block], cwd=tmp_path, env=env,
                          capture_output=True, text=True)
    return tmp_path, proc


@pytest.mark.slow
def test_quickstart_runs_as_written(quickstart):
    """Every line succeeds, every file it uses an earlier line made, and every file it writes is readable by
    colleagues (0644)."""
    import json
    import stat

    tmp_path, proc = quickstart
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr and "anatlearn: error" not in proc.stderr
    assert "runs/anatcl is complete (4 epochs trained)" in proc.stderr  # the resume line says what it did
    # the counts the Quickstart's text states are the ones the commands print
    text = README.read_text().split("\n## Quickstart", 1)[1].split("\n## ", 1)[0]
    trained = re.search(r"training on (\d+) subjects of split 'train'", proc.stderr)
    assert trained and f"training on {trained.group(1)} subjects of split 'train'" in text, proc.stderr[-2000:]
    assert f"on the {trained.group(1)} subjects of the `train` split" in text
    assert "wrote 160 subjects to data/healthy" in proc.stdout and "160 healthy subjects" in text
    reference = re.search(r"reference: (\d+) subjects", proc.stdout)
    assert reference and f"fitted on the {reference.group(1)}" in text
    for path in ["report.html", "features/healthy.parquet", "features/downstream.parquet", "results/openbhb/results.json",
                 "results/tasks/results.json", "results/anatomy/results.json", "results/brain-age/brain_age.tsv",
                 "runs/anatcl/checkpoints/last.pt"]:
        assert (tmp_path / path).is_file(), path
    # the 4-epoch encoder's age model explains little of age: brain-age says so first, and in its results
    brain_age = json.loads((tmp_path / "results/brain-age/brain_age.json").read_text())
    assert brain_age["reference"]["informative"] is False and "uninformative" in brain_age["uninformative"]
    assert "\nUNINFORMATIVE MODEL: the age model is uninformative" in "\n" + proc.stdout
    html = (tmp_path / "report.html").read_text()
    assert "AD-like-vs-CN" in html and "anatcl" in html
    assert "Brain age: brain-age" in html  # brain-age runs before the report, and the report shows it
    lines = [ln for ln in quickstart_block().splitlines() if ln.startswith("anatlearn ")]
    assert lines.index(next(ln for ln in lines if ln.startswith("anatlearn brain-age"))) < \
        lines.index(next(ln for ln in lines if ln.startswith("anatlearn report")))
    modes = {str(p.relative_to(tmp_path)): stat.S_IMODE(p.stat().st_mode) for p in tmp_path.rglob("*")
             if p.is_file() and not p.is_symlink() and ".lock" not in p.name}
    assert {p: oct(m) for p, m in modes.items() if m != 0o644} == {}


@pytest.mark.slow
def test_python_examples_run_after_the_quickstart(quickstart, monkeypatch):
    tmp_path, proc = quickstart
    assert proc.returncode == 0, proc.stderr[-3000:]
    estimators, tensors = run_python_examples(tmp_path, monkeypatch)
    check_examples(estimators, tensors, n_healthy=160, n_downstream=120)
    assert estimators["brain_age"].informative_ is False  # the 4-epoch encoder, as the comment says
