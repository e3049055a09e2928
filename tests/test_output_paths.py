"""Every command checks its output paths before any work: an output that cannot be created (under /proc,
below a file, a directory where a file is expected or the other way round) is one `anatlearn: error:` line
naming the option and the path, exit 2, no traceback, nothing created. The inputs given here do not exist:
the error must be about the output, so the check really comes first."""

from pathlib import Path

import pytest
import typer.main

from anatlearn.cli import _register, app, main
from anatlearn.errors import ConfigError
from anatlearn.io import check_output_path

# command -> (arguments with OUT standing for the output path, option named in the error, "file" or "dir")
COMMANDS = {
    "synth": (["synth", "--out", "OUT", "-n", "4"], "--out", "dir"),
    "pretrain": (["pretrain", "--data", "missing-data", "--out", "OUT", "--method", "simclr"], "--out", "dir"),
    "embed": (["embed", "--weights", "missing.pt", "--data", "missing-data", "--out", "OUT"], "--out", "file"),
    "evaluate openbhb": (["evaluate", "openbhb", "--features", "missing.parquet", "--participants", "missing.tsv",
                          "--out", "OUT"], "--out", "dir"),
    "evaluate tasks": (["evaluate", "tasks", "--features", "missing.parquet", "--participants", "missing.tsv",
                        "--tasks", "synthetic", "--out", "OUT"], "--out", "dir"),
    "evaluate icc": (["evaluate", "icc", "--features", "a.parquet", "--retest", "b.parquet", "--out", "OUT"], "--out", "dir"),
    "evaluate anatomy": (["evaluate", "anatomy", "--features", "missing.parquet", "--truth", "missing", "--out", "OUT"],
                         "--out", "dir"),
    "report": (["report", "missing-run", "--out", "OUT"], "--out", "file"),
    "prep": (["prep", "--bids", "missing-bids", "--out", "OUT"], "--out", "dir"),
    "bids": (["bids", "missing-bids", "OUT", "participant", "--weights", "missing.pt"], "OUTPUT_DIR", "dir"),
    "demo": (["demo", "--quick", "--out", "OUT"], "--out", "dir"),
    "export": (["export", "missing.pt", "--out", "OUT"], "--out", "file"),
    "study": (["study", "--out", "OUT"], "--out", "dir"),
    "brain-age": (["brain-age", "--features", "missing.parquet", "--participants", "missing.tsv", "--out", "OUT"],
                  "--out", "dir"),
    "harmonize": (["harmonize", "--features", "missing.parquet", "--participants", "missing.tsv", "--out", "OUT"],
                  "--out", "dir"),
    "explain": (["explain", "--weights", "missing.pt", "--data", "missing-data", "--task", "t", "--out", "OUT"],
                "--out", "dir"),
    "weights": (["weights", "--data", "missing-data", "--out", "OUT"], "--out", "file"),
    "finetune": (["finetune", "--weights", "random", "--data", "missing-data", "--target", "dx", "--out", "OUT"],
                 "--out", "dir"),
    "check": (["check", "--weights", "missing.pt", "--data", "missing-data", "--out", "OUT"], "--out", "file"),
    "predict": (["predict", "--fitted", "missing.pt", "--data", "missing-data", "--out", "OUT"], "--out", "file"),
}
NO_OUTPUT = {"version", "inspect"}


def _leaves(group, prefix=()):
    for name, cmd in getattr(group, "commands", {}).items():
        if hasattr(cmd, "commands"):
            yield from _leaves(cmd, prefix + (name,))
        else:
            yield " ".join(prefix + (name,))


def test_every_command_is_covered():
    _register()
    registered = set(_leaves(typer.main.get_command(app)))
    missing = registered - set(COMMANDS) - NO_OUTPUT
    assert not missing, f"add these commands (and an output-path check in their CLI module) to COMMANDS: {missing}"


def _bad_path(case: str, tmp_path: Path, kind: str, suffix: str) -> tuple[Path, str]:
    if case == "uncreatable":
        return Path("/proc/anatlearn") / f"o{suffix}", "does not accept new files"
    if case == "below a file":
        blocker = tmp_path / "a-file"
        blocker.write_text("x")
        return blocker / "sub" / f"o{suffix}", "is a file, not a directory"
    if kind == "file":  # a directory where a file is expected
        d = tmp_path / f"adir{suffix}"
        d.mkdir()
        return d, "is a directory"
    f = tmp_path / "a-file"  # a file where a directory is expected
    f.write_text("x")
    return f, "exists and is not a directory"


@pytest.mark.parametrize("case", ["uncreatable", "below a file", "wrong kind"])
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_unwritable_output_is_one_clear_error(command, case, tmp_path, capfd, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args, option, kind = COMMANDS[command]
    suffix = {"embed": ".parquet", "export": ".safetensors", "report": ".html",
              "weights": ".tsv", "predict": ".csv"}.get(command, "")
    path, expected = _bad_path(case, tmp_path, kind, suffix)
    before = sorted(p.name for p in tmp_path.iterdir())
    code = main([str(path) if a == "OUT" else a for a in args])
    out, err = capfd.readouterr()
    lines = [ln for ln in err.splitlines() if ln.startswith("anatlearn: error:")]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err + out, err
    assert expected in lines[0] and option in lines[0] and str(path) in lines[0], lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing created


def test_check_output_path_accepts_what_can_be_written(tmp_path):
    assert check_output_path(tmp_path / "new" / "deeper" / "f.csv") == tmp_path / "new" / "deeper" / "f.csv"
    assert not (tmp_path / "new").exists()  # checking creates nothing
    (tmp_path / "f.csv").write_text("old")
    check_output_path(tmp_path / "f.csv")  # an existing file is replaced atomically: fine
    check_output_path(tmp_path, "dir")
    check_output_path(tmp_path / "run", "dir")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.csv"]
    with pytest.raises(ConfigError, match="--weights-out .*is a directory"):
        check_output_path(tmp_path, "file", "--weights-out")
