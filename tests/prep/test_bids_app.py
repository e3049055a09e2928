"""``anatlearn bids``: a BIDS dataset made from Debian's Colin27 head (two subjects, one with a session),
the participant level for each subject then the group level, at the coarse test settings (4 mm template
and grid, no skull stripping) with a tiny randomly initialised encoder saved by the test."""

import json

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch

from anatlearn.cli import main

FAST = ["--template-resolution", "4", "--target-voxel-mm", "4", "--skull-strip", "no", "--syn-iterations", "20,0"]
SPACE = "space-MNI152NLin2009aSym_res-4_label-GM_probseg.nii.gz"
STDERR: list[str] = []  # what each run of the `derivatives` fixture printed on stderr


@pytest.fixture(scope="module")
def bids_colin(tmp_path_factory):
    from colin import colin_dir, load_colin, scaled

    if colin_dir() is None:
        pytest.skip("Colin27 head not installed (apt-get install mricron-data)")
    root = tmp_path_factory.mktemp("bidsapp") / "bids"
    brain = load_colin("brain", 4.0)
    scans = {"sub-01/anat/sub-01_T1w.nii.gz": brain,
             "sub-02/ses-a/anat/sub-02_ses-a_T1w.nii.gz": scaled(brain, 1.05)}
    for rel, img in scans.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        nib.save(img, root / rel)
    (root / "dataset_description.json").write_text(json.dumps({"Name": "colin", "BIDSVersion": "1.9.0"}))
    (root / "participants.tsv").write_text("participant_id\tage\nsub-01\t44\nsub-02\t44\n")
    return root


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    from anatlearn.models import build_model, default_model_config, save_checkpoint

    torch.manual_seed(0)
    model = build_model(default_model_config("resnet18", width=0.125))
    path = tmp_path_factory.mktemp("bidsckpt") / "tiny.pt"
    save_checkpoint(path, {"format": "anatlearn", "model": model.state_dict(), "model_config": model.model_config})
    return path


def bids(capfd, *args) -> tuple[int, str, str]:
    code = main(["bids", *map(str, args)])
    out, err = capfd.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def derivatives(bids_colin, weights, tmp_path_factory):
    """Participant level for sub-01, the group level, participant level for sub-02, the group level again
    (exit codes, outputs; what each printed on stderr is kept in STDERR)."""
    import contextlib
    import io

    out = tmp_path_factory.mktemp("bidsout") / "derivatives"
    participant = ["participant", "--weights", str(weights), *FAST]
    runs = [[*participant, "--participant-label", "01"], ["group"], [*participant, "--participant-label", "02"],
            ["group"]]
    codes = []
    for args in runs:
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            codes.append(main(["bids", str(bids_colin), str(out), *args]))
        STDERR.append(err.getvalue())
    return out, [codes[0], codes[2], codes[3]]


def test_participant_then_group_gives_bids_derivatives(derivatives, bids_colin, weights):
    from bids import BIDSLayout

    from anatlearn import __version__
    from anatlearn.embed import AnatEncoder

    out, codes = derivatives
    assert codes == [0, 0, 0]
    desc = json.loads((out / "dataset_description.json").read_text())
    assert desc["DatasetType"] == "derivative" and desc["GeneratedBy"][0]["Version"] == __version__
    assert "participant --participant-label 02 --weights" in desc["GeneratedBy"][0]["CommandLine"]
    # pybids indexes the derivatives with the right entities
    layout = BIDSLayout(str(bids_colin), derivatives=str(out))
    maps = layout.get(scope="derivatives", suffix="probseg", extension=".nii.gz")
    assert sorted((m.entities["subject"], m.entities.get("session"), m.entities["space"]) for m in maps) == \
        [("01", None, "MNI152NLin2009aSym"), ("02", "a", "MNI152NLin2009aSym")]
    m1 = out / "sub-01" / "anat" / f"sub-01_{SPACE}"
    qc2 = json.loads((out / "sub-02/ses-a/anat/sub-02_ses-a_desc-prep_qc.json").read_text())
    assert qc2["status"] == "ok" and qc2["seed"] == 0 and qc2["threads"] == 1 and qc2["session_id"] == "ses-a"
    # the group table: two rows whose features are the encoder's on the written maps
    table = pd.read_csv(out / "group" / "desc-resnet18_features.tsv", sep="\t", dtype=str,
                        keep_default_na=False)
    assert list(table["participant_id"]) == ["sub-01", "sub-02"] and list(table["session_id"]) == ["n/a", "ses-a"]
    volume = np.asarray(nib.load(m1).dataobj, np.float32)
    expected = AnatEncoder(weights, jit=False, channels_last=False).transform({"01": volume}).to_numpy()[0]
    got = table.filter(like="f0").to_numpy(float)[0]
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
    # the modulated map of the 1.05x copy integrates to about 1.05**3 times the original's GM
    m2 = np.asarray(nib.load(out / "sub-02" / "ses-a" / "anat" / f"sub-02_ses-a_{SPACE}").dataobj)
    assert m2.sum() / volume.sum() == pytest.approx(1.05 ** 3, rel=0.05)
    qc = pd.read_csv(out / "group" / "qc.tsv", sep="\t")
    assert list(qc["status"]) == ["ok", "ok"]
    page = (out / "group" / "qc.html").read_text()
    assert page.count("data:image/png;base64,") == 2


def test_participant_level_says_each_stage_and_every_qc_path_exists(derivatives):
    out, _ = derivatives
    first = STDERR[0]
    line = next(ln for ln in first.splitlines() if ln.startswith("sub-01: "))
    for stage in ("skull strip", "bias correction", "registration", "segmentation"):
        assert f"{stage} " in line and " s" in line, line
    assert "; ok in " in line and "embedding: 1 scan(s) in " in first
    # the group level between the two participant runs lists the scan still to run, and how
    note = STDERR[1]
    assert "1 scan(s) of" in note and "sub-02_ses-a" in note and "--participant-label 02 --weights" in note
    assert "no derivatives" not in STDERR[3]  # every scan done: nothing listed
    # `sub-` once: no file name and no text file of the derivatives says sub-sub-
    files = [p for p in out.rglob("*") if p.is_file()]
    assert not [p for p in files if "sub-sub-" in str(p.relative_to(out))]
    for p in files:
        if p.suffix in (".json", ".tsv", ".html", ".log"):
            assert "sub-sub-" not in p.read_text(errors="replace"), p
    qcs = sorted(out.glob("sub-*/**/*_qc.json"))
    assert len(qcs) == 2
    for qc in qcs:
        row = json.loads(qc.read_text())
        for key in ("map", "features", "figure", "log"):
            assert row[key] and (out / row[key]).is_file(), (qc, key, row[key])
        assert __import__("pathlib").Path(row["source"]).is_file()
        assert set(row["stage_seconds"]) == {"skull strip", "bias correction", "registration", "segmentation"}


def test_rerun_skips_finished_scans(derivatives, bids_colin, weights, capfd):
    out, _ = derivatives
    m1 = out / "sub-01" / "anat" / f"sub-01_{SPACE}"
    before = m1.stat().st_mtime_ns
    code, stdout, _ = bids(capfd, bids_colin, out, "participant", "--weights", weights, *FAST)
    assert code == 0 and "2 already done (skipped)" in stdout, stdout
    assert m1.stat().st_mtime_ns == before


def test_bad_inputs_are_one_clear_error(bids_colin, weights, tmp_path, capfd):
    code, _, err = bids(capfd, tmp_path, tmp_path / "out", "participant", "--weights", weights)
    assert code == 2 and "is not a valid BIDS dataset" in err and "Traceback" not in err
    assert err.count("\n") == 1, err  # one line
    code, _, err = bids(capfd, bids_colin, tmp_path / "out", "participant", "--participant-label", "07",
                        "--weights", weights)
    assert code == 2 and "participant label(s) not in" in err and "07" in err
    code, _, err = bids(capfd, bids_colin, tmp_path / "out", "group")
    assert code == 2 and "dataset_description.json" in err
    assert not (tmp_path / "out").exists()


def test_a_failed_scan_makes_a_nonzero_exit(tmp_path, weights, capfd, kit):
    """A pure-noise 'T1w' fails prep's QC gate: exit 1, the other scan is still written."""
    from colin import colin_dir, load_colin

    if colin_dir() is None:
        pytest.skip("Colin27 head not installed")
    root = tmp_path / "bids"
    for pid, img in (("01", load_colin("brain", 4.0)), ("09", kit.noise_image())):
        (root / f"sub-{pid}" / "anat").mkdir(parents=True)
        nib.save(img, root / f"sub-{pid}" / "anat" / f"sub-{pid}_T1w.nii.gz")
    (root / "dataset_description.json").write_text(json.dumps({"Name": "x", "BIDSVersion": "1.9.0"}))
    code, stdout, err = bids(capfd, root, tmp_path / "out", "participant", "--weights", weights, *FAST)
    assert code == 1 and "1 failed" in stdout and "failed: sub-09" in err, (stdout, err)
    assert (tmp_path / "out" / "sub-01" / "anat" / f"sub-01_{SPACE}").is_file()
    assert not (tmp_path / "out" / "sub-09" / "anat" / f"sub-09_{SPACE}").exists()
    # the group level lists the failed scan first and leaves it out of the feature table
    assert main(["bids", str(root), str(tmp_path / "out"), "group"]) == 0
    qc = pd.read_csv(tmp_path / "out" / "group" / "qc.tsv", sep="\t")
    assert list(qc["participant_id"]) == ["sub-09", "sub-01"] and list(qc["status"]) == ["failed", "ok"]
    table = pd.read_csv(tmp_path / "out" / "group" / "desc-resnet18_features.tsv", sep="\t")
    assert list(table["participant_id"]) == ["sub-01"]
    page = (tmp_path / "out" / "group" / "qc.html").read_text()
    assert page.index("sub-09") < page.index("sub-01") and "no prepared map" in page
