"""descriptor-regression and anatcl-regression (issue 28) against hand-computed references."""

import pytest
import torch

from anatlearn.errors import ConfigError, DataError
from anatlearn.losses import AnatCLLoss, AnatCLRegressionLoss, DescriptorRegressionLoss, build_loss, method_spec
from anatlearn.models import build_model, default_model_config

# two subjects, K = 2 regions x D = 1 descriptor (already z-scored), ages 30 and 50 standardised by (40, 10)
DESCRIPTORS = torch.tensor([[[1.0], [-1.0]], [[0.5], [2.0]]])
AGES = torch.tensor([30.0, 50.0])  # targets -1 and +1


def test_descriptor_regression_by_hand():
    # first view predicts [0, 0, 0] and [0.5, 1, 3]; targets [1, -1, -1] and [0.5, 2, 1]
    outputs = torch.tensor([[[0.0, 0.0, 0.0], [9.0, 9.0, 9.0]], [[0.5, 1.0, 3.0], [9.0, 9.0, 9.0]]])
    loss = build_loss("descriptor-regression", age_mean=40.0, age_std=10.0)(outputs, AGES, DESCRIPTORS)["loss"]
    # squared errors 1 + 1 + 1 and 0 + 1 + 4, over B * T = 2 * 3 values
    assert loss.item() == pytest.approx(8.0 / 6.0)
    # the positive control is the same without the age target
    gmv = DescriptorRegressionLoss()(outputs[..., :2], None, DESCRIPTORS)["loss"]
    assert gmv.item() == pytest.approx((1 + 1 + 0 + 1) / 4)


def test_descriptor_regression_needs_its_targets():
    loss = DescriptorRegressionLoss(regress_age=True)
    with pytest.raises(DataError, match="ages"):
        loss(torch.zeros(2, 1, 3), None, DESCRIPTORS)
    with pytest.raises(DataError, match="differ in shape"):
        loss(torch.zeros(2, 1, 2), AGES, DESCRIPTORS)  # no output for the age


def test_anatcl_regression_is_anatcl_global_plus_lambda_times_the_regression():
    g = torch.Generator().manual_seed(0)
    proj = torch.nn.functional.normalize(torch.randn(2, 2, 4, generator=g), dim=-1)
    reg = torch.tensor([[[0.0, 0.0, 0.0]] * 2, [[0.5, 1.0, 3.0]] * 2])
    contrastive = AnatCLLoss(mode="global", normalise=None)
    regression = DescriptorRegressionLoss(regress_age=True, age_mean=40.0, age_std=10.0)
    loss = AnatCLRegressionLoss(contrastive, regression, lambda_reg=0.3, projection_dim=4)
    terms = loss(torch.cat([proj, reg], dim=-1), AGES, DESCRIPTORS)
    anatcl = contrastive(proj, AGES, DESCRIPTORS)
    assert terms["regression"].item() == pytest.approx(8.0 / 6.0)
    assert terms["contrastive"].item() == pytest.approx(anatcl["loss"].item())
    assert terms["age"].item() == pytest.approx(anatcl["age"].item())
    assert terms["loss"].item() == pytest.approx(anatcl["loss"].item() + 0.3 * 8.0 / 6.0)
    # lambda_reg = 0 is AnatCL global itself
    zero = AnatCLRegressionLoss(contrastive, regression, lambda_reg=0.0, projection_dim=4)
    assert zero(torch.cat([proj, reg], dim=-1), AGES, DESCRIPTORS)["loss"].item() == pytest.approx(anatcl["loss"].item())
    with pytest.raises(ConfigError, match="lambda_reg"):
        AnatCLRegressionLoss(contrastive, regression, lambda_reg=-1.0)


def test_anatcl_regression_from_the_registry_weighs_by_lambda_reg():
    g = torch.Generator().manual_seed(1)
    ages, desc = torch.rand(6, generator=g) * 60 + 20, torch.randn(6, 5, 3, generator=g)
    proj = torch.nn.functional.normalize(torch.randn(6, 2, 128, generator=g), dim=-1)
    reg = torch.randn(6, 2, 16, generator=g)
    outputs = torch.cat([proj, reg], dim=-1)
    one = build_loss("anatcl-regression", lambda_reg=1.0, normalise=None, age_mean=50, age_std=15)(outputs, ages, desc)
    three = build_loss("anatcl-regression", lambda_reg=3.0, normalise=None, age_mean=50, age_std=15)(outputs, ages, desc)
    anatcl = build_loss("anatcl-global", normalise=None)(proj, ages, desc)["loss"]
    assert one["contrastive"].item() == pytest.approx(anatcl.item())
    assert (three["loss"] - one["loss"]).item() == pytest.approx(2.0 * one["regression"].item(), rel=1e-5)
    # regression term by brute force: 15 descriptor values then the standardised age
    targets = torch.cat([desc.reshape(6, -1), ((ages - 50) / 15)[:, None]], dim=1)
    assert one["regression"].item() == pytest.approx(((reg[:, 0] - targets) ** 2).mean().item(), rel=1e-6)


def test_the_two_heads_share_only_the_encoder():
    spec = method_spec("anatcl-regression")
    assert spec.contrastive and spec.needs_ages and spec.needs_descriptors
    assert spec.head_outputs(DESCRIPTORS) == 3 and method_spec("descriptor-regression").head_outputs(DESCRIPTORS) == 3
    model = build_model(default_model_config("resnet18", 0.125, 1, spec.head, regression_outputs=3))
    x = torch.randn(2, 1, 32, 32, 32, generator=torch.Generator().manual_seed(0))
    out = model(x)
    assert out.shape == (2, 128 + 3)
    assert torch.allclose(out[:, :128].norm(dim=1), torch.ones(2), atol=1e-5)
    assert torch.allclose(out[:, :128], model.project(x), atol=1e-6)
    # the regression term's gradient reaches the encoder and the regression head, never the projection head
    ((out[:, 128:] - 1.0) ** 2).mean().backward()
    assert all(p.grad is None or not p.grad.any() for p in model.head.projection.parameters())
    assert model.head.regression.weight.grad.abs().sum() > 0
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.encoder.parameters())
