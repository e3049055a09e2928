import math

import pytest
import torch

from anatlearn.errors import ConfigError, DataError
from anatlearn.losses.kernels import age_kernel


def brute_force(ages, kernel, sigma):
    b = len(ages)
    out = torch.zeros(b, b, dtype=torch.float64)
    for i in range(b):
        for j in range(b):
            dy = ages[i] - ages[j]
            if kernel == "rbf":
                out[i, j] = math.exp(-dy * dy / (2 * sigma * sigma))
            elif kernel == "gaussian":
                out[i, j] = math.exp(-dy * dy / (2 * sigma * sigma)) / (math.sqrt(2 * math.pi) * sigma)
            else:
                out[i, j] = 1.0 / (sigma * dy * dy + 1)
    return out


@pytest.mark.parametrize("kernel", ["rbf", "gaussian", "cauchy"])
@pytest.mark.parametrize("sigma", [0.5, 2.0, 5.0])
def test_kernels_match_formula(kernel, sigma):
    ages = [6.0, 7.5, 20.0, 33.3, 88.0]
    got = age_kernel(torch.tensor(ages, dtype=torch.float64), kernel, sigma)
    torch.testing.assert_close(got, brute_force(ages, kernel, sigma))


def test_rbf_hand_values():
    w = age_kernel(torch.tensor([30.0, 32.0]), "rbf", 2.0)
    # dy = 2, sigma = 2: exp(-4 / 8) = exp(-0.5)
    assert w[0, 1].item() == pytest.approx(math.exp(-0.5))
    assert w[0, 0].item() == 1.0


def test_kernel_errors():
    with pytest.raises(ConfigError, match="unknown age kernel 'box'"):
        age_kernel(torch.zeros(3), "box")
    with pytest.raises(ConfigError, match="sigma"):
        age_kernel(torch.zeros(3), "rbf", 0.0)
    with pytest.raises(DataError, match="NaN"):
        age_kernel(torch.tensor([1.0, float("nan")]))
    with pytest.raises(DataError, match="1-D"):
        age_kernel(torch.zeros(2, 2))
