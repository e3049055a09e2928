"""docs/python.md runs as written: its bash block in an empty directory, then its Python blocks in order."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "python.md"


def blocks(kind: str) -> list[str]:
    return re.findall(rf"```{kind}\n(.*?)```", DOC.read_text(), flags=re.S)


@pytest.mark.slow
def test_python_page_runs_as_written(tmp_path, monkeypatch):
    import sklearn

    bindir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}"}
    (bash,) = blocks("bash")
    proc = subprocess.run(["bash", "-euo", "pipefail", "-c", bash], cwd=tmp_path, env=env, capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    try:
        for i, code in enumerate(blocks("python")):
            exec(compile(code, f"docs/python.md[{i}]", "exec"), scope)
    finally:
        sklearn.set_config(enable_metadata_routing=False)
    assert scope["scores"].shape == (3,) and all(abs(s) < 10 for s in scope["scores"])
    gaps = scope["gaps"]
    assert gaps.notna().all() and len(gaps) == 60
    assert scope["accuracy"].shape == (3,) and ((scope["accuracy"] >= 0) & (scope["accuracy"] <= 1)).all()
