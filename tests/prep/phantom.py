"""Test subjects made from the template with a known deformation, for checking ``anatlearn prep``.

A subject is the bundled MNI152 T1 moved by a known affine ``A`` (rotations, translations, scaling) and a
smooth random displacement field, with a smooth multiplicative bias field and Gaussian noise, written on a
plain scanner-like grid (RAS, centred). Its ground truth (brain mask and GM probability moved the same way)
is returned too, so the recovered alignment and the GM volume can be checked.
"""

from __future__ import annotations

from dataclasses import dataclass

import nibabel as nib
import numpy as np
from scipy import ndimage
from scipy.spatial.transform import Rotation

from anatlearn.prep.templates import load_template


@dataclass
class Phantom:
    image: nib.Nifti1Image  # the subject's T1w (native space)
    mask: np.ndarray  # its true brain mask (native grid)
    gm: np.ndarray  # its true GM probability (native grid)
    affine_mm: np.ndarray  # template mm -> subject mm (4 x 4)

    @property
    def gm_ml(self) -> float:
        return float(self.gm.sum() * abs(np.linalg.det(self.image.affine[:3, :3])) / 1000.0)


def random_affine(rng: np.random.Generator, rotation_deg: float = 10.0, translation_mm: float = 8.0,
                  scaling: float = 0.05, scale: float | None = None) -> np.ndarray:
    """A 4 x 4 mm -> mm affine: uniform rotations in +-rotation_deg about each axis, translations in
    +-translation_mm, per-axis scaling in 1 +- scaling (or the fixed isotropic ``scale``)."""
    rot = Rotation.from_euler("xyz", rng.uniform(-rotation_deg, rotation_deg, 3), degrees=True).as_matrix()
    s = np.full(3, scale) if scale is not None else 1.0 + rng.uniform(-scaling, scaling, 3)
    out = np.eye(4)
    out[:3, :3] = rot @ np.diag(s)
    out[:3, 3] = rng.uniform(-translation_mm, translation_mm, 3)
    return out


def make_phantom(resolution: float = 1.0, seed: int = 0, affine_mm: np.ndarray | None = None,
                 warp_mm: float = 0.0, bias: float = 0.0, noise: float = 0.0, shape_pad_mm: float = 20.0) -> Phantom:
    """Make a subject from the template at ``resolution`` mm (see the module docstring). ``warp_mm``: the
    largest displacement of the smooth warp; ``bias``: amplitude of the log bias field; ``noise``: SD of the
    Gaussian noise relative to the brain's intensity."""
    rng = np.random.default_rng(seed)
    tpl = load_template(resolution)
    a = np.eye(4) if affine_mm is None else np.asarray(affine_mm, float)
    t_aff = tpl.t1.affine
    # subject grid: RAS, same voxel size, centred on the template's centre, padded by shape_pad_mm per side
    shape = tuple(int(n + 2 * round(shape_pad_mm / resolution)) for n in tpl.t1.shape)
    centre = t_aff[:3, :3] @ ((np.array(tpl.t1.shape) - 1) / 2.0) + t_aff[:3, 3]
    s_aff = np.diag([resolution, resolution, resolution, 1.0])
    s_aff[:3, 3] = centre - resolution * (np.array(shape) - 1) / 2.0
    ijk = np.stack(np.meshgrid(*[np.arange(n, dtype=np.float64) for n in shape], indexing="ij"), axis=-1)
    xyz = ijk @ s_aff[:3, :3].T + s_aff[:3, 3]
    src = xyz @ np.linalg.inv(a)[:3, :3].T + np.linalg.inv(a)[:3, 3]  # subject mm -> template mm
    if warp_mm > 0:
        coarse = rng.normal(size=(3, 4, 4, 4))
        field = np.stack([ndimage.zoom(c, [n / 4 for n in shape], order=3) for c in coarse], axis=-1)
        field = ndimage.gaussian_filter(field, sigma=(2, 2, 2, 0))
        src = src + field * (warp_mm / max(float(np.abs(field).max()), 1e-9))
    vox = src @ np.linalg.inv(t_aff)[:3, :3].T + np.linalg.inv(t_aff)[:3, 3]
    coords = np.moveaxis(vox, -1, 0)

    def sample(img, order=1):
        return ndimage.map_coordinates(img.get_fdata(dtype=np.float32), coords, order=order, mode="constant", cval=0.0)

    t1 = sample(tpl.t1)
    mask = (sample(tpl.mask) >= 0.5).astype(np.float32)
    gm = np.clip(sample(tpl.gm), 0, 1)
    if bias > 0:
        coarse = rng.normal(size=(3, 3, 3))
        b = ndimage.zoom(coarse, [n / 3 for n in shape], order=3)
        t1 = t1 * np.exp(bias * b / max(float(np.abs(b).max()), 1e-9))
    if noise > 0:
        t1 = t1 + rng.normal(0.0, noise * float(np.percentile(t1[mask > 0], 90)), t1.shape)
        t1 = np.clip(t1, 0, None)
    img = nib.Nifti1Image((t1 * 1000.0).astype(np.float32), s_aff)  # scanner-like intensity range
    img.header.set_xyzt_units("mm", "sec")
    img.set_qform(s_aff, code=1)
    img.set_sform(s_aff, code=1)
    return Phantom(img, mask, gm.astype(np.float32), a)
