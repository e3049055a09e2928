"""``anatlearn prep`` through the CLI: outputs readable by the data layer, a failing subject recorded in
qc.tsv while the others are prepared, resuming, and bad input as one clear error naming the file."""

import json
import re
import os

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from anatlearn.cli import main


def run(args, capfd):
    code = main([str(a) for a in args])
    out, err = capfd.readouterr()
    return code, out, err


def error_line(code, err, absent=None):
    assert code == 2, err
    assert "Traceback" not in err
    lines = [ln for ln in err.splitlines() if ln.startswith("anatlearn: error:")]
    assert len(lines) == 1, err
    if absent is not None:
        assert not absent.exists(), f"partial output left at {absent}"
    return lines[0]


def test_failed_subject_reported_others_prepared_then_resume(tmp_path, phantoms, kit, capfd):
    from anatlearn.data import open_dataset

    bids = kit.write_bids(tmp_path / "bids", {"01": phantoms["identity"].image, "02": kit.noise_image(),
                                              "03": phantoms["deformed"].image})
    out = tmp_path / "prepared"
    code, stdout, err = run(["prep", "--bids", bids, "--out", out, "--modality", "vbm", "--jobs", "2", *kit.FAST], capfd)
    assert code == 0, err
    assert "2 subject(s) prepared" in stdout and "1 failed" in stdout
    # pure noise fails either at the QC gate or inside ANTs (Atropos finds no tissue classes): both are a clear
    # per-subject failure; which one depends on ANTs' random sampling of the registration metric
    assert re.search(r"failed: sub-02: (registration failed QC: correlation with the template|segmentation failed: Atropos found no tissue)",
                     err), err
    qc = pd.read_csv(out / "qc.tsv", sep="\t", dtype={"participant_id": str}).set_index("participant_id")
    assert list(qc["status"]) == ["ok", "failed", "ok"]
    assert (qc.loc[["01", "03"], "dice_brain"] >= 0.9).all() and (qc.loc[["01", "03"], "corr_template"] >= 0.65).all()
    assert not qc.loc["02", "corr_template"] >= 0.3 and (qc["seconds"] > 0).all()  # low, or never measured
    # the data layer reads the result: the prepared subjects only, the user's columns carried over
    ds = open_dataset(out)
    assert list(ds.participants["participant_id"]) == ["01", "03"] and list(ds.participants["age"]) == [30.0, 32.0]
    vol = ds.volume(1)
    assert vol.shape == (46, 55, 46) and vol.dtype == np.float32 and np.isfinite(vol).all() and vol.max() > 0.3
    assert np.load(out / "sub-01" / "sub-01_preproc-cat12vbm_desc-gm_T1w.npy").shape == (1, 46, 55, 46)
    nii = nib.load(out / "sub-01" / "sub-01_preproc-cat12vbm_desc-gm_T1w.nii.gz")
    np.testing.assert_allclose(nii.get_fdata()[..., :], ds.volume(0), atol=1e-6)
    for f in ("qc.html", "prep.json", "logs/sub-01.log", "logs/sub-02.log", "sub-01/sub-01_qc.png"):
        assert (out / f).is_file(), f
    if "registration failed QC" in err:  # a subject that reached QC has its figure, failed or not
        assert (out / "sub-02" / "sub-02_qc.png").is_file()
    assert "sub-01/sub-01_qc.png" in (out / "qc.html").read_text()
    assert "FAILED" in (out / "logs" / "sub-02.log").read_text()
    meta = json.loads((out / "prep.json").read_text())
    assert meta["config"]["target"] == "vbm" and meta["seed"] == 0 and meta["versions"]["antspyx"] == "0.6.3"
    assert meta["result"] == {"ok": 2, "failed": 1, "skipped": 0}
    assert not list(out.rglob("*.tmp"))

    # resume: finished subjects are skipped (files untouched), the failed one is tried again
    npy = out / "sub-01" / "sub-01_preproc-cat12vbm_desc-gm_T1w.npy"
    before = npy.stat().st_mtime_ns
    code, stdout, err = run(["prep", "--bids", bids, "--out", out, "--modality", "vbm", *kit.FAST], capfd)
    assert code == 0 and "2 subject(s) prepared (2 already done, skipped), 1 failed" in stdout
    assert npy.stat().st_mtime_ns == before
    assert (out / "logs" / "sub-02.log").read_text().count("FAILED") == 2
    assert len(open_dataset(out)) == 2
    # changed options on the same directory are refused
    code, _, err = run(["prep", "--bids", bids, "--out", out, "--modality", "quasiraw", *kit.FAST], capfd)
    assert "was prepared with other options" in error_line(code, err)


def test_every_subject_failing_is_an_error(tmp_path, kit, capfd):
    bids = kit.write_bids(tmp_path / "bids", {"07": kit.noise_image()})
    code, _, err = run(["prep", "--bids", bids, "--out", tmp_path / "o", "--modality", "quasiraw", *kit.FAST], capfd)
    line = error_line(code, err)
    assert "every subject failed" in line and "sub-07" in line
    qc = pd.read_csv(tmp_path / "o" / "qc.tsv", sep="\t", dtype={"participant_id": str})
    assert list(qc["status"]) == ["failed"]


def test_images_list_and_quasiraw(tmp_path, phantoms, kit, capfd):
    from anatlearn.data import open_dataset

    nib.save(phantoms["identity"].image, tmp_path / "a.nii.gz")
    (tmp_path / "list.csv").write_text("participant_id,path,age,diagnosis\nA1,a.nii.gz,41.5,control\n")
    out = tmp_path / "q"
    code, stdout, err = run(["prep", "--images", tmp_path / "list.csv", "--out", out, "--modality", "quasiraw",
                             "--no-nifti", *kit.FAST], capfd)
    assert code == 0, err
    ds = open_dataset(out, modality="quasiraw")
    assert ds.participants.loc[0, "diagnosis"] == "control" and "path" not in ds.participants
    assert ds.volume(0).shape == (46, 55, 46)
    assert not (out / "sub-A1" / "sub-A1_preproc-quasiraw_T1w.nii.gz").exists()


def _list(tmp_path, img_path):
    lst = tmp_path / "list.tsv"
    lst.write_text(f"participant_id\tpath\tage\nX\t{img_path}\t30\n")
    return lst


def _save(img, path, qform=None, sform=None):
    if qform is not None:
        img.set_qform(img.affine, code=qform)
    if sform is not None:
        img.set_sform(img.affine, code=sform)
    nib.save(img, path)
    return path


AFF = np.diag([2.0, 2.0, 2.0, 1.0])


@pytest.mark.parametrize("case, expected", [
    ("text", "is not a NIfTI image"),
    ("corrupt", "cannot read"),
    ("4d", "4-D image"),
    ("zeros", "is empty"),
    ("constant", "is empty"),
    ("no_orientation", "no orientation metadata"),
    ("singular", "singular"),
])
def test_bad_image_is_one_clear_error(tmp_path, capfd, kit, case, expected):
    rng = np.random.default_rng(0)
    data = rng.random((12, 12, 12)).astype(np.float32)
    if case == "text":
        path = tmp_path / "scan.txt"
        path.write_text("not an image")
    elif case == "corrupt":
        path = tmp_path / "scan.nii.gz"
        path.write_bytes(os.urandom(300))
    elif case == "4d":
        path = _save(nib.Nifti1Image(rng.random((12, 12, 12, 3)).astype(np.float32), AFF), tmp_path / "scan.nii.gz")
    elif case == "zeros":
        path = _save(nib.Nifti1Image(np.zeros((12, 12, 12), np.float32), AFF), tmp_path / "scan.nii.gz")
    elif case == "constant":
        path = _save(nib.Nifti1Image(np.full((12, 12, 12), 7, np.float32), AFF), tmp_path / "scan.nii.gz")
    elif case == "no_orientation":
        path = _save(nib.Nifti1Image(data, AFF), tmp_path / "scan.nii.gz", qform=0, sform=0)
    else:
        bad = AFF.copy()
        bad[2, :3] = bad[1, :3]  # z axis = y axis: not invertible (sform only; a qform cannot hold it)
        hdr = nib.Nifti1Header()
        hdr.set_data_shape(data.shape)
        hdr.set_sform(bad, code=1)
        path = tmp_path / "scan.nii.gz"
        nib.save(nib.Nifti1Image(data, None, hdr), path)
    out = tmp_path / "out"
    code, _, err = run(["prep", "--images", _list(tmp_path, path), "--out", out, *kit.FAST], capfd)
    line = error_line(code, err, absent=out)
    assert expected in line and str(path) in line and "subject X" in line


def test_singleton_4d_is_accepted(tmp_path):
    from anatlearn.prep.validate import load_image

    img = nib.Nifti1Image(np.random.default_rng(0).random((8, 9, 10, 1)).astype(np.float32), AFF)
    path = _save(img, tmp_path / "s.nii.gz")
    assert load_image(path).shape == (8, 9, 10)


def test_bad_inputs_tables(tmp_path, capfd, kit):
    cases = []
    empty_bids = tmp_path / "bids0"
    empty_bids.mkdir()
    cases.append((["--bids", empty_bids], [str(empty_bids / "participants.tsv"), "not found"]))
    no_t1 = tmp_path / "bids1"
    (no_t1 / "sub-01" / "anat").mkdir(parents=True)
    (no_t1 / "participants.tsv").write_text("participant_id\tage\nsub-01\t30\n")
    cases.append((["--bids", no_t1], ["no T1w images found under", str(no_t1)]))
    lst = tmp_path / "l.csv"
    lst.write_text("participant_id,path\nA,missing1.nii.gz\nB,missing2.nii.gz\n")
    cases.append((["--images", lst], ["2 image(s) listed in", str(lst), str(tmp_path / "missing1.nii.gz")]))
    cases.append((["--images", tmp_path / "nope.csv"], ["image list not found", "nope.csv"]))
    cases.append(([], ["exactly one of --bids DIR or --images LIST"]))
    for args, expected in cases:
        out = tmp_path / "out"
        code, _, err = run(["prep", *args, "--out", out, *kit.FAST], capfd)
        line = error_line(code, err, absent=out)
        for text in expected:
            assert text in line, (text, line)
    code, _, err = run(["prep", "--images", lst, "--out", tmp_path / "o", "--modality", "fmri"], capfd)
    assert "unknown --modality 'fmri'" in error_line(code, err)


def test_skip_invalid_records_bad_images(tmp_path, phantoms, kit, capfd):
    nib.save(phantoms["identity"].image, tmp_path / "good.nii.gz")
    nib.save(nib.Nifti1Image(np.zeros((8, 8, 8), np.float32), AFF), tmp_path / "zero.nii.gz")
    (tmp_path / "l.csv").write_text("participant_id,path,age\ng,good.nii.gz,20\nz,zero.nii.gz,21\n")
    out = tmp_path / "o"
    code, stdout, err = run(["prep", "--images", tmp_path / "l.csv", "--out", out, "--modality", "quasiraw",
                             "--skip-invalid", *kit.FAST], capfd)
    assert code == 0 and "1 failed" in stdout, err
    qc = pd.read_csv(out / "qc.tsv", sep="\t", dtype={"participant_id": str}, keep_default_na=False)
    assert list(qc["status"]) == ["ok", "failed"] and "is empty" in qc.loc[1, "error"]


def test_exception_in_one_subject_is_recorded(tmp_path, phantoms, kit, capfd, monkeypatch):
    """An error raised inside ANTs (here simulated for one subject) fails that subject only."""
    import anatlearn.prep.pipeline as pipeline

    real = pipeline.prepare_subject

    def flaky(img, config, log=None):
        if img.shape == kit.noise_image().shape:
            raise RuntimeError("itk::ExceptionObject: Too many samples map outside moving image buffer")
        return real(img, config, log)

    monkeypatch.setattr(pipeline, "prepare_subject", flaky)
    bids = kit.write_bids(tmp_path / "bids", {"a": phantoms["identity"].image, "b": kit.noise_image()})
    out = tmp_path / "o"
    code, stdout, err = run(["prep", "--bids", bids, "--out", out, "--modality", "quasiraw", "--registration", "none",
                             *kit.FAST], capfd)
    assert code == 0 and "1 subject(s) prepared" in stdout, err
    qc = pd.read_csv(out / "qc.tsv", sep="\t", dtype={"participant_id": str}, keep_default_na=False)
    assert list(qc["status"]) == ["ok", "failed"]
    assert qc.loc[1, "error"] == "RuntimeError: itk::ExceptionObject: Too many samples map outside moving image buffer"
    assert "Traceback" in (out / "logs" / "sub-b.log").read_text()
