"""The three commands end to end on small generated cohorts, and one clear error (exit 2) per bad input."""

import json

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from anatlearn.cli import main
from anatlearn.features import make_feature_table, write_features


def fake_features(root, path, seed=0, n_features=12):
    """Features with an age signal, site shifts and noise, for the participants of the cohort at ``root``."""
    p = pd.read_csv(root / "participants.tsv", sep="\t", dtype={"participant_id": str})
    rng = np.random.default_rng(seed)
    site_shift = {s: np.random.default_rng(int(s[-2:])).normal(0, 1.0, n_features) for s in p["site"].unique()}
    X = (np.outer(p["age"] - 50, np.linspace(0.02, 0.06, n_features)) + rng.normal(0, 0.5, (len(p), n_features))
         + np.stack([site_shift[s] for s in p["site"]]))
    write_features(make_feature_table(X, p["participant_id"]), path)
    return path


@pytest.fixture(scope="module")
def tables(tiny_cohort, tiny_downstream, tmp_path_factory):
    d = tmp_path_factory.mktemp("clinical")
    return {"healthy": fake_features(tiny_cohort, d / "healthy.parquet", 0),
            "down": fake_features(tiny_downstream, d / "down.parquet", 1)}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    import torch

    from anatlearn.models import build_model, default_model_config, save_checkpoint

    torch.manual_seed(0)
    model = build_model(default_model_config("resnet18", width=0.125))
    path = tmp_path_factory.mktemp("ck") / "model.pt"
    save_checkpoint(path, {"format": "anatlearn", "model": model.state_dict(), "model_config": model.model_config})
    return path


def fails(capfd, args, *expected):
    code = main([str(a) for a in args])
    out, err = capfd.readouterr()
    assert code == 2, (code, out[-300:], err[-500:])
    assert "Traceback" not in err + out
    lines = [ln for ln in err.splitlines() if ln.startswith("anatlearn: error:")]
    assert len(lines) == 1, err
    for text in expected:
        assert text in lines[0], (text, lines[0])


def test_brain_age_fit_and_reapply(tables, tiny_cohort, tiny_downstream, tmp_path, capfd):
    args = ["brain-age", "--features", tables["down"], "--participants", tiny_downstream, "--group-column", "diagnosis"]
    assert main([*map(str, args), "--reference", str(tables["healthy"]), "--reference-participants", str(tiny_cohort),
                 "--out", str(tmp_path / "fit")]) == 0
    summary = json.loads((tmp_path / "fit" / "brain_age.json").read_text())
    assert abs(summary["reference"]["r_corrected_gap_age_reference"]) < 0.05
    assert {r["group"] for r in summary["group_comparison"]} == {"AD-like", "SCZ-like"}
    for name in ("brain_age.tsv", "brain_age_model.npz", "brain_age_scatter.png", "gap_by_group.png", "group_comparison.tsv"):
        assert (tmp_path / "fit" / name).is_file(), name
    assert main([*map(str, args), "--fitted", str(tmp_path / "fit" / "brain_age_model.npz"), "--out", str(tmp_path / "again")]) == 0
    first, second = (pd.read_csv(tmp_path / d / "brain_age.tsv", sep="\t") for d in ("fit", "again"))
    pd.testing.assert_frame_equal(first, second)
    capfd.readouterr()
    fails(capfd, args + ["--out", tmp_path / "x"], "--reference", "--fitted")
    (tmp_path / "junk.npz").write_text("not a model")
    fails(capfd, args + ["--fitted", tmp_path / "junk.npz", "--out", tmp_path / "x"], "junk.npz")
    fails(capfd, args + ["--fitted", tmp_path / "fit" / "brain_age_model.npz", "--age-column", "nope", "--out", tmp_path / "x"],
          "--age-column 'nope'")
    fails(capfd, args + ["--fitted", tmp_path / "fit" / "brain_age_model.npz", "--control", "HC", "--out", tmp_path / "x"],
          "control group 'HC'")


def test_harmonize_fit_apply_and_unseen_site(tables, tiny_cohort, tiny_downstream, tmp_path, capfd):
    base = ["harmonize", "--covariate", "age", "--covariate", "sex"]
    assert main([*base, "--features", str(tables["down"]), "--participants", str(tiny_downstream),
                 "--reference", str(tables["healthy"]), "--reference-participants", str(tiny_cohort),
                 "--out", str(tmp_path / "h")]) == 0
    summary = json.loads((tmp_path / "h" / "harmonize.json").read_text())
    assert summary["covariates"] == ["age", "sex"] and (tmp_path / "h" / "features.parquet").is_file()
    model = tmp_path / "h" / "combat_model.npz"
    assert main(["harmonize", "--features", str(tables["healthy"]), "--participants", str(tiny_cohort), "--fitted",
                 str(model), "--out", str(tmp_path / "h2")]) == 0
    capfd.readouterr()
    p = pd.read_csv(tiny_downstream / "participants.tsv", sep="\t", dtype={"participant_id": str})
    p.loc[:2, "site"] = "site99"
    p.to_csv(tmp_path / "moved.tsv", sep="\t", index=False)
    fails(capfd, ["harmonize", "--features", tables["down"], "--participants", tmp_path / "moved.tsv", "--fitted", model,
                  "--out", tmp_path / "x"], "site99", "down.parquet", "not in the reference")
    fails(capfd, [*base, "--covariate", "nope", "--features", tables["down"], "--participants", tiny_downstream,
                  "--reference", tables["healthy"], "--reference-participants", tiny_cohort, "--out", tmp_path / "x"],
          "nope", "not found")
    fails(capfd, ["harmonize", "--features", tables["down"], "--participants", tiny_downstream, "--out", tmp_path / "x"],
          "--reference")


def test_explain_runs_and_rejects_bad_atlas(checkpoint, tiny_downstream, tmp_path, capfd):
    args = ["explain", "--weights", str(checkpoint), "--data", str(tiny_downstream), "--task", "AD-like-vs-CN",
            "--subjects", "2", "--steps", "4"]
    assert main([*args, "--out", str(tmp_path / "e")]) == 0
    summary = json.loads((tmp_path / "e" / "explain.json").read_text())
    assert summary["n_regions"] == 68 and summary["n_explained"] == 2 and "AD-like" in summary["truth_auc"]
    regions = pd.read_csv(tmp_path / "e" / "regions.tsv", sep="\t")
    assert len(regions) == 68 and regions["share"].sum() == pytest.approx(1.0)
    assert nib.load(str(tmp_path / "e" / "region_importance.nii.gz")).shape == (32, 40, 32)
    capfd.readouterr()
    nib.save(nib.Nifti1Image(np.ones((10, 10, 10), np.int16), np.eye(4)), str(tmp_path / "small_atlas.nii.gz"))
    fails(capfd, [*args, "--atlas", tmp_path / "small_atlas.nii.gz", "--out", tmp_path / "x"], "small_atlas.nii.gz", "shape")
    fails(capfd, [*args, "--atlas", "bogus", "--out", tmp_path / "x"], "--atlas 'bogus'")
    fails(capfd, [*args[:5], "--task", "NOPE", "--out", tmp_path / "x"], "NOPE")
    fails(capfd, [*args, "--subjects", "0", "--out", tmp_path / "x"], "--subjects")


def test_explain_progress_per_attributed_subject_only_on_a_terminal(checkpoint, tiny_downstream, tmp_path, capfd,
                                                                     monkeypatch):
    import contextlib

    import anatlearn.progress

    args = ["explain", "--weights", str(checkpoint), "--data", str(tiny_downstream), "--task", "AD-like-vs-CN",
            "--subjects", "3", "--steps", "4"]
    assert main([*args, "--out", str(tmp_path / "quiet")]) == 0  # stderr is no terminal here: no bar drawn
    assert "integrated gradients" not in capfd.readouterr().err
    updates = []

    class Recorder:
        def update(self, **kwargs):
            updates.append(kwargs)

    @contextlib.contextmanager
    def recording(description, total, **kwargs):
        updates.append({"description": description, "total": total})
        yield Recorder()

    monkeypatch.setattr(anatlearn.progress, "progress", recording)
    assert main([*args, "--out", str(tmp_path / "shown")]) == 0
    steps = [u for u in updates if "completed" in u]
    assert [u["completed"] for u in steps] == [1, 2, 3] and {u["total"] for u in steps} == {3}
    assert "integrated gradients, 4 steps" in steps[-1]["description"]


def test_harmonize_site_probe_below_chance_carries_a_note(tables, tiny_cohort, tiny_downstream, tmp_path, capfd,
                                                          monkeypatch):
    """0.610 -> 0.078 at chance 0.250 with ~10 subjects per site: below chance by more than 2 SD of guessing
    (about 0.14 here), so the JSON, the printed lines and the report all say so; 0.55 and 0.20 are not."""
    import anatlearn.clinical.run as run
    from anatlearn.evaluate.chance import margin
    from anatlearn.report import build_report

    scores = iter([0.60, 0.55, 0.610, 0.078])  # reference before/after, then this cohort before/after
    monkeypatch.setattr(run, "site_balanced_accuracy", lambda *a, **k: next(scores))
    assert main(["harmonize", "--covariate", "age", "--features", str(tables["down"]), "--participants",
                 str(tiny_downstream), "--reference", str(tables["healthy"]), "--reference-participants",
                 str(tiny_cohort), "--out", str(tmp_path / "h")]) == 0
    out, err = capfd.readouterr()
    summary = json.loads((tmp_path / "h" / "harmonize.json").read_text())
    check = summary["site_check"]
    counts = list(check["n_per_site"].values())
    assert sum(counts) == check["n_subjects"] == 40 and 0.078 < 0.25 - margin(counts) < 0.20
    assert check["note"].startswith("site probe on this cohort after ComBat (0.078) is below chance 0.250 by more than")
    assert "anticorrelates with site" in check["note"] and "note" not in summary["reference_site_check"]
    assert len(summary["warnings"]) == 2 and "empirical-Bayes" in summary["warnings"][0]  # EB caveat, then this one
    assert "0.610 -> 0.078 (chance 0.250)" in out and "below chance" in err and "anticorrelates" in err
    text = build_report([tmp_path / "h"], tmp_path / "r.html").read_text()
    after = text.index("0.078 after ComBat (chance 0.250, n = 40)")
    assert text.index("<b>Below chance.</b>", after) - after < 200  # the note sits right under the numbers
    assert text.count("anticorrelates with site") == 1  # shown once, not again among the warnings
    assert "of the downstream cohort harmonised" in text

    scores = iter([0.60, 0.55, 0.610, 0.20])
    assert main(["harmonize", "--covariate", "age", "--features", str(tables["down"]), "--participants",
                 str(tiny_downstream), "--reference", str(tables["healthy"]), "--reference-participants",
                 str(tiny_cohort), "--out", str(tmp_path / "h2")]) == 0
    assert "note" not in json.loads((tmp_path / "h2" / "harmonize.json").read_text())["site_check"]
    assert "below chance" not in capfd.readouterr().err
