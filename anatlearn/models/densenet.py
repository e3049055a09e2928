"""DenseNet-121 in 3D (Huang et al., 2017): growth rate 32, blocks 6-12-24-16, bottleneck size 4,
compression 0.5, stem Conv3d(k7, s2) - BN - ReLU - MaxPool(k3, s2); final BN - ReLU - global average
pooling to a 1024-d representation at width 1. ``width`` scales the growth rate and stem channels."""

from __future__ import annotations

import torch
from torch import nn

from anatlearn.models.resnet import scaled


class DenseLayer(nn.Module):
    """BN-ReLU-Conv1x1 (4k channels) - BN-ReLU-Conv3x3 (k channels); output concatenated to the input."""

    def __init__(self, in_ch: int, growth: int, bn_size: int = 4):
        super().__init__()
        self.norm1 = nn.BatchNorm3d(in_ch)
        self.conv1 = nn.Conv3d(in_ch, bn_size * growth, 1, bias=False)
        self.norm2 = nn.BatchNorm3d(bn_size * growth)
        self.conv2 = nn.Conv3d(bn_size * growth, growth, 3, padding=1, bias=False)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        out = self.conv1(self.relu(self.norm1(x)))
        out = self.conv2(self.relu(self.norm2(out)))
        return torch.cat([x, out], dim=1)


class Transition(nn.Sequential):
    """BN-ReLU-Conv1x1 (halve channels) - AvgPool(2): between dense blocks."""

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__(nn.BatchNorm3d(in_ch), nn.ReLU(inplace=True), nn.Conv3d(in_ch, out_ch, 1, bias=False),
                         nn.AvgPool3d(2, stride=2, ceil_mode=True))


class DenseNet3D(nn.Module):
    """3D DenseNet encoder mapping (B, C, X, Y, Z) to (B, out_features)."""

    def __init__(self, blocks=(6, 12, 24, 16), growth: int = 32, init_features: int = 64,
                 in_channels: int = 1, width: float = 1.0):
        super().__init__()
        growth, ch = scaled(growth, width), scaled(init_features, width)
        layers: list[nn.Module] = [nn.Conv3d(in_channels, ch, 7, stride=2, padding=3, bias=False),
                                   nn.BatchNorm3d(ch), nn.ReLU(inplace=True), nn.MaxPool3d(3, stride=2, padding=1)]
        for i, n in enumerate(blocks):
            for _ in range(n):
                layers.append(DenseLayer(ch, growth))
                ch += growth
            if i < len(blocks) - 1:
                layers.append(Transition(ch, ch // 2))
                ch //= 2
        layers += [nn.BatchNorm3d(ch), nn.ReLU(inplace=True)]
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool3d(1)
        self.out_features = ch
        for m in self.modules():
            if isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight)

    def forward(self, x):
        return self.avgpool(self.features(x)).flatten(1)


def densenet121(in_channels: int = 1, width: float = 1.0) -> DenseNet3D:
    return DenseNet3D((6, 12, 24, 16), 32, 64, in_channels, width)
