"""Feature tables (anatlearn.features): round trips with metadata, validation errors, id matching; the one
participants reader (anatlearn.data.tables.read_participants) in both of its uses."""

import numpy as np
import pandas as pd
import pytest

from anatlearn.errors import DataError
from anatlearn.evaluate import make_feature_table, match_ids, read_features, read_participants, write_features


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_round_trip_keeps_values_ids_and_metadata(tmp_path, suffix):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(7, 5))
    df = make_feature_table(x, [f"sub-{i}" for i in range(7)], metadata={"checkpoint": "a.pt", "seed": 3})
    path = write_features(df, tmp_path / f"f{suffix}", metadata={"extra": [1, 2]})
    back = read_features(path)
    assert list(back.columns) == ["f0000", "f0001", "f0002", "f0003", "f0004"]
    assert list(back.index) == [f"sub-{i}" for i in range(7)]
    np.testing.assert_allclose(back.to_numpy(), x, rtol=1e-8)
    assert back.attrs["metadata"] == {"checkpoint": "a.pt", "seed": 3, "extra": [1, 2]}


def test_numeric_ids_stay_exact_strings(tmp_path):
    df = make_feature_table(np.ones((2, 1)), [1001, 1002.0])
    back = read_features(write_features(df, tmp_path / "f.csv"))
    assert list(back.index) == ["1001", "1002"]


def test_nan_features_name_the_subject():
    x = np.zeros((3, 2))
    x[1, 0] = np.nan
    with pytest.raises(DataError, match="s1"):
        make_feature_table(x, ["s0", "s1", "s2"])


def test_duplicate_ids_and_empty_table_are_errors():
    with pytest.raises(DataError, match="duplicate"):
        make_feature_table(np.zeros((2, 2)), ["a", "a"])
    with pytest.raises(DataError, match="empty"):
        make_feature_table(np.zeros((0, 2)), [])


def test_unknown_extension_and_missing_file(tmp_path):
    with pytest.raises(DataError, match="extension"):
        write_features(make_feature_table(np.zeros((1, 1)), ["a"]), tmp_path / "f.xlsx")
    with pytest.raises(DataError, match="not found"):
        read_features(tmp_path / "none.parquet")


def test_match_ids_orders_like_participants_and_strips_sub_prefix():
    f = make_feature_table(np.arange(6.0).reshape(3, 2), ["sub-b", "sub-a", "sub-z"])
    p = pd.DataFrame({"age": [1, 2, 3]}, index=pd.Index(["a", "b", "c"], name="participant_id"))
    out = match_ids(f, p)
    assert list(out.index) == ["a", "b"]
    np.testing.assert_array_equal(out.to_numpy(), [[2.0, 3.0], [0.0, 1.0]])


def test_no_common_ids_error_names_both_tables():
    f = make_feature_table(np.zeros((2, 1)), ["x1", "x2"])
    p = pd.DataFrame({"age": [1]}, index=pd.Index(["y1"], name="participant_id"))
    p.attrs["source"] = "labels.tsv"
    with pytest.raises(DataError, match=r"feats.*labels\.tsv.*no participant id in common"):
        match_ids(f, p, "feats")


def test_read_participants_from_directory_and_missing_id_column(tmp_path):
    (tmp_path / "participants.tsv").write_text("participant_id\tage\n0001\t5\n0002\t6\n")
    p = read_participants(tmp_path)
    assert list(p.index) == ["0001", "0002"]  # leading zeros kept: ids are strings
    (tmp_path / "bad.csv").write_text("id,age\n1,2\n")
    with pytest.raises(DataError, match="bad.csv.*participant_id"):
        read_participants(tmp_path / "bad.csv")


def test_read_participants_one_reader_two_contracts(tmp_path):
    """Labels table (default): indexed, ids as written, no age needed. Dataset table: ids a column without
    ``sub-``, sex/site filled, age required and numeric. Both normalise integral float ids from Parquet."""
    from anatlearn.data.tables import DATASET_TABLE

    (tmp_path / "p.tsv").write_text("participant_id\tage\tdx\nsub-01\t7.5\tAD\nsub-02\t\tCN\n")
    labels = read_participants(tmp_path / "p.tsv")
    assert list(labels.index) == ["sub-01", "sub-02"] and list(labels.columns) == ["age", "dx"]
    assert labels.attrs["source"] == str(tmp_path / "p.tsv")
    with pytest.raises(DataError, match=r"p\.tsv: non-numeric or missing age for subject\(s\) 02"):
        read_participants(tmp_path / "p.tsv", require_age=True, **DATASET_TABLE)
    (tmp_path / "q.tsv").write_text("participant_id\tage\nsub-01\t7.5\n02\t9\n")
    data = read_participants(tmp_path / "q.tsv", require_age=True, **DATASET_TABLE)
    assert list(data["participant_id"]) == ["01", "02"] and list(data.index) == [0, 1]
    assert data["age"].tolist() == [7.5, 9.0] and list(data["sex"]) == list(data["site"]) == ["unknown"] * 2
    pd.DataFrame({"participant_id": [1001.0, 1002.0], "age": [30, 40]}).to_parquet(tmp_path / "r.parquet")
    assert list(read_participants(tmp_path / "r.parquet").index) == ["1001", "1002"]
    (tmp_path / "dup.csv").write_text("participant_id,age\nsub-1,2\n1,3\n")
    assert list(read_participants(tmp_path / "dup.csv").index) == ["sub-1", "1"]  # distinct as written
    with pytest.raises(DataError, match="dup.csv lists duplicate ids: 1"):
        read_participants(tmp_path / "dup.csv", **DATASET_TABLE)
    (tmp_path / "empty.tsv").write_text("participant_id\tage\n")
    with pytest.raises(DataError, match="has no subjects"):
        read_participants(tmp_path / "empty.tsv")


def test_evaluate_reexports_the_one_reader_and_the_feature_format():
    import anatlearn.evaluate as ev
    from anatlearn import features
    from anatlearn.data import tables

    assert ev.read_participants is tables.read_participants
    assert ev.make_feature_table is features.make_feature_table and ev.match_ids is features.match_ids
