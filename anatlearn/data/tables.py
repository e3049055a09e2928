"""Participants tables (BIDS-style ``participants.tsv``, CSV or Parquet): read and validate.

One reader, :func:`read_participants`, serves the dataset readers (``age`` required for pretraining and
brain age; ``sex`` and ``site`` filled with "unknown" when absent) and evaluation's labels tables (indexed by
``participant_id``). Every problem names the file and the subject(s) at fault.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from anatlearn.errors import DataError, listed

ID = "participant_id"
SPLITS = ("train", "internal_test", "external_test")
# how the dataset readers hold their participants: ids a column without "sub-" (image file names add it),
# sex and site always present
DATASET_TABLE = {"index_by_id": False, "strip_sub_prefix": True, "fill_sex_site": True}


def normalise_ids(values) -> pd.Index:
    """Participant ids as stripped strings; integral floats (``1001.0`` read from a CSV) become ``"1001"``."""
    out = []
    for v in values:
        if isinstance(v, (float, np.floating)) and np.isfinite(v) and float(v).is_integer():
            v = int(v)
        out.append(str(v).strip())
    return pd.Index(out, name=ID)


def read_id_table(path: str | Path, what: str = "participants table", strip_sub_prefix: bool = True,
                  **read_csv_options) -> pd.DataFrame:
    """Parse a table keyed by ``participant_id`` (``.tsv``/``.txt`` tab-separated, ``.parquet``, else CSV):
    present, non-empty, ids as strings (:func:`normalise_ids`; a BIDS ``sub-`` prefix dropped when
    ``strip_sub_prefix``) and unique, ``participant_id`` a column. ``read_csv_options`` go to
    :func:`pandas.read_csv`."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{what} not found: {path}")
    sep = "\t" if path.suffix in (".tsv", ".txt") else ","
    try:
        if path.suffix == ".parquet":
            df = pd.read_parquet(path)
        else:
            df = pd.read_csv(path, sep=sep, **({"dtype": {ID: str}} | read_csv_options))
    except (OSError, ValueError, UnicodeDecodeError) as exc:  # pandas' parser errors are ValueErrors
        raise DataError(f"cannot parse {what} {path}: {exc}") from None
    if ID not in df.columns and df.index.name == ID:
        df = df.reset_index()
    if ID not in df.columns:
        raise DataError(f"{what} {path} has no {ID!r} column (columns: {listed(df.columns)})")
    if df.empty:
        raise DataError(f"{what} {path} has no subjects")
    ids = pd.Series(normalise_ids(df[ID]), index=df.index)
    df[ID] = ids.str.removeprefix("sub-") if strip_sub_prefix else ids
    dup = df[ID][df[ID].duplicated()].unique()
    if len(dup):
        raise DataError(f"{what} {path} lists duplicate ids: {listed(dup, 5)}")
    return df


def read_participants(path: str | Path, *, require_age: bool = False, index_by_id: bool = True,
                      strip_sub_prefix: bool = False, fill_sex_site: bool = False) -> pd.DataFrame:
    """Read and validate a participants (or labels) table; a directory means its ``participants.tsv``.

    The defaults give a labels table for evaluation: indexed by ``participant_id`` (ids as written, e.g.
    ``sub-01`` stays), other columns as read. The dataset readers ask for :data:`DATASET_TABLE`: ``index_by_id=False``
    (``participant_id`` a column, a RangeIndex), ``strip_sub_prefix=True`` and ``fill_sex_site=True`` (absent
    ``sex``/``site`` become ``"unknown"``, ``site`` a string). ``require_age``: every subject needs a
    finite numeric ``age`` (then a float column). ``df.attrs["source"]`` names the file in later errors.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "participants.tsv"
    df = read_id_table(path, strip_sub_prefix=strip_sub_prefix)
    if require_age:
        if "age" not in df.columns:
            raise DataError(f"participants table {path} has no 'age' column")
        ages = pd.to_numeric(df["age"], errors="coerce")
        bad = df[ID][ages.isna() | ~np.isfinite(ages.fillna(0))]
        if len(bad):
            raise DataError(f"participants table {path}: non-numeric or missing age for subject(s) "
                            f"{', '.join(bad.astype(str)[:5])} (got {df.loc[bad.index[0], 'age']!r})")
        df["age"] = ages.astype(float)
    if fill_sex_site:
        for col in ("sex", "site"):
            if col not in df.columns:
                df[col] = "unknown"
        df["site"] = df["site"].astype(str)
    df = df.set_index(ID) if index_by_id else df.reset_index(drop=True)
    df.attrs["source"] = str(path)
    return df


def select_split(df: pd.DataFrame, split: str | None, source: Path) -> pd.DataFrame:
    """Rows of one split (column ``split``); ``None`` keeps all. An empty result is an error."""
    if split is None:
        return df
    if "split" not in df.columns:
        raise DataError(f"`split` {split!r} requested but {source} has no 'split' column (leave `split` out to use "
                        f"every subject)")
    out = df[df["split"] == split].reset_index(drop=True)
    if out.empty:
        raise DataError(f"split {split!r} of {source} is empty (splits present: {', '.join(map(str, df['split'].unique()))})")
    return out
