"""Training batches: V views of each subject's volume, with its age and (normalised) descriptors."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset


class ViewsDataset(Dataset):
    """Items ``{"views": (V, 1, X, Y, Z) float32, "age": float32, "descriptors": (K, D) float32, "index"}``.

    ``transform(volume (1, X, Y, Z), generator)`` makes each view; without one the V views are identical
    (the released recipe). The generator of item i at epoch e is seeded by (seed, epoch, i), so augmented
    views are reproducible and independent of worker scheduling. ``descriptors`` is a precomputed (n, K, D)
    array (already normalised) or None.
    """

    def __init__(self, dataset, views: int = 2, transform=None, descriptors: np.ndarray | None = None,
                 seed: int = 0):
        self.dataset, self.views, self.transform, self.seed = dataset, views, transform, seed
        self.descriptors = None if descriptors is None else torch.as_tensor(np.asarray(descriptors, np.float32))
        self.ages = torch.as_tensor(dataset.participants["age"].to_numpy(np.float32))
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> dict:
        vol = torch.from_numpy(self.dataset.volume(i))[None]
        if self.transform is None:
            views = vol[None].expand(self.views, *vol.shape).clone()
        else:
            g = torch.Generator().manual_seed(hash((self.seed, self.epoch, int(i))) % 2**63)
            views = torch.stack([self.transform(vol, g) for _ in range(self.views)])
        item = {"views": views, "age": self.ages[i], "index": int(i)}
        if self.descriptors is not None:
            item["descriptors"] = self.descriptors[i]
        return item


class VolumesDataset(Dataset):
    """Single volumes for inference: items ``{"volume": (1, X, Y, Z), "index": i}``."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, i):
        return {"volume": torch.from_numpy(self.dataset.volume(i))[None], "index": int(i)}


def make_loader(dataset: Dataset, batch_size: int, indices: Sequence[int] | None = None, num_workers: int = 0,
                shuffle: bool = False, drop_last: bool = False) -> DataLoader:
    """A DataLoader keeping the CPU busy: worker processes (each reads its own memory-mapped volumes),
    pinned memory when a GPU is present, persistent workers. ``indices`` fixes the order (exact resume)."""
    sampler = list(indices) if indices is not None else None
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, shuffle=shuffle if sampler is None else False,
                      num_workers=num_workers, pin_memory=torch.cuda.is_available(), drop_last=drop_last,
                      persistent_workers=num_workers > 0, prefetch_factor=2 if num_workers > 0 else None)
