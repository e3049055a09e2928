"""Fitted clinical models on disk without pickle: one ``.npz`` of plain numeric / string arrays plus a JSON
string of metadata (kind, format version, settings, provenance).

``numpy.load(..., allow_pickle=False)`` refuses object arrays, so loading a model file can never execute
code (unlike a pickled scikit-learn estimator). Writes are atomic (temp file + rename).
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path

import numpy as np

from anatlearn.errors import DataError
from anatlearn.io import atomic_write_bytes

META_KEY = "__metadata__"
FORMAT_VERSION = 1


def save_model(path: str | os.PathLike, kind: str, arrays: dict[str, np.ndarray], metadata: dict) -> Path:
    """Write ``arrays`` (numeric or unicode string arrays only) and ``metadata`` (JSON-serialisable) to
    ``path`` (``.npz``), tagged with ``kind`` so that a model of another kind is refused at load time."""
    path = Path(path)
    if path.suffix != ".npz":
        raise DataError(f"model file {path} must end in .npz")
    meta = {"kind": kind, "format_version": FORMAT_VERSION, **metadata}
    plain = {}
    for name, value in arrays.items():
        value = np.asarray(value)
        if value.dtype == object:
            raise TypeError(f"array {name!r} has dtype object; store numbers or strings only")
        plain[name] = value
    buf = io.BytesIO()
    np.savez(buf, **plain, **{META_KEY: np.array(json.dumps(meta, default=str))})
    atomic_write_bytes(path, buf.getvalue())
    return path


def load_model(path: str | os.PathLike, kind: str) -> tuple[dict[str, np.ndarray], dict]:
    """(arrays, metadata) of a model file written by :func:`save_model` for ``kind``; any other file is a
    :class:`DataError` naming it."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"model file not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise DataError(f"cannot read model file {path} (not an anatlearn .npz model: {exc})") from None
    if META_KEY not in arrays:
        raise DataError(f"model file {path} has no anatlearn metadata (not written by anatlearn)")
    meta = json.loads(str(arrays.pop(META_KEY)))
    if meta.get("kind") != kind:
        raise DataError(f"model file {path} holds a {meta.get('kind')!r} model, not a {kind!r} model")
    if meta.get("format_version", 0) > FORMAT_VERSION:
        raise DataError(f"model file {path} has format version {meta['format_version']}; this anatlearn reads "
                        f"up to {FORMAT_VERSION} (upgrade anatlearn)")
    return arrays, meta
