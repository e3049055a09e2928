"""``anatlearn study`` on bad input: one clear line, exit 2, nothing written."""

import pytest

from anatlearn.cli import main


@pytest.mark.parametrize("args, message", [
    (["--grid", "huge"], "unknown --grid 'huge'"),
    (["--device", "tpu"], "unknown --device 'tpu'; choose auto, cpu or cuda"),
    (["--workers", "0"], "--workers must be at least 1"),
    (["--max-cells", "0"], "--max-cells must be at least 1"),
    (["--aggregate-only"], "holds no study"),
])
def test_bad_study_options(tmp_path, capsys, args, message):
    out = tmp_path / "st"
    assert main(["study", "--out", str(out), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert not (out / "data").exists()
