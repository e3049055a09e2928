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
