"""Blocks used in the 1x1-convolution analyses: GoogLeNet's inception module, ResNet's blocks."""

from __future__ import annotations

import torch
from torch import nn

from ninlab.models.layers import conv1x1, conv2d, conv3x3


def _conv_relu(c_in: int, c_out: int, k: int, bias: bool) -> nn.Sequential:
    return nn.Sequential(conv2d(c_in, c_out, k, padding=k // 2, bias=bias), nn.ReLU())


class Inception(nn.Module):
    """Inception module (Szegedy et al. 2014): 1x1, 3x3, 5x5 and pool branches, concatenated.

    With `reduce=True` a 1x1 conv lowers the channels before the 3x3 and 5x5 convs; with
    `pool_proj` a 1x1 conv projects the max-pooled branch (else it passes its in_channels through).
    GoogLeNet 3a: Inception(192, 64, 96, 128, 16, 32, pool_proj=32).
    """

    def __init__(
        self,
        in_channels: int,
        ch1x1: int,
        ch3x3red: int,
        ch3x3: int,
        ch5x5red: int,
        ch5x5: int,
        pool_proj: int | None = None,
        reduce: bool = True,
        bias: bool = False,
    ):
        super().__init__()
        self.branch1 = _conv_relu(in_channels, ch1x1, 1, bias)
        if reduce:
            self.branch2 = nn.Sequential(
                _conv_relu(in_channels, ch3x3red, 1, bias), _conv_relu(ch3x3red, ch3x3, 3, bias)
            )
            self.branch3 = nn.Sequential(
                _conv_relu(in_channels, ch5x5red, 1, bias), _conv_relu(ch5x5red, ch5x5, 5, bias)
            )
        else:
            self.branch2 = _conv_relu(in_channels, ch3x3, 3, bias)
            self.branch3 = _conv_relu(in_channels, ch5x5, 5, bias)
        pool = nn.MaxPool2d(3, stride=1, padding=1)
        if pool_proj:
            self.branch4 = nn.Sequential(pool, _conv_relu(in_channels, pool_proj, 1, bias))
        else:
            self.branch4 = nn.Sequential(pool)
        self.out_channels = ch1x1 + ch3x3 + ch5x5 + (pool_proj or in_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # N x (ch1x1 + ch3x3 + ch5x5 + pool channels) x H x W
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)


class BasicBlock(nn.Module):
    """ResNet basic block (He et al. 2015): two 3x3 convs with batch norm and an identity path."""

    expansion = 1

    def __init__(self, in_channels: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = conv3x3(in_channels, planes, stride, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU()
        self.conv2 = conv3x3(planes, planes, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = _shortcut(in_channels, planes, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.downsample(x))


class Bottleneck(nn.Module):
    """ResNet bottleneck: 1x1 conv down to `planes`, 3x3 conv, 1x1 conv up to 4 x planes."""

    expansion = 4

    def __init__(self, in_channels: int, planes: int, stride: int = 1):
        super().__init__()
        out = planes * self.expansion
        self.conv1 = conv1x1(in_channels, planes, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, stride, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = conv1x1(planes, out, bias=False)
        self.bn3 = nn.BatchNorm2d(out)
        self.relu = nn.ReLU()
        self.downsample = _shortcut(in_channels, out, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + self.downsample(x))


def _shortcut(in_channels: int, out_channels: int, stride: int) -> nn.Module:
    if stride == 1 and in_channels == out_channels:
        return nn.Identity()
    return nn.Sequential(
        conv1x1(in_channels, out_channels, stride, bias=False), nn.BatchNorm2d(out_channels)
    )
