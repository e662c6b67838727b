"""Baselines whose conv stack ends in Flatten + Linear layers (the heads NiN replaces)."""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from ninlab.models._registry import register_model
from ninlab.models.base import Classifier
from ninlab.models.layers import GlobalAvgPool, conv3x3
from ninlab.models.nin import nin_fast


class FCNet(Classifier):
    """features (conv stack) -> head (Flatten, Linear, ...)."""

    def __init__(self, features, head, input_size, stage_names):
        super().__init__()
        self.features = nn.Sequential(features)
        self.head = nn.Sequential(head)
        self.default_input_size = input_size
        self.stage_names = stage_names


@register_model
def lenet_fc(num_classes: int = 10, in_chans: int = 1) -> FCNet:
    """LeNet-5-style net (ReLU, max pool) with a 400-120-84 FC head, 28 px."""
    features = OrderedDict(
        conv1=nn.Conv2d(in_chans, 6, 5, padding=2),  # N x 6 x 28 x 28
        relu1=nn.ReLU(),
        pool1=nn.MaxPool2d(2),  # N x 6 x 14 x 14
        conv2=nn.Conv2d(6, 16, 5),  # N x 16 x 10 x 10
        relu2=nn.ReLU(),
        pool2=nn.MaxPool2d(2),  # N x 16 x 5 x 5
    )
    head = OrderedDict(
        flatten=nn.Flatten(),  # N x 400
        fc1=nn.Linear(16 * 5 * 5, 120),
        relu1=nn.ReLU(),
        fc2=nn.Linear(120, 84),
        relu2=nn.ReLU(),
        fc3=nn.Linear(84, num_classes),
    )
    return FCNet(features, head, (in_chans, 28, 28), ("features.relu1", "features.relu2"))


@register_model
def alexnet_fc(num_classes: int = 10, in_chans: int = 1) -> FCNet:
    """AlexNet (Dive into Deep Learning ch. 8.1) with its 4096-4096 FC head, 224 px."""
    features = OrderedDict(
        conv1=nn.Conv2d(in_chans, 96, 11, stride=4, padding=1),  # N x 96 x 54 x 54
        relu1=nn.ReLU(),
        pool1=nn.MaxPool2d(3, 2),  # N x 96 x 26 x 26
        conv2=nn.Conv2d(96, 256, 5, padding=2),  # N x 256 x 26 x 26
        relu2=nn.ReLU(),
        pool2=nn.MaxPool2d(3, 2),  # N x 256 x 12 x 12
        conv3=nn.Conv2d(256, 384, 3, padding=1),
        relu3=nn.ReLU(),
        conv4=nn.Conv2d(384, 384, 3, padding=1),
        relu4=nn.ReLU(),
        conv5=nn.Conv2d(384, 256, 3, padding=1),  # N x 256 x 12 x 12
        relu5=nn.ReLU(),
        pool5=nn.MaxPool2d(3, 2),  # N x 256 x 5 x 5
    )
    head = OrderedDict(
        flatten=nn.Flatten(),  # N x 6400
        fc6=nn.Linear(256 * 5 * 5, 4096),
        relu6=nn.ReLU(),
        drop6=nn.Dropout(0.5),
        fc7=nn.Linear(4096, 4096),
        relu7=nn.ReLU(),
        drop7=nn.Dropout(0.5),
        fc8=nn.Linear(4096, num_classes),
    )
    stages = ("features.relu1", "features.relu2", "features.relu5")
    return FCNet(features, head, (in_chans, 224, 224), stages)


@register_model
def vgg_gap(num_classes: int = 10, in_chans: int = 1) -> FCNet:
    """Small VGG-style net with a GAP + Linear head (the classic CAM architecture), 28 px."""
    features = OrderedDict(
        conv1=conv3x3(in_chans, 32),  # N x 32 x 28 x 28
        relu1=nn.ReLU(),
        pool1=nn.MaxPool2d(2),  # N x 32 x 14 x 14
        conv2=conv3x3(32, 64),
        relu2=nn.ReLU(),
        pool2=nn.MaxPool2d(2),  # N x 64 x 7 x 7
        conv3=conv3x3(64, 128),  # N x 128 x 7 x 7
        relu3=nn.ReLU(),
    )
    head = OrderedDict(gap=GlobalAvgPool(), fc=nn.Linear(128, num_classes))  # N x 128 -> classes
    stages = ("features.relu1", "features.relu2", "features.relu3")
    return FCNet(features, head, (in_chans, 28, 28), stages)


@register_model
def fast_fc(num_classes: int = 10, in_chans: int = 1, input_size: int = 28) -> FCNet:
    """nin_fast with an AlexNet-style FC head in place of GAP (claim 23's twin)."""
    nin = nin_fast(num_classes, in_chans, input_size)  # the same stem, blocks and pools
    with torch.no_grad():  # in eval mode: the batch-norm statistics stay as built
        c, h, w = nin.eval().features(torch.zeros(1, in_chans, input_size, input_size)).shape[1:]
    nin.train()
    hidden = nin.head.maps.block.conv.out_channels  # the width of the GAP head's 3x3 conv (256)
    # AlexNet's fc6-fc8 (4096-4096-classes, dropout 0.5) at the GAP head's width
    head = OrderedDict(
        flatten=nn.Flatten(),  # N x c*h*w (128 x 4 x 4 = 2,048 at 28 px)
        fc6=nn.Linear(c * h * w, hidden),
        relu6=nn.ReLU(),
        drop6=nn.Dropout(0.5),
        fc7=nn.Linear(hidden, hidden),
        relu7=nn.ReLU(),
        drop7=nn.Dropout(0.5),
        fc8=nn.Linear(hidden, num_classes),
    )
    features = OrderedDict(nin.features.named_children())
    return FCNet(features, head, (in_chans, input_size, input_size), nin.stage_names[:-1])
