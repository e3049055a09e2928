"""Library errors name Python parameters (``batch_size``, ``resume=True``); on the command line the user
typed flags. :func:`flags_named` rewrites the parameter names in an error's message to the flags of one
command, so the one line the CLI prints names what the user can change."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Mapping

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
