"""Saved linear probes (evaluate tasks --save-probes) and predict with them: the stored linear map against
scikit-learn's fitted probe, the CLI round trip, and the refusals (other features, unseen labels, the
wrong input for the model)."""

import json

import numpy as np
import pandas as pd
import pytest

from anatlearn.cli import main
from anatlearn.evaluate import load_tasks
from anatlearn.evaluate.probes import fit_probe
from anatlearn.evaluate.saved_probes import apply_probe, probe_record
from anatlearn.features import make_feature_table, read_features, write_features

N = 60


@pytest.fixture()
def cohort(tmp_path):
    rng = np.random.default_rng(0)
    ids = [f"sub-{i:03d}" for i in range(N)]
    ad = np.arange(N) % 2 == 1
    mmse = 29 - 6 * ad + rng.normal(0, 1.5, N)
    table = pd.DataFrame({"participant_id": ids, "diagnosis": np.where(ad, "AD-like", "CN"), "cohort": "AD-like",
                          "MMSE_like": mmse.round(2)})
    table.to_csv(tmp_path / "participants.tsv", sep="\t", index=False)
    feats = make_feature_table(rng.normal(size=(N, 8)) + np.outer(ad, np.linspace(1.0, 0.0, 8)) * 1.2, ids,
                               metadata={"checkpoint": "enc.pt"})
    write_features(feats, tmp_path / "feats.parquet")
    return tmp_path, table.set_index("participant_id"), feats


@pytest.mark.parametrize("task_name", ["AD-like-vs-CN", "MMSE-like"])
def test_stored_linear_map_is_the_fitted_probe(cohort, task_name):
    _, table, feats = cohort
    task = load_tasks("synthetic", select=[task_name])[0]
    record = json.loads(json.dumps(probe_record(feats, table, task, "enc")))  # through JSON, as stored
    y = task.select(table).loc[feats.index].to_numpy()
    probe = fit_probe(feats.to_numpy(), y, task.kind)
    mine = apply_probe(record, feats, "feats")
    if task.kind == "classification":
        np.testing.assert_allclose(mine, probe.predict_proba(feats.to_numpy()), rtol=0, atol=1e-10)
        assert record["classes"] == ["CN", "AD-like"] and record["penalty"]["C"] == float(np.ravel(probe[-1].C_)[0])
    else:
        np.testing.assert_allclose(mine, probe.predict(feats.to_numpy()), rtol=0, atol=1e-8)
    assert record["n_subjects"] == N and record["encoder"] == "enc.pt"


def test_save_then_predict_round_trip_and_refusals(cohort, capsys):
    root, table, feats = cohort
    out = root / "results"
    assert main(["evaluate", "tasks", "--features", f"enc={root / 'feats.parquet'}", "--participants",
                 str(root / "participants.tsv"), "--tasks", "synthetic", "--task", "AD-like-vs-CN", "--folds", "3",
                 "--repeats", "1", "--out", str(out), "--save-probes"]) == 0
    probe = out / "probes" / "enc" / "AD-like-vs-CN.json"
    assert probe.is_file()
    # new subjects: the first 10, with their features shuffled in column order (matched by name)
    new = read_features(root / "feats.parquet").iloc[:10]
    write_features(new[new.columns[::-1]], root / "new.parquet")
    preds = root / "preds.csv"
    # --features NAME=PATH, as everywhere features are read
    assert main(["predict", "--fitted", str(probe), "--features", f"enc={root / 'new.parquet'}", "--out", str(preds)]) == 0
    got = pd.read_csv(preds).set_index("participant_id")
    expected = apply_probe(json.loads(probe.read_text()), feats.iloc[:10], "feats")
    np.testing.assert_allclose(got[["prob_CN", "prob_AD-like"]].to_numpy(), expected, atol=1e-12)
    assert list(got["predicted"]) == [["CN", "AD-like"][k] for k in expected.argmax(1)]
    capsys.readouterr()

    def refused(args, *words):
        before = set(root.rglob("*"))
        assert main(args) == 2
        err = capsys.readouterr().err
        assert all(w in err for w in words), err
        assert "Traceback" not in err and set(root.rglob("*")) == before

    write_features(new.iloc[:, :5], root / "short.parquet")
    refused(["predict", "--fitted", str(probe), "--features", str(root / "short.parquet"), "--out", str(root / "x.csv")],
            "short.parquet", "feature columns")
    table.assign(diagnosis=["MCI"] + list(table["diagnosis"][1:])).reset_index().to_csv(
        root / "unseen.tsv", sep="\t", index=False)
    refused(["predict", "--fitted", str(probe), "--features", str(root / "new.parquet"), "--participants",
             str(root / "unseen.tsv"), "--out", str(root / "x.csv")], "unseen.tsv", "MCI", "never saw")
    refused(["predict", "--fitted", str(probe), "--data", str(root), "--out", str(root / "x.csv")], "--features")
    refused(["evaluate", "tasks", "--features", str(root / "feats.parquet"), "--participants",
             str(root / "participants.tsv"), "--tasks", "synthetic", "--save-probes"], "--save-probes", "--out")
