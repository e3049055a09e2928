"""Export of a pretraining run: the folder follows the umask, and the model card states the training data
the run recorded (a synthetic cohort called synthetic, with its size) and claims nothing it cannot support."""

import os
import stat

from anatlearn.cli import main


def test_export_of_a_synthetic_run_follows_the_umask_and_says_synthetic(tiny_cohort, tmp_path):
    run, out = tmp_path / "run", tmp_path / "hub"
    assert main(["pretrain", "--data", str(tiny_cohort), "--out", str(run), "--method", "yaware", "--width", "0.125",
                 "--batch-size", "16", "--epochs", "1", "--workers", "0"]) == 0
    old = os.umask(0o022)
    try:
        assert main(["export", str(run / "checkpoints" / "last.pt"), "--out", str(out)]) == 0
    finally:
        os.umask(old)
    assert stat.S_IMODE(out.stat().st_mode) == 0o755
    assert {p.name: stat.S_IMODE(p.stat().st_mode) for p in out.iterdir()} == {
        "README.md": 0o644, "config.json": 0o644, "model.safetensors": 0o644}
    card = (out / "README.md").read_text()
    data = card.split("## Training data\n")[1].split("\n## ")[0]
    import pandas as pd

    n_train = int((pd.read_csv(tiny_cohort / "participants.tsv", sep="\t")["split"] == "train").sum())
    assert data.startswith("A synthetic cohort of 48 generated subjects") and f"{n_train} subjects trained on" in data
    assert "public research cohorts" not in card and "healthy subjects" not in card
    assert "synthetic cohort only" in card.split("## Limitations")[1]
    intended = card.split("## Intended use\n")[1].split("\n## ")[0]
    assert intended.count("training data") <= 2 and "as the training data" not in card
