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


def test_old_meanings_move_by_value():
    # finetune --task was the problem type; it now names a task of --tasks, so only those two values move
    out, warned = rewrite(["finetune", "--task", "regression", "--target", "age"])
    assert out == ["finetune", "--problem", "regression", "--target", "age"] and len(warned) == 1
    assert rewrite(["finetune", "--task=classification"])[0] == ["finetune", "--problem", "classification"]
    argv = ["finetune", "--tasks", "synthetic", "--task", "AD-like-vs-CN"]
    assert rewrite(argv) == (argv, [])
    assert rewrite(["predict", "--model", "m.pt"])[0] == ["predict", "--fitted", "m.pt"]
    assert rewrite(["prep", "--target", "vbm"])[0] == ["prep", "--modality", "vbm"]


@pytest.mark.parametrize("argv, needle", [
    (["pretrain", "--no-such-option"], "--no-such-option"),
    (["synth"], "--out DIR"),
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
    assert "[default: 50]" in flat and "[default: 32]" in flat  # the options default to the stored config's


def _commands():
    """(path, click command) of every command and sub-command."""
    import typer

    from anatlearn.cli import _register, app

    _register()
    todo, found = [((), typer.main.get_command(app))], []
    while todo:
        path, cmd = todo.pop()
        found.append((" ".join(path), cmd))
        todo += [((*path, name), sub) for name, sub in getattr(cmd, "commands", {}).items()]
    return dict(found)


def test_every_help_page_fits_80_columns_with_every_word_whole(monkeypatch, capfd):
    from anatlearn.losses import METHODS

    monkeypatch.setenv("COLUMNS", "80")
    pages, commands = all_help_pages(capfd), _commands()
    assert set(pages) == set(commands) and len(pages) > 20
    for name, text in pages.items():
        assert "\u2026" not in text and "<bool>" not in text and "[default: (" not in text, (name, text)
        assert max(map(len, text.splitlines())) <= 80, name
        words = set(text.split())
        for param in commands[name].params:  # every option whole, as the user types it
            for opt in [*param.opts, *param.secondary_opts] if not getattr(param, "hidden", False) else []:
                if opt.startswith("-"):
                    assert {opt, f"{opt},"} & words, (name, opt)
        for line in text.splitlines():  # a help text continues on the next line at a space, never mid-word
            assert not line.rstrip().endswith("-") or line.strip().startswith("-"), (name, line)
    pretrain = set(pages["pretrain"].replace(",", " ").split())
    assert set(METHODS) <= pretrain, set(METHODS) - pretrain
    assert "sub-*/[ses-*/]anat/*_T1w.nii[.gz]." in pages["prep"]
    assert "--shape X Y Z" in pages["synth"]
    main_page = pages[""]
    sections = [line[:-1] for line in main_page.splitlines() if line.endswith(":") and not line.startswith(" ")]
    assert sections[:7] == ["Options", "Data", "Pretrain", "Features", "Evaluate", "Clinical",
                            "Preparation of raw T1w scans"], sections


def _option(command, flag):
    return next(p for p in command.params if flag in p.opts)


def test_one_meaning_per_option_name_across_commands():
    """Each name means one thing in every command that has it (the README's vocabulary paragraph)."""
    commands = {name: cmd for name, cmd in _commands().items() if not hasattr(cmd, "commands")}
    has = lambda flag: {n: c for n, c in commands.items() if any(flag in p.opts for p in c.params)}  # noqa: E731
    # --model: an architecture name (a string defaulting to one), never a file
    for name, cmd in has("--model").items():
        opt = _option(cmd, "--model")
        assert opt.default in (None, "resnet18") and "architecture" in opt.help.lower(), name
    # --fitted: a saved model (probe, fine-tuned model, brain-age, ComBat)
    assert set(has("--fitted")) == {"predict", "brain-age", "harmonize"}
    # --tasks: a task set (preset or file); --task: one task of it; --target: a raw column; --problem: the type
    for name, cmd in has("--tasks").items():
        assert "preset" in _option(cmd, "--tasks").help.lower(), name
    for name, cmd in has("--task").items():
        assert "--tasks" in commands[name].params[0].opts or any("--tasks" in p.opts for p in cmd.params), name
        assert "classification" not in (_option(cmd, "--task").help or ""), name
    assert set(has("--target")) == {"finetune"}
    for name in ("pretrain", "embed", "prep", "bids"):  # vbm or quasiraw: the same word in every command
        assert "quasiraw" in _option(commands[name], "--modality").help, name
    assert "column" in _option(commands["finetune"], "--target").help
    assert "classification" in _option(commands["finetune"], "--problem").help
    # --features: [NAME=]PATH wherever features are read
    for name, cmd in has("--features").items():
        assert "NAME=" in _option(cmd, "--features").help, name
    # --device and --precision: auto wherever a model runs
    assert {"pretrain", "embed", "finetune", "predict", "explain", "bids", "study"} <= set(has("--device"))
    for name, cmd in has("--device").items():
        assert _option(cmd, "--device").default == "auto", name
    for name, cmd in has("--precision").items():
        assert _option(cmd, "--precision").default in ("auto", None), name  # pretrain: None = the config's auto
    # --out: every output is --out, except the BIDS App's positional OUTPUT_DIR
    writers = {n for n, c in commands.items() if n not in ("version", "inspect", "bids")}
    assert writers <= set(has("--out")), writers - set(has("--out"))
    for name, cmd in commands.items():
        shown = [p.name for p in cmd.params if p.param_type_name == "argument" and not p.hidden]
        assert name in ("bids", "inspect", "export", "report") or not shown, (name, shown)


def test_finetune_takes_a_column_or_a_task_of_a_task_set(capfd):
    """--target COLUMN, or --tasks SET --task NAME; the old --tasks SET --target NAME works with a warning."""
    from anatlearn.cli.finetune import _label_source
    from anatlearn.errors import ConfigError

    assert _label_source("diagnosis", None, None) == "diagnosis"
    assert _label_source(None, "AD-like-vs-CN", "synthetic") == "AD-like-vs-CN"
    assert capfd.readouterr().err == ""
    assert _label_source("AD-like-vs-CN", None, "synthetic") == "AD-like-vs-CN"
    assert "--target with --tasks is deprecated; use --task AD-like-vs-CN" in capfd.readouterr().err
    for target, task, tasks, needle in [(None, "AD-like-vs-CN", None, "give --tasks"),
                                        (None, None, None, "--target COLUMN"),
                                        ("dx", "AD-like-vs-CN", "synthetic", "not --target")]:
        with pytest.raises(ConfigError, match=needle):
            _label_source(target, task, tasks)


def test_auto_resolves_to_fp32_on_the_cpu():
    import torch

    from anatlearn.precision import resolve_device, resolve_name

    cpu = torch.device("cpu")
    assert resolve_name("auto", cpu) == "fp32" and resolve_name("bf16", cpu) == "bf16"
    if not torch.cuda.is_available():
        assert resolve_device("auto") == cpu
