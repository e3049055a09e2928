"""The fingerprint of the maps an encoder was trained on: robust ranges of cheap per-volume statistics.

A fingerprint is plain JSON (it travels inside checkpoints, which hold no NumPy objects, and inside exported
``config.json`` files). It holds the training maps' mean image on a coarse grid (blocks of about 6 mm, stored
as base64 float16) and, for every statistic of :func:`volume_stats`, the quantiles of its values over the
training maps. A statistic is computed the same way for the training maps and for a user's map, against the
mean image as it is stored (decoded from float16), so a training map checked against its own fingerprint
lies inside the ranges by construction.

The statistics, each chosen to separate one way a map can be unlike a CAT12 gray-matter map:

* ``q99``: the 99th percentile of the intensities inside the brain mask (where the mean image is at least
  a fifth of its maximum): a raw T1 (hundreds) or a rescaled map;
* ``outside``: the mean intensity where the mean image is below 2 % of its maximum (white matter, CSF,
  skull, background), relative to the mean inside the mask: a T1 or a whole-brain segment has signal there;
* ``tissue_ml``: the total tissue, sum of intensities x voxel volume (mL; the GM volume of a modulated map);
* ``corr``: Pearson r with the mean image, on the coarse grid: another contrast, noise, another space;
* ``offset_mm``: distance of the centre of mass (intensities clipped at 0) from the mean image's: a map not
  registered to MNI, or shifted;
* ``smooth_vox``: an effective Gaussian width (voxels) from the ratio of the mean squared neighbour
  difference D to the variance V inside the dilated mask: for Gaussian-smoothed white noise of width s,
  D / V = 2 (1 - exp(-1 / (4 s^2))) (Kiebel et al. 1999, NeuroImage 10:756, the roughness-based smoothness
  estimate behind SPM's FWHM), hence s = (-4 ln(1 - D / 2V))^-1/2. For a structured map it is an effective
  width, comparable between maps of one kind: a smoothed (s6mwp1) map is wider, a noise volume narrower.
"""

from __future__ import annotations

import base64
import functools
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

FORMAT = "anatlearn-input-fingerprint"
FORMAT_VERSION = 1
COARSE_MM = 6.0      # block size of the stored mean image
MASK_FRACTION = 0.2  # brain mask: mean image >= this fraction of its maximum
OUT_FRACTION = 0.02  # "outside": mean image below this fraction of its maximum
FOV_X_MM = 181.5     # every anatlearn grid spans the CAT12/OpenBHB box: 121 voxels of 1.5 mm along x
QUANTILES = (0.0, 0.01, 0.05, 0.5, 0.95, 0.99, 1.0)
STATS = ("q99", "outside", "tissue_ml", "corr", "offset_mm", "smooth_vox")
MAX_SUBJECTS = 200   # the fingerprint reads at most this many training maps (evenly spaced)


def grid_voxel_mm(shape) -> float:
    """Voxel size of an anatlearn grid of this shape (every grid spans the same 181.5 mm along x)."""
    return FOV_X_MM / int(shape[0])


def coarse(vol: np.ndarray, factor: int) -> np.ndarray:
    """Block means of ``factor``^3 voxels (the volume zero-padded to a multiple of ``factor``)."""
    if factor == 1:
        return vol.astype(np.float32)
    pad = [(0, (-n) % factor) for n in vol.shape]
    v = np.pad(vol.astype(np.float32), pad)
    x, y, z = (n // factor for n in v.shape)
    return v.reshape(x, factor, y, factor, z, factor).mean(axis=(1, 3, 5))


def _encode(arr: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(arr, dtype="<f2").tobytes()).decode("ascii")


def _decode(text: str, shape) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), dtype="<f2").astype(np.float32).reshape(shape)


@dataclass(frozen=True)
class MeanImage:
    """The mean image of a fingerprint on the full grid, its masks and centre of mass."""

    shape: tuple[int, int, int]
    voxel_mm: float
    factor: int
    coarse_mean: np.ndarray
    mask: np.ndarray        # brain mask (full grid)
    region: np.ndarray      # dilated mask, where smoothness is measured
    outside: np.ndarray     # far from gray matter
    com_vox: np.ndarray     # centre of mass of the mean image (voxels)

    @classmethod
    def from_mean(cls, coarse_mean: np.ndarray, shape, voxel_mm: float, factor: int) -> "MeanImage":
        shape = tuple(int(s) for s in shape)
        full = coarse_mean
        for axis in range(3):
            full = np.repeat(full, factor, axis=axis)
        full = full[: shape[0], : shape[1], : shape[2]]
        top = float(full.max())
        mask = full >= MASK_FRACTION * top
        region = ndimage.binary_dilation(mask, iterations=2)
        outside = full < OUT_FRACTION * top
        com = np.array(ndimage.center_of_mass(np.clip(full, 0, None)))
        return cls(shape, float(voxel_mm), int(factor), coarse_mean, mask, region, outside, com)


def volume_stats(vol: np.ndarray, ref: MeanImage) -> dict[str, float]:
    """The statistics of one volume (module docstring); NaN where a statistic is undefined (an empty map)."""
    v = np.asarray(vol, dtype=np.float32)
    inside = v[ref.mask]
    mean_in = float(inside.mean())
    pos = np.clip(v, 0, None)
    total = float(pos.sum())
    out = {"q99": float(np.quantile(inside, 0.99)),
           "outside": float(v[ref.outside].mean()) / mean_in if mean_in > 0 else float("nan"),
           "tissue_ml": float(v.sum()) * ref.voxel_mm**3 / 1000.0}
    c = coarse(v, ref.factor).ravel()
    m = ref.coarse_mean.ravel()
    sd = float(c.std())
    out["corr"] = float(np.corrcoef(c, m)[0, 1]) if sd > 0 else float("nan")
    if total > 0:
        com = np.array(ndimage.center_of_mass(pos))
        out["offset_mm"] = float(np.linalg.norm(com - ref.com_vox)) * ref.voxel_mm
    else:
        out["offset_mm"] = float("nan")
    out["smooth_vox"] = _smoothness(v, ref.region)
    return out


def _smoothness(v: np.ndarray, region: np.ndarray) -> float:
    var = float(v[region].var())
    if not var > 0:
        return float("nan")
    diffs = []
    for axis in range(3):
        a = [slice(None)] * 3
        b = [slice(None)] * 3
        a[axis], b[axis] = slice(1, None), slice(None, -1)
        both = region[tuple(a)] & region[tuple(b)]
        diffs.append(float(((v[tuple(a)] - v[tuple(b)])[both] ** 2).mean()))
    ratio = float(np.mean(diffs)) / (2 * var)
    if ratio >= 1:
        return 0.0
    return float((-4 * np.log1p(-ratio)) ** -0.5) if ratio > 0 else float("inf")


def _subset(n: int, max_subjects: int) -> list[int]:
    if n <= max_subjects:
        return list(range(n))
    return sorted({int(round(i)) for i in np.linspace(0, n - 1, max_subjects)})


def build_fingerprint(dataset, source: str = "", max_subjects: int = MAX_SUBJECTS, voxel_mm: float | None = None) -> dict:
    """The fingerprint of ``dataset`` (anything with ``len`` and ``volume(i)``): two passes over at most
    ``max_subjects`` evenly spaced maps, the first for the mean image, the second for the statistics."""
    rows = _subset(len(dataset), max_subjects)
    first = dataset.volume(rows[0])
    shape = tuple(int(s) for s in first.shape)
    voxel_mm = float(voxel_mm or grid_voxel_mm(shape))
    factor = max(1, int(round(COARSE_MM / voxel_mm)))
    total = np.zeros(shape, np.float64)
    for i in rows:
        total += dataset.volume(i) if i != rows[0] else first
    return fingerprint_from_volumes((dataset.volume(i) for i in rows), coarse(total / len(rows), factor),
                                    shape, voxel_mm, factor, len(rows), source)


def fingerprint_from_volumes(volumes, coarse_mean: np.ndarray, shape, voxel_mm: float, factor: int, n: int,
                             source: str = "") -> dict:
    """The fingerprint of ``volumes`` (an iterable of maps) against the coarse mean image ``coarse_mean``."""
    encoded = _encode(coarse_mean)
    ref = MeanImage.from_mean(_decode(encoded, coarse_mean.shape), shape, voxel_mm, factor)
    values = {k: [] for k in STATS}
    for vol in volumes:
        for k, x in volume_stats(vol, ref).items():
            values[k].append(x)
    stats = {k: {f"q{round(q * 100):02d}": float(np.nanquantile(v, q)) for q in QUANTILES} for k, v in values.items()}
    return {"format": FORMAT, "format_version": FORMAT_VERSION, "source": str(source), "n_subjects": int(n),
            "shape": list(shape), "voxel_mm": voxel_mm, "coarse_factor": factor,
            "coarse_shape": list(coarse_mean.shape), "mean_image_f16": encoded, "stats": stats}


@functools.lru_cache(maxsize=4)
def _reference_cached(encoded: str, coarse_shape: tuple, shape: tuple, voxel_mm: float, factor: int) -> MeanImage:
    return MeanImage.from_mean(_decode(encoded, coarse_shape), shape, voxel_mm, factor)


def reference_of(fp: dict) -> MeanImage:
    """The :class:`MeanImage` (mean image, masks) of a fingerprint."""
    return _reference_cached(fp["mean_image_f16"], tuple(fp["coarse_shape"]), tuple(fp["shape"]),
                             float(fp["voxel_mm"]), int(fp["coarse_factor"]))
