"""Where a pretraining run's paths come from: stored absolute, so `--out RUN --resume` works from any
directory (tests/pretrain/test_interrupt.py resumes from another one); a typo in --out and a data directory
that has gone since are each one line saying so."""

from pathlib import Path

from anatlearn.cli import main
from anatlearn.pretrain.config import TrainConfig, absolute_paths, stored_data


def _error(capfd, args) -> str:
    code = main([str(a) for a in args])
    out, err = capfd.readouterr()
    lines = [ln for ln in err.splitlines() if ln.startswith("anatlearn: error:")]
    assert code == 2 and len(lines) == 1 and "Traceback" not in out + err, err
    return lines[0]


def test_a_missing_run_folder_is_named_as_missing(tmp_path, capfd, monkeypatch):
    monkeypatch.chdir(tmp_path)
    line = _error(capfd, ["pretrain", "--out", "runs/anatlc", "--resume"])
    assert "the run folder runs/anatlc does not exist" in line and str(tmp_path) in line and "--out" in line, line
    assert "required" not in line
    (tmp_path / "runs" / "anatlc").mkdir(parents=True)
    line = _error(capfd, ["pretrain", "--out", "runs/anatlc", "--resume"])
    assert "runs/anatlc holds no pretraining run (no config.toml)" in line, line
    assert sorted(p.name for p in (tmp_path / "runs" / "anatlc").iterdir()) == []


def test_a_stored_data_directory_that_is_gone_names_its_config_and_option(tiny_cohort, tmp_path, capfd):
    run = tmp_path / "run"
    run.mkdir()
    gone = tmp_path / "moved-away"
    (run / "config.toml").write_text(TrainConfig(data=str(gone), out=str(run)).to_toml())
    line = _error(capfd, ["pretrain", "--out", run, "--resume"])
    assert f"data directory {gone} (stored in {run / 'config.toml'}) no longer exists" in line, line
    assert "give --data" in line, line
    # --data replaces it: the command gets past the data (to the missing checkpoint of this hand-made run)
    line = _error(capfd, ["pretrain", "--out", run, "--resume", "--data", tiny_cohort])
    assert "no checkpoint" in line and "last.pt" in line, line


def test_paths_are_stored_absolute_and_old_relative_ones_are_found(tiny_cohort, tmp_path, monkeypatch):
    monkeypatch.chdir(tiny_cohort.parent)
    cfg = absolute_paths(TrainConfig(data=tiny_cohort.name, out="run"))
    assert cfg.data == str(tiny_cohort) and cfg.out == str(tiny_cohort.parent / "run")
    # an older run stored its data relative to where it was started; from the run folder it is found too
    stored = tmp_path / "runs" / "old" / "config.toml"
    stored.parent.mkdir(parents=True)
    (tmp_path / "runs" / "healthy").symlink_to(tiny_cohort)
    monkeypatch.chdir(tmp_path)
    assert stored_data("../healthy", stored) == str(tmp_path / "runs" / "healthy")
    assert Path(stored_data(str(tiny_cohort), stored)) == tiny_cohort
