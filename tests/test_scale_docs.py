"""scripts/slurm_prep.sh, scripts/slurm_embed.sh and docs/scale.md call only options that the commands have."""

import re
import subprocess
from pathlib import Path

import pytest
import typer.main

from anatlearn.cli import _register, app

ROOT = Path(__file__).resolve().parents[1]
FILES = ["scripts/slurm_prep.sh", "scripts/slurm_embed.sh", "docs/scale.md"]


def _options(command: str) -> set[str]:
    _register()
    cmd = typer.main.get_command(app).commands[command]
    return {o for p in cmd.params for o in (*p.opts, *p.secondary_opts) if o.startswith("-")}


def _invocations(text: str):
    """(command, options) of every `anatlearn prep|embed ...` call, continuation lines joined."""
    text = text.replace("\\\n", " ")
    for m in re.finditer(r"anatlearn (prep|embed)\b([^\n`|;]*)", text):
        yield m.group(1), set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", m.group(2)))


@pytest.mark.parametrize("name", FILES)
def test_documented_commands_exist(name):
    calls = list(_invocations((ROOT / name).read_text()))
    assert calls, f"{name} shows no anatlearn prep/embed command"
    for command, opts in calls:
        unknown = opts - _options(command)
        assert not unknown, f"{name}: anatlearn {command} has no option(s) {sorted(unknown)}"


@pytest.mark.parametrize("name", FILES[:2])
def test_scripts_parse(name):
    assert subprocess.run(["bash", "-n", str(ROOT / name)]).returncode == 0
