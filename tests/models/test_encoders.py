import pytest
import torch

from anatlearn.errors import ConfigError
from anatlearn.models import ENCODERS, ProjectionHead, build_encoder, build_model, default_model_config

FULL_WIDTH_FEATURES = {"resnet18": 512, "resnet34": 512, "resnet50": 2048, "densenet121": 1024, "alexnet3d": 128}


@pytest.mark.parametrize("name", list(ENCODERS))
@pytest.mark.parametrize("shape", [(32, 32, 32), (33, 41, 33)])
def test_encoder_shapes_at_small_width(name, shape):
    torch.manual_seed(0)
    enc = build_encoder(name, width=0.125)
    out = enc(torch.randn(2, 1, *shape))
    assert out.shape == (2, enc.out_features)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", list(ENCODERS))
def test_full_width_feature_sizes(name):
    assert build_encoder(name).out_features == FULL_WIDTH_FEATURES[name]


def test_resnet18_parameter_count_and_names():
    enc = build_encoder("resnet18")
    # 33,160,000 = the released AnatCL encoder (counted from its layer shapes)
    assert sum(p.numel() for p in enc.parameters()) == 33_160_000
    keys = set(enc.state_dict())
    assert {"conv1.weight", "bn1.running_mean", "layer1.0.conv1.weight", "layer2.0.downsample.0.weight",
            "layer4.1.bn2.weight"} <= keys
    assert enc.conv1.kernel_size == (7, 7, 7) and enc.conv1.stride == (2, 2, 2) and enc.conv1.bias is None


def test_width_scales_channels_and_in_channels():
    enc = build_encoder("resnet18", width=0.25, in_channels=2)
    assert enc.conv1.in_channels == 2 and enc.conv1.out_channels == 16 and enc.out_features == 128


def test_projection_head_keys_and_model_outputs():
    model = build_model(default_model_config("resnet18", width=0.125))
    assert isinstance(model.head, ProjectionHead)
    assert {"head.0.weight", "head.2.bias"} <= set(model.state_dict())
    x = torch.randn(3, 1, 32, 32, 32)
    model.eval()
    z = model.project(x)
    assert z.shape == (3, 128)
    torch.testing.assert_close(z.norm(dim=1), torch.ones(3))
    assert model.encode(x).shape == (3, 64)


def test_regression_model_and_head_errors():
    model = build_model(default_model_config("resnet18", width=0.125, head="regression")).eval()
    assert model(torch.randn(2, 1, 32, 32, 32)).shape == (2,)
    with pytest.raises(TypeError, match="no projection head"):
        model.project(torch.randn(2, 1, 32, 32, 32))


def test_bad_options():
    with pytest.raises(ConfigError, match="unknown encoder 'vgg'.*resnet18"):
        build_encoder("vgg")
    with pytest.raises(ConfigError, match="width"):
        build_encoder("resnet18", width=0)
    with pytest.raises(ConfigError, match="unknown head"):
        default_model_config(head="mlp3")
