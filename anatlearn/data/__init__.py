"""Data layer: readers (OpenBHB per-subject and challenge layouts, users' NIfTI + FreeSurfer stats),
descriptor normalisation, training views and augmentations. The synthetic cohort is
:mod:`anatlearn.synthetic`."""

from __future__ import annotations

from pathlib import Path

from anatlearn.data.descriptors import DescriptorNormaliser
from anatlearn.data.openbhb import OpenBHB
from anatlearn.data.views import ViewsDataset, VolumesDataset, make_loader
from anatlearn.errors import DataError


def open_dataset(path, split: str | None = None, modality: str = "vbm", require_age: bool = True,
                 center_crop=None, **kwargs):
    """Open a dataset, detecting its layout: a CAT12 output tree (``sub-*/[ses-*/]anat/mri/mwp1sub-*.nii``,
    :mod:`anatlearn.data.cat12`), OpenBHB per-subject (``participants.tsv`` + ``sub-*.npy``) or users' NIfTI
    images (a participants table + ``.nii``/``.nii.gz`` files). ``require_age=False`` accepts a table
    without numeric ages (embedding needs none; pretraining and brain-age evaluation do).
    ``center_crop=(X, Y, Z)`` gives every volume's centred crop (:mod:`anatlearn.data.crop`)."""
    dataset = _open_layout(Path(path), split, modality, require_age, **kwargs)
    if center_crop is not None:
        from anatlearn.data.crop import CenterCropped

        dataset = CenterCropped(dataset, center_crop)
    return dataset


def open_training_split(path, split: str | None, **kwargs):
    """(dataset, the split used): ``split`` selects one split where the participants table has a ``split``
    column; a table without one (most users' data) gives every subject, and the split used is None. The
    rule of pretraining and of ``anatlearn weights``."""
    dataset = open_dataset(path, **kwargs)
    if split and "split" in dataset.participants.columns:
        return open_dataset(path, split=split, **kwargs), split
    return dataset, None


def _open_layout(root: Path, split, modality: str, require_age: bool, **kwargs):
    if not root.exists():
        raise DataError(f"data directory not found: {root}")
    from anatlearn.data.cat12 import is_cat12_tree

    if is_cat12_tree(root):
        from anatlearn.data.cat12 import Cat12Dataset

        return Cat12Dataset(root, split=split, require_age=require_age, **kwargs)
    if root.is_dir() and (root / "participants.tsv").is_file():
        if any(root.glob("**/sub-*_preproc-*.npy")):
            return OpenBHB(root, split=split, modality=modality, require_age=require_age)
        from anatlearn.data.nifti import NiftiDataset

        return NiftiDataset(root, split=split, require_age=require_age, **kwargs)
    raise DataError(f"{root} is not a dataset: expected a directory with participants.tsv and per-subject "
                    f"images (OpenBHB .npy or NIfTI), or a CAT12 output tree (sub-*/anat/mri/mwp1sub-*.nii)")


__all__ = ["DescriptorNormaliser", "OpenBHB", "ViewsDataset", "VolumesDataset", "make_loader", "open_dataset",
           "open_training_split"]
