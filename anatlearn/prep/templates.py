"""The MNI152 template shipped offline with nilearn, its brain mask and tissue priors, and the target grids.

Registration template: the ICBM 2009a nonlinear *symmetric* MNI152 template (Fonov et al. 2011) that nilearn
bundles in its wheel (``nilearn/datasets/data/mni_icbm152_{t1,gm,wm}_tal_nlin_sym_09a_converted.nii.gz``,
1 mm, 197 x 233 x 189, skull-stripped T1 plus gray/white-matter probability maps). Nothing is downloaded.

Target grids (the spaces of the released weights' inputs, OpenBHB, Dufumier et al. 2022):

* ``vbm``: 121 x 145 x 121 at 1.5 mm, the SPM12/CAT12 tissue-probability-map grid. Affine
  ``[[-1.5, 0, 0, 90], [0, 1.5, 0, -126], [0, 0, 1.5, -72]]`` (0-based voxel indices, RAS mm): x is stored
  right-to-left like SPM/CAT12 output, and the box spans x -90..90, y -126..90, z -72..108 mm.
* ``quasiraw``: 182 x 218 x 182 at 1 mm, FSL's MNI152 1 mm grid. Affine
  ``[[-1, 0, 0, 90], [0, 1, 0, -126], [0, 0, 1, -72]]``: the same origin as ``vbm`` (one more mm per axis).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

from anatlearn.errors import ConfigError, DataError

TEMPLATE_FILES = {k: f"mni_icbm152_{k}_tal_nlin_sym_09a_converted.nii.gz" for k in ("t1", "gm", "wm")}
BRAIN_THRESHOLD = 0.2  # of the [0, 1]-rescaled T1, as nilearn.datasets.load_mni152_brain_mask


from anatlearn.data.grids import SUFFIXES, TARGETS, Grid  # noqa: E402,F401  (the grids are data facts)


def target_grid(target: str, voxel_mm: float | None = None) -> Grid:
    """The grid of ``target`` (vbm | quasiraw); ``voxel_mm`` gives a coarser grid over the same box (tests)."""
    if target not in TARGETS:
        raise ConfigError(f"unknown target {target!r}; choose vbm or quasiraw")
    return TARGETS[target] if voxel_mm is None else Grid.covering_box(float(voxel_mm))


def template_dir() -> Path:
    import nilearn.datasets

    return Path(nilearn.datasets.__file__).parent / "data"


@functools.lru_cache(maxsize=2)
def _load_1mm() -> dict[str, nib.Nifti1Image]:
    out = {}
    for key, name in TEMPLATE_FILES.items():
        path = template_dir() / name
        if not path.is_file():
            raise DataError(f"MNI152 template file missing from the nilearn installation: {path}")
        img = nib.load(path)
        data = img.get_fdata(dtype=np.float32)
        out[key] = nib.Nifti1Image(data / max(float(data.max()), 1e-6), img.affine)
    t1 = out["t1"].get_fdata(dtype=np.float32)
    gm, wm = (out[k].get_fdata(dtype=np.float32) for k in ("gm", "wm"))
    brain = (t1 > BRAIN_THRESHOLD).astype(np.float32)
    out["mask"] = nib.Nifti1Image(brain, out["t1"].affine)
    # CSF prior: whatever of the brain mask is neither GM nor WM (ventricles, sulci)
    out["csf"] = nib.Nifti1Image(np.clip(brain - gm - wm, 0.0, 1.0) * brain, out["t1"].affine)
    return out


@dataclass
class Template:
    """Template images as nibabel images on one grid: ``t1`` (in [0, 1]), ``gm``, ``wm``, ``csf``
    (probabilities) and ``mask`` (0/1 brain mask)."""

    t1: nib.Nifti1Image
    gm: nib.Nifti1Image
    wm: nib.Nifti1Image
    csf: nib.Nifti1Image
    mask: nib.Nifti1Image
    resolution: float

    def ants(self, key: str):
        """One image as an ANTsImage (float32)."""
        import ants

        img = getattr(self, key)
        img.header.set_xyzt_units("mm", "sec")
        return ants.from_nibabel_nifti(img)


@functools.lru_cache(maxsize=4)
def load_template(resolution: float = 1.0) -> Template:
    """The bundled MNI152 2009a template at ``resolution`` mm (1 = the file itself; coarser grids are
    resampled with linear interpolation over the same field of view, the mask re-thresholded at 0.5)."""
    imgs = _load_1mm()
    if resolution <= 0:
        raise ConfigError(f"template resolution must be positive, got {resolution}")
    if abs(resolution - 1.0) > 1e-6:
        src = imgs["t1"]
        shape = [int(np.ceil(n / resolution)) for n in src.shape]
        aff = src.affine.copy()
        aff[:3, :3] *= resolution
        # keep the field of view centred: shift the origin by half of the lost or gained extent
        aff[:3, 3] += (np.array(src.shape) - 1 - (np.array(shape) - 1) * resolution) / 2.0
        out = {}
        for key, img in imgs.items():
            data = np.clip(resample_to_grid(img, Grid.make(shape, aff)), 0.0, 1.0)
            if key == "mask":
                data = (data >= 0.5).astype(np.float32)
            out[key] = nib.Nifti1Image(data, aff)
        imgs = out
    return Template(**{k: imgs[k] for k in ("t1", "gm", "wm", "csf", "mask")}, resolution=float(resolution))


def resample_to_grid(img: nib.Nifti1Image, grid: Grid, interpolation: str = "continuous") -> np.ndarray:
    """Resample a template image to ``grid`` (both in MNI space) with nilearn; returns float32 data."""
    import warnings

    from nilearn.image import resample_img

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "resampling binary images with continuous interpolation"
        r = resample_img(img, target_affine=grid.matrix, target_shape=grid.shape, interpolation=interpolation,
                         force_resample=True, copy_header=True)
    return np.nan_to_num(r.get_fdata(dtype=np.float32))


@functools.lru_cache(maxsize=8)
def template_on_grid(grid: Grid) -> dict[str, np.ndarray]:
    """The 1 mm template's T1, GM, WM and brain mask on a target grid (for metrics and QC outlines)."""
    tpl = load_template(1.0)
    out = {k: resample_to_grid(getattr(tpl, k), grid) for k in ("t1", "gm", "wm")}
    out["mask"] = (resample_to_grid(tpl.mask, grid) >= 0.5).astype(np.float32)
    return out
