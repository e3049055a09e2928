"""Input checks for ``anatlearn prep``: every problem is one :class:`~anatlearn.errors.DataError` that names
the file at fault.

Checked per image: readable NIfTI (``.nii`` / ``.nii.gz``), 3-D (a singleton 4th dimension is dropped),
finite voxel sizes, an invertible affine, orientation metadata present (a header whose qform and sform codes
are both 0 has no defined orientation: nibabel falls back to a plain scaling matrix and left/right or
front/back may be wrong, so this is an **error**, not a warning), and a non-empty image (not constant, no
NaN-only data). Inputs: a BIDS directory (``participants.tsv`` + ``sub-*/[ses-*/]anat/*_T1w.nii[.gz]``) or
a list file (CSV/TSV with ``participant_id`` and ``path``/``image`` columns; other columns are carried over).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from anatlearn.data.tables import read_id_table
from anatlearn.errors import DataError, listed

NIFTI_SUFFIXES = (".nii", ".nii.gz")


@dataclass
class Subject:
    """One input scan: participant id (without ``sub-``), image path and its participants-table row."""

    participant_id: str
    path: Path
    row: dict = field(default_factory=dict)


def is_nifti_name(path: Path) -> bool:
    return path.name.endswith(NIFTI_SUFFIXES)


def load_image(path: str | Path) -> nib.Nifti1Image:
    """Read and check one T1w image; returns a 3-D float32 NIfTI image with units in mm."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"image not found: {path}")
    if not is_nifti_name(path):
        raise DataError(f"{path} is not a NIfTI image (expected a .nii or .nii.gz file)")
    try:
        img = nib.load(path)
    except Exception as exc:  # nibabel raises several types for corrupt or foreign files
        raise DataError(f"cannot read {path} as NIfTI: {exc}") from None
    if not isinstance(img, (nib.Nifti1Image, nib.Nifti2Image)):
        raise DataError(f"{path} is not a NIfTI image (nibabel reads it as {type(img).__name__})")
    shape = img.shape
    if len(shape) == 4 and shape[3] == 1:
        shape = shape[:3]
    if len(shape) != 3:
        raise DataError(f"{path} is a {len(img.shape)}-D image of shape {img.shape}; expected one 3-D T1w volume "
                        f"(a 4-D series must be split or averaged first)")
    if min(shape) < 2:
        raise DataError(f"{path} has a degenerate shape {tuple(shape)}; expected a 3-D volume")
    check_orientation(img, path)
    try:
        data = np.asarray(img.dataobj, dtype=np.float32).reshape(shape)
    except Exception as exc:  # truncated .nii.gz, bad scaling, ...
        raise DataError(f"cannot read the voxel data of {path}: {exc}") from None
    finite = np.isfinite(data)
    if not finite.any():
        raise DataError(f"{path} is empty: no finite voxel values")
    lo, hi = float(data[finite].min()), float(data[finite].max())
    if hi - lo <= 1e-6 * max(1.0, abs(hi)):
        raise DataError(f"{path} is empty: every voxel has the value {hi:g}")
    data = np.where(finite, data, 0.0).astype(np.float32)
    out = nib.Nifti1Image(data, img.affine)
    out.header.set_xyzt_units("mm", "sec")
    return out


def check_orientation(img, path: Path) -> None:
    """Raise if the affine is degenerate or if the header carries no orientation at all."""
    aff = img.affine
    if not np.all(np.isfinite(aff)):
        raise DataError(f"{path} has a non-finite affine (orientation metadata):\n{aff}")
    det = float(np.linalg.det(aff[:3, :3]))
    if abs(det) < 1e-6:
        raise DataError(f"{path} has a singular (non-invertible) affine, determinant {det:g}; fix the "
                        f"qform/sform of the header")
    zooms = np.sqrt((aff[:3, :3] ** 2).sum(axis=0))
    if np.any(zooms < 0.05) or np.any(zooms > 20):
        raise DataError(f"{path} has implausible voxel sizes {np.round(zooms, 3).tolist()} mm")
    hdr = img.header
    if int(hdr["qform_code"]) == 0 and int(hdr["sform_code"]) == 0:
        raise DataError(f"{path} has no orientation metadata (qform_code and sform_code are both 0), so left/right "
                        f"and the axes' directions are unknown; set the sform/qform from the scanner's "
                        f"geometry (e.g. reconvert the DICOMs with dcm2niix) before preparing it")


def _read_table(path: Path) -> pd.DataFrame:
    # every column kept verbatim as text: prep carries the user's table over unchanged
    df = read_id_table(path, "table", dtype=str, keep_default_na=False)
    bad = [p for p in df["participant_id"] if not p or any(c in p for c in "/\\ \t")]
    if bad:
        raise DataError(f"{path} has invalid participant ids (empty or with spaces/slashes): {bad[:5]}")
    return df


def subjects_from_list(path: str | Path) -> list[Subject]:
    """Subjects of an ``--images`` list: CSV/TSV with ``participant_id`` and ``path`` (or ``image``);
    relative paths are relative to the list file. Every listed file must exist."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"image list not found: {path}")
    df = _read_table(path)
    col = next((c for c in ("path", "image", "t1w") if c in df.columns), None)
    if col is None:
        raise DataError(f"{path} needs a 'path' column with each subject's T1w NIfTI (columns: "
                        f"{listed(df.columns)})")
    subjects, missing = [], []
    for rec in df.to_dict("records"):
        p = Path(rec.pop(col))
        p = p if p.is_absolute() else (path.parent / p)
        if not p.is_file():
            missing.append(f"{rec['participant_id']}: {p}")
        subjects.append(Subject(rec["participant_id"], p, rec))
    if missing:
        raise DataError(f"{len(missing)} image(s) listed in {path} do not exist: {listed(missing, 5, '; ')}")
    return subjects


def subjects_from_bids(root: str | Path) -> tuple[list[Subject], list[str]]:
    """Subjects of a BIDS directory and warnings (subjects without T1w, several T1w: the first is used)."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"BIDS directory not found: {root}")
    table = root / "participants.tsv"
    if not table.is_file():
        raise DataError(f"{table} not found: a BIDS dataset needs participants.tsv (participant_id, age, sex, ...)")
    df = _read_table(table)
    subjects, warnings, no_t1 = [], [], []
    for rec in df.to_dict("records"):
        pid = rec["participant_id"]
        hits = sorted(p for pattern in (f"sub-{pid}/anat/*_T1w.nii*", f"sub-{pid}/ses-*/anat/*_T1w.nii*")
                      for p in root.glob(pattern) if is_nifti_name(p))
        if not hits:
            no_t1.append(pid)
            continue
        if len(hits) > 1:
            warnings.append(f"subject {pid} has {len(hits)} T1w images; using {hits[0].relative_to(root)}")
        subjects.append(Subject(pid, hits[0], rec))
    if not subjects:
        raise DataError(f"no T1w images found under {root} (expected sub-<id>/[ses-<s>/]anat/sub-<id>_*T1w.nii[.gz] "
                        f"for the subjects of {table})")
    if no_t1:
        warnings.append(f"{len(no_t1)} subject(s) of {table} have no T1w image and are left out: {listed(no_t1, 5)}")
    return subjects, warnings
