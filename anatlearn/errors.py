"""Error types. Every user-facing failure raises an :class:`AnatlearnError` whose message names the file,
subject or option at fault; the CLI prints that message alone (no traceback) and exits non-zero."""


class AnatlearnError(Exception):
    """Base class: a clear, user-facing error. The message must name what is at fault."""


class DataError(AnatlearnError, ValueError):
    """Bad or inconsistent input data (files, tables, volumes, descriptors)."""


class ConfigError(AnatlearnError, ValueError):
    """Unknown or inconsistent option, method, encoder or configuration file."""


class CheckpointError(AnatlearnError, ValueError):
    """A checkpoint that cannot be loaded safely or does not match the requested model."""


class TrainingError(AnatlearnError, RuntimeError):
    """Training cannot continue (NaN loss, locked run directory, ...)."""


class InputWarning(UserWarning):
    """Images unlike the encoder's training images (another grid, maps unlike the training maps): the
    Python estimators warn where the CLI refuses or flags, and record the outcome."""


def listed(items, limit: int = 12, sep: str = ", ") -> str:
    """``items`` for an error message: all of them, or the first ``limit`` and ``... and N more`` (a list that
    stops short never looks complete)."""
    items = [str(i) for i in items]
    more = f" ... and {len(items) - limit} more" if len(items) > limit else ""
    return sep.join(items[:limit]) + more


def differences(old: dict, new: dict, where: str = "in the run", prefix: str = "") -> list[str]:
    """``"name: A in the run, B now"`` for every setting that differs between a stored run and this call
    (nested settings as ``outer.name``; long values such as subject lists or hashes are named, not printed).
    The one wording of every resume's refusal (pretrain, finetune, embed's parts, prep, the study)."""
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if a == b:
            continue
        if isinstance(a, dict) and isinstance(b, dict):
            out += differences(a, b, where, f"{prefix}{key}.")
            continue
        shown = [repr(v) if len(repr(v)) <= 40 else "(a list of " + str(len(v)) + ")" if isinstance(v, list)
                 else repr(v)[:37] + "..." for v in (a, b)]
        out.append(f"{prefix}{key}: {shown[0]} {where}, {shown[1]} now")
    return out
