"""Regenerate anatlearn/inputcheck/released_vbm.json: the APPROXIMATE fingerprint of the maps the released
AnatCL weights were trained on (CAT12 VBM mwp1 maps of OpenBHB's training split on the 1.5 mm MNI grid,
121x145x121), which is not available offline. Built from what is:

* the MNI152 gray-matter template shipped with nilearn (``load_mni152_gm_template``), resampled to the grid;
* ``anatlearn prep``'s output at the defaults on a real head (Colin27, Debian's mricron-data): pass the
  prep output folder(s) with ``--prep-out`` (each ``sub-*/sub-*_preproc-cat12vbm_desc-gm_T1w.npy``);
* CAT12's documented value ranges: a modulated GM map (mwp1) holds GM probability x Jacobian determinant,
  values 0 to about 1 (a little above 1 where the subject's GM is larger than the template's), no signal
  outside GM, unsmoothed (the "s" prefix of s6mwp1 marks the smoothed copy); total GM volume of OpenBHB's
  healthy 6-86 year olds roughly 450-900 mL (CAT12 manual; GM volume falls from about 800 mL in late
  childhood to about 500 mL in old age, e.g. Bethlehem et al. 2022, Nature 604:525).

Each base map is varied over that documented spread: a global modulation scale so that its GM volume spans
450-900 mL, a residual misregistration up to 2 mm, an extra Gaussian smoothing up to 0.5 voxel (resampling
and registration differences), and a little noise. The fingerprint of those variants
(:func:`anatlearn.inputcheck.fingerprint.fingerprint_from_volumes`, against the mean of the template and the real
maps) is written to ``--out``. It is approximate:
real OpenBHB maps vary in ways this family does not (docs/evaluation.md).

    python -m studies.make_released_reference --prep-out PREP_OUT [--prep-out ...] \\
        --out anatlearn/inputcheck/released_vbm.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from scipy.ndimage import gaussian_filter, shift

GM_ML = (450.0, 900.0)
MAX_SHIFT_MM, MAX_SMOOTH_VOX, NOISE_SD = 2.0, 0.5, 0.01
N_VARIANTS = 30  # per base map


def template_on_vbm_grid() -> np.ndarray:
    from nilearn import datasets, image

    from anatlearn.data.grids import TARGETS

    grid = TARGETS["vbm"]
    gm = datasets.load_mni152_gm_template(resolution=1)
    img = image.resample_img(gm, target_affine=grid.matrix, target_shape=grid.shape, interpolation="continuous",
                             force_resample=True, copy_header=True)
    return np.clip(np.nan_to_num(img.get_fdata(dtype=np.float32)), 0.0, 1.0)


def prep_maps(folders) -> list[np.ndarray]:
    maps = []
    for folder in folders:
        for path in sorted(Path(folder).glob("sub-*/sub-*_preproc-cat12vbm_desc-gm_T1w.npy")):
            maps.append(np.load(path)[0].astype(np.float32))
    return maps


class Variants:
    """The base maps varied over CAT12's documented spread (module docstring); a dataset for build_fingerprint."""

    def __init__(self, bases: list[np.ndarray], seed: int = 0, voxel_mm: float = 1.5):
        rng = np.random.default_rng(seed)
        self.items = []
        for b, base in enumerate(bases):
            ml = float(base.sum()) * voxel_mm**3 / 1000.0
            for target in np.linspace(*GM_ML, N_VARIANTS):
                d = rng.normal(size=3)
                move = d / np.linalg.norm(d) * rng.uniform(0, MAX_SHIFT_MM) / voxel_mm
                self.items.append((b, target / ml, move, rng.uniform(0, MAX_SMOOTH_VOX), int(rng.integers(2**31))))
        self.bases = bases

    def __len__(self) -> int:
        return len(self.items)

    def volume(self, i: int) -> np.ndarray:
        b, scale, move, smooth, seed = self.items[i]
        v = shift(self.bases[b], move, order=1)
        if smooth > 0:
            v = gaussian_filter(v, smooth)
        v = v * scale + np.random.default_rng(seed).normal(0, NOISE_SD, v.shape).astype(np.float32) * (v > 0.01)
        return np.clip(v, 0, None).astype(np.float32)


def main(argv=None) -> None:
    from anatlearn.inputcheck.fingerprint import COARSE_MM, coarse, fingerprint_from_volumes

    factor = int(round(COARSE_MM / 1.5))

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prep-out", action="append", default=[], help="a prep output folder (repeatable)")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    template, heads = template_on_vbm_grid(), prep_maps(args.prep_out)
    # the mean image: the template and the real maps; the ranges: variants of the real maps only (the
    # template is an average, smoother and more regular than any one subject's map), of the template if none
    mean = np.mean([template, *heads], axis=0)
    variants = Variants(heads or [template])
    rows = list(range(len(variants)))
    fp = fingerprint_from_volumes((variants.volume(i) for i in rows), coarse(mean, factor), mean.shape, 1.5,
                                  factor, len(rows), source="approximate CAT12 VBM reference of the released AnatCL weights: "
                           f"MNI152 GM template + {len(heads)} prep output(s) of a real head, varied over "
                           "CAT12's documented ranges (studies/make_released_reference.py)")
    Path(args.out).write_text(json.dumps(fp) + "\n")
    print(json.dumps(fp["stats"], indent=1))


if __name__ == "__main__":
    main()
