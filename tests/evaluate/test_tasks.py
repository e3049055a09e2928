"""The task registry: presets, user files, column mapping and subject selection."""

import numpy as np
import pandas as pd
import pytest

from anatlearn.errors import ConfigError, DataError
from anatlearn.evaluate import Task, available_presets, load_preset, load_tasks


def test_every_preset_parses_and_paper_cohorts_are_shipped():
    assert {"adni", "oasis3", "schizconnect", "abide", "synthetic"} <= set(available_presets())
    for name in available_presets():
        tasks = load_preset(name)
        assert tasks and all(t.kind in ("classification", "regression") for t in tasks.values())
    adni = load_preset("adni")
    assert {"AD-vs-CN", "MCI-vs-CN", "MMSE", "CDR-SB"} <= set(adni)
    assert adni["AD-vs-CN"].column == "DX_bl"  # the preset's default mapping of the canonical 'diagnosis'
    assert {"SCZ-vs-CN"} <= set(load_preset("schizconnect")) and {"ASD-vs-TD"} <= set(load_preset("abide"))


def test_user_file_maps_columns_and_adds_tasks(tmp_path):
    f = tmp_path / "tasks.toml"
    f.write_text('preset = "adni"\n[columns]\ndiagnosis = "DX"\nmmse = "MMSE"\n'
                 '[tasks.EMCI-vs-CN]\nkind = "classification"\ncolumn = "DX"\npositive = ["EMCI"]\nnegative = ["CN"]\n')
    tasks = {t.name: t for t in load_tasks(f)}
    assert tasks["AD-vs-CN"].column == "DX" and tasks["MMSE"].column == "MMSE"
    assert tasks["EMCI-vs-CN"].positive == ("EMCI",)
    assert [t.name for t in load_tasks(f, select=["MMSE"])] == ["MMSE"]
    with pytest.raises(ConfigError, match="unknown task.*NOPE"):
        load_tasks(f, select=["NOPE"])


def test_bad_task_files(tmp_path):
    with pytest.raises(ConfigError, match="neither a preset"):
        load_tasks("no-such-preset")
    bad = tmp_path / "bad.toml"
    bad.write_text('[tasks.X]\nkind = "clustering"\ncolumn = "c"\n')
    with pytest.raises(ConfigError, match="task X: kind"):
        load_tasks(bad)
    bad.write_text('[tasks.X]\nkind = "classification"\ncolumn = "c"\npositive = ["a"]\n')
    with pytest.raises(ConfigError, match="positive.*negative"):
        load_tasks(bad)
    bad.write_text('[tasks.X]\nkind = "regression"\ncolum = "c"\n')
    with pytest.raises(ConfigError, match="unknown keys"):
        load_tasks(bad)
    bad.write_text("[tasks.X\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_tasks(bad)


def test_select_filters_labels_and_where(diagnosis_cohort):
    p = diagnosis_cohort
    y = Task("AD-vs-CN", "classification", "diagnosis", ("AD",), ("CN",)).select(p)
    assert len(y) == 240 and y.sum() == 120 and set(y.unique()) == {0, 1}
    # numeric codes read as floats match string values of a TOML file ("1" == 1.0)
    y_code = Task("code", "classification", "code", ("1",), ("2",)).select(p)
    assert (y_code.loc[y.index] == y).all() and len(y_code) == 300 and y_code.sum() == 120
    y_mci = Task("MMSE-MCI", "regression", "mmse", where={"diagnosis": ["MCI"]}).select(p)
    assert len(y_mci) == 60 and np.allclose(y_mci, p.loc[y_mci.index, "mmse"])


def test_select_errors_name_task_and_column(diagnosis_cohort):
    with pytest.raises(DataError, match=r"task T: column 'DX' not found in labels\.tsv"):
        Task("T", "classification", "DX", ("AD",), ("CN",)).select(diagnosis_cohort)
    p = diagnosis_cohort.copy()
    p["mmse"] = p["mmse"].astype(object)
    p.loc[p.index[4], "mmse"] = "n/a?"
    with pytest.raises(DataError, match="non-numeric.*s0004"):
        Task("M", "regression", "mmse").select(p)
