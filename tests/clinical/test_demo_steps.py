"""The demo's clinical part skips a tool that refuses the features, records why, and runs the others."""

import json

import pandas as pd

import anatlearn.clinical.demo_steps as steps
from anatlearn.errors import DataError


def test_a_refusing_tool_is_skipped_and_recorded(tmp_path, monkeypatch):
    ran = []

    def refuse(out, *a, **k):
        raise DataError("the age model's cross-validated predictions do not follow age")

    monkeypatch.setattr(steps, "run_brain_age", refuse)
    monkeypatch.setattr(steps, "run_harmonize", lambda out, *a, **k: ran.append(out.name))
    monkeypatch.setattr(steps, "run_explain", lambda out, *a, **k: ran.append(out.name))
    empty = pd.DataFrame()
    out = steps.run_clinical_demo(tmp_path / "clinical", "w.pt", tmp_path, empty, empty, empty, empty, quick=True)
    assert ran == ["harmonize", "explain"]
    assert json.loads((out / "skipped.json").read_text()) == {
        "brain-age": "the age model's cross-validated predictions do not follow age"}


def test_nothing_skipped_writes_no_record(tmp_path, monkeypatch):
    for name in ("run_brain_age", "run_harmonize", "run_explain"):
        monkeypatch.setattr(steps, name, lambda out, *a, **k: None)
    empty = pd.DataFrame()
    out = steps.run_clinical_demo(tmp_path / "clinical", "w.pt", tmp_path, empty, empty, empty, empty)
    assert not (out / "skipped.json").exists()
