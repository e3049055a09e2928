"""A real head for checking ``anatlearn prep``: Colin27 (Holmes et al. 1998, *J Comput Assist Tomogr*
22:324), the average of 27 T1w scans of one man, as shipped by Debian's ``mricron-data`` package in MNI
space at 1 mm: ``ch2.nii.gz`` with its skull and ``ch2bet.nii.gz``, its brain extracted with FSL's BET.

Besides the two originals, copies whose truth is known by construction:

* a **move** of the family (:func:`random_move` draws one from a seed, :func:`apply_move` makes it): the
  1 mm skull-on head rotated about a random axis through the field of view's centre, scaled along its
  axes, shifted, sampled once onto a padded grid (linear interpolation), times a smooth multiplicative
  bias field; its volumes scale by the determinant of the move (issue 39, docs/prep.md);
* ``scaled``: the head ``scale`` times larger along every axis (the voxel size in the affine
  multiplied, the data untouched: no interpolation), so its GM volume is ``scale**3`` times the original's;
* ``broken``: the voxel axes permuted (x, y, z) -> (y, z, x) and the affine replaced by a plain 1 mm (or
  voxel-size) diagonal with the origin at the corner: the header no longer says where anything is.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
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


def _original(kind: str) -> nib.Nifti1Image:
    d = colin_dir()
    if d is None:
        raise FileNotFoundError("Colin27 (ch2.nii.gz, ch2bet.nii.gz) not found: apt-get install mricron-data")
    return nib.load(d / FILES[kind])


def _sample(img: nib.Nifti1Image, voxel_mm: float, rot: np.ndarray | None = None, shift=None, pad_mm=0.0):
    """``img`` sampled once on a grid of ``voxel_mm`` voxels over its field of view (padded by ``pad_mm``),
    after a Gaussian pre-smoothing of FWHM one output voxel (no aliasing) and, with ``rot``/``shift``, moved
    in world space about the field of view's centre: x -> rot (x - c) + c + shift. Linear interpolation."""
    data = img.get_fdata(dtype=np.float32)
    vox = float(img.header.get_zooms()[0])
    zoom = float(voxel_mm) / vox
    if zoom > 1 + 1e-6:
        data = ndimage.gaussian_filter(data, sigma=0.42 * zoom)
    centre = img.affine[:3, :3] @ ((np.array(data.shape) - 1) / 2.0) + img.affine[:3, 3]
    pad = int(round(pad_mm / voxel_mm))
    shape = tuple(int(np.floor((n - 1) / zoom)) + 1 + 2 * pad for n in data.shape)
    out_aff = img.affine.copy()
    out_aff[:3, :3] *= zoom
    out_aff[:3, 3] -= out_aff[:3, :3] @ np.full(3, pad)
    # output voxel -> world -> (inverse motion) -> input world -> input voxel
    ijk = np.stack(np.meshgrid(*[np.arange(n, dtype=np.float64) for n in shape], indexing="ij"), axis=-1)
    xyz = ijk @ out_aff[:3, :3].T + out_aff[:3, 3]
    if rot is not None:  # rot: any invertible 3x3 matrix (a rotation, or a rotation times scales)
        xyz = (xyz - centre - np.asarray(shift)) @ np.linalg.inv(rot).T + centre  # on row vectors
    inv = np.linalg.inv(img.affine)
    vin = xyz @ inv[:3, :3].T + inv[:3, 3]
    out = ndimage.map_coordinates(data, np.moveaxis(vin, -1, 0), order=1, mode="constant", cval=0.0)
    return np.clip(out, 0, None), out_aff


def load_colin(kind: str = "skull", voxel_mm: float = 1.0) -> nib.Nifti1Image:
    """Colin27 ``skull`` (ch2) or ``brain`` (ch2bet), sampled at ``voxel_mm`` over the same field of view
    (Gaussian pre-smoothing of FWHM one output voxel, then linear interpolation)."""
    return _image(*_sample(_original(kind), voxel_mm))


# the draws of random_move that CI prepares (tests/prep/test_real_head.py): three of the measurement's seeds
# (201-208, docs/prep.md "The same head in another position"), measured before they became the test;
# development (the bisection) used seeds 101-104
CI_MOVES = (201, 202, 204)


@dataclass(frozen=True)
class Move:
    """One draw of :func:`random_move`: world x -> ``matrix`` (x - c) + c + ``shift_mm`` about the field of
    view's centre c, then a smooth multiplicative bias ``1 + bias * b(x)`` (max |b| = 1). The head's
    volumes scale by ``det(matrix)`` (the prediction for its GM volume)."""

    seed: int
    axis: tuple
    angle_deg: float
    scales: tuple
    shift_mm: tuple
    bias: float

    @property
    def matrix(self) -> np.ndarray:
        rot = Rotation.from_rotvec(np.deg2rad(self.angle_deg) * np.asarray(self.axis)).as_matrix()
        return rot @ np.diag(self.scales)

    @property
    def det(self) -> float:
        return float(np.prod(self.scales))


def random_move(seed: int, max_rotation_deg: float = 15.0, scale_range=(0.95, 1.05), max_shift_mm: float = 15.0,
                max_bias: float = 0.25) -> Move:
    """A move drawn from ``seed``: a rotation of up to ``max_rotation_deg`` about a random axis, scales
    along the head's x, y, z axes uniform in ``scale_range`` (applied before the rotation), a shift of up to
    ``max_shift_mm`` in a random direction, and a smooth bias field of amplitude up to ``max_bias``."""
    rng = np.random.default_rng(seed)
    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    angle = float(rng.uniform(-max_rotation_deg, max_rotation_deg))
    scales = rng.uniform(*scale_range, size=3)
    direction = rng.normal(size=3)
    shift = direction / np.linalg.norm(direction) * rng.uniform(0.0, max_shift_mm)
    bias = float(rng.uniform(0.5, 1.0) * max_bias)
    return Move(int(seed), tuple(float(a) for a in axis), angle, tuple(float(s) for s in scales),
                tuple(float(t) for t in shift), bias)


def apply_move(move: Move, voxel_mm: float = 1.0, pad_mm: float = 25.0) -> nib.Nifti1Image:
    """The skull-on head under ``move``, sampled once (linear interpolation) on a grid of ``voxel_mm``
    padded by ``pad_mm``, times the move's bias field (its shape drawn from the move's seed)."""
    data, aff = _sample(_original("skull"), voxel_mm, move.matrix, np.asarray(move.shift_mm), pad_mm)
    coarse = np.random.default_rng([move.seed, 1]).normal(size=(4, 4, 4))
    b = ndimage.zoom(coarse, [n / 4 for n in data.shape], order=3)
    b /= max(float(np.abs(b).max()), 1e-9)
    return _image(data * (1.0 + move.bias * b), aff)


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


__all__ = ["CI_MOVES", "Move", "apply_move", "broken", "colin_dir", "load_colin", "random_move", "scaled"]
