"""The README's Python examples run as written (with file names pointed at generated data)."""

import re
from pathlib import Path

import numpy as np
import pytest
import torch

README = Path(__file__).resolve().parents[1] / "README.md"


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_has_the_examples():
    blocks = _python_blocks()
    assert len(blocks) >= 2
    assert "load_pretrained" in blocks[0] and "AnatCLLoss" in blocks[1]


def test_loss_example_runs():
    scope: dict = {}
    exec(compile(_python_blocks()[1], "README.md[loss example]", "exec"), scope)
    out = scope["out"]
    assert set(out) == {"age", "anat", "loss"}
    assert torch.isclose(out["loss"], out["age"] + out["anat"])
    assert scope["proj"].grad is not None and torch.isfinite(scope["proj"].grad).all()


def test_embedding_example_runs(tiny_downstream, tmp_path, monkeypatch):
    from anatlearn.models import build_model, default_model_config

    # A checkpoint in the released AnatCL layout ({"model": encoder.* + head.*}), random weights.
    torch.manual_seed(0)
    net = build_model(default_model_config("resnet18", 1.0))
    torch.save({"model": net.state_dict()}, tmp_path / "anatcl_global_fold0.pth")
    code = _python_blocks()[0].replace("path/to/dataset", str(tiny_downstream)).replace('"adni"', '"synthetic"')
    monkeypatch.chdir(tmp_path)
    scope = {"volumes": torch.randn(2, 1, 32, 40, 32)}
    exec(compile(code, "README.md[python example]", "exec"), scope)
    assert tuple(scope["z"].shape) == (2, 512)
    features = scope["features"]
    assert features.shape == (40, 512) and np.isfinite(features.to_numpy()).all()
    assert (tmp_path / "features.parquet").exists()
    table = scope["results"].table
    assert {"AD-like-vs-CN", "SCZ-like-vs-CN"} <= set(table["task"])
    assert table["mean"].notna().all()


def quickstart_block() -> str:
    """The first fenced bash block of the README's Quickstart section."""
    section = README.read_text().split("\n## Quickstart", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.*?)```", section, flags=re.S)[0]


@pytest.mark.slow
def test_quickstart_runs_as_written(tmp_path):
    """The Quickstart block, unchanged, in an empty directory under umask 022: every line succeeds, every
    file it uses an earlier line made, and every file it writes is readable by colleagues (0644)."""
    import os
    import stat
    import subprocess
    import sys

    block = quickstart_block()
    assert block.count("anatlearn ") >= 11 and "--resume" in block
    bindir = Path(sys.executable).parent  # the environment's `anatlearn` script
    env = {**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}", "OMP_NUM_THREADS": "2"}
    proc = subprocess.run(["bash", "-euo", "pipefail", "-c", "umask 022\n" + block], cwd=tmp_path, env=env,
                          capture_output=True, text=True)
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
    html = (tmp_path / "report.html").read_text()
    assert "AD-like-vs-CN" in html and "anatcl" in html
    assert "Brain age: brain-age" in html  # brain-age runs before the report, and the report shows it
    lines = [ln for ln in block.splitlines() if ln.startswith("anatlearn ")]
    assert lines.index(next(ln for ln in lines if ln.startswith("anatlearn brain-age"))) < \
        lines.index(next(ln for ln in lines if ln.startswith("anatlearn report")))
    modes = {str(p.relative_to(tmp_path)): stat.S_IMODE(p.stat().st_mode) for p in tmp_path.rglob("*")
             if p.is_file() and not p.is_symlink() and ".lock" not in p.name}
    assert {p: oct(m) for p, m in modes.items() if m != 0o644} == {}
