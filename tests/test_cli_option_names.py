"""Library errors name the Python parameter at fault (in backticks); the command line shows the option
that sets it instead (anatlearn.cli.flags.with_option_names)."""

import pytest

from anatlearn.cli import _register
from anatlearn.cli.flags import with_option_names
from anatlearn.clinical.atlas import patch_grid
from anatlearn.clinical.brain_age import BrainAgeModel
from anatlearn.embed.sharding import ChunkPlan
from anatlearn.errors import ConfigError, DataError
from anatlearn.evaluate import load_tasks

_register()


@pytest.mark.parametrize("make, parameter", [
    (lambda: BrainAgeModel(folds=1), "`folds`"),
    (lambda: ChunkPlan(10, 0), "`chunk_size`"),
    (lambda: patch_grid((4, 4, 4), 0), "`grid`"),
    (lambda: load_tasks("no-such-preset-or-file"), "`spec`"),
])
def test_library_errors_name_the_python_parameter(make, parameter):
    with pytest.raises((ConfigError, DataError)) as err:
        make()
    assert parameter in str(err.value) and "--" not in str(err.value)


@pytest.mark.parametrize("argv, message, expected", [
    (["brain-age", "--out", "o"], "`age_column` 'nope': no such column", "--age-column 'nope': no such column"),
    (["embed"], "use another `out`, or `chunk_size` 5", "use another --out, or --chunk-size 5"),
    # library names that differ from the sub-command's own parameter names
    (["explain", "--steps", "1"], "`n_steps` must be >= 2; `explain` >= 1", "--steps must be >= 2; --subjects >= 1"),
    (["evaluate", "tasks", "--folds", "9"], "lower `n_splits` or drop `sites`", "lower --folds or drop --stratify-site"),
    (["evaluate", "openbhb"], "`site_column` 'x'", "--site-column 'x'"),
    # finetune's settings and a missing split column (pretrain no longer fails on it; embed still selects)
    (["finetune"], "`warmup_epochs` (2) must be below `epochs` (1)", "--warmup-epochs (2) must be below --epochs (1)"),
    (["finetune"], "`kind` 'x' must be one of", "--problem 'x' must be one of"),
    (["embed"], "`split` 'train' requested but d has no 'split' column (leave `split` out",
     "--split 'train' requested but d has no 'split' column (leave --split out"),
    # a parameter the command has no option for keeps its name; unmarked words are never touched
    (["embed"], "`nonexistent` and out", "nonexistent and out"),
])
def test_cli_shows_the_option_of_each_parameter(argv, message, expected):
    assert with_option_names(message, argv) == expected


def test_finetune_settings_errors_name_their_parameters():
    from anatlearn.finetune import FinetuneConfig

    with pytest.raises(ConfigError) as err:
        FinetuneConfig(epochs=1, warmup_epochs=2).validate()
    assert str(err.value) == "`warmup_epochs` (2) must be below `epochs` (1)"


def test_lists_in_errors_are_complete_or_say_how_many_more(tmp_path):
    from anatlearn.data.tables import read_id_table
    from anatlearn.errors import listed

    assert listed(["a", "b"]) == "a, b"
    assert listed(map(str, range(15)), 12) == "0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11 ... and 3 more"
    path = tmp_path / "p.tsv"
    path.write_text("\t".join(f"c{i}" for i in range(20)) + "\n" + "\t".join("1" * 20) + "\n")
    with pytest.raises(DataError, match=r"c11 \.\.\. and 8 more\)"):
        read_id_table(path)
