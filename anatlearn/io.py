"""Crash-safe file output: write to a temporary file in the same directory, fsync, then rename.

A reader never sees a half-written file: ``os.replace`` is atomic on POSIX within one filesystem, so after
a crash (SIGKILL, full disk) the destination holds either the previous complete content or the new one.
"""

from __future__ import annotations

import contextlib
import os
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
