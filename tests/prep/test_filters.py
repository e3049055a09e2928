"""The smoothing inside the brain that segmentation sees (anatlearn.prep.filters.smooth_inside, issue 39), and
that a prep folder made before the option existed is not taken for one made with it."""

import json

import numpy as np
import pytest

ants = pytest.importorskip("ants")


def _volume(seed=0):
    rng = np.random.default_rng(seed)
    support = np.zeros((20, 22, 24), np.float32)
    support[4:16, 5:18, 3:20] = 1
    support[8:11, 9:12, 8:12] = 0  # a hole: zeros inside the box, as an outline cut leaves
    return rng.uniform(1.0, 2.0, support.shape).astype(np.float32) * support, support


def test_smooth_inside_matches_a_normalised_convolution_reference():
    """Against scipy's Gaussian (sampled kernel; ITK's is the discrete one, so equal only up to the kernel's
    discretisation): G*(I M) / G*M inside M, zero outside."""
    from scipy import ndimage

    from anatlearn.prep.filters import smooth_inside

    data, support = _volume()
    spacing = (1.0, 1.2, 0.9)
    out = smooth_inside(ants.from_numpy(data, spacing=spacing), 1.0).numpy()
    sigma_vox = [1.0 / s for s in spacing]
    num = ndimage.gaussian_filter(data.astype(float), sigma_vox, mode="constant")
    den = ndimage.gaussian_filter(support.astype(float), sigma_vox, mode="constant")
    ref = np.where(support > 0, num / np.maximum(den, 1e-9), 0.0)
    inside = support > 0
    assert np.all(out[~inside] == 0)
    assert np.abs(out - ref)[inside].mean() < 0.02 and np.abs(out - ref).max() < 0.1
    # a plain Gaussian darkens the edge by mixing in the zeros outside: at the support's faces by about a third
    plain = ants.smooth_image(ants.from_numpy(data, spacing=spacing), 1.0, sigma_in_physical_coordinates=True).numpy()
    edge = inside & ~ndimage.binary_erosion(inside)
    assert plain[edge].mean() < 0.8 * data[edge].mean() < out[edge].mean()


def test_smooth_inside_keeps_a_constant_brain_constant_and_zero_sigma_is_identity():
    from anatlearn.prep.filters import smooth_inside

    data, support = _volume()
    flat = smooth_inside(ants.from_numpy(3.0 * support), 1.5).numpy()
    assert np.abs(flat[support > 0] - 3.0).max() < 1e-5 and np.all(flat[support == 0] == 0)
    img = ants.from_numpy(data)
    assert smooth_inside(img, 0.0) is img


def test_a_prep_folder_from_before_the_option_is_told_apart(tmp_path):
    """prep.json written before ``segmentation_smoothing`` existed was made without smoothing (0 mm): resuming
    it at the default names the difference instead of mixing unsmoothed and smoothed subjects."""
    from anatlearn.prep import SEGMENTATION_SMOOTHING_MM
    from anatlearn.prep.pipeline import PrepConfig
    from anatlearn.prep.run import _option_changes

    old = PrepConfig().to_dict()
    del old["segmentation_smoothing"]
    assert _option_changes(old, PrepConfig()) == f"segmentation_smoothing: 0.0 in the output, {SEGMENTATION_SMOOTHING_MM!r} now"
    assert _option_changes(old, PrepConfig(segmentation_smoothing=0.0)) == ""
    assert _option_changes(PrepConfig().to_dict(), PrepConfig()) == ""
    json.dumps(PrepConfig().to_dict())  # recorded in prep.json and each QC JSON
