"""One vocabulary across commands: the old spellings of options, accepted for one release with a warning.

Every command spells the same idea the same way (``--model`` the encoder architecture, ``--precision``,
``--features [NAME=]PATH``, ``--participants``, ``--folds``, ``--workers``, ``--fitted`` a saved model). The
spellings that earlier releases used are rewritten here, before typer parses the line, so they work but stay
out of every help page; each prints one warning per run.
"""
from __future__ import annotations

import sys

# command path -> {old option: (new option, value mapping or None, a value to append for an old flag)}
_ANY = "*"
DEPRECATED: dict[str, dict[str, tuple[str, dict | None, str | None]]] = {
    "pretrain": {"--encoder": ("--model", None, None),
                 "--amp": ("--precision", {"off": "fp32"}, None),
                 "--num-workers": ("--workers", None, None)},
    "embed": {"--bf16": ("--precision", None, "bf16"),
              "--num-workers": ("--workers", None, None)},
    "evaluate openbhb": {"--cv": ("--folds", None, None)},
    "evaluate icc": {"--test": ("--features", None, None)},
    "brain-age": {"--model": ("--fitted", None, None)},
    "harmonize": {"--model": ("--fitted", None, None)},
    "predict": {"--model": ("--fitted", None, None)},
    "prep": {"--target": ("--modality", None, None)},  # --target is a column of the participants table
    "bids": {"--target": ("--modality", None, None)},
    _ANY: {},
}

# Old meanings of a name that stays, told apart by the value: command -> {option: (old values, new option)}.
# (`finetune --task classification` was the problem type; --task now names a task of --tasks.)
BY_VALUE: dict[str, dict[str, tuple[set, str]]] = {
    "finetune": {"--task": ({"classification", "regression"}, "--problem")},
}

_GROUPS = {"evaluate"}  # commands with sub-commands


def _command_path(argv: list[str]) -> tuple[str, int]:
    """The sub-command path ("evaluate openbhb") and the index where its options start."""
    words, i = [], 0
    while i < len(argv) and not argv[i].startswith("-"):
        words.append(argv[i])
        i += 1
        if len(words) == 1 and words[0] not in _GROUPS or len(words) == 2:
            break
    return " ".join(words), i


def rewrite_deprecated(argv: list[str], warn=None) -> list[str]:
    """``argv`` with every deprecated option replaced by its current spelling (one warning each)."""
    warn = warn or (lambda msg: print(f"anatlearn: warning: {msg}", file=sys.stderr))
    command, start = _command_path(argv)
    table = {**DEPRECATED[_ANY], **DEPRECATED.get(command, {})}
    by_value = BY_VALUE.get(command, {})
    out, warned, i = list(argv[:start]), set(), start
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            out.extend(argv[i:])
            break
        name, eq, inline = arg.partition("=")
        value = inline if eq else (argv[i + 1] if i + 1 < len(argv) else None)
        if name in by_value and value in by_value[name][0]:
            new = by_value[name][1]
            if name not in warned:
                warn(f"{name} {value} is deprecated; use {new} {value} ({name} now names a task of --tasks; "
                     f"it will be removed in the next release)")
                warned.add(name)
            out += [new, value]
            i += 1 if eq else 2
            continue
        if name in table and arg.startswith("--"):
            new, values, flag_value = table[name]
            if name not in warned:
                shown = f"{new} {flag_value}" if flag_value else new
                warn(f"{name} is deprecated; use {shown} (it will be removed in the next release)")
                warned.add(name)
            if flag_value is not None:
                out += [new, flag_value]
            elif eq:
                out.append(f"{new}={(values or {}).get(inline, inline)}")
            else:
                out.append(new)
                if values and i + 1 < len(argv):
                    out.append(values.get(argv[i + 1], argv[i + 1]))
                    i += 1
        else:
            out.append(arg)
        i += 1
    return out


def split_named(spec: str) -> tuple[str, str]:
    """``NAME=PATH`` or ``PATH`` -> (name, path); the name defaults to the file's stem."""
    from pathlib import Path

    name, sep, path = str(spec).partition("=")
    if not sep or not name or "/" in name:
        return Path(spec).stem, str(spec)
    return name, path


def click_exceptions():
    """The exception classes of the click that typer runs on: its vendored copy (typer >= 0.20), else click."""
    try:
        from typer._click import exceptions
    except ImportError:  # older typer: the click package itself
        from click import exceptions
    return exceptions


__all__ = ["DEPRECATED", "click_exceptions", "rewrite_deprecated", "split_named"]
