"""One vocabulary: deprecated spellings are rewritten with one warning each; usage errors are one line, exit 2."""
from __future__ import annotations

import subprocess
import sys

import pytest

from anatlearn import __version__
from anatlearn.cli import main
from anatlearn.cli.vocabulary import rewrite_deprecated, split_named


def rewrite(argv):
    warnings = []
    return rewrite_deprecated(argv, warnings.append), warnings


def test_old_spellings_are_rewritten_once_with_one_warning():
    out, warned = rewrite(["evaluate", "openbhb", "--cv", "3", "--features", "a.parquet", "--cv=4"])
    assert out == ["evaluate", "openbhb", "--folds", "3", "--features", "a.parquet", "--folds=4"]
    assert len(warned) == 1 and "--cv is deprecated; use --folds" in warned[0]
    out, warned = rewrite(["brain-age", "--model", "m.npz", "--out", "x"])
    assert out == ["brain-age", "--fitted", "m.npz", "--out", "x"] and len(warned) == 1


def test_other_commands_and_values_are_left_alone():
    argv = ["evaluate", "tasks", "--cv", "3"]  # --cv is only an old name in `evaluate openbhb`
    assert rewrite(argv) == (argv, [])
    argv = ["embed", "--model", "resnet18", "--out", "--cv"]  # an option's value is never an option
    assert rewrite(argv)[0][:3] == ["embed", "--model", "resnet18"]
    assert rewrite(["synth", "--", "--model"]) == (["synth", "--", "--model"], [])


def test_named_paths():
    assert split_named("anatcl=feats/a.parquet") == ("anatcl", "feats/a.parquet")
    assert split_named("feats/a.parquet") == ("a", "feats/a.parquet")
    assert split_named("dir/x=1.parquet") == ("x=1", "dir/x=1.parquet")


@pytest.mark.parametrize("argv, needle", [
    (["pretrain", "--no-such-option"], "--no-such-option"),
    (["synth"], "Missing argument"),
    (["synth", "x", "--shape", "3", "4"], "requires 3 arguments"),
    (["evaluate", "icc", "--kind"], "requires an argument"),
])
def test_usage_errors_are_one_line_with_status_2(capfd, argv, needle):
    assert main(argv) == 2
    err = capfd.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("anatlearn: error: ") and needle in err[0], err


def test_version(capfd):
    assert main(["--version"]) == 0
    # first line: anatlearn's own; then the libraries' versions (tests/test_startup.py compares them)
    assert capfd.readouterr().out.splitlines()[0] == f"anatlearn {__version__}"


def test_the_script_exits_2_without_a_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "anatlearn", "evaluate", "openbhb", "--bogus"], capture_output=True,
                          text=True, cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.count("\n") == 1


def all_help_pages(capfd) -> dict[str, str]:
    """The help text of every command and sub-command, as a user sees it (``anatlearn ... --help``)."""
    import typer

    from anatlearn.cli import _register, app

    _register()
    paths, todo = [], [((), typer.main.get_command(app))]
    while todo:
        path, cmd = todo.pop()
        paths.append(path)
        todo += [((*path, name), sub) for name, sub in getattr(cmd, "commands", {}).items()]
    pages = {}
    for path in paths:
        capfd.readouterr()
        assert main([*path, "--help"]) == 0
        pages[" ".join(path)] = capfd.readouterr().out
    return pages


def test_help_speaks_one_vocabulary_and_shows_every_method_and_default(monkeypatch, capfd):
    from anatlearn.losses import METHODS

    monkeypatch.setenv("COLUMNS", "400")
    pages = all_help_pages(capfd)
    assert {"pretrain", "embed", "evaluate openbhb", "evaluate icc", "finetune", "bids"} <= set(pages)
    for name, text in pages.items():
        for old in ("--encoder", "--amp", "--bf16", "--cv ", "--num-workers"):
            assert old not in text, (name, old)
    for name in ("pretrain", "embed"):
        assert "--model" in pages[name] and "--precision" in pages[name] and "--workers" in pages[name]
    flat = " ".join(pages["pretrain"].split())
    assert all(m in flat for m in METHODS), [m for m in METHODS if m not in flat]
    assert "[default: (50)]" in flat and "[default: (32)]" in flat  # the options default to the stored config's
