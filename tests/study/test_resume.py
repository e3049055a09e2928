"""The study end to end at toy size: a study stopped after one cell and again inside a cell's pretraining,
then re-run, finishes with exactly the evaluations and weights of an uninterrupted study."""

import dataclasses
import json
import shutil

import pytest
import torch

from anatlearn.models import load_checkpoint
from anatlearn.study.grid import QUICK, build_cells
from anatlearn.study.runner import run_study

# one seed of anatcl-global at budgets 1 and 2, plus random init: 3 evaluations per study
TOY = dataclasses.replace(QUICK, methods=("anatcl-global",), control=False, ablations=(), seeds=(0,))


def _units(out):
    return {p.relative_to(out).as_posix(): json.loads(p.read_text())["metrics"]
            for p in sorted(out.glob("cells/*/seed-*/eval/budget-*.json"))}




def test_interrupted_study_resumes_to_the_uninterrupted_result(tmp_path, one_thread):
    ref = tmp_path / "ref"
    doc = run_study(ref, grid="test", settings=TOY, progress=False)
    assert doc["complete"]
    units = _units(ref)
    assert sorted(units) == ["cells/anatcl-global/seed-0/eval/budget-0001.json",
                             "cells/anatcl-global/seed-0/eval/budget-0002.json",
                             "cells/random-init/seed-0/eval/budget-0000.json"]
    metrics = units["cells/anatcl-global/seed-0/eval/budget-0002.json"]
    assert {"AD-like-vs-CN balanced_accuracy", "anat_r2_GMV", "val_anat_r2_GMV", "rankme", "icc_median",
            "brain_age_mae_external", "site_bacc"} <= set(metrics)
    assert units["cells/anatcl-global/seed-0/eval/budget-0001.json"] != metrics  # training moved the features
    progress = json.loads((ref / "progress.json").read_text())
    assert progress["units_done"] == progress["units_total"] == 3
    assert (ref / "summary.md").exists() and (ref / "results" / "summary.tsv").exists()
    # only last.pt is kept per trained cell
    assert [p.name for p in (ref / "cells/anatcl-global/seed-0/run/checkpoints").glob("*.pt")] == ["last.pt"]

    out = tmp_path / "resumed"
    shutil.copytree(ref / "data", out / "data")  # the same cohorts (generation is deterministic; saves time)
    first = run_study(out, grid="test", settings=TOY, progress=False, max_cells=1)
    assert not first["complete"] and sorted(_units(out)) == ["cells/random-init/seed-0/eval/budget-0000.json"]
    # killed inside pretraining: after budget 1 is evaluated, one step into the resumed run to budget 2
    steps_per_epoch = load_checkpoint(ref / "cells/anatcl-global/seed-0/run/checkpoints/last.pt")["global_step"] // 2
    second = run_study(out, grid="test", settings=TOY, progress=False, stop_after_steps=steps_per_epoch + 1)
    assert not second["complete"]
    assert len(_units(out)) == 2
    last = load_checkpoint(out / "cells/anatcl-global/seed-0/run/checkpoints/last.pt")
    assert last["epoch"] == 1
    third = run_study(out, grid="test", settings=TOY, progress=False)
    assert third["complete"]
    assert _units(out) == units  # every metric identical
    a = load_checkpoint(ref / "cells/anatcl-global/seed-0/run/checkpoints/last.pt")["model"]
    b = load_checkpoint(out / "cells/anatcl-global/seed-0/run/checkpoints/last.pt")["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    doc = json.loads((out / "study.json").read_text())
    assert len(doc["invocations"]) == 3 and all(i["ended"] and i["wall_s"] > 0 for i in doc["invocations"])
    assert doc["wall_s_total"] == pytest.approx(sum(i["wall_s"] for i in doc["invocations"]), abs=0.15)


def test_a_study_directory_refuses_other_settings(tmp_path):
    from anatlearn.errors import ConfigError

    out = tmp_path / "st"
    out.mkdir()
    (out / "study.json").write_text(json.dumps({"grid": "test", "settings": TOY.to_dict(), "invocations": []}))
    with pytest.raises(ConfigError, match="other settings .*seeds"):
        run_study(out, grid="test", settings=dataclasses.replace(TOY, seeds=(0, 1)), progress=False)


def test_a_killed_invocation_keeps_its_wall_time_and_the_summary_says_so(tmp_path, monkeypatch):
    """A study killed without clean-up (SIGKILL, a machine that goes away) runs no ``finally``: study.json
    must already hold its invocation, with the wall time of its last progress update."""
    from anatlearn.study import runner
    from anatlearn.study.summary import invocations_text

    clock = iter([100.0, 107.5, 160.0])
    monkeypatch.setattr(runner.time, "perf_counter", lambda: next(clock))
    doc = {"grid": "test", "invocations": [{"wall_s": 50.0, "ended": True, "device": "cpu", "workers": 1,
                                            "commit": "aaa", "machine": "m"}]}
    live = {"wall_s": 0.0, "ended": False, "device": "cpu", "workers": 2, "commit": "bbb", "machine": "m"}
    doc["invocations"].append(live)
    bar = runner._Progress(tmp_path, [], show=False, doc=doc, invocation=live)  # t0 = 100
    bar.update()  # at 107.5: first update, written
    on_disk = json.loads((tmp_path / "study.json").read_text())
    assert on_disk["invocations"][1]["wall_s"] == 7.5 and on_disk["wall_s_total"] == 57.5
    bar.update()  # at 160: 52.5 s after the last write (>= 30 s), written again
    on_disk = json.loads((tmp_path / "study.json").read_text())
    assert on_disk["invocations"][1]["wall_s"] == 60.0 and on_disk["wall_s_total"] == 110.0
    text = invocations_text(on_disk, "st")
    assert "`--workers` by invocation: 1, 2" in text and "commit(s) aaa, bbb" in text
    assert "0.03 h over 2 invocation(s) (1 still running or killed without clean-up" in text


def test_two_worker_processes_give_the_one_process_result(tmp_path, one_thread, monkeypatch):
    """The parallel path (`--workers 2`, spawned processes with 1 thread each, as run 2 runs) evaluates
    every cell exactly as one process with 1 thread does, and leaves no running mark behind."""
    from anatlearn.study import runner

    two_seeds = dataclasses.replace(TOY, seeds=(0, 1))
    monkeypatch.setattr(runner.os, "cpu_count", lambda: 2)  # 1 thread per worker on any machine
    one = run_study(tmp_path / "one", grid="test", settings=two_seeds, progress=False)
    two = run_study(tmp_path / "two", grid="test", settings=two_seeds, progress=False, workers=2)
    assert one["complete"] and two["complete"]
    assert len(_units(tmp_path / "one")) == 6 and _units(tmp_path / "two") == _units(tmp_path / "one")
    assert not list((tmp_path / "two").glob(f"cells/*/seed-*/{runner.RUNNING}"))
    assert json.loads((tmp_path / "two" / "progress.json").read_text())["running"] == []


def test_running_marks_of_dead_workers_are_ignored(tmp_path):
    import os
    import subprocess
    import sys

    from anatlearn.study import runner
    from anatlearn.study.cells import cell_dir
    from anatlearn.study.grid import Cell

    cells = [Cell("anatcl-global", "base", s, (1,), "main", {}) for s in range(3)]
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    for c, mark in zip(cells, [str(os.getpid()), dead.stdout.strip(), "not a pid"]):
        cell_dir(tmp_path, c).mkdir(parents=True)
        (cell_dir(tmp_path, c) / runner.RUNNING).write_text(mark)
    assert runner._running_in_workers(tmp_path, cells) == [cells[0].id]


def test_status_reads_a_study_directory(tmp_path, one_thread, capsys):
    from anatlearn.cli import main
    from anatlearn.study.status import status_text, study_status

    out = tmp_path / "st"
    run_study(out, grid="test", settings=TOY, progress=False, max_cells=1)  # random init only
    st = study_status(out)
    assert (st["units_done"], st["units_total"]) == (1, 3)
    assert st["done"] == {("reference", 0): 1, ("main", 1): 0, ("main", 2): 0}
    text = status_text(out, st)
    assert "1/3 evaluations" in text and "random init: untrained 1/1" in text
    assert "main methods: 1 epochs 0/1, 2 epochs 0/1" in text
    assert main(["study", "--out", str(out), "--status"]) == 0
    assert capsys.readouterr().out.strip() == text
    assert main(["study", "--out", str(tmp_path / "none"), "--status"]) == 2
    assert "holds no study" in capsys.readouterr().err


def test_a_grid_of_ablations_alone_runs_and_aggregates(tmp_path, one_thread):
    """The follow-up grid's shape (no main method, no control, variants only; grid "views"): it trains,
    evaluates, aggregates, and the selection rule extends nothing (no budget beyond the ablations')."""
    views = dataclasses.replace(QUICK, methods=(), control=False, seeds=(0,), budgets=(1,), ablation_budgets=(1,),
                                ablations=(("anatcl-global", "noise-only"),))
    doc = run_study(tmp_path, grid="test", settings=views, progress=False)
    assert doc["complete"]
    assert sorted(_units(tmp_path)) == ["cells/anatcl-global+noise-only/seed-0/eval/budget-0001.json",
                                        "cells/random-init/seed-0/eval/budget-0000.json"]
    import tomllib

    config = tomllib.loads((tmp_path / "cells/anatcl-global+noise-only/seed-0/run/config.toml").read_text())
    assert config["augment"] == ["noise"]
    assert (tmp_path / "results" / "summary.tsv").exists()
    selection = json.loads((tmp_path / "selection.json").read_text())
    assert selection["anatcl-global"]["selected"] == "anatcl-global+noise-only"


def test_selected_variants_run_before_the_main_grids_longer_budget(tmp_path, monkeypatch):
    """Order only: once every stage up to the selection budget is done, the selection rule runs and its
    variants are resumed to the full budget before the main grid's longer budget starts (cells and
    evaluations are stubbed: what is checked is which (cell, budget) the runner asks for, in which order)."""
    import anatlearn.study.evaluation as evaluation
    import anatlearn.study.runner as runner
    import anatlearn.study.selection as selection
    from anatlearn.study.cells import unit_path

    calls = []

    def fake_run_cells(cells, out, s, device, workers, bar, max_cells, stop_after_steps=None):
        todo = [c for c in cells if runner.units_done(out, c) < len(c.budgets)][:max_cells]
        for c in todo:
            calls.append((c.id, max(c.budgets)))
            for b in c.budgets:
                unit_path(out, c, b).parent.mkdir(parents=True, exist_ok=True)
                unit_path(out, c, b).write_text("{}")
        return len(todo), []

    def fake_extend(out, s, cells):
        calls.append(("selection", None))
        return [c.with_budgets((*c.budgets, max(s.budgets))) for c in cells if c.name == "anatcl-global+kernel"]

    monkeypatch.setattr(runner, "_run_cells", fake_run_cells)
    monkeypatch.setattr(runner, "_time_steps", lambda *a, **k: 1.0)
    monkeypatch.setattr(runner, "_steps_per_epoch", lambda *a, **k: 1)
    monkeypatch.setattr(runner, "evaluation_seconds", lambda *a, **k: 1.0)
    monkeypatch.setattr(evaluation, "make_cohorts", lambda out, s: None)
    monkeypatch.setattr(selection, "extend_selected", fake_extend)
    s = dataclasses.replace(QUICK, seeds=(0,))  # anatcl-global at 1 and 2, its kernel variant at 1, the control
    doc = run_study(tmp_path, grid="test", settings=s, progress=False, aggregate=False)
    assert doc["complete"]
    assert calls == [("random-init/seed-0", 0), ("gmv-regression/seed-0", 1), ("anatcl-global/seed-0", 1),
                     ("anatcl-global+kernel/seed-0", 1), ("selection", None), ("anatcl-global+kernel/seed-0", 2),
                     ("gmv-regression/seed-0", 2), ("anatcl-global/seed-0", 2)]
    # stopped after the selection's first cell: the next invocation selects again and finishes the rest
    calls.clear()
    shutil.rmtree(tmp_path / "cells")
    first = run_study(tmp_path, grid="test", settings=s, progress=False, aggregate=False, max_cells=5)
    assert not first["complete"] and calls[-2:] == [("selection", None), ("anatcl-global+kernel/seed-0", 2)]
    calls.clear()
    assert run_study(tmp_path, grid="test", settings=s, progress=False, aggregate=False)["complete"]
    assert calls == [("selection", None), ("gmv-regression/seed-0", 2), ("anatcl-global/seed-0", 2)]


def test_status_estimates_the_time_left_from_the_runs_metrics(tmp_path):
    """Epochs left from metrics.csv (a resumed epoch's rewritten steps counted once), at the running cells'
    rate, plus the evaluations left at the measured time of one: checked against the hand count."""
    import pandas as pd

    from anatlearn.study.cells import cell_dir
    from anatlearn.study.grid import build_cells
    from anatlearn.study.time_left import time_left, trained_epochs

    cells = build_cells(TOY)  # random init and anatcl-global, seed 0, budgets 1 and 2; batch 8
    cell = next(c for c in cells if c.method == "anatcl-global")
    run = cell_dir(tmp_path, cell) / "run"
    run.mkdir(parents=True)
    # epoch 0: steps 1-3; epoch 1 killed after step 4, resumed from the epoch-0 checkpoint: steps 4-5 again
    rows = [(1, 0), (2, 0), (3, 0), (4, 1), (4, 1), (5, 1)]
    pd.DataFrame([{"step": s, "epoch": e, "loss": 1.0, "lr": 1e-4, "samples_per_s": 8.0} for s, e in rows]).to_csv(
        run / "metrics.csv", index=False)
    ri = cell_dir(tmp_path, next(c for c in cells if c.method == "random-init")) / "eval"
    ri.mkdir(parents=True)
    (ri / "budget-0000.json").write_text(json.dumps({"timing_s": {"total": 5.0}}))
    steps = pd.read_csv(run / "metrics.csv").drop_duplicates("step", keep="last")
    assert trained_epochs(steps, 3) == 1  # epoch 1 has 2 of its 3 steps
    steps["epoch"] += 1  # the same run with epochs numbered from 1 (as runs write them now)
    assert trained_epochs(steps, 3) == 1 and trained_epochs(steps.iloc[:3], 3) == 1
    assert trained_epochs(steps.iloc[:2], 3) == 0
    left = time_left(tmp_path, cells, [cell.id], batch_size=TOY.batch_size, units_left=2)
    # 1 epoch of 3 steps x 8 subjects at 8 subjects/s = 3 s, plus 2 evaluations x 5 s, one worker
    assert left == {"epochs": 1, "units": 2, "epoch_s": 3.0, "workers": 1, "seconds": 13.0}
    assert time_left(tmp_path, cells, [], TOY.batch_size, 2) is None  # nothing training: no rate to go by
