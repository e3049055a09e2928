"""AlexNet-style 3D encoder (after the AlexNet-3D baselines of Dufumier et al., 2021): five convolutions
(64-128-192-192-128 channels at width 1) with BN-ReLU, max pooling after the first two, and global
average pooling to a 128-d representation. Global pooling (instead of a fixed flatten) makes it work at
any input size >= 32^3."""

from __future__ import annotations

from torch import nn

from anatlearn.models.resnet import scaled


class AlexNet3D(nn.Module):
    def __init__(self, in_channels: int = 1, width: float = 1.0):
        super().__init__()
        c = [scaled(x, width) for x in (64, 128, 192, 192, 128)]

        def block(i, o, k, s=1, p=1):
            return [nn.Conv3d(i, o, k, stride=s, padding=p, bias=False), nn.BatchNorm3d(o), nn.ReLU(inplace=True)]

        self.features = nn.Sequential(
            *block(in_channels, c[0], 5, 2, 2), nn.MaxPool3d(3, 2, 1),
            *block(c[0], c[1], 3), nn.MaxPool3d(3, 2, 1),
            *block(c[1], c[2], 3), *block(c[2], c[3], 3), *block(c[3], c[4], 3))
        self.avgpool = nn.AdaptiveAvgPool3d(1)
        self.out_features = c[4]

    def forward(self, x):
        return self.avgpool(self.features(x)).flatten(1)


def alexnet3d(in_channels: int = 1, width: float = 1.0) -> AlexNet3D:
    return AlexNet3D(in_channels, width)
