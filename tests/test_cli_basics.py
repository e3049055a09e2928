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


def test_simclr_without_augmentation_is_warned_about(tmp_path, capfd):
    """Two identical views give SimCLR nothing to be invariant to: the CLI says so (the data directory here
    is empty, so the command stops right after the warning with its one error)."""
    (tmp_path / "empty").mkdir()
    args = ["pretrain", "--data", str(tmp_path / "empty"), "--out", str(tmp_path / "run"), "--method", "simclr"]
    assert main(args) != 0
    err = capfd.readouterr().err
    assert "warning: simclr without --augment trains on two identical views" in err
    assert main([*args, "--augment", "crop"]) != 0
    assert "warning" not in capfd.readouterr().err
