"""The positive control (gmv-regression) and the kernel weighting of the ablation, against direct formulas."""

import csv

import numpy as np
import pytest
import torch

from anatlearn.losses.anatomy import anatomical_similarity
from anatlearn.errors import ConfigError
from anatlearn.losses.kernels import age_kernel
from anatlearn.losses import anatomical_weights, build_loss, matched_anat_bandwidth
from anatlearn.pretrain.config import TrainConfig


def test_descriptor_regression_loss_is_the_mean_squared_error():
    g = torch.Generator().manual_seed(0)
    out = torch.randn(5, 2, 68, generator=g)
    desc = torch.randn(5, 68, 1, generator=g)
    loss = build_loss("gmv-regression")(out, None, desc)["loss"]
    brute = sum(float((out[n, 0, r] - desc[n, r, 0]) ** 2) for n in range(5) for r in range(68)) / (5 * 68)
    assert float(loss) == pytest.approx(brute, rel=1e-6)


def test_gmv_regression_trains_and_embeds(tiny_cohort, tmp_path):
    from anatlearn.embed import AnatEncoder
    from anatlearn.models import load_checkpoint
    from anatlearn.pretrain import pretrain

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        run = pretrain(TrainConfig(data=str(tiny_cohort), out=str(tmp_path / "ctrl"), method="gmv-regression",
                                   width=0.125, batch_size=8, epochs=3, lr=1e-3, num_workers=0, progress=False))
    finally:
        torch.set_num_threads(threads)
    state = load_checkpoint(run / "checkpoints" / "last.pt")
    assert state["model"]["head.weight"].shape == (68, 64)  # one output per Desikan region's GMV
    assert state["model_config"]["head"] == {"kind": "regression", "out_features": 68}
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    first = np.mean([float(r["loss"]) for r in rows if r["epoch"] == "1"])  # epochs are numbered from 1
    last = np.mean([float(r["loss"]) for r in rows if r["epoch"] == "3"])
    assert last < first  # the mean squared error of z-scored GMVs falls with training
    feats = AnatEncoder(run / "checkpoints" / "last.pt").transform(tiny_cohort)
    assert feats.shape == (48, 64) and np.isfinite(feats.to_numpy()).all()


def test_bandwidth_rule_matches_the_age_kernel_mean_weight():
    rng = np.random.default_rng(3)
    desc = rng.normal(size=(40, 68, 3)) + rng.normal(size=(40, 1, 3))  # a shared factor: cosines spread out
    ages = rng.uniform(10, 80, size=40)
    h = matched_anat_bandwidth(desc, ages, "global", "rbf", 2.0)
    a = anatomical_similarity(torch.tensor(desc), "global", None, None, None).numpy()
    off = ~np.eye(40, dtype=bool)
    brute = np.mean(np.exp(-(1 - a[off]) / h))
    dy = ages[:, None] - ages[None, :]
    target = np.mean(np.exp(-dy[off] ** 2 / (2 * 2.0**2)))
    assert brute == pytest.approx(target, rel=1e-4)
    assert target == pytest.approx(float(age_kernel(torch.tensor(ages))[torch.tensor(off)].mean()))


def test_kernel_weights_are_an_exponential_of_the_cosine_distance():
    x = torch.randn(6, 10, 3, dtype=torch.float64)
    w = anatomical_weights(x, "local", None, None, "kernel", 0.25)
    a = anatomical_similarity(x, "local", None, None, None)
    assert torch.allclose(w, torch.exp(-(1 - a) / 0.25))
    assert torch.allclose(torch.diagonal(w), torch.ones(6, dtype=torch.float64))
    with pytest.raises(ConfigError, match="positive bandwidth"):
        anatomical_weights(x, "local", None, None, "kernel", None)


def test_config_rejects_unknown_weight_map():
    with pytest.raises(ConfigError, match="unknown weight_map 'gauss'"):
        TrainConfig(data="d", out="o", weight_map="gauss").validate()
    with pytest.raises(ConfigError, match="anat_bandwidth"):
        TrainConfig(data="d", out="o", anat_bandwidth=-1.0).validate()
