"""Start-up (issue 37): the version, every help text and every usage error answer without importing the heavy
libraries. Each command imports what it needs when it runs; what the help path loads is read from sys.modules
in a fresh interpreter (the times are in benchmarks/RESULTS.md, never asserted here)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "nilearn", "ants", "pandas", "matplotlib")

# Runs in a fresh interpreter: walks the click tree of the command line (every command and sub-command, so a
# command added later is covered without editing this file), runs each invocation through anatlearn.cli.main
# and records, after each one, which heavy top-level packages sys.modules holds. Usage errors: an unknown
# option for every command, a missing required parameter where a command has one, an unknown command.
_PROBE = r"""
import contextlib, io, json, sys
import typer.main
from anatlearn import cli

HEAVY = set(sys.argv[1].split(","))
cli._register()
root = typer.main.get_command(cli.app)

def walk(cmd, path):
    yield path, cmd
    for name, sub in sorted(getattr(cmd, "commands", {}).items()):
        yield from walk(sub, [*path, name])

runs = [["--version"], ["--help"], ["no-such-command"], ["--no-such-option"]]
for path, cmd in walk(root, []):
    if not path:
        continue
    runs.append([*path, "--help"])
    runs.append([*path, "--no-such-option"])
    if hasattr(cmd, "commands"):
        runs.append(path)  # a group alone prints its help
    elif any(p.required for p in cmd.params):
        runs.append(path)  # missing required parameter: refused before the command body runs
out = []
for argv in runs:
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
        rc = cli.main(list(argv))
    loaded = sorted(m for m in HEAVY if m in sys.modules)
    out.append({"argv": argv, "rc": rc, "loaded": loaded, "text": buf.getvalue()})
print(json.dumps(out))
"""


def _probe() -> list[dict]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-c", _PROBE, ",".join(HEAVY)], capture_output=True, text=True, env=env,
                          cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.splitlines()[-1])


def test_help_version_and_usage_errors_import_no_heavy_library():
    runs = _probe()
    first = next((r for r in runs if r["loaded"]), None)
    assert first is None, f"`anatlearn {' '.join(first['argv'])}` imported {first['loaded']}"
    by_argv = {" ".join(r["argv"]): r for r in runs}
    # the walk found the commands and their sub-commands, and each invocation did what it should
    assert {"pretrain --help", "evaluate tasks --help", "version --help", "embed"} <= set(by_argv)
    assert len([a for a in by_argv if a.endswith("--help")]) >= 20
    for argv, r in by_argv.items():
        if argv.endswith("--help"):
            assert r["rc"] == 0 and "Usage:" in r["text"], argv
        elif "no-such" in argv or argv in ("embed", "pretrain --no-such-option"):
            assert r["rc"] == 2 and "anatlearn: error:" in r["text"], argv
    assert "Missing option" in by_argv["embed"]["text"]


def test_version_reports_what_the_version_command_reports():
    """--version reads the installed packages' metadata; `anatlearn version` imports them: the same versions."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    short = subprocess.run([sys.executable, "-m", "anatlearn", "--version"], capture_output=True, text=True,
                           env=env, check=True).stdout.splitlines()
    full = json.loads(subprocess.run([sys.executable, "-m", "anatlearn", "version"], capture_output=True, text=True,
                                     env=env, check=True).stdout)
    assert short[0] == f"anatlearn {full.pop('anatlearn')}"
    assert dict(item.split(" ", 1) for item in short[1].split(", ")) == full
    assert "anatlearn version" in short[2]


def test_a_command_help_builds_no_pydantic_validator():
    """typer 0.29 coerces a flag value that is not a bool through a pydantic adapter (43 ms of imports); the help
    flag defaults to False (anatlearn/cli/helpformat.py), so `anatlearn CMD --help` never builds one."""
    code = ("import contextlib, io, sys\nfrom anatlearn import cli\nwith contextlib.redirect_stdout(io.StringIO()):\n"
            "    rc = cli.main(sys.argv[1:])\nprint(rc, 'pydantic' in sys.modules)")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    for argv in (["embed", "--help"], ["evaluate", "tasks", "--help"], ["pretrain", "--help"]):
        proc = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, env=env, cwd=REPO)
        assert proc.stdout.split() == ["0", "False"], (argv, proc.stdout, proc.stderr[-2000:])
