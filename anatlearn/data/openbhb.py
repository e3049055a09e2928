"""OpenBHB in its per-subject layout (also what ``anatlearn synth`` and ``anatlearn prep`` write).

    root/participants.tsv                      participant_id, age, sex, site, split, ...
    root/**/sub-<id>_preproc-cat12vbm_desc-gm_T1w.npy   (1 x X x Y x Z, or X x Y x Z), float32
    root/**/sub-<id>_preproc-quasiraw_T1w.npy
    root/freesurfer_roi/desikan_roi_features.csv    participant_id, session, then 7 x 68 values,
    root/freesurfer_roi/destrieux_roi_features.csv  channel-major (channel c, region r at column c*K + r)
    root/resource/resources.json               {"desikan_roi": {"channels": [...], "regions": [...]}, ...}

Volumes are memory-mapped (``np.load(mmap_mode="r")``): only the subject being read is in RAM. ROI channels
are selected by *name* from resources.json, never by position.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from anatlearn.data.regions import ATLAS_SIZES, DESCRIPTOR_CHANNELS
from anatlearn.data.tables import DATASET_TABLE, read_participants, select_split
from anatlearn.errors import DataError, listed

SUFFIXES = {"vbm": "_preproc-cat12vbm_desc-gm_T1w.npy", "quasiraw": "_preproc-quasiraw_T1w.npy"}


def index_images(root: Path, suffix: str) -> dict[str, Path]:
    """Map participant id -> file for every ``sub-<id><suffix>`` below ``root`` (one directory walk)."""
    found: dict[str, Path] = {}
    for dirpath, _, files in os.walk(root):
        for name in files:
            if name.startswith("sub-") and name.endswith(suffix):
                pid = name[4:-len(suffix)]
                if pid in found:
                    raise DataError(f"two images for subject {pid}: {found[pid]} and {Path(dirpath) / name}")
                found[pid] = Path(dirpath) / name
    return found


def read_resources(root: Path) -> dict:
    path = root / "resource" / "resources.json"
    if not path.is_file():
        raise DataError(f"{path} not found: it names the ROI channels and regions (needed to select CT/GMV/SA by name)")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise DataError(f"cannot parse {path}: {exc}") from None


def roi_names(resources: dict, atlas: str, source: Path) -> tuple[list[str], list[str]]:
    """(channel names, region names) of ``atlas`` from resources.json."""
    entry = resources.get(f"{atlas}_roi") or resources.get(atlas)
    if not isinstance(entry, dict):
        raise DataError(f"{source} has no entry for atlas {atlas!r} (keys: {', '.join(resources)})")
    channels = entry.get("channels") or entry.get("features")
    regions = entry.get("regions") or entry.get("roi_names")
    if not channels or not regions:
        raise DataError(f"{source}: atlas {atlas!r} must list 'channels' and 'regions'")
    return list(channels), list(regions)


class OpenBHB:
    """OpenBHB per-subject dataset (see the module docstring). ``split`` in train / internal_test /
    external_test or None (all subjects); ``modality`` ``vbm`` or ``quasiraw``; ``require_age=False`` opens
    a table without (numeric) ages, enough for embedding."""

    def __init__(self, root: str | os.PathLike, split: str | None = None, modality: str = "vbm",
                 require_age: bool = True):
        self.root = Path(root)
        if modality not in SUFFIXES:
            raise DataError(f"unknown modality {modality!r}; choose one of {', '.join(SUFFIXES)}")
        self.modality = modality
        table = self.root / "participants.tsv"
        full = read_participants(table, require_age=require_age, **DATASET_TABLE)
        images = index_images(self.root, SUFFIXES[modality])
        missing = [p for p in full["participant_id"] if p not in images]
        if missing:
            raise DataError(f"{len(missing)} subject(s) of {table} have no {modality} image under {self.root}: "
                            f"{', '.join(missing[:5])}")
        orphans = sorted(set(images) - set(full["participant_id"]))
        if orphans:
            raise DataError(f"{len(orphans)} {modality} image(s) have no row in {table}: "
                            f"{', '.join(str(images[p]) for p in orphans[:3])}")
        self.participants = select_split(full, split, table)
        self._paths = [images[p] for p in self.participants["participant_id"]]
        self._roi_cache: dict[str, pd.DataFrame] = {}
        self._check_shapes()

    def __len__(self) -> int:
        return len(self.participants)

    def _check_shapes(self) -> None:
        shapes: dict[tuple, str] = {}
        for pid, path in zip(self.participants["participant_id"], self._paths):
            shape = self._open(path, pid).shape
            shapes.setdefault(shape[-3:], pid)
            if len(shapes) > 1:
                (s0, p0), (s1, p1) = list(shapes.items())[:2]
                raise DataError(f"volumes differ in shape: subject {p0} is {s0} but subject {p1} ({path}) is {s1}")
        self.shape = next(iter(shapes))

    @staticmethod
    def _open(path: Path, pid: str) -> np.ndarray:
        try:
            arr = np.load(path, mmap_mode="r")
        except (ValueError, OSError, EOFError) as exc:
            raise DataError(f"cannot read image of subject {pid} ({path}): {exc}") from None
        if arr.ndim == 4 and arr.shape[0] == 1:
            arr = arr[0]
        if arr.ndim != 3:
            raise DataError(f"image of subject {pid} ({path}) has shape {arr.shape}; expected (1, X, Y, Z) or (X, Y, Z)")
        return arr

    def volume(self, i: int) -> np.ndarray:
        """The i-th subject's volume as float32 (X, Y, Z); NaN/inf voxels are an error naming the subject."""
        pid = self.participants["participant_id"].iloc[i]
        vol = np.array(self._open(self._paths[i], pid), dtype=np.float32)  # a private, writable copy
        if not np.isfinite(vol).all():
            raise DataError(f"image of subject {pid} ({self._paths[i]}) contains {int((~np.isfinite(vol)).sum())} NaN/inf voxels")
        return vol

    def region_names(self, atlas: str = "desikan") -> list[str]:
        return roi_names(read_resources(self.root), atlas, self.root / "resource" / "resources.json")[1]

    def _roi_table(self, atlas: str) -> pd.DataFrame:
        if atlas not in self._roi_cache:
            path = self.root / "freesurfer_roi" / f"{atlas}_roi_features.csv"
            if not path.is_file():
                raise DataError(f"ROI table not found: {path}")
            df = pd.read_csv(path, dtype={"participant_id": str})
            df["participant_id"] = df["participant_id"].astype(str).str.removeprefix("sub-")
            self._roi_cache[atlas] = df.drop_duplicates("participant_id").set_index("participant_id")
        return self._roi_cache[atlas]

    def descriptors(self, names: Sequence[str] = ("CT", "GMV", "SA"), atlas: str = "desikan") -> np.ndarray:
        """(n, K, D) descriptors selected by channel name (CT/GMV/SA or full channel names)."""
        if atlas not in ATLAS_SIZES:
            raise DataError(f"unknown atlas {atlas!r}; choose one of {', '.join(ATLAS_SIZES)}")
        res_path = self.root / "resource" / "resources.json"
        channels, regions = roi_names(read_resources(self.root), atlas, res_path)
        k = len(regions)
        table = self._roi_table(atlas)
        values = table.drop(columns=[c for c in ("session",) if c in table.columns])
        if values.shape[1] != len(channels) * k:
            raise DataError(f"ROI table {self.root / 'freesurfer_roi' / f'{atlas}_roi_features.csv'} has "
                            f"{values.shape[1]} value columns but resources.json lists {len(channels)} channels x "
                            f"{k} regions = {len(channels) * k}")
        missing = [p for p in self.participants["participant_id"] if p not in values.index]
        if missing:
            raise DataError(f"{len(missing)} subject(s) have no row in the {atlas} ROI table: {listed(missing, 5)}")
        arr = values.loc[self.participants["participant_id"]].to_numpy(dtype=np.float64)
        arr = arr.reshape(len(arr), len(channels), k)  # channel-major: column c*K + r
        idx = []
        for name in names:
            channel = DESCRIPTOR_CHANNELS.get(name, name)
            if channel not in channels:
                raise DataError(f"ROI channel {channel!r} ({name}) is not listed in {res_path} "
                                f"(channels: {', '.join(channels)})")
            idx.append(channels.index(channel))
        out = arr[:, idx, :].transpose(0, 2, 1)
        bad = ~np.isfinite(out).all(axis=(1, 2))
        if bad.any():
            raise DataError(f"non-finite descriptors for subject(s) {', '.join(self.participants['participant_id'][bad][:5])}")
        return out.astype(np.float32)

    def subset(self, rows) -> "OpenBHB":
        """A dataset of the selected rows (indices or boolean mask), sharing files and validation."""
        sel = self.participants.iloc[np.arange(len(self))[rows]] if not isinstance(rows, slice) else self.participants.iloc[rows]
        out = OpenBHB.__new__(OpenBHB)
        out.root, out.modality, out._roi_cache = self.root, self.modality, self._roi_cache
        out.participants = sel.reset_index(drop=True)
        pos = {p: i for i, p in enumerate(self.participants["participant_id"])}
        out._paths = [self._paths[pos[p]] for p in out.participants["participant_id"]]
        out.shape = getattr(self, "shape", None)
        return out
