"""``anatlearn prep --shard I/N`` + ``--merge``: two job-array tasks and the merge give the same output as one
unsharded run (phantoms at 4 mm); tasks write no shared file; the merge lists missing subjects; task ids
come from SLURM's array variables (0- or 1-based arrays); tasks with other options are refused."""

import json
import re

import numpy as np
import pandas as pd
import pytest

from anatlearn.cli import main
from anatlearn.errors import ConfigError
from anatlearn.prep.shards import Shard

SHARED = ("participants.tsv", "qc.tsv", "qc.html", "prep.json")
NPY = "sub-{0}/sub-{0}_preproc-cat12vbm_desc-gm_T1w.npy"


def run(args, capfd):
    code = main([str(a) for a in args])
    out, err = capfd.readouterr()
    return code, out, err


def test_shard_arithmetic_and_slurm_variables():
    assert [Shard(i, 3).select(list(range(8))) for i in range(3)] == [[0, 3, 6], [1, 4, 7], [2, 5]]
    assert Shard.parse("2/5") == Shard(2, 5) and Shard.parse(" 0 / 1 ") == Shard(0, 1)
    for bad in ("5/5", "-1/3", "1-3", "a/b", "1/0"):
        with pytest.raises(ConfigError, match="--shard"):
            Shard.parse(bad)
    assert Shard.from_slurm({}) is None
    # --array=0-49 and --array=1-50 both give tasks 0..49 of 50
    assert Shard.from_slurm({"SLURM_ARRAY_TASK_ID": "0", "SLURM_ARRAY_TASK_MIN": "0", "SLURM_ARRAY_TASK_COUNT": "50"}) == Shard(0, 50)
    assert Shard.from_slurm({"SLURM_ARRAY_TASK_ID": "50", "SLURM_ARRAY_TASK_MIN": "1", "SLURM_ARRAY_TASK_COUNT": "50"}) == Shard(49, 50)
    with pytest.raises(ConfigError, match="contiguous"):  # --array=0-10:2
        Shard.from_slurm({"SLURM_ARRAY_TASK_ID": "4", "SLURM_ARRAY_TASK_MIN": "0", "SLURM_ARRAY_TASK_COUNT": "6",
                          "SLURM_ARRAY_TASK_STEP": "2"})
    with pytest.raises(ConfigError, match="contiguous"):  # --array=1,5,9
        Shard.from_slurm({"SLURM_ARRAY_TASK_ID": "9", "SLURM_ARRAY_TASK_MIN": "1", "SLURM_ARRAY_TASK_COUNT": "3"})


def _qc(out):
    return pd.read_csv(out / "qc.tsv", sep="\t", dtype={"participant_id": str}, keep_default_na=False,
                       na_values=[""])


def test_two_shards_and_merge_equal_one_run(tmp_path, phantoms, kit, capfd, monkeypatch):
    monkeypatch.delenv("SLURM_ARRAY_TASK_ID", raising=False)
    # input order 01, 02, 03: task 0/2 gets 01 and 03 (03 fails QC), task 1/2 gets 02
    bids = kit.write_bids(tmp_path / "bids", {"01": phantoms["identity"].image, "02": phantoms["deformed"].image,
                                              "03": kit.noise_image()})
    common = ["--bids", bids, "--modality", "vbm", *kit.FAST]
    one, many = tmp_path / "one", tmp_path / "many"
    code, stdout, err = run(["prep", *common, "--out", one], capfd)
    assert code == 0 and "2 subject(s) prepared" in stdout, err

    code, stdout, err = run(["prep", *common, "--out", many, "--shard", "1/2"], capfd)
    assert code == 0 and "shard 1/2: 1 subject(s) prepared" in stdout, err
    assert not any((many / f).exists() for f in SHARED)  # a task writes no shared file
    assert (many / NPY.format("02")).is_file() and not (many / "sub-01").exists()
    # options differing from a finished task's are refused before any work
    code, _, err = run(["prep", "--bids", bids, "--modality", "quasiraw", *kit.FAST, "--out", many, "--shard", "0/2"], capfd)
    assert code == 2 and "other options by shard task" in err and "shard-00001-of-00002.json" in err, err
    # a task of another split (N = 3) could prepare the same subjects as a running one: refused
    code, _, err = run(["prep", *common, "--out", many, "--shard", "0/3"], capfd)
    assert code == 2 and "of a split into 2, not 3" in err, err
    # a merge before every task finished: the tables list the missing subjects, and it is an error
    code, _, err = run(["prep", *common, "--out", many, "--merge"], capfd)
    assert code == 2 and "2 subject(s) missing" in err and "sub-01" in err, err
    assert "missing: sub-03: no shard task listed this subject" in err
    qc = pd.read_csv(many / "qc.tsv", sep="\t", dtype={"participant_id": str})
    assert list(qc["status"]) == ["missing", "ok", "missing"]

    # task 0 from SLURM's variables, as the second task of an array numbered from 1 (--array=1-2)
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "1")
    monkeypatch.setenv("SLURM_ARRAY_TASK_MIN", "1")
    monkeypatch.setenv("SLURM_ARRAY_TASK_COUNT", "2")
    code, stdout, err = run(["prep", *common, "--out", many], capfd)
    assert code == 0 and "shard 0/2: 1 subject(s) prepared" in stdout and "1 failed" in stdout, err
    record = json.loads((many / "shards" / "shard-00000-of-00002.json").read_text())
    assert record["finished"] and record["subjects"] == ["01", "03"]
    assert [r["status"] for r in record["rows"]] == ["ok", "failed"]

    code, stdout, err = run(["prep", *common, "--out", many, "--merge"], capfd)
    assert code == 0 and "2 subject(s) prepared" in stdout and "1 failed" in stdout, err
    # pure noise fails at the QC gate or in Atropos (segmentation), by machine; the same way in both runs
    assert re.search(r"failed: sub-03: (registration|segmentation) failed", err), err
    # the merge assembles exactly what the tasks recorded ...
    qc, ref = _qc(many), _qc(one)
    for pid, row in zip(qc["participant_id"], qc.to_dict("records")):
        rec = json.loads((many / f"sub-{pid}" / f"sub-{pid}_qc.json").read_text()) if pid != "03" else record["rows"][1]
        recorded = rec.get("corr_template")
        recorded = np.nan if recorded is None else recorded  # NaN is stored as null in JSON
        assert row["status"] == rec["status"]
        assert row["corr_template"] == pytest.approx(recorded, abs=1e-4, nan_ok=True)
    # ... and equals the unsharded run exactly: with a fixed seed and one ITK thread the pipeline is
    # deterministic (tests/prep/test_alignment.py::test_deterministic_given_seed), failures included
    timing = [c for c in qc.columns if c.endswith("seconds")]  # wall times are the only difference
    assert "seconds" in timing
    pd.testing.assert_frame_equal(qc.drop(columns=timing), ref.drop(columns=timing))
    assert re.match(r"(registration|segmentation) failed", qc["error"].iloc[2])
    assert (many / "participants.tsv").read_text() == (one / "participants.tsv").read_text()
    for pid in ("01", "02"):
        np.testing.assert_array_equal(np.load(many / NPY.format(pid)), np.load(one / NPY.format(pid)))
    assert json.loads((many / "prep.json").read_text())["result"] == json.loads((one / "prep.json").read_text())["result"]
    assert "sub-02/sub-02_qc.png" in (many / "qc.html").read_text()
    assert not list(many.rglob("*.tmp"))
