"""Feature tables: the format, reading, writing, validation and alignment with a participants table.

A *feature table* is a :class:`pandas.DataFrame` indexed by ``participant_id`` (strings) whose columns are
``f0000, f0001, ...`` (float), one row per subject: the frozen encoder's representation. Everything in
:mod:`anatlearn.evaluate` and :mod:`anatlearn.report` works on feature tables plus a *participants table*
(``participant_id`` and label columns; read by :func:`anatlearn.data.tables.read_participants`), so evaluation
is independent of the model that made the features.

Storage: ``.parquet`` (metadata such as the checkpoint's provenance in the file's key-value metadata under
the key ``anatlearn``) or ``.csv`` (metadata in a sidecar ``<file>.meta.json``). Writes are atomic.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from anatlearn.data.tables import ID, normalise_ids
from anatlearn.errors import DataError, listed
from anatlearn.io import atomic_path, atomic_write_text

METADATA_KEY = b"anatlearn"
# match_ids warns when fewer than this share of a feature table's subjects are in the participants table
FEW_SHARED = 0.5


def feature_columns(n: int) -> list[str]:
    """Canonical column names ``f0000 ... f{n-1}`` of a feature table with ``n`` features."""
    return [f"f{i:04d}" for i in range(n)]


def make_feature_table(features: np.ndarray, ids, metadata: dict | None = None) -> pd.DataFrame:
    """Wrap an (n, F) array and n ids into a validated feature table (``metadata`` kept in ``df.attrs``)."""
    features = np.asarray(features)
    if features.ndim != 2:
        raise DataError(f"features must be a 2-D array (subjects x features), got shape {features.shape}")
    df = pd.DataFrame(features, index=normalise_ids(ids), columns=feature_columns(features.shape[1]))
    df.attrs["metadata"] = dict(metadata or {})
    return validate_features(df, "features")


def validate_features(df: pd.DataFrame, source: str) -> pd.DataFrame:
    """Check a feature table: non-empty, unique ids, numeric finite values. Returns it as float64.

    ``source`` (a file name or method name) is named in every error.
    """
    if df.shape[0] == 0 or df.shape[1] == 0:
        raise DataError(f"feature table {source} is empty ({df.shape[0]} subjects x {df.shape[1]} features)")
    dup = df.index[df.index.duplicated()]
    if len(dup):
        raise DataError(f"feature table {source} has duplicate participant ids: {listed(dup, 5)}")
    non_numeric = [c for c in df.columns if not pd.api.types.is_numeric_dtype(df[c])]
    if non_numeric:
        raise DataError(f"feature table {source} has non-numeric columns: {listed(non_numeric, 5)}")
    values = df.to_numpy(dtype=np.float64)
    bad_rows = ~np.isfinite(values).all(axis=1)
    if bad_rows.any():
        ids = df.index[bad_rows]
        raise DataError(f"feature table {source} has NaN/inf features for {int(bad_rows.sum())} subjects "
                        f"(e.g. {', '.join(map(str, ids[:5]))})")
    out = pd.DataFrame(values, index=normalise_ids(df.index), columns=[str(c) for c in df.columns])
    out.attrs["metadata"] = dict(df.attrs.get("metadata", {}))
    if df.attrs.get("source"):
        out.attrs["source"] = df.attrs["source"]  # the file it was read from (results record it)
    return out


def _json_safe(obj: Any) -> Any:
    """Turn tensors/arrays/paths into JSON-serialisable lists and strings."""
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if hasattr(obj, "tolist"):  # numpy arrays and scalars, torch tensors
        return obj.tolist()
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    return str(obj)


def write_features(df: pd.DataFrame, path: str | os.PathLike, metadata: dict | None = None) -> Path:
    """Write a feature table atomically to ``.parquet`` or ``.csv`` with its metadata."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    df = validate_features(df, str(path))
    meta = _json_safe({**df.attrs.get("metadata", {}), **(metadata or {})})
    if path.suffix == ".parquet":
        table = pa.Table.from_pandas(df, preserve_index=True)
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), METADATA_KEY: json.dumps(meta).encode()})
        with atomic_path(path) as tmp:
            pq.write_table(table, tmp)
    elif path.suffix in (".csv", ".tsv"):
        with atomic_path(path) as tmp:
            df.to_csv(tmp, sep="\t" if path.suffix == ".tsv" else ",", float_format="%.9g")
        atomic_write_text(path.with_name(path.name + ".meta.json"), json.dumps(meta, indent=2))
    else:
        raise DataError(f"feature table {path}: unknown extension {path.suffix!r}; use .parquet, .csv or .tsv")
    return path


def read_features(path: str | os.PathLike) -> pd.DataFrame:
    """Read and validate a feature table written by :func:`write_features` (metadata in ``df.attrs``)."""
    import pyarrow.parquet as pq

    path = Path(path)
    if not path.is_file():
        raise DataError(f"feature table not found: {path}")
    meta: dict = {}
    try:
        if path.suffix == ".parquet":
            table = pq.read_table(path)
            raw = (table.schema.metadata or {}).get(METADATA_KEY)
            meta = json.loads(raw) if raw else {}
            df = table.to_pandas()
        elif path.suffix in (".csv", ".tsv"):
            df = pd.read_csv(path, sep="\t" if path.suffix == ".tsv" else ",", dtype={ID: str})
            sidecar = path.with_name(path.name + ".meta.json")
            if sidecar.is_file():
                meta = json.loads(sidecar.read_text())
        else:
            raise DataError(f"feature table {path}: unknown extension {path.suffix!r}; use .parquet, .csv or .tsv")
    except (OSError, ValueError) as exc:
        if isinstance(exc, DataError):
            raise
        raise DataError(f"cannot read feature table {path}: {exc}") from None
    if ID in df.columns:
        df = df.set_index(ID)
    elif df.index.name != ID:
        raise DataError(f"feature table {path} has no {ID!r} column")
    df.attrs["metadata"], df.attrs["source"] = meta, str(path)
    return validate_features(df, str(path))


def _strip_sub(ids) -> list[str]:
    return [i[4:] if i.startswith("sub-") else i for i in ids]


def match_ids(features: pd.DataFrame, participants: pd.DataFrame, features_name: str = "features") -> pd.DataFrame:
    """Rows of ``features`` whose id is in ``participants``, in the participants table's order.

    Ids are compared as strings; if nothing matches but would after dropping a BIDS ``sub-`` prefix, the
    feature ids are renamed to the participants table's spelling. No common id at all is an error naming
    both tables and showing examples of each.
    """
    source = participants.attrs.get("source", "the participants table")
    common = participants.index[participants.index.isin(features.index)]
    if len(common) == 0:
        by_stripped = dict(zip(_strip_sub(participants.index), participants.index))
        renamed = [by_stripped.get(i) for i in _strip_sub(features.index)]
        if any(r is not None for r in renamed):
            keep = [r is not None for r in renamed]
            features = features.loc[keep].set_axis(pd.Index([r for r in renamed if r is not None], name=ID), axis=0)
            return match_ids(features, participants, features_name)
        raise DataError(f"feature table {features_name} and {source} have no participant id in common "
                        f"(e.g. {', '.join(map(str, features.index[:3]))} vs {', '.join(map(str, participants.index[:3]))})")
    if len(common) < FEW_SHARED * len(features):
        import warnings

        from anatlearn.data.lineage import LineageWarning

        where = features.attrs.get("source") or features_name
        warnings.warn(f"feature table {where} and {source} share only {len(common)} subjects: {len(features) - len(common)} "
                      f"of the table's {len(features)} have no row in {source} (e.g. "
                      f"{', '.join(map(str, features.index[~features.index.isin(common)][:3]))}) and are left out",
                      LineageWarning, stacklevel=2)
    out = features.loc[common]
    out.attrs["metadata"] = dict(features.attrs.get("metadata", {}))
    if features.attrs.get("source"):
        out.attrs["source"] = features.attrs["source"]
    return out
