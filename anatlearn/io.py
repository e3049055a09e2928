"""Crash-safe file output: write to a temporary file in the same directory, fsync, then rename.

A reader never sees a half-written file: ``os.replace`` is atomic on POSIX within one filesystem, so after
a crash (SIGKILL, full disk) the destination holds either the previous complete content or the new one.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it is fsynced and renamed onto ``path``.

    On any exception the temporary file is removed and ``path`` is left untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    # mkstemp creates 0600; the finished file gets what open() would give it (0644 under umask 022), so
    # colleagues on a shared cluster can read reports, tables and checkpoints
    os.chmod(tmp_path, file_mode())
    try:
        yield tmp_path
        os.chmod(tmp_path, file_mode())  # again: a writer may have replaced the file (safetensors makes 0600)
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp_path, path)
        _fsync_dir(path.parent)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


def current_umask() -> int:
    """The process's umask: from /proc on Linux (no race), else by setting and restoring it."""
    with contextlib.suppress(OSError, ValueError):
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def file_mode() -> int:
    """The mode a new regular file gets from open(): 0o666 minus the umask."""
    return 0o666 & ~current_umask()


def dir_mode() -> int:
    """The mode a new directory gets from mkdir(): 0o777 minus the umask."""
    return 0o777 & ~current_umask()


def make_temp_dir(target: str | os.PathLike) -> Path:
    """A fresh temporary directory beside ``target`` (to be renamed onto it), with mkdir's usual mode.

    tempfile.mkdtemp makes 0700 directories; after the rename that would hide the whole output from
    colleagues, so the mode is reset to what the umask allows.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    os.chmod(tmp, dir_mode())
    return tmp


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def check_output_path(path: str | os.PathLike, kind: str = "file", option: str = "--out") -> Path:
    """Check, before any work, that ``path`` can be written as a ``kind`` ("file" or "dir").

    Raises :class:`~anatlearn.errors.ConfigError` naming ``option`` and the path when: a file is expected
    but a directory is there (or the other way round), an existing file or directory is not writable, a
    parent on the way is a file, or the nearest existing parent does not accept new files. The last check
    creates and removes a probe file there (``os.access`` says yes to root even on /proc); nothing else is
    created, so a failing command leaves nothing behind.
    """
    from anatlearn.errors import ConfigError

    if kind not in ("file", "dir"):
        raise ValueError(f"kind must be 'file' or 'dir', got {kind!r}")
    path = Path(path)
    what = "file" if kind == "file" else "directory"
    if path.exists():
        if kind == "file" and path.is_dir():
            raise ConfigError(f"{option} {path} is a directory; give a file name")
        if kind == "dir" and not path.is_dir():
            raise ConfigError(f"{option} {path} exists and is not a directory")
        if not os.access(path, os.W_OK | (os.X_OK if kind == "dir" else 0)):
            raise ConfigError(f"{option} {path}: the existing {what} is not writable")
    # atomic writes put a temporary file beside the output: the nearest existing parent must take new files
    parent = path if kind == "dir" else path.parent
    while not parent.exists() and parent != parent.parent:
        if parent.is_symlink():  # a dangling link: nothing can be created below it
            raise ConfigError(f"cannot create {option} {path}: {parent} is a broken symbolic link")
        parent = parent.parent
    if not parent.is_dir():
        raise ConfigError(f"cannot create {option} {path}: {parent} is a file, not a directory")
    try:
        fd, probe = tempfile.mkstemp(prefix=".anatlearn-probe.", dir=parent)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ConfigError(f"cannot create {option} {path}: {parent} does not accept new files ({reason})") from None
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(probe)
    return path


# One output rule for every command that writes.
#
# - An existing output (a file, or a directory that is not empty) is refused: one ConfigError naming the
#   output and ``--overwrite``, raised before any work, so nothing on disk changes.
# - With ``overwrite`` the output is replaced whole: the command writes into a temporary sibling that is then
#   renamed onto the output (a directory: an atomic exchange where the kernel has one, Linux
#   ``renameat2(RENAME_EXCHANGE)``), so an interrupted overwrite leaves the old result or the new one, never a
#   mix of both (e.g. an old run's ``folds.csv`` beside new ``results.csv``).
#
# Commands that resume (pretrain, finetune, study, prep, bids, embed's chunks) keep their own rule: a re-run
# with the same settings continues, one with other settings is refused naming what differs.


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
    from anatlearn.errors import ConfigError

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
    import ctypes

    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2  # the C library this process runs on
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
