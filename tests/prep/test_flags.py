"""QC flags through the CLI: a prepared subject below a --flag-* threshold is `flagged` (files written, left
out of participants.tsv, listed last and on qc.html), and a resumed run re-decides with its own thresholds."""

import pandas as pd

from anatlearn.cli import main


def run(args, capfd):
    code = main([str(a) for a in args])
    out, err = capfd.readouterr()
    return code, out, err


def test_flagged_subject_is_written_listed_and_excluded(tmp_path, phantoms, kit, capfd):
    bids = kit.write_bids(tmp_path / "bids", {"01": phantoms["identity"].image})
    out = tmp_path / "o"
    # a Dice threshold no subject can reach (Dice <= 1): the phantom must be flagged, not passed
    code, stdout, err = run(["prep", "--bids", bids, "--out", out, "--modality", "quasiraw", *kit.FAST,
                             "--flag-dice", "1.01"], capfd)
    assert code == 0, err
    assert "0 subject(s) prepared" in stdout and "1 flagged by QC" in stdout and "0 failed" in stdout
    assert err.splitlines()[-1].startswith("flagged: sub-01: QC flagged: brain-mask Dice ")
    qc = pd.read_csv(out / "qc.tsv", sep="\t", dtype={"participant_id": str})
    assert qc.loc[0, "status"] == "flagged" and 0.95 < qc.loc[0, "dice_brain"] <= 1.0
    assert (out / "sub-01" / "sub-01_preproc-quasiraw_T1w.npy").is_file()  # written, to look at
    assert pd.read_csv(out / "participants.tsv", sep="\t").empty
    page = (out / "qc.html").read_text()
    assert "Needs a look (1)" in page and "tr class='flagged'" in page
    # resumed with the default thresholds: nothing is recomputed, the subject is re-decided as ok
    npy = out / "sub-01" / "sub-01_preproc-quasiraw_T1w.npy"
    before = npy.stat().st_mtime_ns
    code, stdout, err = run(["prep", "--bids", bids, "--out", out, "--modality", "quasiraw", *kit.FAST], capfd)
    assert code == 0 and "1 subject(s) prepared (1 already done, skipped), 0 failed" in stdout, err
    assert npy.stat().st_mtime_ns == before
    assert list(pd.read_csv(out / "participants.tsv", sep="\t", dtype=str)["participant_id"]) == ["01"]
