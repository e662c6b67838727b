"""Building blocks: 1x1 and 3x3 convolutions, the mlpconv (NiN) block, global average pooling,
and the facts about layers that analysis and conversion share."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

# Modules that act on each number alone (Dropout as in eval mode): they keep the shape, see one
# input value per output value, and do no multiply-adds.
ELEMENTWISE = (
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.PReLU,
    nn.ELU,
    nn.GELU,
    nn.SiLU,
    nn.Sigmoid,
    nn.Tanh,
    nn.Hardswish,
    nn.Hardsigmoid,
    nn.Mish,
    nn.Dropout,
    nn.Dropout2d,
    nn.Identity,
)


def pair(v) -> tuple:
    """A layer's size argument per axis: 3 -> (3, 3), (3, 5) -> (3, 5), None -> (None, None)."""
    return tuple(v) if isinstance(v, tuple | list) else (v, v)


class Conv1x1(nn.Conv2d):
    """nn.Conv2d(in, out, 1): the same parameters, state dict and results, computed as a Linear.

    A 1x1 convolution is a Linear over the channels, applied at every pixel with shared weights.
    A channels-last (N, C, H, W) tensor already holds the (N*H*W) x C matrix of pixels in memory,
    so on the CPU a plain 1x1 conv (stride 1, no padding, one group) of such an input runs as one
    F.linear over the last axis of its (N, H, W, C) view, and the output is channels-last again.
    oneDNN's matrix product is faster than its 1x1 convolution on the 7 x 7 and 4 x 4 maps of the
    NiN models (forward and backward 1.4-1.6x in bf16 on a CPU with AMX, 1.0-1.5x in fp32), a
    little slower on nin_whiten's 14 x 14 x 48 map in bf16 (0.9x); nin_whiten's whole training
    step runs 1.06x faster, nin_fast's 1.03x (`python bench/conv1x1.py`). Other inputs (NCHW,
    CUDA: unmeasured) and strided 1x1 convs take Conv2d's forward."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        plain = self.stride == (1, 1) and self.padding == (0, 0) and self.groups == 1
        cl = x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last)
        if plain and cl and x.device.type == "cpu":
            # N x H x W x C (a view) -> N x H x W x out -> N x out x H x W, channels-last
            y = F.linear(x.permute(0, 2, 3, 1), self.weight.flatten(1), self.bias)
            return y.permute(0, 3, 1, 2)
        return super().forward(x)


def conv1x1(in_channels: int, out_channels: int, stride: int = 1, bias: bool = True) -> Conv1x1:
    """1x1 convolution: a Linear over channels applied at every pixel with shared weights."""
    return Conv1x1(in_channels, out_channels, kernel_size=1, stride=stride, bias=bias)


def conv2d(c_in: int, c_out: int, k: int, stride: int = 1, padding: int = 0, bias: bool = True):
    """k x k convolution: nn.Conv2d, or a Conv1x1 when k is 1 (how ninlab's blocks build theirs)."""
    cls = Conv1x1 if k == 1 else nn.Conv2d
    return cls(c_in, c_out, k, stride=stride, padding=padding, bias=bias)


def conv3x3(in_channels: int, out_channels: int, stride: int = 1, bias: bool = True) -> nn.Conv2d:
    """3x3 convolution with padding 1 (keeps height and width at stride 1)."""
    return nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=bias)


class NiNBlock(nn.Sequential):
    """mlpconv block (Lin et al. 2013): a k x k conv then 1x1 convs, each followed by ReLU.

    `channels` gives the output channels of the k x k conv and of each 1x1 conv in order, e.g.
    (96, 96) is one 1x1 conv after the k x k conv, (192, 160, 96) two. With `batch_norm` a
    BatchNorm2d sits between each conv and its ReLU (and the convs lose their now-redundant bias).
    `final_relu=False` leaves the last 1x1 conv linear, so a class map's mean is exactly its logit.
    """

    def __init__(
        self,
        in_channels: int,
        channels: Sequence[int],
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        batch_norm: bool = False,
        final_relu: bool = True,
    ):
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        c_in = in_channels
        for i, c_out in enumerate(channels):
            suffix = "" if i == 0 else str(i)
            if i == 0:
                layers["conv"] = conv2d(c_in, c_out, kernel_size, stride, padding, not batch_norm)
            else:
                layers[f"cccp{suffix}"] = conv1x1(c_in, c_out, bias=not batch_norm)
            if batch_norm:
                layers[f"bn{suffix}"] = nn.BatchNorm2d(c_out)
            if final_relu or i < len(channels) - 1:
                layers[f"relu{suffix}"] = nn.ReLU()
            c_in = c_out
        super().__init__(layers)
        self.out_channels = c_in


class GlobalAvgPool(nn.Module):
    """Mean over height and width: (N, C, H, W) -> (N, C)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3))
