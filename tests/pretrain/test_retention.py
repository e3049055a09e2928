"""Checkpoint retention: a 30-epoch run keeps one full checkpoint (``last.pt`` a hard link to the newest
``epoch-NNNN.pt``) and still resumes bit for bit; ``--keep-last`` / ``--keep-every`` / ``--save-epochs``
leave exactly the expected files; milestones are weights-only and embed like the full checkpoint of the same
epoch; run directories of the previous naming (``epoch-N.pt``) resume; bad values are one clear error."""

import csv
import os

import numpy as np
import pytest
import torch

from anatlearn.cli import main
from anatlearn.models import load_checkpoint, load_pretrained
from anatlearn.pretrain import pretrain
from anatlearn.pretrain.config import TrainConfig
from anatlearn.pretrain.rundir import RunDir

# 6 subjects, 4 per batch: one step per epoch, a different 4 each epoch (the sampler's seeded permutation)
TINY = dict(split="", width=0.125, batch_size=4, num_workers=0, progress=False, seed=5, lr=1e-3,
            method="anatcl-global")


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    from anatlearn.synthetic import generate_cohort

    return generate_cohort(tmp_path_factory.mktemp("ret") / "c", 6, (32, 32, 32), seed=2, n_sites=2)


@pytest.fixture(scope="module")
def reference(cohort, tmp_path_factory):
    """An uninterrupted 30-epoch run; also a weights-only milestone at epoch 3 (retention options may differ
    between runs that must agree: they do not change what is computed)."""
    return pretrain(TrainConfig(data=str(cohort), out=str(tmp_path_factory.mktemp("ret") / "ref"), epochs=30,
                                save_epochs=[3], **TINY))


def names(run) -> set[str]:
    return {p.name for p in (run / "checkpoints").iterdir()}


def weights(path) -> dict:
    return load_checkpoint(path)["model"]


def assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_default_retention_keeps_one_checkpoint_and_resumes_exactly(cohort, reference, tmp_path):
    assert names(reference) == {"last.pt", "epoch-0030.pt", "epoch-0003.weights.pt"}
    run = tmp_path / "stopped"
    cfg = TrainConfig(data=str(cohort), out=str(run), epochs=30, **TINY)
    pretrain(cfg, stop_after_steps=17)  # ends inside epoch 17, before its checkpoint
    assert names(run) == {"last.pt", "epoch-0016.pt"}
    assert load_checkpoint(run / "checkpoints" / "last.pt")["global_step"] == 16
    pretrain(cfg, resume=True)
    ckpt = run / "checkpoints"
    assert names(run) == {"last.pt", "epoch-0030.pt"}
    assert os.path.samefile(ckpt / "last.pt", ckpt / "epoch-0030.pt")  # one copy on disk
    full = load_checkpoint(ckpt / "last.pt")
    assert full["epoch"] == 30 and full["global_step"] == 30 and "optimizer" in full and "rng" in full
    assert_same_weights(weights(reference / "checkpoints" / "last.pt"), full["model"])
    rows = [list(csv.DictReader((r / "metrics.csv").open())) for r in (reference, run)]
    assert [r["loss"] for r in rows[0]] == [r["loss"] for r in rows[1]] and len(rows[0]) == 30


def test_keep_last_keep_every_and_save_epochs_leave_the_expected_files(cohort, reference, tmp_path, capsys):
    out = tmp_path / "kept"
    code = main(["pretrain", "--data", str(cohort), "--out", str(out), "--split", "", "--width", "0.125",
                 "--batch-size", "4", "--workers", "0", "--seed", "5", "--lr", "1e-3", "--epochs", "7",
                 "--keep-last", "3", "--keep-every", "2", "--save-epochs", "5,3,5"])
    assert code == 0, capsys.readouterr().err
    assert names(out) == {"last.pt", "epoch-0005.pt", "epoch-0006.pt", "epoch-0007.pt",
                          "epoch-0002.weights.pt", "epoch-0003.weights.pt", "epoch-0004.weights.pt",
                          "epoch-0005.weights.pt", "epoch-0006.weights.pt"}
    epochs = [int(n[6:10]) for n in sorted(names(out)) if n.startswith("epoch-")]
    assert epochs == sorted(epochs)  # zero-padded: the names sort by epoch
    ckpt = out / "checkpoints"
    assert os.path.samefile(ckpt / "last.pt", ckpt / "epoch-0007.pt")
    # milestones: weights only, the same weights as the full checkpoint of that epoch, a third of its size
    for epoch in (5, 6):
        milestone = load_checkpoint(ckpt / f"epoch-{epoch:04d}.weights.pt")
        assert not {"optimizer", "scheduler", "scaler", "rng"} & milestone.keys()
        assert milestone["epoch"] == epoch and milestone["global_step"] == epoch
        assert_same_weights(milestone["model"], weights(ckpt / f"epoch-{epoch:04d}.pt"))
        assert (ckpt / f"epoch-{epoch:04d}.weights.pt").stat().st_size < 0.5 * (ckpt / f"epoch-{epoch:04d}.pt").stat().st_size
    # the same computation as the 30-epoch reference run (CLI vs library, other retention options)
    assert_same_weights(weights(ckpt / "epoch-0003.weights.pt"), weights(reference / "checkpoints" / "epoch-0003.weights.pt"))
    # a milestone loads for embedding and gives the features of the full checkpoint of its epoch
    from anatlearn.data import open_dataset
    from anatlearn.embed import AnatEncoder

    vols = {f"s{i}": open_dataset(cohort, split=None).volume(i) for i in range(2)}
    net = load_pretrained(ckpt / "epoch-0006.weights.pt")
    assert net.checkpoint_meta["config"]["keep_every"] == 2 and "normaliser" in net.checkpoint_meta
    a = AnatEncoder(ckpt / "epoch-0006.weights.pt").transform(vols)
    b = AnatEncoder(ckpt / "epoch-0006.pt").transform(vols)
    assert a.shape == (2, 64)
    np.testing.assert_array_equal(a.to_numpy(), b.to_numpy())


def test_run_directory_of_the_previous_naming_resumes(cohort, reference, tmp_path):
    """Old runs: epoch-N.pt (unpadded), last.pt a separate copy, checkpoints' configs without the retention keys."""
    run = tmp_path / "old"
    pretrain(TrainConfig(data=str(cohort), out=str(run), epochs=2, keep_last=2, **TINY))
    ckpt = run / "checkpoints"
    for epoch in (1, 2):
        state = load_checkpoint(ckpt / f"epoch-{epoch:04d}.pt")
        for key in ("keep_last", "keep_every", "save_epochs"):
            del state["config"][key]
        torch.save(state, ckpt / f"epoch-{epoch}.pt")
        (ckpt / f"epoch-{epoch:04d}.pt").unlink()
    torch.save(load_checkpoint(ckpt / "epoch-2.pt"), ckpt / "last.pt")
    pretrain(TrainConfig(data=str(cohort), out=str(run), epochs=3, **TINY), resume=True)
    assert names(run) == {"last.pt", "epoch-1.pt", "epoch-2.pt", "epoch-0003.pt"}  # old files left as they were
    assert_same_weights(weights(ckpt / "last.pt"), weights(reference / "checkpoints" / "epoch-0003.weights.pt"))


@pytest.mark.parametrize("args, message", [
    (["--keep-last", "0"], "--keep-last 0: keep at least 1 full checkpoint"),
    (["--keep-last", "-2"], "--keep-last -2: keep at least 1 full checkpoint"),
    (["--keep-every", "-1"], "--keep-every -1: give a number of epochs >= 1, or 0"),
    (["--save-epochs", "10,ten"], "--save-epochs '10,ten': give whole epoch numbers"),
    (["--save-epochs", "0,5"], "--save-epochs 0: milestone epochs must be whole numbers from 1 to --epochs (30)"),
    (["--save-epochs", "31"], "--save-epochs 31: milestone epochs must be whole numbers from 1 to --epochs (30)"),
])
def test_bad_retention_values_are_one_clear_error(cohort, tmp_path, capsys, args, message):
    out = tmp_path / "never"
    code = main(["pretrain", "--data", str(cohort), "--out", str(out), "--epochs", "30", *args])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("anatlearn: error: ") and message in err and err.count("\n") == 1, err
    assert not out.exists()  # nothing written


def test_last_is_a_copy_where_hard_links_fail(tmp_path, monkeypatch):
    run = RunDir(tmp_path)
    run.ckpt_dir.mkdir()
    target = run.full_checkpoint(4)
    target.write_bytes(b"state of epoch 4")
    run.last.write_bytes(b"older state")

    def no_links(*_):
        raise OSError(1, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    run.point_last_to(target)
    assert run.last.read_bytes() == b"state of epoch 4" and not os.path.samefile(run.last, target)
    assert sorted(p.name for p in run.ckpt_dir.iterdir()) == ["epoch-0004.pt", "last.pt"]  # no temporary left
    # retention deletes only this naming's full checkpoints beyond the newest K: never last.pt, milestones or old names
    for name in ("epoch-0001.pt", "epoch-0002.pt", "epoch-0010.weights.pt", "epoch-3.pt"):
        (run.ckpt_dir / name).write_bytes(b"x")
    assert [p.name for p in run.prune_full(1)] == ["epoch-0001.pt", "epoch-0002.pt"]
    assert sorted(p.name for p in run.ckpt_dir.iterdir()) == ["epoch-0004.pt", "epoch-0010.weights.pt", "epoch-3.pt",
                                                              "last.pt"]
