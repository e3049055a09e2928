"""3D ResNets (He et al., 2016, in 3D as used by y-Aware / AnatCL).

ResNet-18: stem Conv3d(C, 64, k7, s2, p3, no bias) - BN - ReLU - MaxPool3d(k3, s2, p1); four stages of
BasicBlocks (2-2-2-2) with 64-128-256-512 channels and strides 1-2-2-2; a 1x1x1 conv + BN shortcut when the
shape changes; global average pooling to a 512-d representation (33.16 M parameters at width 1).
Module names follow torchvision (conv1, bn1, layer1.0.conv1, layer1.0.downsample.0, ...) so the released
AnatCL checkpoints load without a key map. ``width`` multiplies every channel count.
"""

from __future__ import annotations

from torch import nn


def scaled(channels: int, width: float) -> int:
    """Channel count at a width multiplier (at least 1)."""
    return max(1, int(round(channels * width)))


class BasicBlock(nn.Module):
    """Two 3x3x3 convolutions with a residual connection; out = relu(bn2(conv2(relu(bn1(conv1 x)))) + x)."""

    expansion = 1

    def __init__(self, in_ch: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = nn.Conv3d(in_ch, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm3d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv3d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm3d(planes)
        self.downsample = downsample

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1x1x1 reduce, 3x3x3 (strided), 1x1x1 expand (x4), with a residual connection."""

    expansion = 4

    def __init__(self, in_ch: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = nn.Conv3d(in_ch, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm3d(planes)
        self.conv2 = nn.Conv3d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm3d(planes)
        self.conv3 = nn.Conv3d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm3d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNet3D(nn.Module):
    """A 3D ResNet encoder mapping (B, C, X, Y, Z) to (B, out_features)."""

    def __init__(self, block: type[nn.Module], layers: tuple[int, ...], in_channels: int = 1, width: float = 1.0):
        super().__init__()
        stem = scaled(64, width)
        self.conv1 = nn.Conv3d(in_channels, stem, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm3d(stem)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool3d(3, stride=2, padding=1)
        self._in = stem
        self.layer1 = self._stage(block, scaled(64, width), layers[0], 1)
        self.layer2 = self._stage(block, scaled(128, width), layers[1], 2)
        self.layer3 = self._stage(block, scaled(256, width), layers[2], 2)
        self.layer4 = self._stage(block, scaled(512, width), layers[3], 2)
        self.avgpool = nn.AdaptiveAvgPool3d(1)
        self.out_features = self._in
        for m in self.modules():
            if isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm3d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def _stage(self, block, planes: int, blocks: int, stride: int) -> nn.Sequential:
        downsample = None
        if stride != 1 or self._in != planes * block.expansion:
            downsample = nn.Sequential(nn.Conv3d(self._in, planes * block.expansion, 1, stride=stride, bias=False),
                                       nn.BatchNorm3d(planes * block.expansion))
        layers = [block(self._in, planes, stride, downsample)]
        self._in = planes * block.expansion
        layers += [block(self._in, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.avgpool(x).flatten(1)


def resnet18(in_channels: int = 1, width: float = 1.0) -> ResNet3D:
    return ResNet3D(BasicBlock, (2, 2, 2, 2), in_channels, width)


def resnet34(in_channels: int = 1, width: float = 1.0) -> ResNet3D:
    return ResNet3D(BasicBlock, (3, 4, 6, 3), in_channels, width)


def resnet50(in_channels: int = 1, width: float = 1.0) -> ResNet3D:
    return ResNet3D(Bottleneck, (3, 4, 6, 3), in_channels, width)
