"""Lineage (issue 35, parts 2 and 3): encoder identities that survive every file format, feature tables and
results folders that record them, predict / brain-age / harmonize refusing another encoder's features, and
the one grid rule of embed, finetune, predict and bids."""

import json
import warnings

import numpy as np
import pandas as pd
import pytest
import torch

from anatlearn.cli import main
from anatlearn.evaluate import read_features
from anatlearn.features import make_feature_table, match_ids, write_features
from anatlearn.data.lineage import (IDENTITY, LineageWarning, check_grid, encoder_identity, encoder_sha256, table_sha256,
                               training_grid)
from anatlearn.models import build_model, default_model_config, export_safetensors, load_pretrained, save_checkpoint
from anatlearn.synthetic import generate_cohort


def _model(seed):
    torch.manual_seed(seed)
    return build_model(default_model_config("resnet18", width=0.125)).eval()


@pytest.fixture(scope="module")
def pretrained(tiny_cohort, tmp_path_factory):
    """A real one-epoch pretraining run on the 32x40x32 cohort: its checkpoint records the training grid."""
    from anatlearn.pretrain import TrainConfig, pretrain

    out = tmp_path_factory.mktemp("run") / "run"
    run = pretrain(TrainConfig(data=str(tiny_cohort), out=str(out), width=0.125, batch_size=8, num_workers=0,
                               epochs=1, progress=False, method="anatcl-global", seed=0))
    return run / "checkpoints" / "last.pt"


def test_same_weights_have_one_identity_in_every_format(pretrained, tmp_path):
    from anatlearn.models.card import export_folder

    net = load_pretrained(pretrained)
    assert net.checkpoint_meta["input"]["shape"] == [32, 40, 32]  # pretrain records its grid
    export_safetensors(net, tmp_path / "w.safetensors", {"input": net.checkpoint_meta["input"]})
    export_folder(net, tmp_path / "folder", source=str(pretrained))
    torch.save({"model": net.state_dict()}, tmp_path / "anatcl_global_fold0.pth")  # the released layout
    ids = {p: encoder_identity(load_pretrained(tmp_path / p if p != "pt" else pretrained, width=0.125), p)
           for p in ("pt", "w.safetensors", "folder", "anatcl_global_fold0.pth")}
    assert len({i["sha256"] for i in ids.values()}) == 1
    assert json.loads((tmp_path / "folder" / "config.json").read_text())["encoder_sha256"] == ids["pt"]["sha256"]
    for p in ("pt", "w.safetensors", "folder"):
        assert ids[p]["training_grid"]["shape"] == [32, 40, 32], p
    assert ids["anatcl_global_fold0.pth"]["training_grid"]["shape"] == [121, 145, 121]  # docs/getting-data.md
    assert ids["pt"]["training_data"]["name"].endswith("healthy")
    # the hash follows the values: the memory layout does not change it, one changed weight does
    assert encoder_sha256(net.to(memory_format=torch.channels_last_3d)) == ids["pt"]["sha256"]
    other = _model(1)
    assert encoder_sha256(other) != ids["pt"]["sha256"]
    with torch.no_grad():
        net.encoder.conv1.weight[0, 0, 0, 0, 0] += 1e-3
    assert encoder_sha256(net) != ids["pt"]["sha256"]
    assert training_grid(_model(0)) is None  # an in-memory model records no grid


def test_embed_refuses_another_grid_names_both_and_the_override_is_recorded(pretrained, tiny_cohort, tmp_path, capfd):
    other = generate_cohort(tmp_path / "other", 6, (32, 32, 32), seed=2, n_sites=2)
    out = tmp_path / "f.parquet"
    assert main(["embed", "--weights", str(pretrained), "--data", str(other), "--out", str(out)]) == 2
    err = capfd.readouterr().err
    line = [ln for ln in err.splitlines() if ln.startswith("anatlearn: error:")]
    assert len(line) == 1 and "Traceback" not in err
    assert "32x32x32" in line[0] and "32x40x32" in line[0] and "--allow-grid-mismatch" in line[0], line
    assert not out.exists() and not (tmp_path / "f.parquet.parts").exists()

    assert main(["embed", "--weights", str(pretrained), "--data", str(other), "--out", str(out),
                 "--allow-grid-mismatch"]) == 0
    assert "anatlearn: warning:" in capfd.readouterr().err
    meta = read_features(out).attrs["metadata"]
    assert meta["grid_check"]["status"] == "mismatch allowed" and meta["grid_check"]["allowed_mismatch"] is True
    assert meta["grid_check"]["input_grid"] == "32x32x32" and meta["grid_check"]["training_grid"] == "32x40x32"

    same = tmp_path / "same.csv"  # the training grid: written, and the identity round-trips through the file
    assert main(["embed", "--weights", str(pretrained), "--data", str(tiny_cohort), "--out", str(same),
                 "--split", "internal_test"]) == 0
    table = read_features(same)
    ident = table.attrs["metadata"][IDENTITY]
    assert ident["sha256"] == encoder_sha256(load_pretrained(pretrained))
    assert ident["architecture"] == {"encoder": "resnet18", "width": 0.125, "in_channels": 1}
    assert ident["training_grid"]["shape"] == [32, 40, 32]
    assert table.attrs["metadata"]["grid_check"]["status"] == "same grid"


def test_the_grid_rule():
    want = {"shape": [32, 40, 32], "affine": np.diag([2.0, 2, 2, 1]).tolist()}
    assert check_grid(want, {"shape": [32, 40, 32], "affine": None}, model="m", data="d")["status"] == "same grid"
    assert check_grid(None, {"shape": [8, 8, 8]}, model="m", data="d")["status"] == "training grid not recorded"
    with pytest.raises(Exception, match=r"d is on grid 32x40x32 in another space .* m was trained on 32x40x32"):
        check_grid(want, {"shape": [32, 40, 32], "affine": np.diag([1.0, 1, 1, 1]).tolist()}, model="m", data="d")
    with pytest.warns(LineageWarning):
        rec = check_grid(want, {"shape": [30, 40, 32]}, model="m", data="d", allow=True)
    assert rec["status"] == "mismatch allowed"


def _tables(root, n=40):
    """Two feature tables of the same subjects from two encoders (identities of real models), with an AD signal."""
    rng = np.random.default_rng(0)
    ids = [f"sub-{i:03d}" for i in range(n)]
    ad = np.arange(n) % 2 == 1
    age = rng.uniform(50, 80, n).round(1)
    pd.DataFrame({"participant_id": ids, "diagnosis": np.where(ad, "AD-like", "CN"), "cohort": "AD-like",
                  "age": age, "site": np.where(np.arange(n) % 4 < 2, "s1", "s2")}
                 ).to_csv(root / "participants.tsv", sep="\t", index=False)
    paths = {}
    for name, seed in (("a", 0), ("b", 1)):
        x = rng.normal(size=(n, 6)) * 0.3 + np.outer(ad, np.ones(6)) + np.outer(age - 65, np.linspace(0.05, 0.2, 6))
        meta = {"checkpoint": f"{name}.pt", IDENTITY: encoder_identity(_model(seed), f"{name}.pt")}
        paths[name] = write_features(make_feature_table(x, ids, meta), root / f"{name}.parquet")
    return paths


def test_predict_refuses_another_encoders_features_and_results_record_tables(tmp_path, capfd):
    paths = _tables(tmp_path)
    out = tmp_path / "res"
    assert main(["evaluate", "tasks", "--features", f"enc={paths['a']}", "--participants",
                 str(tmp_path / "participants.tsv"), "--tasks", "synthetic", "--task", "AD-like-vs-CN", "--folds", "3",
                 "--repeats", "1", "--out", str(out), "--save-probes"]) == 0
    recorded = json.loads((out / "results.json").read_text())["inputs"]["features"]["enc"]
    table = read_features(paths["a"])
    assert recorded["sha256"] == table_sha256(table) and recorded["file"] == str(paths["a"])
    assert recorded["encoder_sha256"] == encoder_sha256(_model(0)) and recorded["n_subjects"] == 40
    probe = out / "probes" / "enc" / "AD-like-vs-CN.json"
    assert json.loads(probe.read_text())["encoder_identity"]["sha256"] == recorded["encoder_sha256"]
    capfd.readouterr()

    preds = tmp_path / "p.csv"
    assert main(["predict", "--model", str(probe), "--features", str(paths["b"]), "--out", str(preds)]) == 2
    err = capfd.readouterr().err
    assert "Traceback" not in err and not preds.exists()
    a, b = encoder_sha256(_model(0))[:12], encoder_sha256(_model(1))[:12]
    assert a in err and b in err and "b.parquet" in err and "AD-like-vs-CN.json" in err, err
    assert main(["predict", "--model", str(probe), "--features", str(paths["a"]), "--out", str(preds)]) == 0
    # an old table (no identity) still predicts, with a warning that nothing could be checked
    old = read_features(paths["a"])
    old.attrs["metadata"] = {"checkpoint": "a.pt"}
    write_features(old, tmp_path / "old.parquet")
    capfd.readouterr()
    assert main(["predict", "--model", str(probe), "--features", str(tmp_path / "old.parquet"), "--out",
                 str(tmp_path / "q.csv")]) == 0
    assert "anatlearn: warning:" in capfd.readouterr().err and (tmp_path / "q.csv").is_file()


@pytest.mark.parametrize("tool", ["brain-age", "harmonize"])
def test_fitted_models_refuse_another_encoders_features(tool, tmp_path, capfd):
    paths = _tables(tmp_path)
    part = str(tmp_path / "participants.tsv")
    fit = tmp_path / "fit"
    args = {"brain-age": ["--folds", "3"], "harmonize": ["--covariate", "age"]}[tool]
    assert main([tool, "--features", str(paths["a"]), "--participants", part, "--reference", str(paths["a"]),
                 "--reference-participants", part, "--out", str(fit), *args]) == 0
    summary = json.loads((fit / f"{tool.replace('-', '_')}.json").read_text())
    assert summary["inputs"]["features"]["sha256"] == table_sha256(read_features(paths["a"]))
    assert summary["inputs"]["reference"]["encoder_sha256"] == encoder_sha256(_model(0))
    model = fit / {"brain-age": "brain_age_model.npz", "harmonize": "combat_model.npz"}[tool]
    capfd.readouterr()
    again = tmp_path / "again"
    assert main([tool, "--features", str(paths["b"]), "--participants", part, "--fitted", str(model), "--out",
                 str(again)]) == 2
    err = capfd.readouterr().err
    assert encoder_sha256(_model(0))[:12] in err and encoder_sha256(_model(1))[:12] in err and "b.parquet" in err, err
    assert not again.exists()
    # fitting on one encoder's reference and applying it to another's cohort in one go is refused too
    assert main([tool, "--features", str(paths["b"]), "--participants", part, "--reference", str(paths["a"]),
                 "--reference-participants", part, "--out", str(again), *args]) == 2
    assert "a.parquet" in capfd.readouterr().err and not again.exists()
    assert main([tool, "--features", str(paths["a"]), "--participants", part, "--fitted", str(model), "--out",
                 str(again)]) == 0


def test_few_shared_subjects_are_named_with_counts_and_files(tmp_path):
    paths = _tables(tmp_path)
    table = read_features(paths["a"])
    labels = pd.read_csv(tmp_path / "participants.tsv", sep="\t", dtype={"participant_id": str}).set_index(
        "participant_id").iloc[:12]
    labels.attrs["source"] = "labels.tsv"
    with pytest.warns(LineageWarning, match=r"a\.parquet and labels\.tsv share only 12 subjects: 28 of the table's 40"):
        assert len(match_ids(table, labels, "a")) == 12
    everyone = pd.read_csv(tmp_path / "participants.tsv", sep="\t", dtype={"participant_id": str}).set_index(
        "participant_id")
    with warnings.catch_warnings():
        warnings.simplefilter("error", LineageWarning)
        assert len(match_ids(table.iloc[:20], everyone, "a")) == 20  # a table inside a larger cohort: silent


def test_finetune_refuses_another_grid_before_writing(pretrained, tmp_path):
    from anatlearn.errors import DataError
    from anatlearn.finetune import FinetuneConfig, finetune
    from anatlearn.finetune.setup import prepare

    other = generate_cohort(tmp_path / "ad", 12, (32, 32, 32), seed=3, n_sites=2, diseases=("AD-like",))
    run = tmp_path / "run"
    with pytest.raises(DataError, match=r"32x32x32 but the encoder .*last\.pt was trained on 32x40x32"):
        finetune(str(pretrained), other, run, target="AD-like-vs-CN", tasks="synthetic",
                 config=FinetuneConfig(folds=2, width=0.125))
    assert not run.exists()
    with pytest.warns(LineageWarning):
        problem = prepare(str(pretrained), other, run, target="AD-like-vs-CN", participants=None, kind=None,
                          tasks="synthetic", cfg=FinetuneConfig(folds=2, width=0.125).validate(),
                          allow_grid_mismatch=True)
    assert problem.inputs["grid_check"]["status"] == "mismatch allowed"
    assert problem.record["encoder_sha256"] == encoder_sha256(load_pretrained(pretrained))


def test_bids_refuses_a_target_grid_the_encoder_was_not_trained_on(tmp_path):
    from anatlearn.bids.participant import _check_grid
    from anatlearn.embed import AnatEncoder
    from anatlearn.errors import DataError
    from anatlearn.prep.pipeline import PrepConfig

    torch.save({"model": _model(0).state_dict()}, tmp_path / "anatcl_global_fold0.pth")  # released: 121x145x121
    encoder = AnatEncoder(tmp_path / "anatcl_global_fold0.pth", width=0.125)
    config = PrepConfig()
    _check_grid(encoder, "w", config, False)
    assert encoder.metadata["grid_check"]["status"] == "same grid"
    coarse = PrepConfig(target_voxel_mm=3.0)
    with pytest.raises(DataError, match=r"grid \d+x\d+x\d+ but the encoder w was trained on 121x145x121"):
        _check_grid(encoder, "w", coarse, False)


def test_explain_compares_weight_hashes_not_paths(tmp_path):
    from anatlearn.clinical.run import _explained_encoder
    from anatlearn.errors import DataError
    from anatlearn.models.card import export_folder

    paths = _tables(tmp_path)  # a.parquet: encoder _model(0); b.parquet: _model(1)
    export_folder(_model(0), tmp_path / "zero")  # the same weights as a.parquet's encoder, another path and format
    _explained_encoder(read_features(paths["a"]), paths["a"], tmp_path / "zero")
    with pytest.raises(DataError, match=encoder_sha256(_model(1))[:12] + ".*" + encoder_sha256(_model(0))[:12]):
        _explained_encoder(read_features(paths["b"]), paths["b"], tmp_path / "zero")


def test_a_centre_crop_of_the_training_grid_is_a_choice_not_a_mismatch(pretrained, tiny_cohort, tmp_path):
    out = tmp_path / "crop.csv"
    assert main(["embed", "--weights", str(pretrained), "--data", str(tiny_cohort), "--out", str(out),
                 "--split", "internal_test", "--center-crop", "32", "36", "32"]) == 0
    grid = read_features(out).attrs["metadata"]["grid_check"]
    assert grid["status"] == "same grid" and grid["center_crop_of"] == "32x40x32" and grid["input_grid"] == "32x36x32"
    other = generate_cohort(tmp_path / "other", 4, (40, 48, 40), seed=2, n_sites=2)
    assert main(["embed", "--weights", str(pretrained), "--data", str(other), "--out", str(tmp_path / "x.csv"),
                 "--center-crop", "32", "40", "32"]) == 0  # cropped to exactly the training grid: same shape
    assert main(["embed", "--weights", str(pretrained), "--data", str(other), "--out", str(tmp_path / "y.csv"),
                 "--center-crop", "32", "36", "32"]) == 2
