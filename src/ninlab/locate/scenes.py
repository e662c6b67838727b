"""Synthetic scenes: test-set items pasted at random, non-overlapping places of a larger canvas.

A scene is what a classifier trained on centred 28 px items has never seen: the item is one of
several, anywhere, among background. It is how ninlab measures localisation (`ninlab locate`,
`bench/localise.py`, `bench/wild_scenes.py`, claim 25) without a labelled detection data set.
Items come from the test set only, so no scene shows an image the model was trained on.

A `Kind` says how a scene is drawn (KINDS names the ones the benches use):
- its backdrop: "black" (0, the training images'), "grey" (one level drawn in `levels`),
  "gradient" (a ramp across the whole canvas in a random direction, from a level drawn in
  `levels[0]`..`levels[0] + 30` to one in `levels[1] - 30`..`levels[1]`) or "noise" (each pixel
  uniform in 0..`noise`, a textured backdrop: the items cover it);
- its items: mirrored (flipped left to right) or not, and scaled (antialiased bilinear) to a side
  drawn in `sides`, their truth boxes scaled with them.

An item is drawn as it is on black in the training images: bright on dark. Its pixel value v is
taken as how much of the backdrop the item covers, with light of full brightness: a pixel of a
scene is bg + (255 - bg) v / 255 (alpha compositing, out = bg (1 - a) + 255 a with a = v / 255).
On black it is v itself, so black scenes are those of before; where v = 255 the item is opaque
and hides the backdrop (its noise too); a faint edge lets it show through. It is
`bench/wild_photos.py`'s product photo in the training images' polarity (there, dark ink of
coverage v / 255 on a light backdrop). Each item's maximum is 255, as in Fashion-MNIST, so an
item on grey 100 spans 100..255, 61% of the contrast it has on black.

How crowded: the patches of a scene never overlap but may touch (the places are drawn until
they are apart; a whole scene is drawn again when an item finds no place). In 300 scenes of each
of KINDS (three items, 112 x 112 px, seed 7): 28 px patches cover 19% of the canvas and 2-6% of
the items have a patch that touches another's; "scaled" patches (20-56 px) cover 34%, and 12%
of their items touch another's. A Fashion-MNIST item spans its patch, so touching items can make
one region of pixels: 2.3% of the items of "scaled" and "noise" scenes (where the noise's
smoothing widens each object by a pixel or two), under 1% of the others.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ninlab.errors import NinlabError

Box = tuple[int, int, int, int]  # (top, left, bottom, right), bottom and right exclusive
BACKGROUNDS = ("black", "grey", "gradient", "noise")
PLACES = 1000  # places drawn for an item before the scene is drawn again
LAYOUTS = 100  # scenes drawn before giving up


@dataclass(frozen=True)
class Kind:
    """How a scene is drawn: its backdrop, and how its items are (see the module doc)."""

    background: str = "black"  # one of BACKGROUNDS
    levels: tuple[int, int] = (50, 150)  # grey: the level's range; gradient: its two ends' range
    noise: int = 60  # "noise": each backdrop pixel uniform in 0..noise
    mirrored: bool = False  # every item flipped left to right
    sides: tuple[int, int] | None = None  # items scaled to a side drawn in this range (px)
    items: int = 3  # items per scene


KINDS = {
    "black": Kind(),
    "grey": Kind("grey"),
    "gradient": Kind("gradient", levels=(0, 160)),
    "noise": Kind("noise"),
    "mirrored": Kind(mirrored=True),
    "scaled": Kind(sides=(20, 56)),
}


@dataclass
class Item:
    """One pasted item: its test-set index and class, where its patch went, and the tight box
    of its object pixels (those above 10% of the patch's maximum)."""

    index: int  # in the test set
    label: int  # its class
    patch: Box  # the whole side x side patch (the item's longer side spans it)
    box: Box  # the object inside it


@dataclass
class Scene:
    """A drawn scene and the truth about it."""

    image: torch.Tensor  # uint8 (1, C, S, S)
    items: list[Item]  # in the order they were placed
    kind: Kind = Kind()  # how it was drawn


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


def score(located, scene: Scene, method: str = "window", truth: str = "patch") -> tuple[int, int]:
    """(items found, false detections) of one scene: an item is found by a detection of its
    class whose box (`method`: window, cam or unit) has IoU >= 0.5 with the item's patch or
    tight box (`truth` "patch" or "box"; Zhou et al. 2016's criterion), matched greedily by
    IoU, each detection finding at most one item; a detection that finds none is false."""
    pairs = sorted(
        ((iou(d.box(method), getattr(it, truth)), a, b) for a, d in enumerate(located.detections)
         for b, it in enumerate(scene.items) if d.class_index == it.label),
        reverse=True,
    )  # fmt: skip
    used_d, used_i = set(), set()
    for overlap, a, b in pairs:
        if overlap >= 0.5 and a not in used_d and b not in used_i:
            used_d.add(a)
            used_i.add(b)
    return len(used_i), len(located.detections) - len(used_d)


def scaled(image: torch.Tensor, side: int) -> torch.Tensor:
    """A uint8 (C, h, w) item resized to side x side (bilinear, antialiased when it shrinks)."""
    if image.shape[-2:] == (side, side):
        return image
    x = F.interpolate(image[None].float(), (side, side), mode="bilinear", antialias=True,
                      align_corners=False)[0]  # fmt: skip
    return x.round().clamp(0, 255).to(torch.uint8)


def backdrop(kind: Kind, c: int, size: int, rng: random.Random) -> torch.Tensor:
    """A float (C, S, S) backdrop of the kind (see the module doc), drawn with `rng`."""
    if kind.background == "black":
        return torch.zeros(c, size, size)
    lo, hi = kind.levels
    if kind.background == "grey":
        return torch.full((c, size, size), float(rng.randint(lo, hi)))
    if kind.background == "gradient":
        a, b = rng.uniform(lo, lo + 30), rng.uniform(hi - 30, hi)
        angle = rng.uniform(0, 2 * math.pi)
        r = torch.linspace(-0.5, 0.5, size)
        ramp = math.cos(angle) * r[None, :] + math.sin(angle) * r[:, None]
        ramp = (ramp - ramp.min()) / (ramp.max() - ramp.min())  # 0..1 across the canvas
        return (a + (b - a) * ramp).expand(c, size, size).clone()
    if kind.background == "noise":
        g = torch.Generator().manual_seed(rng.getrandbits(62))
        return torch.randint(0, kind.noise + 1, (c, size, size), generator=g).float()
    raise NinlabError(f"unknown background {kind.background!r}; choose one of "
                      f"{', '.join(BACKGROUNDS)}.")  # fmt: skip


def make_scene(
    images: torch.Tensor,
    labels: torch.Tensor,
    n_items: int,
    size: int,
    rng: random.Random,
    kind: Kind = Kind(),
) -> Scene:
    """A size x size scene of the kind with n_items random test items (uint8 (N, C, h, w) and
    their labels) at random places whose patches do not overlap. Black 28 px scenes draw from
    `rng` exactly as before kinds existed (claim 25's scenes are unchanged)."""
    c, h, w = images.shape[1:]
    hi = max(kind.sides or (h, w))
    if size < hi:
        raise NinlabError(f"a scene of {size} px cannot hold items of {hi} px.")
    for _ in range(LAYOUTS):
        items = _layout(images, labels, n_items, size, rng, kind)
        if items is not None:
            break
    else:
        raise NinlabError(f"{n_items} items of up to {hi} px do not fit apart in {size} px.")
    canvas = backdrop(kind, c, size, rng)
    for it in items:
        item = images[it.index].flip(-1) if kind.mirrored else images[it.index]
        top, left, bottom, right = it.patch
        v = (scaled(item, bottom - top) if kind.sides else item).float()
        bg = canvas[:, top:bottom, left:right]
        canvas[:, top:bottom, left:right] = bg + (255 - bg) * v / 255  # see the module doc
        it.box = object_box(v, top, left)
    return Scene(canvas.round().clamp(0, 255).to(torch.uint8)[None], items, kind)


def _layout(images, labels, n_items, size, rng, kind) -> list[Item] | None:
    """The items' indices and patches (boxes are set when they are drawn); None when one finds
    no place apart from the others in PLACES tries."""
    h, w = images.shape[-2:]
    items: list[Item] = []
    for _ in range(n_items):
        ph, pw = (rng.randint(*kind.sides),) * 2 if kind.sides else (h, w)
        for _attempt in range(PLACES):
            top, left = rng.randrange(size - ph + 1), rng.randrange(size - pw + 1)
            patch = (top, left, top + ph, left + pw)
            if all(iou(patch, it.patch) == 0 for it in items):
                break
        else:
            return None
        k = rng.randrange(len(images))
        items.append(Item(k, int(labels[k]), patch, patch))
    return items
