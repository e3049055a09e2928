"""Centre crops of a dataset's volumes (``open_dataset(..., center_crop=(X, Y, Z))``, ``embed --center-crop``).

The released ``anatcl`` package's README says its weights expect 121 x 128 x 121 volumes, while OpenBHB's
VBM maps, on which they were trained, are 121 x 145 x 121; docs/getting-data.md ("The 121x128x121
question") measures the difference and gives the default (no crop). The box follows the related training
code's centre crop: along each axis of size S cropped to s, ``offset = (S - s) // 2``, so an odd excess
leaves the extra voxel at the end (145 -> 128: voxels 8..135 kept, 8 dropped before and 9 after).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from anatlearn.errors import DataError


def center_crop_box(shape: Sequence[int], size: Sequence[int]) -> tuple[slice, ...]:
    """The slices of the centred ``size`` box inside ``shape`` (offset ``(S - s) // 2`` per axis)."""
    shape, size = tuple(int(s) for s in shape), tuple(int(s) for s in size)
    if len(size) != len(shape):
        raise DataError(f"center_crop has {len(size)} sizes for {len(shape)}-D volumes of shape {shape}")
    bad = [(s, n) for s, n in zip(size, shape) if not 1 <= s <= n]
    if bad:
        raise DataError(f"center_crop {size} does not fit volumes of shape {shape}: each size must be in 1..S")
    return tuple(slice((n - s) // 2, (n - s) // 2 + s) for s, n in zip(size, shape))


def center_crop(volume: np.ndarray, size: Sequence[int]) -> np.ndarray:
    """The centred ``size`` crop of a 3-D ``volume`` (a contiguous copy)."""
    return np.ascontiguousarray(volume[center_crop_box(volume.shape, size)])


def uncrop(cropped: np.ndarray, shape: Sequence[int], fill: float = 0.0) -> np.ndarray:
    """Put a centre crop back into a ``shape`` volume filled with ``fill`` (the inverse of the box)."""
    out = np.full(tuple(shape), fill, dtype=cropped.dtype)
    out[center_crop_box(shape, cropped.shape)] = cropped
    return out


class CenterCropped:
    """A SubjectDataset whose volumes are the centred ``size`` crops of ``dataset``'s volumes; everything
    else (participants, descriptors, splits) is the wrapped dataset's."""

    def __init__(self, dataset, size: Sequence[int]):
        self.dataset, self.size = dataset, tuple(int(s) for s in size)
        self.full_shape = tuple(getattr(dataset, "shape", None) or dataset.volume(0).shape)
        self.box = center_crop_box(self.full_shape, self.size)
        self.shape = self.size

    def __len__(self) -> int:
        return len(self.dataset)

    @property
    def participants(self):
        return self.dataset.participants

    def volume(self, i: int) -> np.ndarray:
        return np.ascontiguousarray(self.dataset.volume(i)[self.box])

    def subset(self, rows) -> "CenterCropped":
        return CenterCropped(self.dataset.subset(rows), self.size)

    def __getattr__(self, name):  # descriptors, region_names, root, ... of the wrapped dataset
        if name == "dataset":
            raise AttributeError(name)
        return getattr(self.dataset, name)
