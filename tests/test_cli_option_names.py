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
    # a parameter the command has no option for keeps its name; unmarked words are never touched
    (["embed"], "`nonexistent` and out", "nonexistent and out"),
])
def test_cli_shows_the_option_of_each_parameter(argv, message, expected):
    assert with_option_names(message, argv) == expected
