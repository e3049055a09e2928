"""`anatlearn evaluate openbhb|tasks|icc` end to end on generated files; user errors exit 2 with one line."""

import json

import numpy as np
import pandas as pd

from anatlearn.cli import main
from anatlearn.evaluate import Results, make_feature_table, write_features


def _files(tmp_path, participants, x):
    participants.reset_index().to_csv(tmp_path / "participants.tsv", sep="\t", index=False)
    write_features(make_feature_table(x, participants.index), tmp_path / "f.parquet")
    return tmp_path / "participants.tsv", tmp_path / "f.parquet"


def test_openbhb_cli_writes_results(tmp_path, openbhb_like, capsys):
    rng = np.random.default_rng(0)
    x = np.c_[openbhb_like["age"].to_numpy() + rng.normal(0, 1, len(openbhb_like)), rng.normal(size=(len(openbhb_like), 3))]
    parts, feats = _files(tmp_path, openbhb_like, x)
    code = main(["evaluate", "openbhb", "--features", f"lin={feats}", "--participants", str(parts),
                 "--out", str(tmp_path / "res"), "--n-boot", "50"])
    assert code == 0
    assert "mae_external" in capsys.readouterr().out
    res = Results.read(tmp_path / "res")
    assert res.kind == "openbhb" and set(res.table.method) == {"lin"}
    assert (tmp_path / "res" / "predictions.csv").is_file()


def test_tasks_cli_with_column_mapping_and_errors(tmp_path, diagnosis_cohort, capsys):
    p = diagnosis_cohort.rename(columns={"diagnosis": "DX", "mmse": "MMSE"})
    rng = np.random.default_rng(1)
    x = np.c_[(p["DX"] == "AD").to_numpy(float) * 2 + rng.normal(0, 1, len(p)), rng.normal(size=(len(p), 3))]
    parts, feats = _files(tmp_path, p, x)
    base = ["evaluate", "tasks", "--features", str(feats), "--participants", str(parts), "--tasks", "adni",
            "--folds", "3", "--repeats", "2"]
    code = main(base + ["--task", "AD-vs-CN", "--task", "MMSE", "--column", "diagnosis=DX", "--column", "mmse=MMSE",
                        "--out", str(tmp_path / "res")])
    assert code == 0
    table = pd.read_csv(tmp_path / "res" / "results.csv")
    assert set(table.task) == {"AD-vs-CN", "MMSE"} and set(table.method) == {"f"}
    assert list(table.columns[:7]) == ["method", "task", "metric", "mean", "ci_low", "ci_high", "n"]
    capsys.readouterr()
    # without the mapping the preset's default column DX_bl is missing: one clear line, exit 2
    assert main(base + ["--task", "AD-vs-CN"]) == 2
    assert "column 'DX_bl' not found" in capsys.readouterr().err
    assert main(base + ["--column", "oops"]) == 2


def test_icc_cli(tmp_path, capsys):
    """evaluate icc follows the contract of the other evaluate commands: a results directory that report
    reads, a "wrote" line, and every feature accounted for (constant ones named)."""
    from anatlearn.evaluate.results import Results

    rng = np.random.default_rng(2)
    ids = [f"s{i}" for i in range(40)]
    true = rng.normal(size=(40, 5))
    a, b = true + rng.normal(0, 0.1, true.shape), true + rng.normal(0, 0.1, true.shape)
    a[:, 3] = b[:, 3] = 1.0  # a dead feature: no between-subject variance in either session
    write_features(make_feature_table(a, ids), tmp_path / "a.csv")
    write_features(make_feature_table(b, ids), tmp_path / "b.csv")
    assert main(["evaluate", "icc", "--features", f"m={tmp_path / 'a.csv'}", "--retest", f"m={tmp_path / 'b.csv'}",
                 "--out", str(tmp_path / "icc")]) == 0
    printed = capsys.readouterr()
    assert "wrote" in printed.out and "1 of 5 features are constant" in printed.err and "f0003" in printed.err
    results = Results.read(tmp_path / "icc")
    assert results.kind == "icc" and list(results.table.method) == ["m"]
    info = results.extra["methods"]["m"]
    assert info["n_features"] == 5 and info["n_scored"] == 4 and info["unscored"] == ["f0003"]
    assert results.table["n"].iloc[0] == 4 and results.table["mean"].iloc[0] > 0.95
    assert len(results.extra["per_feature"]) == 5
    # names must match between the sessions
    assert main(["evaluate", "icc", "--features", f"m={tmp_path / 'a.csv'}", "--retest", f"x={tmp_path / 'b.csv'}"]) == 2
