"""Image filters of the prep pipeline (:mod:`anatlearn.prep.pipeline`), on ANTsImages in native space."""

from __future__ import annotations

import numpy as np


def foreground_mask(img):
    """Head/brain foreground of a native ANTsImage: above 20 % of the 99.5th percentile (the template's
    brain mask is its T1 above 20 % of the maximum), largest component, holes filled."""
    from scipy import ndimage

    arr = img.numpy()
    thr = 0.2 * float(np.percentile(arr[arr > 0], 99.5)) if (arr > 0).any() else 0.0
    fg = arr > thr
    labels, n = ndimage.label(fg)
    if n > 1:
        sizes = ndimage.sum(fg, labels, range(1, n + 1))
        fg = labels == (1 + int(np.argmax(sizes)))
    fg = ndimage.binary_fill_holes(fg)
    return img.new_image_like(fg.astype(np.float32))


def antialias(img, target_mm: float):
    """Gaussian pre-filter of a native map before it is sampled onto a grid of ``target_mm`` voxels.

    Interpolating a 1 mm map at 3 mm (or 1.5 mm) points samples one point per output voxel and aliases:
    the same head on another sampling grid (moved, rotated) gives a visibly different map. Smoothing each
    axis first with FWHM_i = sqrt(target_mm^2 - s_i^2) (s_i the native spacing; the usual FWHM-matching
    rule, so the effective resolution becomes the grid's) makes each output voxel a local average. The
    filter is normalised, so integrated volumes (modulated GM) are unchanged. A no-op when the grid is not
    coarser than the image."""
    import ants

    fwhm = [float(np.sqrt(max(target_mm ** 2 - sp ** 2, 0.0))) for sp in img.spacing]
    if max(fwhm) < 1e-3:
        return img
    return ants.smooth_image(img, [f / (2 * np.sqrt(2 * np.log(2))) for f in fwhm], sigma_in_physical_coordinates=True)


def smooth_inside(img, sigma_mm: float):
    """Gaussian smoothing (``sigma_mm``, physical units) of ``img`` inside its non-zero support only:
    normalised convolution, G*(I M) / G*M with M the support (Knutsson & Westin 1993, CVPR 515), so the zeros
    outside an extracted brain do not darken its edge, and outside M the image stays zero.

    Segmentation sees this image (``PrepConfig.segmentation_smoothing``): the same head sampled on another
    grid (moved, or one linear interpolation away) is a little blurrier, and Atropos turns that blur into
    GM at partial-volume voxels; a fixed extra blur of every input makes one interpolation's a small share
    of the total (docs/prep.md, "The same head in another position"). A no-op for ``sigma_mm`` 0."""
    import ants

    if sigma_mm <= 0:
        return img
    arr = img.numpy()
    support = (arr > 0).astype(np.float32)
    num = ants.smooth_image(img, sigma_mm, sigma_in_physical_coordinates=True).numpy()
    den = ants.smooth_image(img.new_image_like(support), sigma_mm, sigma_in_physical_coordinates=True).numpy()
    out = np.where(support > 0, num / np.maximum(den, 1e-6), 0.0)
    return img.new_image_like(out.astype(np.float32))
