"""One output rule for every command that writes (anatlearn.io): run twice into the same output, the
second run is refused (exit 2, one line naming the output and --overwrite) and the first output stays byte
for byte; with --overwrite the output holds only the new run's files. Commands that resume (pretrain,
finetune) continue a run with the same settings and refuse one with other settings the same way.

Every case runs on the shared tiny cohorts of tests/conftest.py, one width-0.125 checkpoint and one pair of
embedded feature tables (module fixtures)."""

from pathlib import Path

import pytest

from anatlearn.cli import main

WIDE = ["--workers", "0"]


def run(capfd, args) -> tuple[int, str]:
    code = main([str(a) for a in args])
    out, err = capfd.readouterr()
    assert "Traceback" not in out + err, err
    return code, err


def snapshot(path: Path) -> dict:
    """Every file under ``path`` (or ``path`` itself) -> its bytes; the lock of a run directory aside."""
    if path.is_file():
        return {path.name: path.read_bytes()}
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*"))
            if p.is_file() and p.name != ".lock"}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    import torch

    from anatlearn.models import build_model, default_model_config, save_checkpoint

    torch.manual_seed(0)
    model = build_model(default_model_config("resnet18", width=0.125))
    path = tmp_path_factory.mktemp("ck") / "model.pt"
    save_checkpoint(path, {"format": "anatlearn", "format_version": 1, "model": model.state_dict(),
                           "model_config": model.model_config})
    return path


@pytest.fixture(scope="module")
def tables(checkpoint, tiny_cohort, tiny_downstream, tmp_path_factory):
    d = tmp_path_factory.mktemp("features")
    for name, cohort in (("healthy", tiny_cohort), ("down", tiny_downstream)):
        assert main(["embed", "--weights", str(checkpoint), "--data", str(cohort), "--out", str(d / f"{name}.parquet"),
                     "--no-jit", *WIDE]) == 0
    return {"healthy": d / "healthy.parquet", "down": d / "down.parquet"}


@pytest.fixture(scope="module")
def probe(tables, tiny_downstream, tmp_path_factory):
    out = tmp_path_factory.mktemp("probe") / "tasks"
    assert main(["evaluate", "tasks", "--features", f"m={tables['down']}", "--participants", str(tiny_downstream),
                 "--tasks", "synthetic", "--task", "AD-like-vs-CN", "--folds", "2", "--repeats", "1",
                 "--save-probes", "--out", str(out)]) == 0
    return out / "probes" / "m" / "AD-like-vs-CN.json"


def cases(c, t, ck, probe):
    """command -> (arguments with OUT for the output, option naming the output, suffix of OUT)."""
    h, down = c["healthy"], c["down"]
    return {
        "synth": (["synth", "--out", "OUT", "-n", "6", "--shape", "32", "32", "32"], "--out", ""),
        "embed": (["embed", "--weights", ck, "--data", h, "--out", "OUT", "--split", "internal_test", "--no-jit",
                   *WIDE], "--out", ".parquet"),
        "evaluate openbhb": (["evaluate", "openbhb", "--features", t["healthy"], "--participants", h, "--folds", "2",
                              "--n-boot", "20", "--out", "OUT"], "--out", ""),
        "evaluate tasks": (["evaluate", "tasks", "--features", t["down"], "--participants", down, "--tasks",
                            "synthetic", "--task", "AD-like-vs-CN", "--folds", "2", "--repeats", "1", "--out", "OUT"],
                           "--out", ""),
        "evaluate icc": (["evaluate", "icc", "--features", f"m={t['healthy']}", "--retest", f"m={t['healthy']}",
                          "--out", "OUT"], "--out", ""),
        "evaluate anatomy": (["evaluate", "anatomy", "--features", t["healthy"], "--truth", h, "--folds", "2",
                              "--out", "OUT"], "--out", ""),
        "report": (["report", probe.parent.parent.parent, "--out", "OUT"], "--out", ".html"),
        "brain-age": (["brain-age", "--features", t["down"], "--participants", down, "--reference", t["healthy"],
                       "--reference-participants", h, "--folds", "2", "--out", "OUT"], "--out", ""),
        "harmonize": (["harmonize", "--features", t["healthy"], "--participants", h, "--reference", t["healthy"],
                       "--reference-participants", h, "--out", "OUT"], "--out", ""),
        "explain": (["explain", "--weights", ck, "--data", down, "--task", "AD-like-vs-CN", "--features", t["down"],
                     "--subjects", "2", "--steps", "2", "--out", "OUT"], "--out", ""),
        "predict": (["predict", "--fitted", probe, "--features", t["down"], "--out", "OUT"], "--out", ".csv"),
        "export": (["export", ck, "--out", "OUT"], "--out", ""),
        "export file": (["export", ck, "--out", "OUT"], "--out", ".safetensors"),
        "weights": (["weights", "--data", h, "--batch-size", "8", "--batches", "2", "--out", "OUT"], "--out", ".tsv"),
        "pretrain": (["pretrain", "--data", h, "--method", "simclr", "--augment", "crop", "--width", "0.125",
                      "--epochs", "1", "--batch-size", "8", "--out", "OUT", *WIDE], "--out", ""),
    }


CASES = ["synth", "embed", "evaluate openbhb", "evaluate tasks", "evaluate icc", "evaluate anatomy", "report",
         "brain-age", "harmonize", "explain", "predict", "export", "export file", "weights", "pretrain"]


# commands that continue their own runs (their rule is tested below and in their own test modules), and
# the two that write nothing
OWN_RULE = {"finetune", "study", "prep", "bids", "demo",
            "check"}  # a table and its OUT.meta.json: the rule for both in tests/inputcheck/test_pipeline.py
NO_OUTPUT = {"version", "inspect"}


def test_every_writing_command_is_covered():
    import typer.main

    from anatlearn.cli import _register, app

    def leaves(group, prefix=()):
        for name, cmd in getattr(group, "commands", {}).items():
            yield from leaves(cmd, (*prefix, name)) if hasattr(cmd, "commands") else [" ".join((*prefix, name))]

    _register()
    missing = set(leaves(typer.main.get_command(app))) - {c.removesuffix(" file") for c in CASES} - OWN_RULE - NO_OUTPUT
    assert not missing, f"add these commands to CASES: {missing}"
    for name, cmd in typer.main.get_command(app).commands.items():
        for sub in getattr(cmd, "commands", {"": cmd}).values():
            if name not in NO_OUTPUT | {"study", "prep", "bids"}:
                assert "--overwrite" in [o for p in sub.params for o in p.opts], (name, sub.name)


@pytest.mark.parametrize("command", CASES)
def test_second_run_is_refused_and_overwrite_replaces_whole(command, tiny_cohort, tiny_downstream, tables,
                                                            checkpoint, probe, tmp_path, capfd, one_thread):
    args, option, suffix = cases({"healthy": tiny_cohort, "down": tiny_downstream}, tables, checkpoint,
                                 probe)[command]
    out = tmp_path / f"out{suffix}"
    argv = [out if a == "OUT" else a for a in args]
    code, err = run(capfd, argv)
    assert code == 0, err
    first = snapshot(out)
    assert first

    code, err = run(capfd, argv)
    lines = [ln for ln in err.splitlines() if ln.startswith("anatlearn: error:")]
    assert code == 2 and len(lines) == 1, err
    assert "--overwrite" in lines[0] and str(out) in lines[0] and option in lines[0], lines[0]
    assert snapshot(out) == first  # nothing on disk changed
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]  # no temporary sibling left behind

    if out.is_dir():  # a file the new run would not write: an overwrite must not leave it beside the new files
        (out / "left-from-before.csv").write_text("old")
    code, err = run(capfd, [*argv, "--overwrite"])
    assert code == 0, err
    assert sorted(snapshot(out)) == sorted(first)  # exactly the new run's files
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]


def test_finetune_continues_same_settings_and_refuses_others(tiny_downstream, checkpoint, tmp_path, capfd,
                                                            one_thread, monkeypatch):
    import os

    out = tmp_path / "ft"
    common = ["--target", "AD-like-vs-CN", "--tasks", "synthetic", "--folds", "2", "--width", "0.125", "--epochs",
              "2", "--warmup-epochs", "1", "--lr-grid", "1e-3", "--batch-size", "8", *WIDE]

    def relative(where):  # the same run named by paths relative to ``where``
        return ["finetune", "--weights", os.path.relpath(checkpoint, where), "--data",
                os.path.relpath(tiny_downstream, where), *common, "--out", os.path.relpath(out, where)]

    monkeypatch.chdir(tmp_path)
    code, err = run(capfd, relative(tmp_path))
    assert code == 0, err
    first = snapshot(out)
    elsewhere = tmp_path / "elsewhere" / "deeper"
    elsewhere.mkdir(parents=True)
    monkeypatch.chdir(elsewhere)
    args = relative(elsewhere)
    code, err = run(capfd, args)  # the same run from another directory: every fold reused, the summary rewritten
    assert code == 0 and "folds 0-1 of 2 already done" in err, err
    again = snapshot(out)
    assert not any(elsewhere.iterdir())
    stamped = {"provenance.json", "results.json"}  # they record the time they were written
    assert sorted(again) == sorted(first)
    assert {k: v for k, v in again.items() if k not in stamped} == {k: v for k, v in first.items() if k not in stamped}
    first = again

    code, err = run(capfd, [*args, "--seed", "1", "--epochs", "3"])
    lines = [ln for ln in err.splitlines() if ln.startswith("anatlearn: error:")]
    assert code == 2 and len(lines) == 1, err
    assert "epochs: 2 in the run, 3 now" in lines[0] and "seed: 0 in the run, 1 now" in lines[0], lines[0]
    assert "--overwrite" in lines[0] and os.path.relpath(out, elsewhere) in lines[0]
    assert snapshot(out) == first

    (out / "left-from-before.csv").write_text("old")
    code, err = run(capfd, [*args, "--seed", "1", "--overwrite"])
    assert code == 0, err
    assert sorted(snapshot(out)) == sorted(first)
    assert '"seed": 1' in (out / "config.json").read_text()


def test_an_unrelated_folder_is_not_taken_over_by_a_run(tiny_cohort, tmp_path, capfd):
    """pretrain and finetune resume their own runs, but a folder of other files is not theirs to write into."""
    for command in (["pretrain", "--data", tiny_cohort, "--method", "simclr", "--augment", "crop"],
                    ["finetune", "--weights", "random", "--data", tiny_cohort, "--target", "age"]):
        out = tmp_path / "results"
        out.mkdir(exist_ok=True)
        (out / "results.csv").write_text("mine")
        code, err = run(capfd, [*command, "--out", out])
        assert code == 2 and "--overwrite" in err and str(out) in err and "no " in err, err
        assert snapshot(out) == {"results.csv": b"mine"}


def test_demo_refuses_a_folder_in_use(tmp_path, capfd):
    (tmp_path / "demo").mkdir()
    (tmp_path / "demo" / "notes.txt").write_text("keep")
    code, err = run(capfd, ["demo", "--quick", "--out", tmp_path / "demo"])
    assert code == 2 and "--overwrite" in err
    assert snapshot(tmp_path / "demo") == {"notes.txt": b"keep"}


def test_replace_dir_swaps_whole_trees(tmp_path):
    from anatlearn.io import replace_dir

    old, new = tmp_path / "out", tmp_path / "new"
    (old / "sub").mkdir(parents=True)
    (old / "sub" / "a.csv").write_text("old")
    (old / "folds.csv").write_text("old")
    (new / "sub").mkdir(parents=True)
    (new / "sub" / "a.csv").write_text("new")
    replace_dir(new, old)
    assert snapshot(old) == {"sub/a.csv": b"new"} and sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    (tmp_path / "empty").mkdir()
    replace_dir(old, tmp_path / "empty")  # onto an empty folder: a plain rename
    assert snapshot(tmp_path / "empty") == {"sub/a.csv": b"new"} and not old.exists()


@pytest.mark.parametrize("kind", ["dir", "file"])
def test_an_interrupted_overwrite_leaves_the_old_output(kind, tmp_path):
    from anatlearn.io import new_output

    out = tmp_path / "out"
    if kind == "dir":
        out.mkdir()
        (out / "a.csv").write_text("old")
    else:
        out.write_text("old")
    before = snapshot(out)
    with pytest.raises(KeyboardInterrupt):
        with new_output(out, kind, overwrite=True) as tmp:
            (tmp / "b.csv" if kind == "dir" else tmp).write_text("new, half written")
            raise KeyboardInterrupt
    assert snapshot(out) == before and sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    with new_output(out, kind, overwrite=True) as tmp:
        (tmp / "b.csv" if kind == "dir" else tmp).write_text("new")
    assert snapshot(out) == ({"b.csv": b"new"} if kind == "dir" else {"out": b"new"})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
