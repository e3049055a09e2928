import numpy as np
import pytest
import torch

from anatlearn.losses.anatomy import anatomical_similarity
from anatlearn.errors import ConfigError, DataError


def cos(u, v):
    nu, nv = np.linalg.norm(u), np.linalg.norm(v)
    return 0.0 if nu < 1e-12 or nv < 1e-12 else float(u @ v / (nu * nv))


def normalise_ref(x, method, stats=None):
    x = x.copy()
    if method == "minmax":
        for n in range(x.shape[0]):
            for j in range(x.shape[2]):
                col = x[n, :, j]
                x[n, :, j] = (col - col.min()) / (col.max() - col.min())
    elif method == "zscore":
        mean = stats["mean"] if stats else x.mean(0)
        std = stats["std"] if stats else x.std(0)
        x = (x - mean) / std
    return x


def similarity_ref(x, mode, method, stats=None):
    x = normalise_ref(x, method, stats)
    b, k, d = x.shape
    out = np.zeros((b, b))
    for n in range(b):
        for m in range(b):
            if mode == "local":
                out[n, m] = np.mean([cos(x[n, r, :], x[m, r, :]) for r in range(k)])
            else:
                out[n, m] = np.mean([cos(x[n, :, j], x[m, :, j]) for j in range(d)])
    return out


@pytest.mark.parametrize("mode", ["local", "global"])
@pytest.mark.parametrize("method", [None, "minmax", "zscore"])
def test_similarity_matches_brute_force(mode, method):
    rng = np.random.default_rng(0)
    x = rng.gamma(3.0, 1.0, size=(6, 10, 3)) + 0.5
    got = anatomical_similarity(torch.tensor(x), mode=mode, normalise=method, weight_map=None)
    np.testing.assert_allclose(got.numpy(), similarity_ref(x, mode, method), atol=1e-10)


def test_zscore_uses_training_stats_and_weight_maps():
    rng = np.random.default_rng(1)
    train = rng.normal(2.5, 0.3, size=(50, 8, 3))
    batch = rng.normal(2.5, 0.3, size=(5, 8, 3))
    stats = {"mean": train.mean(0).tolist(), "std": train.std(0).tolist()}
    raw = anatomical_similarity(torch.tensor(batch), "global", "zscore", stats, weight_map=None).numpy()
    ref = similarity_ref(batch, "global", "zscore", {"mean": train.mean(0), "std": train.std(0)})
    np.testing.assert_allclose(raw, ref, atol=1e-10)
    shift = anatomical_similarity(torch.tensor(batch), "global", "zscore", stats, weight_map="shift").numpy()
    clamp = anatomical_similarity(torch.tensor(batch), "global", "zscore", stats, weight_map="clamp").numpy()
    np.testing.assert_allclose(shift, (ref + 1) / 2, atol=1e-10)
    np.testing.assert_allclose(clamp, np.maximum(ref, 0), atol=1e-10)


def test_raw_positive_descriptors_give_flat_similarity_and_zscore_does_not():
    """The trap SPEC warns of: without centring every cosine is ~1."""
    rng = np.random.default_rng(2)
    x = rng.normal(2.5, 0.2, size=(20, 68, 3)) * np.array([1.0, 3000.0, 1500.0])
    raw = anatomical_similarity(torch.tensor(x), "global", None, weight_map=None).numpy()
    z = anatomical_similarity(torch.tensor(x), "global", "zscore", weight_map=None).numpy()
    off = ~np.eye(20, dtype=bool)
    assert raw[off].min() > 0.95
    assert z[off].std() > 0.05


def test_zero_vectors_do_not_give_nan():
    x = torch.zeros(3, 4, 3)
    x[0] = 1.0
    got = anatomical_similarity(x, "local", None, weight_map=None)
    assert torch.isfinite(got).all()


def test_errors():
    with pytest.raises(DataError, match=r"\(B, K regions, D descriptors\)"):
        anatomical_similarity(torch.ones(4, 3))
    with pytest.raises(ConfigError, match="mode"):
        anatomical_similarity(torch.ones(2, 3, 3), mode="regional")
    with pytest.raises(DataError, match="NaN"):
        anatomical_similarity(torch.full((2, 3, 3), float("nan")))
    with pytest.raises(DataError, match="another atlas"):
        anatomical_similarity(torch.ones(2, 3, 3), normalise="zscore", stats={"mean": np.zeros((4, 3)), "std": np.ones((4, 3))})
