"""Provenance: the source commit of a git checkout (and None whenever there is none), machine info."""

import os
import shutil
import subprocess

import pytest
import torch

from anatlearn import provenance as prov

needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git not installed")


def _git(cwd, *args):
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t"}
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout.strip()


def _checkout(root):
    """A git repository whose top folder holds an ``anatlearn/`` package, committed once."""
    pkg = root / "anatlearn"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("x = 1\n")
    _git(root, "init", "-q")
    _git(root, "add", "anatlearn/__init__.py")
    _git(root, "commit", "-qm", "c")
    return pkg


@needs_git
def test_source_commit_of_a_checkout_clean_then_dirty(tmp_path):
    pkg = _checkout(tmp_path / "repo")
    head = _git(tmp_path / "repo", "rev-parse", "HEAD")
    assert len(head) == 40 and prov._source_commit(str(pkg.resolve())) == head
    (pkg / "__init__.py").write_text("x = 2\n")
    prov._source_commit.cache_clear()
    assert prov.source_commit(pkg) == head + "-dirty"
    (pkg / "new.py").write_text("")  # untracked files do not count
    (pkg / "__init__.py").write_text("x = 1\n")
    prov._source_commit.cache_clear()
    assert prov.source_commit(pkg) == head


@needs_git
def test_no_commit_outside_an_anatlearn_checkout(tmp_path, monkeypatch):
    plain = tmp_path / "plain" / "anatlearn"
    plain.mkdir(parents=True)
    (plain / "__init__.py").write_text("")
    assert prov.source_commit(plain) is None  # not a git checkout
    # a package installed into a virtual environment inside another repository is not that repository's code
    _checkout(tmp_path / "project")
    nested = tmp_path / "project" / "venv" / "site-packages" / "anatlearn"
    nested.mkdir(parents=True)
    (nested / "__init__.py").write_text("")
    assert prov.source_commit(nested) is None
    assert prov.source_commit(tmp_path / "missing") is None
    pkg = _checkout(tmp_path / "nogit")
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))  # no git executable: None, no error
    prov._source_commit.cache_clear()
    assert prov.source_commit(pkg) is None


def test_provenance_records_machine_and_commit():
    p = prov.provenance(3, {"a": 1})
    assert p["seed"] == 3 and p["config"] == {"a": 1} and p["versions"]["torch"] == torch.__version__
    m = p["machine"]
    assert m["cpu_count"] == os.cpu_count() and 1 <= m["cpus_usable"] <= m["cpu_count"]
    assert m["cpu_capability"] == torch.backends.cpu.get_cpu_capability() and isinstance(m["cpu_model"], str)
    commit = p["source_commit"]
    assert commit is None or (len(commit.removesuffix("-dirty")) == 40 and commit == prov.source_commit())
