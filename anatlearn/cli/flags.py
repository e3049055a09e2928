"""Library errors name Python parameters; on the command line the user typed flags. Both ways a library
message can name a parameter become the option that sets it here, so the one line the CLI prints names what
the user can change: a name in backticks (`age_column`), mapped for every command by :func:`with_option_names`
from the invoked sub-command's own options; and, for pretrain's configuration errors, a bare name from a
command's table (:func:`flags_named`)."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Mapping

import typer

from anatlearn.errors import AnatlearnError


def with_flags(message: str, flags: Mapping[str, str]) -> str:
    """``message`` with each parameter name of ``flags`` (``{"batch_size": "--batch-size"}``, or a phrase like
    ``"resume=True"``) replaced by its flag where it stands as a word of its own: not inside another name, a
    quoted value, a ``key=value`` pair or a comma-separated list of keys (a TOML file's keys stay keys)."""
    for name, flag in flags.items():
        message = re.sub(rf"(?<![\w'=-]){re.escape(name)}(?![\w'=,])", flag, message)
    return message


@contextlib.contextmanager
def flags_named(flags: Mapping[str, str]) -> Iterator[None]:
    """Re-raise an :class:`AnatlearnError` of the enclosed library call with its parameters named as flags."""
    try:
        yield
    except AnatlearnError as exc:
        mapped = with_flags(str(exc), flags)
        if mapped == str(exc):
            raise
        raise type(exc)(mapped) from None


# Library errors name a Python parameter in backticks (`age_column`); on the command line it reads as the
# option that sets it. A sub-command's own parameters map by name (typer keeps them); these are the library
# parameters whose option has another name, per sub-command.
LIBRARY_PARAMETER_FLAGS = {
    "explain": {"explain": "--subjects", "n_steps": "--steps", "data_dir": "--data", "spec": "--tasks"},
    "evaluate tasks": {"n_splits": "--folds", "n_repeats": "--repeats", "sites": "--stratify-site",
                       "spec": "--tasks"},
    "evaluate anatomy": {"n_splits": "--folds"},
    "harmonize": {"covariates": "--covariate", "model": "--fitted"},
    "brain-age": {"model": "--fitted"},
    "finetune": {"kind": "--problem"},
    "pretrain": {"encoder": "--model", "num_workers": "--workers", "amp": "--precision"},
}
_PARAMETER = re.compile(r"`([A-Za-z_][A-Za-z0-9_]*)`")


def _option_names(argv: list[str]) -> dict[str, str]:
    """Python parameter name -> long option of the sub-command that ``argv`` invokes."""
    from anatlearn.cli import app

    command, path = typer.main.get_command(app), []
    for arg in argv:
        sub = getattr(command, "commands", {}).get(arg) if not arg.startswith("-") else None
        if sub is None:
            if not arg.startswith("-"):
                break
            continue
        command, path = sub, [*path, arg]
    flags = {}
    for param in getattr(command, "params", []):
        long = [o for o in param.opts if o.startswith("--")]
        if long and param.name:
            flags[param.name] = long[0]
    return flags | LIBRARY_PARAMETER_FLAGS.get(" ".join(path), {})


def with_option_names(message: str, argv: list[str]) -> str:
    """``message`` with each backticked Python parameter replaced by its command-line option (a name the
    invoked sub-command has no option for loses only its backticks)."""
    flags = _option_names(argv)
    return _PARAMETER.sub(lambda m: flags.get(m.group(1), m.group(1)), message)
