"""OpenBHB challenge layout: one row per subject of 3,659,572 values, in this order:

    masked VBM (519,945 voxels of the 121x145x121 grid where the GM template > 0.05),
    masked quasi-raw (1,827,095), xhemi (8 x 163,842), vbm_roi (284), desikan_roi (476 = 7 x 68),
    destrieux_roi (1,036 = 7 x 148)

Un-masking puts the i-th masked value at the i-th True voxel of the mask in C (row-major) order, which is
how ``vol[mask]`` produced the row and what ``nilearn.masking.unmask`` does. (A public loader un-masks then
applies transpose(2, 0, 1) + reshape, which scrambles every slice; we do not.) Segment sizes derive from
the masks, so small test grids work the same way.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from anatlearn.data.regions import DESCRIPTOR_CHANNELS
from anatlearn.data.tables import DATASET_TABLE, read_participants, select_split
from anatlearn.errors import DataError

FULL_SIZES = {"vbm": 519_945, "quasiraw": 1_827_095, "xhemi": 8 * 163_842, "vbm_roi": 284, "desikan_roi": 476,
              "destrieux_roi": 1_036}
ORDER = tuple(FULL_SIZES)


def mask_volume(volume: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The masked values of ``volume`` (C order), i.e. a challenge-row segment."""
    return np.asarray(volume)[np.asarray(mask, bool)]


class Unmasker:
    """Un-masking with the mask's flat C-order indices computed once: scattering by precomputed indices is
    ~10x faster than boolean-mask assignment, which rescans the 2.1 M-voxel mask on every call."""

    def __init__(self, mask: np.ndarray):
        mask = np.asarray(mask, bool)
        self.shape = mask.shape
        self.index = np.flatnonzero(mask)

    def __call__(self, values: np.ndarray) -> np.ndarray:
        values = np.asarray(values)
        if values.shape[-1] != self.index.size:
            raise DataError(f"{values.shape[-1]} values cannot fill a mask of {self.index.size} voxels")
        out = np.zeros(int(np.prod(self.shape)), dtype=np.float32)
        out[self.index] = values
        return out.reshape(self.shape)


def unmask(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Inverse of :func:`mask_volume`: a float32 volume of the mask's shape, zero outside the mask."""
    return Unmasker(mask)(values)


def load_mask(path) -> np.ndarray:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"mask not found: {path}")
    if path.suffix == ".npy":
        return np.load(path).astype(bool)
    import nibabel as nib

    return np.asarray(nib.load(path).dataobj) > 0


def segment_offsets(vbm_mask: np.ndarray, quasiraw_mask: np.ndarray | None = None) -> dict[str, slice]:
    sizes = dict(FULL_SIZES, vbm=int(vbm_mask.sum()))
    if quasiraw_mask is not None:
        sizes["quasiraw"] = int(quasiraw_mask.sum())
    out, start = {}, 0
    for name in ORDER:
        out[name] = slice(start, start + sizes[name])
        start += sizes[name]
    return out


class OpenBHBChallenge:
    """A SubjectDataset over challenge rows: ``rows`` is a 2-D .npy (n subjects x row length, memory-mapped)
    aligned with ``participants`` (a table, same order); ``vbm_mask`` the 3-D mask used to make the rows."""

    def __init__(self, rows, participants, vbm_mask, quasiraw_mask=None, split: str | None = None,
                 channels: list[str] | None = None, modality: str = "vbm"):
        self.root = Path(rows).parent
        self._rows = np.load(rows, mmap_mode="r")
        self.vbm_mask = vbm_mask if isinstance(vbm_mask, np.ndarray) else load_mask(vbm_mask)
        self.qr_mask = None if quasiraw_mask is None else (
            quasiraw_mask if isinstance(quasiraw_mask, np.ndarray) else load_mask(quasiraw_mask))
        self.offsets = segment_offsets(self.vbm_mask, self.qr_mask)
        full = read_participants(participants, require_age=True, **DATASET_TABLE)
        if self._rows.ndim != 2 or self._rows.shape[0] != len(full):
            raise DataError(f"{rows} has shape {self._rows.shape}; expected one row per subject of {participants} ({len(full)})")
        if self._rows.shape[1] != self.offsets["destrieux_roi"].stop:
            raise DataError(f"{rows} rows have {self._rows.shape[1]} values; the masks imply {self.offsets['destrieux_roi'].stop}")
        full["_row"] = np.arange(len(full))
        self.participants = select_split(full, split, Path(participants)).reset_index(drop=True)
        self.modality = modality
        self.channels = channels
        self.shape = self.vbm_mask.shape if modality == "vbm" else self.qr_mask.shape
        self._unmask = Unmasker(self.vbm_mask if modality == "vbm" else self.qr_mask)

    def __len__(self):
        return len(self.participants)

    def volume(self, i: int) -> np.ndarray:
        row = self._rows[int(self.participants["_row"][i])]
        vol = self._unmask(np.asarray(row[self.offsets[self.modality]], dtype=np.float32))
        if not np.isfinite(vol).all():
            raise DataError(f"challenge row of subject {self.participants['participant_id'][i]} has NaN/inf voxels")
        return vol

    def descriptors(self, names=("CT", "GMV", "SA"), atlas: str = "desikan") -> np.ndarray:
        if not self.channels:
            raise DataError("the challenge layout needs the ROI channel names (from resources.json) to select descriptors")
        seg = self.offsets[f"{atlas}_roi"]
        k = (seg.stop - seg.start) // len(self.channels)
        rows = np.asarray(self._rows[self.participants["_row"].to_numpy()][:, seg], dtype=np.float64)
        arr = rows.reshape(len(rows), len(self.channels), k)
        idx = []
        for n in names:
            ch = DESCRIPTOR_CHANNELS.get(n, n)
            if ch not in self.channels:
                raise DataError(f"ROI channel {ch!r} ({n}) is not among {', '.join(self.channels)}")
            idx.append(self.channels.index(ch))
        return arr[:, idx, :].transpose(0, 2, 1).astype(np.float32)
