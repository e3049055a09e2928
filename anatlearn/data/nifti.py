"""Users' own data: NIfTI images in the model's space, a participants table and FreeSurfer stats.

    root/participants.tsv   participant_id, age, sex, site, any labels [, image] [, split]
    root/sub-<id>/anat/*.nii.gz  (or the path in the ``image`` column, relative to root)
    root/freesurfer/sub-<id>/stats/{lh,rh}.aparc.stats   (FreeSurfer SUBJECTS_DIR layout; or <id>/stats)

Every image is checked on opening (header only): 3-D, the expected shape, and the same affine as the
reference (the first image, or ``target_affine``) within 1e-3 mm; ``resample=True`` resamples mismatching
images to the target grid with nilearn instead of failing.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import nibabel as nib
import numpy as np

from anatlearn.data.freesurfer import cohort_descriptors
from anatlearn.data.tables import DATASET_TABLE, read_participants, select_split
from anatlearn.errors import DataError, listed


def find_image(root: Path, pid: str, explicit: str | None) -> Path | None:
    if explicit:
        p = (root / explicit) if not os.path.isabs(explicit) else Path(explicit)
        return p if p.is_file() else None
    for pattern in (f"sub-{pid}/anat/*.nii*", f"sub-{pid}/*.nii*", f"sub-{pid}*.nii*", f"{pid}.nii*"):
        hits = sorted(root.glob(pattern))
        if hits:
            return hits[0]
    return None


def volume_headers(pids, paths, what: str = "NIfTI image"):
    """(pid, path, header-only image, 3-D shape) for every subject's file: one error naming the subject and
    the file when a file cannot be read or is not a 3-D volume (a 4-D file with one volume counts as 3-D)."""
    for pid, path in zip(pids, paths):
        try:
            img = nib.load(path)
        except Exception as exc:  # nibabel raises several types for unreadable files
            raise DataError(f"cannot read {what} of subject {pid} ({path}): {exc}") from None
        shape = img.shape[:3] if (len(img.shape) == 4 and img.shape[3] == 1) else img.shape
        if len(shape) != 3:
            raise DataError(f"{what} of subject {pid} ({path}) is {len(img.shape)}-D {img.shape}; "
                            f"expected a 3-D volume")
        yield pid, path, img, tuple(shape)


class NiftiDataset:
    """A SubjectDataset over NIfTI files (see the module docstring)."""

    def __init__(self, root, split: str | None = None, shape: Sequence[int] | None = None,
                 target_affine: np.ndarray | None = None, resample: bool = False, freesurfer_dir: str = "freesurfer",
                 require_age: bool = True):
        self.root = Path(root)
        table = self.root / "participants.tsv"
        full = read_participants(table, require_age=require_age, **DATASET_TABLE)
        explicit = full["image"].astype(str).where(full["image"].notna(), None) if "image" in full else [None] * len(full)
        paths = [find_image(self.root, p, e) for p, e in zip(full["participant_id"], explicit)]
        missing = [p for p, path in zip(full["participant_id"], paths) if path is None]
        if missing:
            raise DataError(f"{len(missing)} subject(s) of {table} have no NIfTI image under {self.root}: {listed(missing, 5)}")
        known = {p.resolve() for p in paths}
        orphans = [p for p in self.root.glob("sub-*/anat/*.nii*") if p.resolve() not in known]
        if orphans:
            raise DataError(f"{len(orphans)} image(s) have no row in {table}: {', '.join(map(str, orphans[:3]))}")
        keep = select_split(full.assign(_path=paths), split, table)
        self.participants = keep.drop(columns="_path").reset_index(drop=True)
        self._paths = list(keep["_path"])
        self.resample = resample
        self.freesurfer_dir = self.root / freesurfer_dir
        self._check_headers(shape, target_affine)

    def _check_headers(self, shape, target_affine) -> None:
        self.shape, self.affine = (tuple(shape) if shape is not None else None), target_affine
        for pid, path, img, s in volume_headers(self.participants["participant_id"], self._paths):
            if self.shape is None:
                self.shape, self.affine = tuple(s), (img.affine if self.affine is None else self.affine)
            if self.resample:
                continue
            if tuple(s) != self.shape:
                raise DataError(f"image of subject {pid} ({path}) has shape {tuple(s)}, expected {self.shape} "
                                f"(use resampling to bring it to the model grid)")
            if not np.allclose(img.affine, self.affine, atol=1e-3):
                raise DataError(f"image of subject {pid} ({path}) has a different affine (space) than the reference "
                                f"grid:\n{np.round(img.affine, 3)}\nexpected\n{np.round(self.affine, 3)}")

    def __len__(self):
        return len(self.participants)

    def volume(self, i: int) -> np.ndarray:
        pid, path = self.participants["participant_id"][i], self._paths[i]
        img = nib.load(path)
        if self.resample and (img.shape[:3] != self.shape or not np.allclose(img.affine, self.affine, atol=1e-3)):
            from nilearn.image import resample_img

            img = resample_img(img, target_affine=self.affine, target_shape=self.shape, interpolation="continuous",
                               force_resample=True, copy_header=True)
        vol = np.asarray(img.get_fdata(dtype=np.float32)).reshape(self.shape)
        if not np.isfinite(vol).all():
            raise DataError(f"image of subject {pid} ({path}) contains {int((~np.isfinite(vol)).sum())} NaN/inf voxels")
        return vol

    def _stats_dirs(self) -> dict[str, Path]:
        out = {}
        for pid in self.participants["participant_id"]:
            for cand in (self.freesurfer_dir / f"sub-{pid}" / "stats", self.freesurfer_dir / pid / "stats"):
                if cand.is_dir():
                    out[pid] = cand
                    break
            else:
                raise DataError(f"no FreeSurfer stats directory for subject {pid} under {self.freesurfer_dir}")
        return out

    def descriptors(self, names=("CT", "GMV", "SA"), atlas: str = "desikan") -> np.ndarray:
        return cohort_descriptors(self._stats_dirs(), atlas, names)[0]

    def region_names(self, atlas: str = "desikan") -> list[str]:
        return cohort_descriptors(dict(list(self._stats_dirs().items())[:1]), atlas)[1]

    def subset(self, rows) -> "NiftiDataset":
        out = NiftiDataset.__new__(NiftiDataset)
        out.__dict__.update(self.__dict__)
        idx = np.arange(len(self))[rows]
        out.participants = self.participants.iloc[idx].reset_index(drop=True)
        out._paths = [self._paths[i] for i in idx]
        return out
