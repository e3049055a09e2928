"""Participants tables (BIDS-style ``participants.tsv`` or CSV): read and validate.

Required columns: ``participant_id`` and ``age``; ``sex`` and ``site`` are filled with "unknown" when
absent. Every problem names the file and the subject(s) at fault.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from anatlearn.errors import DataError

SPLITS = ("train", "internal_test", "external_test")


def read_id_table(path: str | Path, what: str = "participants table", **read_csv_options) -> pd.DataFrame:
    """Parse a TSV/CSV table keyed by ``participant_id``: present, non-empty, ids as strings without a
    ``sub-`` prefix and unique. ``read_csv_options`` go to :func:`pandas.read_csv`."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{what} not found: {path}")
    sep = "\t" if path.suffix in (".tsv", ".txt") else ","
    try:
        df = pd.read_csv(path, sep=sep, **({"dtype": {"participant_id": str}} | read_csv_options))
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot parse {what} {path}: {exc}") from None
    if "participant_id" not in df.columns:
        raise DataError(f"{what} {path} has no 'participant_id' column (columns: {', '.join(map(str, df.columns[:8]))})")
    if df.empty:
        raise DataError(f"{what} {path} has no subjects")
    df["participant_id"] = df["participant_id"].astype(str).str.strip().str.removeprefix("sub-")
    dup = df["participant_id"][df["participant_id"].duplicated()].unique()
    if len(dup):
        raise DataError(f"{what} {path} lists duplicate ids: {', '.join(dup[:5])}")
    return df


def read_participants(path: str | Path, require_age: bool = True) -> pd.DataFrame:
    """Read and validate a participants table; ids become strings without a ``sub-`` prefix."""
    path = Path(path)
    df = read_id_table(path)
    if require_age:
        if "age" not in df.columns:
            raise DataError(f"participants table {path} has no 'age' column")
        ages = pd.to_numeric(df["age"], errors="coerce")
        bad = df["participant_id"][ages.isna() | ~np.isfinite(ages.fillna(0))]
        if len(bad):
            raise DataError(f"participants table {path}: non-numeric or missing age for subject(s) "
                            f"{', '.join(bad.astype(str)[:5])} (got {df.loc[bad.index[0], 'age']!r})")
        df["age"] = ages.astype(float)
    for col in ("sex", "site"):
        if col not in df.columns:
            df[col] = "unknown"
    df["site"] = df["site"].astype(str)
    return df.reset_index(drop=True)


def select_split(df: pd.DataFrame, split: str | None, source: Path) -> pd.DataFrame:
    """Rows of one split (column ``split``); ``None`` keeps all. An empty result is an error."""
    if split is None:
        return df
    if "split" not in df.columns:
        raise DataError(f"split={split!r} requested but {source} has no 'split' column")
    out = df[df["split"] == split].reset_index(drop=True)
    if out.empty:
        raise DataError(f"split {split!r} of {source} is empty (splits present: {', '.join(map(str, df['split'].unique()))})")
    return out
