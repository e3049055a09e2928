"""Data layer: readers (OpenBHB per-subject and challenge layouts, users' NIfTI + FreeSurfer stats),
descriptor normalisation, training views and augmentations. The synthetic cohort is
:mod:`anatlearn.synthetic`."""

from __future__ import annotations

from pathlib import Path

from anatlearn.data.descriptors import DescriptorNormaliser
from anatlearn.data.openbhb import OpenBHB
from anatlearn.data.views import ViewsDataset, VolumesDataset, make_loader
from anatlearn.errors import DataError


def open_dataset(path, split: str | None = None, modality: str = "vbm", require_age: bool = True, **kwargs):
    """Open a dataset, detecting its layout: OpenBHB per-subject (``participants.tsv`` + ``sub-*.npy``) or
    users' NIfTI images (a participants table + ``.nii``/``.nii.gz`` files). ``require_age=False`` accepts a
    table without numeric ages (embedding needs none; pretraining and brain-age evaluation do)."""
    root = Path(path)
    if not root.exists():
        raise DataError(f"data directory not found: {root}")
    if root.is_dir() and (root / "participants.tsv").is_file():
        if any(root.glob("**/sub-*_preproc-*.npy")):
            return OpenBHB(root, split=split, modality=modality, require_age=require_age)
        from anatlearn.data.nifti import NiftiDataset

        return NiftiDataset(root, split=split, require_age=require_age, **kwargs)
    raise DataError(f"{root} is not a dataset: expected a directory with participants.tsv and per-subject "
                    f"images (OpenBHB .npy or NIfTI)")


__all__ = ["DescriptorNormaliser", "OpenBHB", "ViewsDataset", "VolumesDataset", "make_loader", "open_dataset"]
