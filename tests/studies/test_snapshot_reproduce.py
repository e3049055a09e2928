"""The scripts around a study (studies/): snapshot and restore across sessions, and the reproduction of a
committed evaluation, on one toy study run end to end."""

import dataclasses
import json
import shutil

import pytest
import torch

from anatlearn.study.grid import QUICK, build_cells
from anatlearn.study.runner import run_study
from anatlearn.study.time_left import epochs_left
from studies import reproduce

# one seed of anatcl-global at budgets 1 and 2, plus random init: 3 evaluations per study
TOY = dataclasses.replace(QUICK, methods=("anatcl-global",), control=False, ablations=(), seeds=(0,))


def _units(out):
    return {p.relative_to(out).as_posix(): json.loads(p.read_text())["metrics"]
            for p in sorted(out.glob("cells/*/seed-*/eval/budget-*.json"))}




@pytest.fixture(scope="module")
def toy_study(tmp_path_factory, one_thread):
    """One complete TOY study, shared read-only by the tests of the scripts around a study."""
    ref = tmp_path_factory.mktemp("toy") / "ref"
    assert run_study(ref, grid="test", settings=TOY, progress=False)["complete"]
    return ref


def test_a_snapshot_restored_on_a_fresh_checkout_continues_to_the_same_result(tmp_path, toy_study):
    """studies/snapshot.sh then studies/restore.sh (a session ends, the untracked study directory
    is gone): the restored study skips every committed evaluation, retrains the unfinished cell from epoch
    0 without its checkpoint, and ends with the evaluations of the uninterrupted study."""
    import subprocess
    from pathlib import Path

    scripts = Path(__file__).resolve().parents[2] / "studies"
    ref = toy_study
    units = _units(ref)
    snap = tmp_path / "snap"
    done = subprocess.run(["bash", str(scripts / "snapshot.sh"), str(ref), str(snap)], capture_output=True,
                          text=True, env={"PATH": "/usr/bin:/bin", "NO_AGGREGATE": "1"})
    assert done.returncode == 0, done.stderr
    assert "3 evaluation(s) copied" in done.stdout
    full = tmp_path / "full"  # every evaluation, no checkpoint: nothing to train
    assert subprocess.run(["bash", str(scripts / "restore.sh"), str(snap), str(full)]).returncode == 0
    assert _units(full) == units and epochs_left(full, build_cells(TOY), steps_per_epoch=1) == 0
    (snap / "anatcl-global/seed-0/budget-0002.json").unlink()  # a snapshot taken before budget 2 landed
    out = tmp_path / "restored"
    done = subprocess.run(["bash", str(scripts / "restore.sh"), str(snap), str(out)], capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr
    assert "2 evaluation(s) restored" in done.stdout
    assert sorted(_units(out)) == ["cells/anatcl-global/seed-0/eval/budget-0001.json",
                                   "cells/random-init/seed-0/eval/budget-0000.json"]
    again = subprocess.run(["bash", str(scripts / "restore.sh"), str(snap), str(out)], capture_output=True,
                           text=True)
    assert again.returncode == 2 and "already holds a study" in again.stderr
    assert epochs_left(out, build_cells(TOY), steps_per_epoch=1) == 2  # anatcl-global retrains 0 -> 2 (no checkpoint)
    shutil.copytree(ref / "data", out / "data")  # generation is deterministic; saves time
    doc = run_study(out, grid="test", settings=TOY, progress=False)
    assert doc["complete"] and _units(out) == units
    assert len(doc["invocations"]) == 2  # the snapshot's invocation record travels with it
    # each invocation names the CPU capability it trained with (AVX2 and AVX-512 runs differ)
    assert doc["invocations"][-1]["machine"].endswith(f"({torch.backends.cpu.get_cpu_capability()})")
    unit = json.loads((out / "cells/anatcl-global/seed-0/eval/budget-0002.json").read_text())
    assert unit["provenance"]["machine"]["cpu_capability"] == torch.backends.cpu.get_cpu_capability()


def test_reproduce_script_retrains_a_cell_to_its_committed_evaluation(tmp_path, toy_study, capsys):
    """studies/reproduce.py: the same machine and thread count reproduce a cell's evaluation exactly;
    a committed evaluation that differs is reported with its difference."""
    out = tmp_path / "st"
    shutil.copytree(toy_study, out)  # its committed evaluation is altered below
    args = ["--study", str(out), "--reference", str(out), "--cell", "anatcl-global/seed-0", "--budget", "1"]
    assert reproduce.main(args) == 0
    assert "largest |difference| 0 over" in capsys.readouterr().out
    ref = out / "cells/anatcl-global/seed-0/eval/budget-0001.json"
    doc = json.loads(ref.read_text())
    doc["metrics"]["anat_r2_GMV"] += 0.25
    ref.write_text(json.dumps(doc))
    assert reproduce.main(args) == 0
    assert "largest |difference| 0.25 over" in capsys.readouterr().out
    assert not list(out.glob(".reproduce-*"))  # the temporary cell is removed
