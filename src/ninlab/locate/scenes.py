"""Synthetic scenes: test-set items pasted at random, non-overlapping places of a larger canvas.

A scene is what a classifier trained on centred 28 px items has never seen: the item is one of
several, anywhere, among background. It is how ninlab measures localisation (`ninlab locate`,
`bench/localise.py`, claim 25) without a labelled detection data set. Items come from the test
set only, so no scene shows an image the model was trained on.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch

from ninlab.errors import NinlabError

Box = tuple[int, int, int, int]  # (top, left, bottom, right), bottom and right exclusive


@dataclass
class Item:
    """One pasted item: its test-set index and class, where its patch went, and the tight box
    of its object pixels (those above 10% of the patch's maximum)."""

    index: int
    label: int
    patch: Box  # the whole h x w patch
    box: Box  # the object inside it


@dataclass
class Scene:
    image: torch.Tensor  # uint8 (1, C, S, S)
    items: list[Item]


def object_box(patch: torch.Tensor, top: int = 0, left: int = 0) -> Box:
    """Tight box of the pixels above 10% of the maximum of a uint8 (C, h, w) patch, offset to
    (top, left); the whole patch when it is blank."""
    v = patch.float().amax(0)
    on = v > 0.1 * float(v.max())
    if not on.any():
        return top, left, top + patch.shape[1], left + patch.shape[2]
    rows, cols = on.any(1).nonzero().flatten().tolist(), on.any(0).nonzero().flatten().tolist()
    return top + rows[0], left + cols[0], top + rows[-1] + 1, left + cols[-1] + 1


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two boxes."""
    h = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    w = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = h * w
    area = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / area if area else 0.0


def make_scene(
    images: torch.Tensor, labels: torch.Tensor, n_items: int, size: int, rng: random.Random
) -> Scene:
    """A size x size black canvas with n_items random test items (uint8 (N, C, h, w) and their
    labels) at random places whose patches do not overlap."""
    c, h, w = images.shape[1:]
    if size < h or size < w:
        raise NinlabError(f"a scene of {size} px cannot hold items of {h}x{w} px.")
    canvas = torch.zeros(1, c, size, size, dtype=torch.uint8)
    items: list[Item] = []
    for _ in range(n_items):
        for _attempt in range(1000):
            top, left = rng.randrange(size - h + 1), rng.randrange(size - w + 1)
            patch = (top, left, top + h, left + w)
            if all(iou(patch, it.patch) == 0 for it in items):
                break
        else:
            raise NinlabError(f"{n_items} items of {h}x{w} px do not fit apart in {size} px.")
        k = rng.randrange(len(images))
        canvas[0, :, top : top + h, left : left + w] = images[k]
        items.append(Item(k, int(labels[k]), patch, object_box(images[k], top, left)))
    return Scene(canvas, items)
