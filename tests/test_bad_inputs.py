"""Bad input through the CLI: each case exits non-zero with one clear `anatlearn: error:` line naming the
file, subject or option at fault, prints no traceback, and leaves no partial output behind."""

import json
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch

from anatlearn.cli import main
from anatlearn.models import build_model, default_model_config, save_checkpoint

TRAIN = ["--width", "0.125", "--batch-size", "4", "--epochs", "1", "--workers", "0"]


@pytest.fixture()
def cohort(tiny_cohort, tmp_path):
    dst = tmp_path / "data"
    shutil.copytree(tiny_cohort, dst)
    return dst


@pytest.fixture(scope="module")
def nifti_root(tmp_path_factory):
    from anatlearn.synthetic import generate_cohort

    return generate_cohort(tmp_path_factory.mktemp("nii") / "c", 8, (32, 36, 32), seed=2, nifti=True) / "bids"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    model = build_model(default_model_config("resnet18", width=0.125))
    path = tmp_path_factory.mktemp("ck") / "model.pt"
    save_checkpoint(path, {"format": "anatlearn", "model": model.state_dict(), "model_config": model.model_config})
    return path


def run_cli(capfd, args, *expected, absent=None):
    """Run the CLI; assert failure, one clear error line containing every `expected` text, no traceback,
    and that `absent` (an output path) was not created."""
    code = main([str(a) for a in args])
    out, err = capfd.readouterr()
    assert code != 0, f"expected failure, got 0; stdout: {out[-500:]}"
    assert "Traceback" not in err + out
    lines = [ln for ln in err.splitlines() if ln.startswith("anatlearn: error:")]
    assert len(lines) == 1, err
    for text in expected:
        assert text in lines[0], (text, lines[0])
    if absent is not None:
        assert not Path(absent).exists(), f"partial output left at {absent}"
    return lines[0]


def image(root, i=0):
    return sorted((root / "images").iterdir())[i]


def pid(path):
    return path.name[4:].split("_")[0]


def edit_table(root, fn):
    p = root / "participants.tsv"
    fn(pd.read_csv(p, sep="\t", dtype={"participant_id": str})).to_csv(p, sep="\t", index=False)


# --- volumes ------------------------------------------------------------------------------------------
def test_nan_voxels(cohort, checkpoint, tmp_path, capfd):
    arr = np.load(image(cohort))
    arr[0, 3, 3, 3] = np.nan
    np.save(image(cohort), arr)
    run_cli(capfd, ["embed", "--weights", checkpoint, "--data", cohort, "--out", tmp_path / "f.parquet"],
            f"subject {pid(image(cohort))}", "NaN/inf", absent=tmp_path / "f.parquet")


def test_inf_voxels(cohort, checkpoint, tmp_path, capfd):
    arr = np.load(image(cohort, 1))
    arr[0, 1, 1, 1] = np.inf
    np.save(image(cohort, 1), arr)
    run_cli(capfd, ["embed", "--weights", checkpoint, "--data", cohort, "--out", tmp_path / "f.csv"],
            f"subject {pid(image(cohort, 1))}", absent=tmp_path / "f.csv")


def test_wrong_shape(cohort, tmp_path, capfd):
    np.save(image(cohort, 2), np.zeros((1, 30, 40, 32), np.float32))
    run_cli(capfd, ["pretrain", "--data", cohort, "--out", tmp_path / "run", "--method", "simclr", *TRAIN],
            "differ in shape", pid(image(cohort, 2)), absent=tmp_path / "run")


def test_wrong_affine_nifti(nifti_root, checkpoint, tmp_path, capfd):
    root = tmp_path / "n"
    shutil.copytree(nifti_root, root)
    f = sorted(root.glob("sub-*/anat/*.nii.gz"))[3]
    img = nib.load(f)
    nib.save(nib.Nifti1Image(np.asarray(img.dataobj), img.affine @ np.diag([1.2, 1, 1, 1])), f)
    run_cli(capfd, ["embed", "--weights", checkpoint, "--data", root, "--out", tmp_path / "f.parquet"],
            str(f), "different affine", absent=tmp_path / "f.parquet")


def test_empty_file(cohort, tmp_path, capfd):
    image(cohort, 3).write_bytes(b"")
    run_cli(capfd, ["pretrain", "--data", cohort, "--out", tmp_path / "run", "--method", "yaware", *TRAIN],
            f"cannot read image of subject {pid(image(cohort, 3))}", absent=tmp_path / "run")


def test_truncated_npy(cohort, tmp_path, capfd):
    f = image(cohort, 4)
    f.write_bytes(f.read_bytes()[:300])
    run_cli(capfd, ["pretrain", "--data", cohort, "--out", tmp_path / "run", "--method", "yaware", *TRAIN],
            str(f), absent=tmp_path / "run")


# --- tables -------------------------------------------------------------------------------------------
def test_non_numeric_age(cohort, tmp_path, capfd):
    edit_table(cohort, lambda df: df.assign(age=df["age"].astype(object).where(df.index != 5, "n/a")))
    run_cli(capfd, ["pretrain", "--data", cohort, "--out", tmp_path / "run", "--method", "yaware", *TRAIN],
            "non-numeric or missing age", "participants.tsv", absent=tmp_path / "run")


def test_duplicate_ids(cohort, tmp_path, capfd):
    edit_table(cohort, lambda df: pd.concat([df, df.iloc[[7]]]))
    run_cli(capfd, ["pretrain", "--data", cohort, "--out", tmp_path / "run", "--method", "yaware", *TRAIN],
            "duplicate ids", absent=tmp_path / "run")


def test_ids_without_images(cohort, tmp_path, capfd):
    missing = pid(image(cohort, 5))
    image(cohort, 5).unlink()
    run_cli(capfd, ["pretrain", "--data", cohort, "--out", tmp_path / "run", "--method", "yaware", *TRAIN],
            "have no vbm image", missing, absent=tmp_path / "run")


def test_images_without_ids(cohort, tmp_path, capfd):
    extra = cohort / "images" / "sub-77777_preproc-cat12vbm_desc-gm_T1w.npy"
    shutil.copy(image(cohort), extra)
    run_cli(capfd, ["pretrain", "--data", cohort, "--out", tmp_path / "run", "--method", "yaware", *TRAIN],
            "have no row in", str(extra), absent=tmp_path / "run")


# --- descriptors --------------------------------------------------------------------------------------
def test_missing_roi_channel(cohort, tmp_path, capfd):
    res = cohort / "resource" / "resources.json"
    doc = json.loads(res.read_text())
    doc["desikan_roi"]["channels"][1] = "grey_volume"
    res.write_text(json.dumps(doc))
    run_cli(capfd, ["pretrain", "--data", cohort, "--out", tmp_path / "run", "--method", "anatcl-global", *TRAIN],
            "gray_matter_volume_mm^3", str(res), absent=tmp_path / "run")


def test_wrong_region_count(cohort, tmp_path, capfd):
    roi = cohort / "freesurfer_roi" / "desikan_roi_features.csv"
    pd.read_csv(roi).iloc[:, :-7].to_csv(roi, index=False)
    run_cli(capfd, ["pretrain", "--data", cohort, "--out", tmp_path / "run", "--method", "anatcl-local", *TRAIN],
            "469 value columns", "68 regions", absent=tmp_path / "run")


def test_aparc_stats_missing_hemisphere(nifti_root, tmp_path, capfd):
    root = tmp_path / "n"
    shutil.copytree(nifti_root, root)
    victim = sorted((root / "freesurfer").iterdir())[2] / "stats" / "rh.aparc.stats"
    victim.unlink()
    run_cli(capfd, ["pretrain", "--data", root, "--out", tmp_path / "run", "--method", "anatcl-global", "--split", "",
                    *TRAIN], str(victim), absent=tmp_path / "run")


def test_resources_json_absent(cohort, tmp_path, capfd):
    (cohort / "resource" / "resources.json").unlink()
    run_cli(capfd, ["pretrain", "--data", cohort, "--out", tmp_path / "run", "--method", "anat-only", *TRAIN],
            "resources.json not found", absent=tmp_path / "run")


# --- options ------------------------------------------------------------------------------------------
def test_batch_size_one(cohort, tmp_path, capfd):
    run_cli(capfd, ["pretrain", "--data", cohort, "--out", tmp_path / "run", "--method", "simclr", "--batch-size", "1"],
            "--batch-size 1", absent=tmp_path / "run")


def test_unknown_method(cohort, tmp_path, capfd):
    run_cli(capfd, ["pretrain", "--data", cohort, "--out", tmp_path / "run", "--method", "dino"],
            "unknown method 'dino'", absent=tmp_path / "run")


def test_unknown_encoder(cohort, tmp_path, capfd):
    run_cli(capfd, ["pretrain", "--data", cohort, "--out", tmp_path / "run", "--model", "vgg16"],
            "vgg16", absent=tmp_path / "run")


def test_config_with_unknown_key(cohort, tmp_path, capfd):
    cfg = tmp_path / "c.toml"
    cfg.write_text('method = "yaware"\nlearnig_rate = 0.1\n')
    run_cli(capfd, ["pretrain", "--data", cohort, "--out", tmp_path / "run", "--config", cfg],
            str(cfg), "unknown key 'learnig_rate'", absent=tmp_path / "run")


def test_resume_from_different_config(cohort, tmp_path, capfd):
    assert main(["pretrain", "--data", str(cohort), "--out", str(tmp_path / "run"), "--method", "simclr", *TRAIN]) == 0
    before = (tmp_path / "run" / "checkpoints" / "last.pt").read_bytes()
    capfd.readouterr()
    run_cli(capfd, ["pretrain", "--data", cohort, "--out", tmp_path / "run", "--method", "simclr", "--resume",
                    *TRAIN[:-2], "--lr", "0.01"], "another config", "lr: 0.0001 in the run, 0.01 now")
    assert (tmp_path / "run" / "checkpoints" / "last.pt").read_bytes() == before


def test_unwritable_output_directory(cohort, tmp_path, capfd):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    run_cli(capfd, ["pretrain", "--data", cohort, "--out", blocker / "run", "--method", "simclr", *TRAIN],
            "cannot create --out", str(blocker / "run"), "is a file, not a directory")


# --- checkpoints --------------------------------------------------------------------------------------
def test_checkpoint_of_another_architecture(cohort, tmp_path, capfd):
    model = build_model(default_model_config("resnet34", width=0.125))
    torch.save({"model": model.state_dict()}, tmp_path / "r34.pth")  # released layout: architecture by --model
    run_cli(capfd, ["embed", "--weights", tmp_path / "r34.pth", "--data", cohort, "--out", tmp_path / "f.parquet",
                    "--model", "resnet18", "--width", "0.125"], str(tmp_path / "r34.pth"), "unexpected keys",
            absent=tmp_path / "f.parquet")


def test_truncated_checkpoint(cohort, checkpoint, tmp_path, capfd):
    bad = tmp_path / "trunc.pt"
    bad.write_bytes(checkpoint.read_bytes()[:5000])
    run_cli(capfd, ["embed", "--weights", bad, "--data", cohort, "--out", tmp_path / "f.parquet"],
            str(bad), "truncated or corrupt", absent=tmp_path / "f.parquet")


def test_code_executing_checkpoint_is_refused(cohort, tmp_path, capfd):
    marker = tmp_path / "executed"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    bad = tmp_path / "evil.pth"
    bad.write_bytes(pickle.dumps({"model": Payload()}))
    run_cli(capfd, ["embed", "--weights", bad, "--data", cohort, "--out", tmp_path / "f.parquet"],
            "refused to load", str(bad), absent=tmp_path / "f.parquet")
    run_cli(capfd, ["inspect", bad], "refused to load")
    assert not marker.exists()


def test_disk_full_during_checkpoint_keeps_previous(cohort, tmp_path, capfd, monkeypatch):
    out = tmp_path / "run"
    assert main(["pretrain", "--data", str(cohort), "--out", str(out), "--method", "simclr", *TRAIN]) == 0
    before = (out / "checkpoints" / "last.pt").read_bytes()
    capfd.readouterr()
    real_save = torch.save

    def full_disk(obj, f, *a, **k):
        real_save(obj, f, *a, **k)
        raise OSError(28, "No space left on device")

    import anatlearn.models.checkpoint as C

    monkeypatch.setattr(C.torch, "save", full_disk)
    run_cli(capfd, ["pretrain", "--data", cohort, "--out", out, "--method", "simclr", *TRAIN[:-4], "--epochs", "2",
                    "--workers", "0", "--resume"], "No space left on device", "intact")
    monkeypatch.setattr(C.torch, "save", real_save)
    assert (out / "checkpoints" / "last.pt").read_bytes() == before
    assert not [p for p in (out / "checkpoints").iterdir() if p.name.endswith(".tmp")]


# --- evaluation ---------------------------------------------------------------------------------------
def _features(tmp_path, ids, nan=False):
    """A feature table written by hand (anatlearn itself refuses to write NaN features)."""
    x = np.random.default_rng(0).normal(size=(len(ids), 4)).astype(np.float32)
    if nan:
        x[2, 1] = np.nan
    path = tmp_path / "feats.csv"
    pd.DataFrame(x, columns=[f"f{i:04d}" for i in range(4)]).assign(participant_id=list(ids)).to_csv(path, index=False)
    return path


def test_labels_with_one_class(tiny_downstream, tmp_path, capfd):
    labels = pd.read_csv(tiny_downstream / "participants.tsv", sep="\t", dtype={"participant_id": str})
    labels["diagnosis"] = "CN"
    labels.to_csv(tmp_path / "labels.tsv", sep="\t", index=False)
    feats = _features(tmp_path, labels["participant_id"])
    run_cli(capfd, ["evaluate", "tasks", "--features", feats, "--participants", tmp_path / "labels.tsv", "--tasks",
                    "synthetic", "--task", "AD-like-vs-CN", "--out", tmp_path / "res"], "AD-like-vs-CN",
            absent=tmp_path / "res")


def test_features_with_nan(tiny_cohort, tmp_path, capfd):
    ids = pd.read_csv(tiny_cohort / "participants.tsv", sep="\t", dtype={"participant_id": str})["participant_id"]
    feats = _features(tmp_path, ids, nan=True)
    run_cli(capfd, ["evaluate", "openbhb", "--features", feats, "--participants", tiny_cohort, "--out",
                    tmp_path / "res"], "NaN", ids[2], absent=tmp_path / "res")


def test_features_and_labels_without_common_ids(tiny_cohort, tmp_path, capfd):
    feats = _features(tmp_path, [f"x{i}" for i in range(10)])
    run_cli(capfd, ["evaluate", "openbhb", "--features", feats, "--participants", tiny_cohort, "--out",
                    tmp_path / "res"], "no", "common", absent=tmp_path / "res")


def test_synth_bad_shape(tmp_path, capfd):
    run_cli(capfd, ["synth", "--out", tmp_path / "s", "--shape", "8", "8", "8"], "--shape", absent=tmp_path / "s")


def test_console_script_prints_no_traceback(tmp_path):
    """The installed entry point behaves like main(): one line, exit 2."""
    proc = subprocess.run([sys.executable, "-m", "anatlearn", "pretrain", "--data", str(tmp_path / "missing"),
                           "--out", str(tmp_path / "run"), "--method", "simclr"], capture_output=True, text=True)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [f"anatlearn: error: data directory not found: {tmp_path / 'missing'}"]


# --- modality ------------------------------------------------------------------------------------------
def test_unknown_modality(capfd, tiny_cohort, checkpoint, tmp_path):
    run_cli(capfd, ["embed", "--weights", checkpoint, "--data", tiny_cohort, "--out", tmp_path / "f.parquet",
                    "--modality", "t2"], "unknown modality 't2'", absent=tmp_path / "f.parquet")


def test_modality_without_images(capfd, tiny_cohort, tmp_path):
    # The synthetic cohort has gray-matter maps only: asking for quasi-raw names the missing subjects.
    run_cli(capfd, ["pretrain", "--data", tiny_cohort, "--method", "simclr", "--out", tmp_path / "run",
                    "--modality", "quasiraw"], "have no quasiraw image", absent=tmp_path / "run")


def test_embedding_needs_no_age_but_pretraining_does(capfd, cohort, checkpoint, tmp_path):
    edit_table(cohort, lambda df: df.drop(columns="age"))
    assert main(["embed", "--weights", str(checkpoint), "--data", str(cohort), "--out", str(tmp_path / "f.parquet")]) == 0
    capfd.readouterr()
    run_cli(capfd, ["pretrain", "--data", cohort, "--method", "yaware", "--out", tmp_path / "run"],
            "has no 'age' column", absent=tmp_path / "run")


def test_demo_epochs_must_be_positive(tmp_path, capfd):
    run_cli(capfd, ["demo", "--epochs", "0", "--out", tmp_path / "d"], "--epochs", absent=tmp_path / "d")
