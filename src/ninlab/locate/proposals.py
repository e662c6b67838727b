"""Where to look in a scene: the scene made like a training picture, and square windows around
its objects at their own scale.

A classifier trained on Fashion-MNIST has seen items bright on pure black, each spanning its
28 px frame with its longer side. A scene a person brings has a backdrop (grey, a gradient, a
noisy cloth) and items of any size. Two steps make its objects look like training items:

- `ground`: the backdrop is estimated from the scene's frame (`ninlab.data.backdrop`: a plane
  per channel and its noise) and `lift`ed away: the objects get the training items' polarity
  and contrast, the rest the training background. The difference is taken unsmoothed, and
  every pixel farther than GROW px from the foreground is set to the background, so that the
  noise between objects does not reach the classifier. (`lift` smooths a noisy picture by the
  backdrop's box, 5 px on noise 0-60: lifted so, 50.7% of the items on noise were found
  instead of 85.2%; 270 items of bench/wild_scenes.py, docs/locate.md.)
- `square`: the window of a foreground region (8-connected, specks dropped): centred on the
  region's box, its side the box's longer side (over `share`), as an item spans a training
  image; the classifier sees it resized to the training size, so the scale is the object's own
  (20 px, 56 px), read off the object rather than searched for.

The windows replace the sliding windows of the training size every 2 px that `locate` used
before: on a 112 px scene of three items, about three windows (twice, with their mirror
images) in place of up to 1,849.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F

from ninlab.data.backdrop import Backdrop, estimate_backdrop, foreground, lift, object_sign
from ninlab.locate.scenes import Box

GROW = 1  # px around the foreground kept from the lifted scene (its faint edge)
LEAST = 8  # px: no window is smaller (a speck the foreground kept)


@dataclass
class Ground:
    """A scene made like a training picture, and where its objects are."""

    picture: torch.Tensor  # uint8 (C, H, W): backdrop removed, polarity and contrast the items'
    mask: torch.Tensor  # H x W booleans: the objects' pixels (ninlab.data.backdrop.foreground)
    backdrop: Backdrop  # what was removed
    sign: int  # +1: the objects were brighter than their backdrop, -1: darker
    level: float  # the training background, which the picture has away from the objects


def ground(image: torch.Tensor, level: float = 0.0, contrast: float | None = 255.0) -> Ground:
    """A uint8 (C, H, W) scene made like a training picture whose background is `level` and
    whose items reach `contrast` (Fashion-MNIST: 0 and 255; `ninlab.data.images.Look`)."""
    x = image.float()
    backdrop = estimate_backdrop(x)
    mask = foreground(x, backdrop)
    sign = object_sign(x, mask, backdrop)
    # box 1: the difference unsmoothed, less the (smoothed) noise floor `lift` subtracts
    picture = lift(x, replace(backdrop, box=1), sign, level, contrast, mask)
    near = F.max_pool2d(mask.float()[None, None], 2 * GROW + 1, 1, GROW)[0, 0].bool()
    picture = torch.where(near, picture, torch.tensor(round(level), dtype=torch.uint8))
    return Ground(picture, mask, backdrop, sign, level)


def square(box: Box, share: float = 1.0) -> Box:
    """The square around a box, centred on it, in which the box's longer side takes `share` of
    the side (at least LEAST px), as an item's longer side takes that share of its training
    image (`ninlab.data.images.Look.share`: 1 for Fashion-MNIST, 20/28 for MNIST's digits)."""
    top, left, bottom, right = box
    side = max(round(max(bottom - top, right - left) / share), LEAST)
    t, l = (top + bottom - side) // 2, (left + right - side) // 2
    return t, l, t + side, l + side


def crops(picture: torch.Tensor, boxes: list[Box], size: tuple[int, int], fill: float):
    """uint8 (N, C, h, w): each box of a (C, H, W) picture resized to `size` (bilinear,
    antialiased when it shrinks, as the training images were made from larger photos); the
    part of a box past the picture's edge is `fill`."""
    c, h, w = picture.shape
    out = torch.empty(len(boxes), c, *size, dtype=torch.uint8)
    x = picture.float()
    for n, (top, left, bottom, right) in enumerate(boxes):
        part = x[:, max(top, 0) : max(min(bottom, h), 0), max(left, 0) : max(min(right, w), 0)]
        pad = (max(-left, 0), max(right - w, 0), max(-top, 0), max(bottom - h, 0))
        part = F.pad(part, (pad[0], right - left - part.shape[2] - pad[0],
                            pad[2], bottom - top - part.shape[1] - pad[2]), value=fill)  # fmt: skip
        resized = F.interpolate(part[None], size, mode="bilinear", antialias=True,
                                align_corners=False)[0]  # fmt: skip
        out[n] = resized.round().clamp(0, 255).to(torch.uint8)
    return out


def measures(mask: torch.Tensor, boxes: list[Box]) -> tuple[torch.Tensor, ...]:
    """Per window (N,): fill, the share of its pixels that are foreground; whole, the share of
    the foreground in and around it (a ring of a quarter side) that lies inside it (1 for a
    window that holds a whole object, about 0.5 for one that cuts it in half); centred, 1 minus
    the distance of its foreground's centroid from its centre in sides (|dy| + |dx|; training
    images are centred). From integral images: four look-ups a sum."""
    f = mask.float()
    h, w = f.shape
    ys = torch.arange(h, dtype=torch.float)[:, None].expand(h, w)
    xs = torch.arange(w, dtype=torch.float)[None, :].expand(h, w)
    tables = [F.pad(t.cumsum(0).cumsum(1), (1, 0, 1, 0)) for t in (f, f * ys, f * xs)]

    def total(t: torch.Tensor, top: int, left: int, bottom: int, right: int) -> float:
        top, bottom = min(max(top, 0), h), min(max(bottom, 0), h)
        left, right = min(max(left, 0), w), min(max(right, 0), w)
        return float(t[bottom, right] - t[top, right] - t[bottom, left] + t[top, left])

    fill, whole, centred = [], [], []
    for top, left, bottom, right in boxes:
        side, ring = bottom - top, (bottom - top) // 4
        n = total(tables[0], top, left, bottom, right)
        around = total(tables[0], top - ring, left - ring, bottom + ring, right + ring)
        fill.append(n / (side * (right - left)))
        whole.append(n / max(around, 1.0))
        if n == 0:
            centred.append(0.0)
            continue
        cy = total(tables[1], top, left, bottom, right) / n
        cx = total(tables[2], top, left, bottom, right) / n
        dy = abs(cy - (top + bottom - 1) / 2) / side
        dx = abs(cx - (left + right - 1) / 2) / (right - left)
        centred.append(max(0.0, 1 - dy - dx))
    return torch.tensor(fill), torch.tensor(whole), torch.tensor(centred)
