"""The CLI's contract: usage errors and AnatlearnErrors exit non-zero with one line, no traceback."""

import subprocess
import sys

from anatlearn.cli import main


def test_version_command_prints_versions(capsys):
    assert main(["version"]) == 0
    out = capsys.readouterr().out
    assert '"torch": "2.13.0' in out


def test_unknown_command_exits_2_without_traceback():
    proc = subprocess.run([sys.executable, "-m", "anatlearn", "no-such-command"], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "no-such-command" in proc.stderr
