"""One output rule for every command that writes.

- An existing output (a file, or a directory that is not empty) is refused: one
  :class:`~anatlearn.errors.ConfigError` naming the output and ``--overwrite``, raised before any work, so
  nothing on disk changes.
- With ``overwrite`` the output is replaced whole: the command writes into a temporary sibling that is then
  renamed onto the output (for a directory: an atomic exchange where the kernel has one, Linux
  ``renameat2(RENAME_EXCHANGE)``), so an interrupted overwrite leaves the old result or the new one, never a
  mix of both (e.g. an old run's ``folds.csv`` beside new ``results.csv``).

Commands that resume (pretrain, finetune, study, prep, bids, embed's chunks) keep their own rule: a re-run
with the same settings continues, one with other settings is refused naming what differs.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

from anatlearn.errors import ConfigError
from anatlearn.io import check_output_path, make_temp_dir


def holds_output(path: str | os.PathLike) -> bool:
    """True when ``path`` is a file (or a link) or a directory with anything in it."""
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        return any(path.iterdir())
    return path.exists() or path.is_symlink()


def refuse_existing(path: str | os.PathLike, kind: str = "dir", overwrite: bool = False,
                    option: str = "--out") -> Path:
    """Check ``path`` can be written (:func:`anatlearn.io.check_output_path`) and, unless ``overwrite``, that
    nothing is there yet; raises a ConfigError naming ``option``, the path and ``--overwrite``."""
    path = check_output_path(path, kind, option)
    if not overwrite and holds_output(path):
        what = "is not empty" if path.is_dir() else "exists"
        raise ConfigError(f"{option} {path} {what}; choose another {option}, or add --overwrite to replace it whole")
    return path


@contextlib.contextmanager
def new_output(path: str | os.PathLike, kind: str = "dir", overwrite: bool = False,
               option: str = "--out") -> Iterator[Path]:
    """Refuse an existing ``path`` (unless ``overwrite``), then yield a temporary sibling to write the whole
    output into; on success it replaces ``path`` (a directory: renamed onto it; a file: fsynced and renamed).
    On any exception, Ctrl-C included, the sibling is removed and ``path`` is left as it was."""
    path = refuse_existing(path, kind, overwrite, option)
    if kind == "file":
        from anatlearn.io import atomic_path

        with atomic_path(path) as tmp:
            yield tmp
        return
    tmp = make_temp_dir(path)
    try:
        yield tmp
        replace_dir(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def replace_dir(new: str | os.PathLike, path: str | os.PathLike) -> None:
    """Put directory ``new`` in the place of ``path`` (same filesystem), removing whatever ``path`` held.

    An empty or missing ``path`` is a plain rename. Otherwise the two are exchanged atomically where the
    kernel can (the old tree then sits at ``new`` and is deleted); elsewhere ``path`` is first renamed to a
    hidden sibling (a crash between the two renames leaves the old result there, never a mix)."""
    new, path = Path(new), Path(path)
    if path.is_dir() and not path.is_symlink() and not any(path.iterdir()):
        path.rmdir()
    if not (path.exists() or path.is_symlink()):
        os.rename(new, path)
        return
    if _exchange(new, path):
        _remove(new)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{path.name}.old.", dir=path.parent))
    old.rmdir()
    os.rename(path, old)
    os.rename(new, path)
    _remove(old)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap ``a`` and ``b`` (Linux renameat2 RENAME_EXCHANGE); False where unavailable."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    return renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0


def emptied_dir(path: str | os.PathLike, overwrite: bool = False, option: str = "--out") -> Path:
    """For a command whose outputs record their own paths (a run directory): refuse an existing ``path``
    unless ``overwrite``, then put an empty directory in its place (one atomic exchange where the kernel
    has it) so that nothing of the old output is left beside the new one."""
    path = refuse_existing(path, "dir", overwrite, option)
    if holds_output(path):
        replace_dir(make_temp_dir(path), path)
    return path
