import numpy as np
import pytest
import torch

from anatlearn.data.transforms import (Compose, Cutout, GaussianBlur, GaussianNoise, RandomCropPad, RandomFlip,
                                       build_augmentations)
from anatlearn.errors import ConfigError


def vol(seed=0):
    return torch.rand(1, 12, 14, 10, generator=torch.Generator().manual_seed(seed))


def test_seeded_and_composable():
    t = Compose([RandomCropPad((10, 12, 8)), Cutout(4, p=1.0), RandomFlip(0, 0.5), GaussianBlur((0.5, 1.0)),
                 GaussianNoise((0.01, 0.02))])
    a = t(vol(), torch.Generator().manual_seed(3))
    b = t(vol(), torch.Generator().manual_seed(3))
    c = t(vol(), torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c) and a.shape == (1, 12, 14, 10)


def test_crop_pad_keeps_a_shifted_block():
    x = vol()
    out = RandomCropPad((10, 12, 8))(x, torch.Generator().manual_seed(0))
    inner = out[:, 1:11, 1:13, 1:9]
    # the centred block equals some crop of the input
    found = any(torch.equal(inner, x[:, i:i + 10, j:j + 12, k:k + 8]) for i in range(3) for j in range(3) for k in range(3))
    assert found and out[:, 0].abs().sum() == 0


def test_cutout_zeroes_a_cube_and_flip_mirrors():
    out = Cutout(4, p=1.0)(torch.ones(1, 10, 10, 10), torch.Generator().manual_seed(0))
    assert int((out == 0).sum()) == 64
    x = vol()
    assert torch.equal(RandomFlip(0, p=1.0)(x), x.flip(1))
    assert torch.equal(RandomFlip(0, p=0.0)(x), x)


def test_blur_preserves_mean_of_constant_and_matches_scipy():
    from scipy.ndimage import gaussian_filter

    c = torch.full((1, 8, 8, 8), 3.0)
    torch.testing.assert_close(GaussianBlur((1.0, 1.0))(c), c)
    x = vol()
    ours = GaussianBlur((1.0, 1.0))(x)[0].numpy()
    ref = gaussian_filter(x[0].numpy().astype(np.float64), 1.0, mode="nearest", truncate=3.0)
    np.testing.assert_allclose(ours, ref, atol=1e-5)


def test_batched_input_and_noise_level():
    xb = torch.zeros(4, 1, 16, 16, 16)
    out = GaussianNoise((0.1, 0.1))(xb, torch.Generator().manual_seed(0))
    assert out.shape == xb.shape and abs(out.std().item() - 0.1) < 0.005


def test_build_augmentations():
    assert build_augmentations([], (32, 32, 32)) is None
    assert len(build_augmentations(["flip", "noise"], (32, 32, 32)).transforms) == 2
    with pytest.raises(ConfigError, match="unknown augmentation 'rotate'"):
        build_augmentations(["rotate"], (32, 32, 32))
