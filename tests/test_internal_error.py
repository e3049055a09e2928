"""A bug reaches the user as one line (`anatlearn: internal error: TYPE: message`), exit status 1, with the
traceback in a file the line names; ANATLEARN_DEBUG=1 prints the traceback itself."""

import re
import tempfile

import anatlearn.provenance
from anatlearn.cli import main


def _broken(monkeypatch):
    def versions():
        raise RuntimeError("boom\nin two lines")

    monkeypatch.setattr(anatlearn.provenance, "versions", versions)


def test_an_unexpected_exception_is_one_line_and_a_traceback_file(tmp_path, capfd, monkeypatch):
    _broken(monkeypatch)
    monkeypatch.delenv("ANATLEARN_DEBUG", raising=False)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    assert main(["version"]) == 1
    out, err = capfd.readouterr()
    assert "Traceback" not in out + err and out == ""
    assert len(err.splitlines()) == 1, err
    match = re.fullmatch(r"anatlearn: internal error: RuntimeError: boom in two lines \(traceback written to "
                         r"(\S+); ANATLEARN_DEBUG=1 prints it\)\n", err)
    assert match, err
    written = open(match.group(1)).read()
    assert written.startswith("anatlearn version\n") and "Traceback (most recent call last)" in written
    assert "RuntimeError: boom" in written and str(tmp_path) in match.group(1)


def test_anatlearn_debug_prints_the_traceback(capfd, monkeypatch):
    _broken(monkeypatch)
    monkeypatch.setenv("ANATLEARN_DEBUG", "1")
    assert main(["version"]) == 1
    err = capfd.readouterr().err
    assert err.startswith("Traceback (most recent call last)") and "in versions" in err
    assert err.splitlines()[-1] == "anatlearn: internal error: RuntimeError: boom in two lines"


def test_user_errors_stay_exit_2(capfd):
    assert main(["evaluate", "icc", "--features", "missing.parquet", "--retest", "missing.parquet"]) == 2
    assert "anatlearn: error:" in capfd.readouterr().err
