"""Every file anatlearn writes honours the umask (0644 under umask 022), through the atomic writer or not."""
from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from anatlearn.io import atomic_path, atomic_write_bytes, atomic_write_text, file_mode, make_temp_dir


def modes_under(root: Path) -> dict[str, int]:
    """Permission bits of every file and directory below ``root`` (relative path -> mode)."""
    return {str(p.relative_to(root)): stat.S_IMODE(p.stat().st_mode) for p in root.rglob("*") if not p.is_symlink()}


def wrong_modes(root: Path, umask: int) -> dict[str, str]:
    """Files whose mode is not 0666 & ~umask and directories whose mode is not 0777 & ~umask."""
    bad = {}
    for rel, mode in modes_under(root).items():
        want = (0o777 if (root / rel).is_dir() else 0o666) & ~umask
        if mode != want:
            bad[rel] = oct(mode)
    return bad


@pytest.fixture
def umask022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_atomic_writers_give_what_open_gives(tmp_path, umask022):
    atomic_write_text(tmp_path / "a.txt", "x")
    atomic_write_bytes(tmp_path / "b.bin", b"x")
    with atomic_path(tmp_path / "sub" / "c.npy") as tmp:
        tmp.write_bytes(b"y")
    (tmp_path / "plain.txt").write_text("reference: what open() gives")
    assert file_mode() == 0o644
    assert wrong_modes(tmp_path, 0o022) == {}
    assert {m for m in modes_under(tmp_path).values()} == {0o644, 0o755}


def test_other_umasks_are_honoured_too(tmp_path):
    old = os.umask(0o027)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
        d = make_temp_dir(tmp_path / "out")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o640
    assert stat.S_IMODE(d.stat().st_mode) == 0o750


def test_demo_outputs_are_readable_by_colleagues(tmp_path):
    """The quick demo writes every kind of output (cohort, checkpoints, tables, results, figures, report)."""
    out = tmp_path / "demo"
    code = "import os, sys; os.umask(0o022); from anatlearn.cli import main; sys.argv = ['anatlearn', 'demo', '--quick', '--out', sys.argv[1]]; main()"
    proc = subprocess.run([sys.executable, "-c", code, str(out)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    kinds = {Path(p).suffix for p in modes_under(out)}
    assert {".html", ".csv", ".pt", ".parquet", ".json", ".png"} <= kinds, kinds
    assert wrong_modes(out, 0o022) == {}
