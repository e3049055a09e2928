"""The input check inside the pipeline: pretrain stores the fingerprint, export writes it into config.json,
``embed`` records the flags (and ``--strict`` refuses), ``anatlearn check`` writes one row per subject,
``predict`` and the BIDS App hooks, and an older checkpoint without a fingerprint is skipped with a note."""

import contextlib
import io
import json
import shutil

import numpy as np
import pandas as pd
import pytest

from anatlearn.cli import main
from anatlearn.data import open_dataset
from anatlearn.features import read_features
from anatlearn.inputcheck import build_fingerprint

BAD = ("0100001", "0100003", "0100006")  # made 100x brighter in the `mixed` cohort


def _cli(args):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in args])
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def run(tiny_cohort, tmp_path_factory):
    from anatlearn.pretrain import pretrain
    from anatlearn.pretrain.config import TrainConfig

    out = tmp_path_factory.mktemp("run") / "simclr"
    return pretrain(TrainConfig(data=str(tiny_cohort), out=str(out), method="simclr", width=0.125, batch_size=8,
                                num_workers=0, epochs=1, progress=False))


@pytest.fixture(scope="module")
def mixed(tiny_downstream, tmp_path_factory):
    """The downstream cohort with three subjects' maps multiplied by 100."""
    root = tmp_path_factory.mktemp("mixed") / "cohort"
    shutil.copytree(tiny_downstream, root)
    for pid in BAD:
        path = root / "images" / f"sub-{pid}_preproc-cat12vbm_desc-gm_T1w.npy"
        np.save(path, np.load(path) * 100)
    return root


def test_pretrain_stores_the_fingerprint_of_its_training_maps_and_export_writes_it(run, tiny_cohort, tmp_path):
    import torch

    state = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    expected = build_fingerprint(open_dataset(tiny_cohort, split="train"), source=str(tiny_cohort))
    assert state["input_fingerprint"] == expected
    assert state["input_fingerprint"]["n_subjects"] == len(open_dataset(tiny_cohort, split="train"))
    from anatlearn.models import load_pretrained
    from anatlearn.models.card import export_folder

    source = run / "checkpoints" / "last.pt"
    export_folder(load_pretrained(source), tmp_path / "folder", source=str(source))
    assert json.loads((tmp_path / "folder" / "config.json").read_text())["input_fingerprint"] == expected


def test_embed_records_the_flags_and_prints_one_line(run, mixed, tmp_path):
    out = tmp_path / "f.parquet"
    code, stdout, err = _cli(["embed", "--weights", run / "checkpoints" / "last.pt", "--data", mixed, "--out", out])
    assert code == 0, err
    n = len(open_dataset(mixed, require_age=False))
    assert f"3 of {n} subjects look unlike the training maps; see `anatlearn check" in stdout
    record = read_features(out).attrs["metadata"]["input_check"]
    assert (record["n_subjects"], record["n_flagged"], sorted(record["flagged"])) == (n, 3, sorted(BAD))
    assert "training maps' fingerprint" in record["reference"]
    assert all("x the training maps': a raw T1 rather than a GM map?" in record["reasons"][p] for p in BAD), record
    assert "input_fingerprint" not in json.dumps(read_features(out).attrs["metadata"]["checkpoint_meta"])


def test_strict_embed_refuses_and_writes_nothing(run, mixed, tmp_path):
    out = tmp_path / "f.parquet"
    code, _, err = _cli(["embed", "--weights", run / "checkpoints" / "last.pt", "--data", mixed, "--out", out,
                         "--strict"])
    assert code == 2
    assert err.startswith("anatlearn: error: input check (strict): subject 0100001") and err.count("\n") == 1, err
    assert "x the training maps'" in err and "(and 2 more)" in err
    assert list(tmp_path.iterdir()) == []


def test_check_command_writes_one_row_per_subject(run, mixed, tmp_path):
    out = tmp_path / "check.tsv"
    args = ["check", "--weights", run / "checkpoints" / "last.pt", "--data", mixed, "--out", out]
    code, stdout, err = _cli(args)
    assert code == 0, err
    table = pd.read_csv(out, sep="\t", dtype={"participant_id": str, "ok": str}, keep_default_na=False)
    assert list(table.columns[:3]) == ["participant_id", "ok", "reasons"]
    assert len(table) == len(open_dataset(mixed, require_age=False))
    assert sorted(table.loc[table["ok"] == "false", "participant_id"]) == sorted(BAD)
    assert set(table["ok"]) == {"true", "false"}
    assert (table.loc[table["ok"] == "true", "reasons"] == "").all()
    assert _cli(args)[0] == 2  # an existing table is kept without --overwrite
    code, _, err = _cli([*args, "--strict", "--overwrite"])
    assert code == 2 and "input check (strict)" in err


def test_a_checkpoint_without_fingerprint_is_skipped_with_a_note(run, mixed, tmp_path):
    import torch

    from anatlearn.models import save_checkpoint

    state = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    state.pop("input_fingerprint")
    old = tmp_path / "old.pt"
    save_checkpoint(old, state)
    out = tmp_path / "f.parquet"
    code, stdout, err = _cli(["embed", "--weights", old, "--data", mixed, "--out", out, "--strict"])
    assert code == 0, err
    assert "has no fingerprint of its training maps" in stdout and "input check skipped" in stdout
    record = read_features(out).attrs["metadata"]["input_check"]
    assert record["n_subjects"] is None and "skipped" in record["skipped"]
    code, _, err = _cli(["check", "--weights", old, "--data", mixed, "--out", tmp_path / "c.tsv"])
    assert code == 2 and "has no fingerprint" in err


def test_bids_participant_records_the_check(run, tmp_path):
    from anatlearn.bids.participant import _input_checks
    from anatlearn.embed import AnatEncoder
    from anatlearn.inputcheck import reference_from_meta

    encoder = AnatEncoder(run / "checkpoints" / "last.pt")
    fp = reference_from_meta(encoder.model.checkpoint_meta, "x").fingerprint
    good = open_dataset(fp["source"], split="train").volume(0)
    checks = _input_checks({"a": good, "b": good * 100, "c": good[:-1]}, encoder)
    assert checks["a"]["ok"] is True and checks["a"]["reasons"] == []
    assert checks["b"]["ok"] is False and "x the training maps'" in checks["b"]["reasons"][0]
    assert checks["c"]["ok"] is None and "skipped" in checks["c"]["skipped"]


def test_finetune_and_predict_check_the_maps(run, mixed, tmp_path, capsys):
    from anatlearn.finetune import FinetuneConfig, finetune, predict

    cfg = FinetuneConfig(folds=2, inner_folds=2, epochs=1, warmup_epochs=0, patience=1, width=0.125, lr_grid=(1e-3,),
                         batch_size=8)
    out = tmp_path / "ft"
    assert finetune(str(run / "checkpoints" / "last.pt"), mixed, out, config=cfg, final=True,
                    target="AD-like-vs-CN", tasks="synthetic")
    assert "3 of 40 subjects look unlike the training maps" in capsys.readouterr().err
    table = pd.read_csv(out / "input_check.tsv", sep="\t", dtype={"participant_id": str, "ok": str})
    assert sorted(table.loc[table["ok"] == "false", "participant_id"]) == sorted(BAD)
    result = predict(out / "final" / "model.pt", mixed)
    assert sorted(result.attrs["input_check"]["flagged"]) == sorted(BAD)
    assert "3 of 40 subjects look unlike the training maps" in capsys.readouterr().err
