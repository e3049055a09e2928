"""Brain extraction (skull stripping) of T1w inputs with **deepbet** (Fisch et al. 2024, *Comput Biol Med*
179:108845), and the ``auto`` decision whether an input still has its skull.

deepbet is a pair of TorchScript U-Nets (a coarse one at 128^3 for the brain's bounding box, a fine one at
256^3 inside it) whose weights ship inside its wheel (``data/models/{bbox_model,model}.pt``): nothing is
downloaded. Why deepbet and not a template-based or BET-style extractor: docs/prep.md, "Skull stripping"
(measured on the Colin27 head against its BET mask).

**auto.** deepbet runs on every image (about 5 s on 2 cores); the image keeps its skull when a noticeable
part of its bright signal lies well outside the predicted brain:

    outside = #{v : I(v) > t, d(v, brain) > r} / #{v : I(v) > t}

with ``t`` = 20 % of the 99.5th intensity percentile (the foreground threshold of
:func:`anatlearn.prep.pipeline.foreground_mask`) and ``r`` = :data:`OUTSIDE_MARGIN_MM` (the distance to the
mask, in mm, so a slightly tight mask does not count as skull). The mask is applied when ``outside`` >=
:data:`OUTSIDE_SKULL_MIN`. Scalp fat, marrow and muscle are bright on T1w: a skull-on head has a large part
of its foreground there (0.49 for Colin27), a skull-stripped image next to none (0.000-0.003 measured;
docs/prep.md). A skull-stripped image is never stripped again, because its own extraction is the user's.
"""

from __future__ import annotations

import contextlib
import functools
import time
from dataclasses import dataclass

import nibabel as nib
import numpy as np

from anatlearn.errors import ConfigError, DataError

SKULL_STRIP_CHOICES = ("auto", "yes", "no")
OUTSIDE_MARGIN_MM = 5.0
OUTSIDE_SKULL_MIN = 0.10
DEEPBET_VERSION = "1.0.2"


@dataclass
class Extraction:
    """Result of :func:`extract_brain`: the brain ``mask`` on the input's voxel grid (0/1 float32, ``None``
    when deepbet was not run or failed), the ``outside`` fraction above, whether the mask is ``applied``,
    the ``decision`` as recorded in qc.tsv (``yes`` / ``no``, with ``auto:`` and the reason when decided
    from the image) and deepbet's run time."""

    mask: np.ndarray | None
    outside: float
    applied: bool
    decision: str
    seconds: float


def check_choice(choice: str) -> str:
    if choice not in SKULL_STRIP_CHOICES:
        raise ConfigError(f"unknown --skull-strip {choice!r}; choose {', '.join(SKULL_STRIP_CHOICES)}")
    return choice


def deepbet_version() -> str:
    try:
        from importlib.metadata import version

        return version("deepbet")
    except Exception:  # not installed
        return "not installed"


@functools.lru_cache(maxsize=1)
def _model():
    try:
        from deepbet import BrainExtraction
    except ImportError:
        raise ConfigError(f"skull stripping needs deepbet: pip install --no-deps deepbet=={DEEPBET_VERSION} "
                          f"connected-components-3d fill-voids tqdm (or use --skull-strip no for skull-stripped "
                          f"inputs)") from None
    return BrainExtraction(no_gpu=True)


@contextlib.contextmanager
def _torch_threads(n: int | None):
    import torch

    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def deepbet_mask(img: nib.Nifti1Image, threads: int | None = None) -> np.ndarray:
    """deepbet's brain mask of a 3-D image, on the image's own voxel grid (0/1 float32). deepbet reorients
    to RAS by the affine, segments, and orients the mask back."""
    model = _model()
    with _torch_threads(threads):
        _, mask, _ = model.run(nib.Nifti1Image(np.asarray(img.dataobj, np.float32), img.affine))
    return (np.asarray(mask.dataobj) > 0).astype(np.float32)


def outside_fraction(data: np.ndarray, mask: np.ndarray, zooms, margin_mm: float = OUTSIDE_MARGIN_MM) -> float:
    """Fraction of the foreground (above 20 % of the 99.5th percentile) farther than ``margin_mm`` from the
    brain ``mask`` (Euclidean distance in mm over the voxel grid); 1.0 for an empty mask."""
    from scipy import ndimage

    pos = data[data > 0]
    if pos.size == 0:
        return 0.0
    fg = data > 0.2 * float(np.percentile(pos, 99.5))
    if not (mask > 0.5).any():
        return 1.0
    dist = ndimage.distance_transform_edt(mask <= 0.5, sampling=[float(z) for z in zooms])
    return float(np.logical_and(fg, dist > margin_mm).sum() / max(int(fg.sum()), 1))


# closing radius of brain_outline (mm): a closing with a ball of radius r bridges gaps up to 2r wide
OUTLINE_CLOSING_MM = 3.0


def brain_outline(data: np.ndarray, support: np.ndarray, zooms, radius_mm: float = OUTLINE_CLOSING_MM) -> np.ndarray:
    """The brain's outer outline inside ``support``: the parenchyma (brighter than the CSF/GM midpoint of a
    3-class k-means of the intensities inside ``support``, its largest component) closed with a ball of
    ``radius_mm`` (a morphological closing, which bridges the sulci as a surface-based extractor's outline
    does), holes filled, intersected with ``support``.

    Extractors differ mostly by the shell of extra-cerebral CSF their masks keep (deepbet's mask of Colin27
    keeps a median 1.4 mm more than BET's, docs/prep.md); registration maps each outline onto the
    template's brain, so the shell changes the Jacobian of one brain by several per cent. The pipeline cuts
    deepbet's mask to this outline."""
    from scipy import ndimage
    from sklearn.cluster import KMeans

    inside = support > 0.5
    values = data[inside].astype(np.float64)
    if values.size < 100:
        return inside.astype(np.float32)
    rng = np.random.default_rng(0)
    sample = values if values.size <= 200_000 else rng.choice(values, 200_000, replace=False)
    init = np.percentile(sample, [10, 50, 90]).reshape(-1, 1)
    centres = np.sort(KMeans(3, init=init, n_init=1, random_state=0).fit(sample.reshape(-1, 1))
                      .cluster_centers_.ravel())
    tissue = inside & (data > 0.5 * (centres[0] + centres[1]))
    labels, n = ndimage.label(tissue)
    if n > 1:
        sizes = ndimage.sum(tissue, labels, range(1, n + 1))
        tissue = labels == (1 + int(np.argmax(sizes)))
    zooms = np.asarray(zooms, float)[:3]
    r = np.maximum(np.round(radius_mm / zooms).astype(int), 1)
    grid = np.ogrid[tuple(slice(-k, k + 1) for k in r)]
    ball = sum((g * z / radius_mm) ** 2 for g, z in zip(grid, zooms)) <= 1.0
    padded = np.pad(tissue, [(k, k) for k in r])
    closed = ndimage.binary_erosion(ndimage.binary_dilation(padded, ball), ball)
    closed = closed[tuple(slice(k, -k) for k in r)]
    return (ndimage.binary_fill_holes(closed) & inside).astype(np.float32)


def extract_brain(img: nib.Nifti1Image, choice: str, threads: int | None = None) -> Extraction:
    """Brain extraction according to ``--skull-strip`` (see the module docstring). ``yes``: deepbet's mask
    is applied (a deepbet failure is a :class:`DataError`); ``auto``: applied when the image has a skull
    (a deepbet failure leaves the image as it is, recorded in the decision); ``no``: nothing is run."""
    check_choice(choice)
    if choice == "no":
        return Extraction(None, float("nan"), False, "no", 0.0)
    t0 = time.perf_counter()
    try:
        mask = deepbet_mask(img, threads)
    except ConfigError:
        raise
    except Exception as exc:  # deepbet asserts on images with no brain-like foreground
        if choice == "yes":
            raise DataError(f"brain extraction (deepbet) failed: {type(exc).__name__}: {exc}") from None
        return Extraction(None, float("nan"), False, f"auto: no (deepbet failed: {exc})",
                          time.perf_counter() - t0)
    data = np.asarray(img.dataobj, np.float32)
    outside = outside_fraction(data, mask, img.header.get_zooms()[:3])
    seconds = time.perf_counter() - t0
    if not mask.any():
        if choice == "yes":
            raise DataError("brain extraction (deepbet) found no brain in the image")
        return Extraction(None, outside, False, "auto: no (deepbet found no brain)", seconds)
    if choice == "yes":
        return Extraction(mask, outside, True, "yes", seconds)
    applied = outside >= OUTSIDE_SKULL_MIN
    reason = f"{outside:.3f} of the foreground > {OUTSIDE_MARGIN_MM:g} mm outside the brain"
    return Extraction(mask if applied else None, outside, applied,
                      f"auto: {'yes' if applied else 'no'} ({reason})", seconds)


__all__ = ["Extraction", "SKULL_STRIP_CHOICES", "check_choice", "deepbet_mask", "deepbet_version",
           "extract_brain", "outside_fraction"]
