"""CAT12 derivatives read as they are (Gaser et al. 2024, "CAT: a computational anatomy toolbox", GigaScience).

CAT12 run on a BIDS dataset writes, per subject (and session), a ``mri`` folder beside the input:

    root/sub-<id>/[ses-<s>/]anat/mri/mwp1sub-<id>[_ses-<s>]_..._T1w.nii[.gz]   modulated GM (VBM)
    root/sub-<id>/[ses-<s>/]anat/mri/s6mwp1sub-...nii   the same smoothed with a 6 mm kernel
    root/sub-<id>/[ses-<s>/]anat/mri/wp1sub-...nii      unmodulated GM
    root/participants.tsv                               optional: age, sex, site, labels [, split]

``mwp1`` maps are what the released weights were trained on (OpenBHB's ``cat12vbm`` images are mwp1
maps); when a tree has none, ``s6mwp1`` or else ``wp1`` maps are read with a warning, since the model never
saw smoothed or unmodulated maps. Subject and session come from the BIDS entities of the file names. Every
image is checked on opening (header only) against the model's grid: 121 x 145 x 121 voxels of 1.5 mm in
MNI space, CAT12's default output (``anatlearn.data.grids.TARGETS["vbm"]``).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from anatlearn.data.nifti import NiftiDataset, volume_headers
from anatlearn.data.tables import DATASET_TABLE, read_participants, select_split
from anatlearn.errors import DataError

PREFIXES = ("mwp1", "s6mwp1", "wp1")  # in order of preference: the first one a tree holds is read
_PATTERNS = ("sub-*/anat/mri/{p}sub-*.nii*", "sub-*/ses-*/anat/mri/{p}sub-*.nii*")


def find_cat12_images(root, prefix: str) -> list[Path]:
    """The ``<prefix>sub-*.nii[.gz]`` maps of a CAT12 tree (exact prefix: ``wp1`` does not match ``mwp1``)."""
    root = Path(root)
    hits = {p for pattern in _PATTERNS for p in root.glob(pattern.format(p=prefix))
            if p.name.startswith(f"{prefix}sub-") and p.name.endswith((".nii", ".nii.gz"))}
    return sorted(hits)


def is_cat12_tree(root) -> bool:
    return Path(root).is_dir() and any(find_cat12_images(root, p) for p in PREFIXES)


def bids_entities(filename: str, prefix: str) -> dict[str, str]:
    """Key-value entities of a CAT12 output name, e.g. ``mwp1sub-01_ses-2_run-1_T1w.nii`` ->
    ``{"sub": "01", "ses": "2", "run": "1"}`` (the suffix ``T1w`` and the extension are dropped)."""
    stem = filename[len(prefix):].split(".nii")[0]
    out = {}
    for part in stem.split("_"):
        key, sep, value = part.partition("-")
        if sep and key and value:
            out[key] = value
    if "sub" not in out:
        raise DataError(f"CAT12 image {filename} has no sub-<label> entity in its name")
    return out


def model_grid():
    from anatlearn.data.grids import TARGETS

    return TARGETS["vbm"]


def _index(root: Path, prefix: str) -> pd.DataFrame:
    """One row per image: subject, session, path; the same subject and session twice is an error."""
    rows = []
    for path in find_cat12_images(root, prefix):
        ent = bids_entities(path.name, prefix)
        rows.append({"subject": ent["sub"], "session": ent.get("ses", ""), "_path": path})
    index = pd.DataFrame(rows)
    dup = index[index.duplicated(["subject", "session"], keep=False)]
    if len(dup):
        raise DataError(f"two {prefix} images for subject {dup['subject'].iloc[0]}"
                        f"{' session ' + dup['session'].iloc[0] if dup['session'].iloc[0] else ''}: "
                        f"{dup['_path'].iloc[0]} and {dup['_path'].iloc[1]}")
    # one row per subject keeps the plain id; a subject seen in several sessions gets one row per session
    several = index["subject"].duplicated(keep=False)
    index["participant_id"] = np.where(several, index["subject"] + "_ses-" + index["session"], index["subject"])
    return index


class Cat12Dataset(NiftiDataset):
    """A SubjectDataset over a CAT12 output tree (see the module docstring).

    ``prefix``: which maps to read (default: the first of ``mwp1``, ``s6mwp1``, ``wp1`` present). ``grid``:
    the expected voxel grid (an ``anatlearn.data.grids.Grid``; default the model's 1.5 mm
    121 x 145 x 121 MNI grid). ``require_age=False`` accepts a tree without a participants table.
    """

    def __init__(self, root, split: str | None = None, require_age: bool = True, prefix: str | None = None,
                 grid=None, freesurfer_dir: str = "freesurfer"):
        self.root = Path(root)
        self.prefix = prefix or next((p for p in PREFIXES if find_cat12_images(self.root, p)), None)
        if self.prefix not in PREFIXES:
            raise DataError(f"{self.root} holds no CAT12 maps ({', '.join(p + 'sub-*.nii' for p in PREFIXES)} "
                            f"under sub-*/[ses-*/]anat/mri/)" if self.prefix is None else
                            f"unknown CAT12 prefix {self.prefix!r}; choose one of {', '.join(PREFIXES)}")
        if self.prefix != "mwp1":
            warnings.warn(f"{self.root}: reading CAT12 {self.prefix} maps (no mwp1 maps found); the released weights "
                          f"were trained on modulated, unsmoothed mwp1 maps, so features may be off", stacklevel=2)
        index = _index(self.root, self.prefix)
        if index.empty:
            raise DataError(f"{self.root} holds no CAT12 {self.prefix} maps under sub-*/[ses-*/]anat/mri/")
        table = self._join_participants(index, require_age)
        table = select_split(table, split, self.root / "participants.tsv")
        self._paths = list(table.pop("_path"))
        self.participants = table.reset_index(drop=True)
        self.resample = False
        self.freesurfer_dir = self.root / freesurfer_dir
        self._check_grid(grid or model_grid())

    def _join_participants(self, index: pd.DataFrame, require_age: bool) -> pd.DataFrame:
        path = self.root / "participants.tsv"
        if not path.is_file():
            if require_age:
                raise DataError(f"CAT12 tree {self.root} has no participants.tsv: ages are needed here "
                                f"(embedding needs none)")
            return index.assign(sex="unknown", site="unknown")[["participant_id", "subject", "session", "sex",
                                                                 "site", "_path"]]
        table = read_participants(path, require_age=require_age, **DATASET_TABLE)
        missing = sorted(set(table["participant_id"]) - set(index["subject"]))
        if missing:
            raise DataError(f"{len(missing)} subject(s) of {path} have no CAT12 {self.prefix} map under {self.root}: "
                            f"{', '.join(missing[:5])}")
        orphans = index[~index["subject"].isin(table["participant_id"])]
        if len(orphans):
            raise DataError(f"{len(orphans)} CAT12 map(s) have no row in {path}: "
                            f"{', '.join(map(str, orphans['_path'][:3]))}")
        merged = index.merge(table.rename(columns={"participant_id": "subject"}), on="subject", how="left")
        return merged[["participant_id"] + [c for c in merged.columns if c != "participant_id"]]

    def _check_grid(self, grid) -> None:
        """Shape, voxel size and position of every image against ``grid``; one error naming the file."""
        self.shape, self.affine = tuple(grid.shape), grid.matrix
        expected = (f"{'x'.join(map(str, grid.shape))} voxels of "
                    f"{', '.join(f'{v:g}' for v in np.abs(np.diag(grid.matrix)[:3]))} mm in MNI space")
        for pid, path, img, shape in volume_headers(self.participants["participant_id"], self._paths, "CAT12 map"):
            zooms = ", ".join(f"{z:g}" for z in img.header.get_zooms()[:3])
            if tuple(shape) != self.shape or not np.allclose(img.affine, self.affine, atol=1e-2):
                raise DataError(f"CAT12 map {path} (subject {pid}) is {'x'.join(map(str, shape))} voxels of {zooms} mm "
                                f"with origin {np.round(img.affine[:3, 3], 2).tolist()}; the model expects {expected} "
                                f"(origin {np.round(self.affine[:3, 3], 2).tolist()}), CAT12's default 1.5 mm output. "
                                f"Re-run CAT12 with the default voxel size, or resample to that grid")

    def subset(self, rows) -> "Cat12Dataset":
        out = type(self).__new__(type(self))
        out.__dict__.update(self.__dict__)
        idx = np.arange(len(self))[rows]
        out.participants = self.participants.iloc[idx].reset_index(drop=True)
        out._paths = [self._paths[i] for i in idx]
        return out


__all__ = ["Cat12Dataset", "PREFIXES", "bids_entities", "find_cat12_images", "is_cat12_tree"]
