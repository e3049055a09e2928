"""A real head for checking ``anatlearn prep``: Colin27 (Holmes et al. 1998, *J Comput Assist Tomogr*
22:324), the average of 27 T1w scans of one man, as shipped by Debian's ``mricron-data`` package in MNI
space at 1 mm: ``ch2.nii.gz`` with its skull and ``ch2bet.nii.gz``, its brain extracted with FSL's BET.

Besides the two originals, :func:`test_heads` makes copies whose truth is known by construction:

* ``moved``: the skull-on head rotated by ``rotation_deg`` about an oblique axis through the brain's
  centre and shifted by ``shift_mm``, resampled onto a padded grid (cubic spline), times a smooth
  multiplicative bias field ``exp(bias * b(x))`` (``b`` a smooth random field scaled to max |b| = 1);
* ``scaled``: the skull-on head ``scale`` times larger along every axis (the voxel size in the affine
  multiplied, the data untouched: no interpolation), so its GM volume is ``scale**3`` times the original's;
* ``broken``: the voxel axes permuted (x, y, z) -> (y, z, x) and the affine replaced by a plain 1 mm (or
  voxel-size) diagonal with the origin at the corner: the header no longer says where anything is.
"""

from __future__ import annotations

import os
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage
from scipy.spatial.transform import Rotation

# Debian's mricron-data installs here; ANATLEARN_MRICRON_DIR points elsewhere (another distribution)
MRICRON_DIR = Path("/usr/share/mricron/templates")
FILES = {"skull": "ch2.nii.gz", "brain": "ch2bet.nii.gz"}


def colin_dir() -> Path | None:
    """The folder with ``ch2.nii.gz`` and ``ch2bet.nii.gz``, or None when they are not installed."""
    d = Path(os.environ.get("ANATLEARN_MRICRON_DIR", MRICRON_DIR))
    return d if all((d / f).is_file() for f in FILES.values()) else None


def _image(data: np.ndarray, affine: np.ndarray) -> nib.Nifti1Image:
    img = nib.Nifti1Image(np.asarray(data, np.float32), affine)
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    img.header.set_xyzt_units("mm", "sec")
    return img


def load_colin(kind: str = "skull", voxel_mm: float = 1.0) -> nib.Nifti1Image:
    """Colin27 ``skull`` (ch2) or ``brain`` (ch2bet), resampled to ``voxel_mm`` (Gaussian pre-smoothing
    by the zoom factor, then linear interpolation over the same field of view)."""
    d = colin_dir()
    if d is None:
        raise FileNotFoundError("Colin27 (ch2.nii.gz, ch2bet.nii.gz) not found: apt-get install mricron-data")
    img = nib.load(d / FILES[kind])
    data = img.get_fdata(dtype=np.float32)
    aff = img.affine.copy()
    zoom = float(voxel_mm) / float(img.header.get_zooms()[0])
    if abs(zoom - 1.0) > 1e-6:
        data = ndimage.gaussian_filter(data, sigma=0.42 * zoom)  # FWHM of one output voxel: no aliasing
        shape = [int(np.floor((n - 1) / zoom)) + 1 for n in data.shape]
        ijk = np.stack(np.meshgrid(*[np.arange(n) * zoom for n in shape], indexing="ij"))
        data = ndimage.map_coordinates(data, ijk, order=1)
        aff[:3, :3] *= zoom
    return _image(np.clip(data, 0, None), aff)


def moved(img: nib.Nifti1Image, rotation_deg: float = 14.0, shift_mm: float = 15.0, bias: float = 0.3,
          pad_mm: float = 20.0, seed: int = 0) -> nib.Nifti1Image:
    """The head rotated and shifted in world space and bias-corrupted (see the module docstring)."""
    rng = np.random.default_rng(seed)
    axis = np.array([1.0, 0.6, 0.3])
    rot = Rotation.from_rotvec(np.deg2rad(rotation_deg) * axis / np.linalg.norm(axis)).as_matrix()
    shift = np.array([1.0, -0.5, 0.5])
    shift = shift_mm * shift / np.linalg.norm(shift)
    data = img.get_fdata(dtype=np.float32)
    vox = float(img.header.get_zooms()[0])
    centre = img.affine[:3, :3] @ ((np.array(data.shape) - 1) / 2.0) + img.affine[:3, 3]
    pad = int(round(pad_mm / vox))
    shape = tuple(n + 2 * pad for n in data.shape)
    out_aff = img.affine.copy()
    out_aff[:3, 3] -= img.affine[:3, :3] @ np.full(3, pad)
    # output voxel -> world -> (inverse motion) -> input world -> input voxel
    ijk = np.stack(np.meshgrid(*[np.arange(n, dtype=np.float64) for n in shape], indexing="ij"), axis=-1)
    xyz = ijk @ out_aff[:3, :3].T + out_aff[:3, 3]
    src = (xyz - centre - shift) @ rot + centre  # rot^-1 = rot^T, applied to row vectors
    vin = src @ np.linalg.inv(img.affine[:3, :3]).T - np.linalg.inv(img.affine[:3, :3]) @ img.affine[:3, 3]
    moved_data = ndimage.map_coordinates(data, np.moveaxis(vin, -1, 0), order=3, mode="constant", cval=0.0)
    coarse = rng.normal(size=(3, 3, 3))
    b = ndimage.zoom(coarse, [n / 3 for n in shape], order=3)
    moved_data = np.clip(moved_data, 0, None) * np.exp(bias * b / max(float(np.abs(b).max()), 1e-9))
    return _image(moved_data, out_aff)


def scaled(img: nib.Nifti1Image, scale: float) -> nib.Nifti1Image:
    """The head ``scale`` times larger (about the world origin), by the affine alone."""
    aff = img.affine.copy()
    aff[:3, :] *= scale
    return _image(img.get_fdata(dtype=np.float32), aff)


def broken(img: nib.Nifti1Image) -> nib.Nifti1Image:
    """Axes permuted and the affine replaced by a corner-origin diagonal (see the module docstring)."""
    data = np.transpose(img.get_fdata(dtype=np.float32), (1, 2, 0))
    vox = float(img.header.get_zooms()[0])
    return _image(data, np.diag([vox, vox, vox, 1.0]))


def test_heads(voxel_mm: float = 2.0, scale: float = 1.029) -> dict[str, nib.Nifti1Image]:
    """``skull``, ``brain``, ``moved``, ``scaled`` and ``broken`` heads at ``voxel_mm`` (module docstring)."""
    skull = load_colin("skull", voxel_mm)
    return {"skull": skull, "brain": load_colin("brain", voxel_mm), "moved": moved(skull),
            "scaled": scaled(skull, scale), "broken": broken(skull)}


test_heads.__test__ = False  # not a pytest test
__all__ = ["broken", "colin_dir", "load_colin", "moved", "scaled", "test_heads"]
