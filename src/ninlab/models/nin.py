"""Network-in-Network (Lin, Chen, Yan 2013, arXiv:1312.4400): mlpconv blocks and a GAP head.

The last mlpconv block outputs one map per class; global average pooling turns each map into a
logit, so the network has no fully-connected layer and accepts any input size at or above its
minimum.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from ninlab.models._registry import register_model
from ninlab.models.base import Classifier
from ninlab.models.layers import GlobalAvgPool, NiNBlock
from ninlab.models.whitening import PatchWhitening


class NiN(Classifier):
    """features: mlpconv blocks with pooling/dropout between; head: [dropout,] class block, GAP."""

    def __init__(
        self,
        features: OrderedDict[str, nn.Module],
        class_block: NiNBlock,
        input_size: tuple[int, int, int],
        head_dropout: float = 0.0,
    ):
        super().__init__()
        self.features = nn.Sequential(features)
        head: OrderedDict[str, nn.Module] = OrderedDict()
        if head_dropout:
            head["drop"] = nn.Dropout(head_dropout)
        head["block"] = class_block
        # head.maps: [dropout,] class block -> N x classes x h x w; head.gap: -> N x classes
        self.head = nn.Sequential(OrderedDict(maps=nn.Sequential(head), gap=GlobalAvgPool()))
        self.default_input_size = input_size
        blocks = [f"features.{n}" for n, m in features.items() if isinstance(m, NiNBlock)]
        self.stage_names = (*blocks, "head.maps.block")

    @property
    def class_head(self) -> nn.Sequential:
        """[dropout,] the class block: features -> per-class maps."""
        return self.head.maps

    @property
    def gap(self) -> GlobalAvgPool:
        return self.head.gap

    def class_maps(self, x: torch.Tensor) -> torch.Tensor:
        """The last block's per-class spatial maps before pooling: (N, num_classes, h, w)."""
        return self.class_head(self.forward_features(x))

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        return self.gap(self.class_head(x))


def _pool() -> nn.MaxPool2d:
    return nn.MaxPool2d(3, stride=2)


def _alexnet_nin(num_classes: int, in_chans: int, n_1x1: int) -> NiN:
    """The AlexNet-sized NiN of Dive into Deep Learning (ch. 8.3) with n_1x1 1x1 convs per block."""

    def block(c_in, c_out, k, s, p):
        return NiNBlock(c_in, [c_out] * (1 + n_1x1), k, s, p)

    features = OrderedDict(
        block1=block(in_chans, 96, 11, 4, 0),  # N x 96 x 54 x 54 at 224 px
        pool1=_pool(),  # N x 96 x 26 x 26
        block2=block(96, 256, 5, 1, 2),  # N x 256 x 26 x 26
        pool2=_pool(),  # N x 256 x 12 x 12
        block3=block(256, 384, 3, 1, 1),  # N x 384 x 12 x 12
        pool3=_pool(),  # N x 384 x 5 x 5
    )
    return NiN(features, block(384, num_classes, 3, 1, 1), (in_chans, 224, 224), head_dropout=0.5)


@register_model
def nin_seed(num_classes: int = 10, in_chans: int = 1) -> NiN:
    """Classic AlexNet-sized NiN, one 1x1 conv per block, 224 px (the 85.74% recipe)."""
    return _alexnet_nin(num_classes, in_chans, n_1x1=1)


@register_model
def nin_d2l(num_classes: int = 10, in_chans: int = 1) -> NiN:
    """AlexNet-sized NiN with two 1x1 convs per block, 224 px (Dive into Deep Learning)."""
    return _alexnet_nin(num_classes, in_chans, n_1x1=2)


@register_model
def nin_cifar(num_classes: int = 10, in_chans: int = 3) -> NiN:
    """The paper's CIFAR-10 NiN: three mlpconv blocks of 192 channels, 32 px."""
    # Pooling as in the authors' Caffe model: max then average, 3x3 stride 2, ceil mode.
    features = OrderedDict(
        block1=NiNBlock(in_chans, (192, 160, 96), 5, padding=2),  # N x 96 x 32 x 32
        pool1=nn.MaxPool2d(3, 2, ceil_mode=True),  # N x 96 x 16 x 16
        drop1=nn.Dropout(0.5),
        block2=NiNBlock(96, (192, 192, 192), 5, padding=2),  # N x 192 x 16 x 16
        pool2=nn.AvgPool2d(3, 2, ceil_mode=True),  # N x 192 x 8 x 8
        drop2=nn.Dropout(0.5),
    )
    class_block = NiNBlock(192, (192, 192, num_classes), 3, padding=1)  # N x classes x 8 x 8
    return NiN(features, class_block, (in_chans, 32, 32))


@register_model
def nin_fast(
    num_classes: int = 10,
    in_chans: int = 1,
    input_size: int = 28,
    batch_norm: bool = True,
    width: float = 1.0,
    n_1x1: int = 1,
) -> NiN:
    """Fast NiN with batch norm at native 28-32 px resolution (the default model).

    A 5x5 conv stem, three mlpconv blocks (the last ending in the class conv) and a GAP head.
    Full and half resolution is where CPU time goes, so the stem has 16 channels and no 1x1 conv,
    and the block at 14x14 has 48. The class conv has batch norm but no ReLU after it, so each
    class map's mean is exactly the logit.
    `batch_norm=False` drops every batch norm (convs get biases): the recipe ablation's model.
    `width` multiplies every hidden layer's channels (nin_wide is width 1.5).
    `n_1x1` is the number of 1x1 convs after the k x k conv of each block but the stem (the last
    of the class block's is the class conv; nin_fast2 has 2).
    """
    c1, c2, c3, c4 = (round(c * width) for c in (16, 48, 128, 256))
    bn = batch_norm
    features = OrderedDict(
        block1=NiNBlock(in_chans, (c1,), 5, padding=2, batch_norm=bn),  # N x c1 x 28 x 28 (16)
        pool1=nn.MaxPool2d(2, ceil_mode=True),  # N x c1 x 14 x 14
        block2=NiNBlock(c1, (c2,) * (1 + n_1x1), 3, padding=1, batch_norm=bn),  # N x c2 x 14 x 14
        pool2=nn.MaxPool2d(2, ceil_mode=True),  # N x c2 x 7 x 7
        block3=NiNBlock(c2, (c3,) * (1 + n_1x1), 3, padding=1, batch_norm=bn),  # N x c3 x 7 x 7
        pool3=nn.MaxPool2d(2, ceil_mode=True),  # N x c3 x 4 x 4
    )
    # N x num_classes x 4 x 4: 3x3 conv to c4 (256), [1x1 convs at c4,] the 1x1 class conv (linear)
    channels = (c4,) * n_1x1 + (num_classes,)
    class_block = NiNBlock(c3, channels, 3, padding=1, batch_norm=bn, final_relu=False)
    return NiN(features, class_block, (in_chans, input_size, input_size))


@register_model
def nin_wide(num_classes: int = 10, in_chans: int = 1, input_size: int = 28) -> NiN:
    """nin_fast with 1.5 times the channels in every hidden layer (the long recipe's model)."""
    return nin_fast(num_classes, in_chans, input_size, width=1.5)


@register_model
def nin_fast2(num_classes: int = 10, in_chans: int = 1, input_size: int = 28) -> NiN:
    """nin_fast with two 1x1 convs per block, as nin_d2l (claim 22's twin)."""
    return nin_fast(num_classes, in_chans, input_size, n_1x1=2)


@register_model
def nin_whiten(
    num_classes: int = 10, in_chans: int = 1, input_size: int = 28, class_kernel: int = 1
) -> NiN:
    """NiN with a frozen 2x2 patch-whitening stem and a 1x1 class block, 28 px (the whiten recipe).

    nin_fast's 5x5 stem and first pooling (a fifth of its FLOPs, at full resolution) become a
    PatchWhitening conv fitted to the training images before the first step (8 channels for
    grey images: 4 whitened directions of a 2x2 patch and their negatives) and a ReLU, as in
    airbench; the class block's 3x3 conv (45% of nin_fast's FLOPs) becomes a 1x1 conv.
    `class_kernel=3` puts nin_fast's 3x3 conv back (the recipe ablation's class-3x3).
    """
    stem = PatchWhitening(in_chans, 2)
    features = OrderedDict(
        block1=nn.Sequential(OrderedDict(conv=stem, relu=nn.ReLU())),  # N x 8 x 14 x 14 (grey)
        block2=NiNBlock(stem.out_channels, (48, 48), 3, padding=1, batch_norm=True),  # 48 x 14 x 14
        pool2=nn.MaxPool2d(2, ceil_mode=True),  # N x 48 x 7 x 7
        block3=NiNBlock(48, (128, 128), 3, padding=1, batch_norm=True),  # N x 128 x 7 x 7
        pool3=nn.MaxPool2d(2, ceil_mode=True),  # N x 128 x 4 x 4
    )
    # N x num_classes x 4 x 4: 1x1 (or class_kernel) conv to 256, the 1x1 class conv (linear)
    class_block = NiNBlock(128, (256, num_classes), class_kernel, padding=class_kernel // 2,
                           batch_norm=True, final_relu=False)  # fmt: skip
    return NiN(features, class_block, (in_chans, input_size, input_size))
