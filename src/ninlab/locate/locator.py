"""Finding objects in a scene larger than the training images, with a classifier alone.

A classifier has no "nothing here" class, and it has seen only centred items that span their
frame. So `locate` first decides where to look, then asks the classifier about each place
(`ninlab.locate.proposals`):
1. the scene is made like a training picture (`ground`): its backdrop (a plane per channel, so
   grey and gradients, and its noise) removed, the objects given the training items' polarity
   and contrast, the rest the training background;
2. a window is put around each object (`square`): a square per foreground region, its side the
   region's longer side, so the scale is the object's (20 px, 56 px);
3. each window is classified at the training size; with `mirror`, its mirror image too, and the
   more confident of the two is taken (Fashion-MNIST's shoes all point left; a scene's may not);
4. windows whose top class reaches `min_score` and that are at least `min_fill` foreground are
   taken in order of probability x wholeness (the share of the foreground in and around the
   window that lies inside it: 1 for a window that holds a whole object, about 0.5 for one that
   cuts it in half) x centring (1 minus the distance of the foreground's centroid from the
   window's centre, in sides: training images are centred); one is dropped when it overlaps a
   kept window by more than `overlap` (IoU) or when most of its foreground lies in kept windows
   already.

Scoring: "crops" runs the model on each window resized to the training size, exactly as on a
training image; "dense" runs the convolutionalized model (`ninlab.convert.convolutionalize`;
OverFeat, Sermanet et al. 2013; FCN, Long et al. 2015) on the window with a margin of the
scene around it, as wide as its class-map units reach beyond it, and takes the grid cell of
the window: the score a pass over the whole (resized) scene gives that window. They differ
where the model pads (nin_fast pads every conv and pools with ceil_mode): a crop sees padding at
its edges, a dense window the scene around it (bench/wild_scenes.py measures both). Each
detection gets three boxes:
- window: the square of the scene that was classified, of the object's scale (its side is not
  the training size unless the object's is);
- CAM (Zhou et al. 2016, arXiv:1512.04150): the class map of the window as the model saw it
  (at the training size), upsampled to pixels, scaled to [0, 1], thresholded at 0.2; the box of
  the largest 4-connected region, scaled back to the scene;
- unit: the receptive field of the window's strongest class-map unit, scaled back to the scene
  and clipped to it.
For a GAP model (NiN, vgg_gap) the class map is the per-unit evidence whose average is the
window's logit; for an FC head there is no finer map, and all three boxes are the window.
"""

from __future__ import annotations

import functools
import random
import time
from dataclasses import asdict, dataclass

import torch

from ninlab.analysis import Field, receptive_field
from ninlab.analysis.cam import cam_method, class_activation_maps, zhou_box
from ninlab.convert import convolutionalize
from ninlab.data.backdrop import regions
from ninlab.data.images import Look, look_from_mean
from ninlab.errors import NinlabError
from ninlab.locate.proposals import crops, ground, measures, square
from ninlab.locate.scenes import Box, iou, make_scene
from ninlab.runs import Run

METHODS = ("window", "cam", "unit")
SCORINGS = ("crops", "dense")
# least top-class probability of a detection: at 0.5, items on noise were found 84.3% (six
# seeds x 30 scenes of bench/wild_scenes.py); at 0.4 every kind >= 85%, black 0.19 false per scene
MIN_SCORE = 0.4


@dataclass
class Detection:
    """One object found: its class, how sure the classifier was, and three boxes (see the
    module doc)."""

    class_index: int  # the class found
    prob: float  # softmax probability of the class in its window
    window: Box  # the square that was classified, at the object's own scale
    cam: Box  # the CAM box (Zhou et al. 2016) of the window, in scene pixels
    unit: Box  # the field of the window's strongest class-map unit, in scene pixels

    def box(self, method: str) -> Box:
        return getattr(self, method)


@dataclass
class Located:
    """The detections in one scene, and how they were found."""

    detections: list[Detection]
    size: tuple[int, int]  # (H, W) of the scene
    window: tuple[int, int]  # the training size, at which every window is classified
    windows: int  # windows classified
    sides: tuple[int, int]  # the smallest and largest window side, px (0, 0: none)
    seconds: float  # wall time of the whole search

    def to_dict(self, classes: list[str]) -> dict:
        return {
            "size": list(self.size),
            "window": list(self.window),
            "windows": self.windows,
            "sides": list(self.sides),
            "seconds": round(self.seconds, 4),
            "detections": [{"class": classes[d.class_index], **asdict(d)} for d in self.detections],
        }


def locate(
    run: Run,
    image: torch.Tensor,
    min_score: float = MIN_SCORE,
    overlap: float = 0.3,
    min_fill: float = 0.05,
    scoring: str = "crops",
    mirror: bool = True,
    look: Look | None = None,
) -> Located:
    """Detections in a uint8 (1, C, H, W) scene at least as large as the training size (see the
    module doc). `look`: how the training images look (`ninlab.runs.inputs.training_look`):
    the scene is made like them (their background level, their items' contrast) and a window
    is drawn so that its object spans the share of it that theirs do (default: guessed from the
    run's mean, `_target`)."""
    t0 = time.perf_counter()
    (ch, cw), (h, w) = run.input_shape[1:], image.shape[-2:]
    if h < ch or w < cw:
        raise NinlabError(
            f"the image is {h}x{w} px, smaller than the {ch}x{cw} px windows the model was "
            "trained on; use `ninlab predict` for it."
        )
    if scoring not in SCORINGS:
        raise NinlabError(f"unknown scoring {scoring!r}; choose {' or '.join(SCORINGS)}.")
    level, contrast, share = _target(run, look)
    scene = ground(image[0], level, contrast)
    found = list(dict.fromkeys(square(r, share) for r in regions(scene.mask)))
    fill, whole, centred = measures(scene.mask, found)
    full = fill >= min_fill  # a thin scratch is not an object
    windows = [b for b, f in zip(found, full.tolist(), strict=True) if f]
    whole, centred = whole[full], centred[full]
    dense = _convolutionalized(run.model, run.input_shape)
    probs, maps = torch.zeros(0, len(run.classes)), None
    if windows:
        score = _crop_scores if scoring == "crops" else _dense_scores
        with torch.no_grad():
            probs, maps = score(run, dense, scene.picture, windows, level, mirror)
    best, cls = probs.max(1)
    kept = _select(windows, best, best * whole * centred, scene.mask, min_score, overlap)
    detections = _boxed(run, kept, cls, best, maps, (h, w))
    sides = [b[2] - b[0] for b in windows]
    return Located(detections, (h, w), (ch, cw), len(windows),
                   (min(sides, default=0), max(sides, default=0)),
                   time.perf_counter() - t0)  # fmt: skip


def _select(boxes, best, rank, mask, min_score: float, overlap: float) -> list[tuple[int, Box]]:
    """(index, window) of the windows kept: those whose top class reaches min_score, best rank
    first, without one that overlaps a kept window by more than `overlap` (IoU) or whose
    foreground (`mask`) lies mostly in kept windows already (an object already found)."""
    kept: list[tuple[int, Box]] = []
    claimed = torch.zeros_like(mask)  # the pixels of the windows kept so far
    for n in rank.argsort(descending=True).tolist():
        window = boxes[n]
        inside = (slice(max(window[0], 0), max(window[2], 0)),
                  slice(max(window[1], 0), max(window[3], 0)))  # fmt: skip
        seen = mask[inside]
        if best[n] < min_score or any(iou(window, b) > overlap for _, b in kept):
            continue
        if (seen & claimed[inside]).sum() > 0.5 * seen.sum():
            continue
        claimed[inside] = True
        kept.append((n, window))
    return kept


def _target(run: Run, look: Look | None) -> tuple[float, float, float]:
    """(background level, contrast, share of the frame an object spans) of the training images
    that a scene is made like: the look's, else 0 or 255 by the side of mid-grey of the run's
    mean (`look_from_mean`: light above 0.65), full contrast and the whole frame."""
    look = look or look_from_mean(run.config.mean)
    level = look.level if look.level is not None else 255.0 * (look.background == "light")
    contrast = 255.0 if look.contrast is None else look.contrast
    return level, contrast, look.share or 1.0


@functools.lru_cache(maxsize=4)
def _convolutionalized(model, input_shape):
    """The convolutionalized copy of a model, made once per model (a deep copy costs time)."""
    return convolutionalize(model, input_shape)


def _mirrored(probs: torch.Tensor, flipped: torch.Tensor) -> torch.Tensor:
    """Per window, the probabilities of the window or of its mirror image, whichever is the
    more confident (the larger top probability)."""
    return torch.where((flipped.amax(1) > probs.amax(1))[:, None], flipped, probs)


def _forward(dense, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(N x K x gh x gw class-score grid, N x K x h x w class maps, None for an FC head) of a
    batch, in one pass of the convolutionalized model: the maps, then the window's average of
    them and what follows it (`ninlab.convert.dense`)."""
    if dense.window is None:
        return dense(x).float(), None
    maps = dense.class_maps(x)
    grid, after = maps, False
    for name, layer in dense.layers.named_children():
        after = after or name == dense.window
        if after:
            grid = layer(grid)
    return grid.float(), maps.float()


def _crop_scores(run: Run, dense, picture, boxes: list[Box], fill: float, mirror: bool):
    """(N x K probabilities, N x K x h x w class maps or None) of the windows of a (C, H, W)
    picture, each resized to the training size and run as a crop (with `mirror`, the window and
    its mirror image in one batch; the maps are the window's own)."""
    x = run.preprocess(crops(picture, boxes, run.input_shape[1:], fill))
    n = len(x)
    grid, maps = _forward(dense, torch.cat([x, x.flip(-1)]) if mirror else x)
    probs = torch.softmax(grid.mean((2, 3)), 1)  # a 1 x 1 grid at the training size
    if mirror:
        probs = _mirrored(probs[:n], probs[n:])
    return probs, None if maps is None else maps[:n]


def _dense_scores(run: Run, dense, picture, boxes: list[Box], fill: float, mirror: bool):
    """(N x K probabilities, N x K x h x w class maps or None) of the windows from the
    convolutionalized model, each window given a margin of the scene as wide as its class-map
    units reach (rounded up to the model's stride), resized with it so that the window is the
    training size: the grid cell of the window is then what a dense pass over the resized
    scene scores it, and the maps are the window's units in that pass."""
    (ch, cw), s = run.input_shape[1:], dense.stride
    m = _margin(run, dense)
    wide = []
    for top, left, bottom, right in boxes:
        mh, mw = round(m * (bottom - top) / ch), round(m * (right - left) / cw)
        wide.append((top - mh, left - mw, bottom + mh, right + mw))
    x = run.preprocess(crops(picture, wide, (ch + 2 * m, cw + 2 * m), fill), native=True)
    n, k = len(x), m // s
    grid, maps = _forward(dense, torch.cat([x, x.flip(-1)]) if mirror else x)
    probs = torch.softmax(grid[:n, :, k, k], 1)
    if mirror:
        probs = _mirrored(probs, torch.softmax(grid[n:, :, k, -1 - k], 1))
    if maps is None:
        return probs, None
    h, w = _units(run.model, run.input_shape)
    return probs, maps[:n, :, k : k + h, k : k + w]


@functools.lru_cache(maxsize=4)
def _units(model, input_shape) -> tuple[int, int]:
    """The class map's size at the training size (nin_fast: 4 x 4 for 28 x 28)."""
    with torch.no_grad():
        return tuple(_convolutionalized(model, input_shape).class_maps(
            torch.zeros(1, *input_shape)).shape[-2:])  # fmt: skip


@functools.lru_cache(maxsize=4)
def _margin_of(model, input_shape, stride: int) -> int:
    """px beyond a window of the training size that its class-map units see, on the wider
    side, rounded up to the stride: nin_fast's 4 x 4 units of 40 px fields every 8 px, the
    first starting 16 px before the window, reach 16 px before it and 20 px after, so 24."""
    field = _map_field(model, input_shape)
    units = _units(model, input_shape)
    reach = max(max(-field.start[a], field.box(units[0] - 1, units[1] - 1)[2 + a]
                    - input_shape[1 + a]) for a in (0, 1))  # fmt: skip
    return max(-(-reach // stride) * stride, stride)


def _margin(run: Run, dense) -> int:
    if dense.window is None:  # an FC head: the grid's own stride
        return dense.stride
    return _margin_of(run.model, run.input_shape, dense.stride)


def _boxed(run, kept, cls, best, maps, size) -> list[Detection]:
    """The kept windows as Detections, with their CAM and unit boxes from the class maps of
    the windows as the model saw them, at the training size (None, an FC head: every box is
    the window)."""
    shape = run.input_shape
    field = _map_field(run.model, shape) if maps is not None else None
    out = []
    for n, window in kept:
        c, unit, cam = int(cls[n]), window, window
        if maps is not None:
            m = maps[n, c]
            a, b = divmod(int(m.flatten().argmax()), m.shape[1])
            unit = _clip(_to_scene(field.box(a, b), window, shape[1:]), *size)
            cam = _to_scene(zhou_box(m, field, (0, 0, *shape[1:])), window, shape[1:])
        out.append(Detection(c, float(best[n]), window, cam, unit))
    return out


def _to_scene(box: Box, window: Box, size: tuple[int, int]) -> Box:
    """A box in the pixels of a window resized to `size`, in the scene's pixels."""
    sy, sx = (window[2] - window[0]) / size[0], (window[3] - window[1]) / size[1]
    return (window[0] + round(box[0] * sy), window[1] + round(box[1] * sx),
            window[0] + round(box[2] * sy), window[1] + round(box[3] * sx))  # fmt: skip


@functools.lru_cache(maxsize=4)
def _map_field(model, input_shape) -> Field:
    """The receptive field of the class map's units at the training size."""
    _, layer = cam_method(model)
    return receptive_field(model, layer, input_shape)


def _clip(box: Box, h: int, w: int) -> Box:
    top, left, bottom, right = box
    return max(top, 0), max(left, 0), min(bottom, h), min(right, w)


@dataclass
class UnitHits:
    """Claim 25 on scenes: how often the strongest unit's field centre lies on the item."""

    scenes: int
    size: int  # scene side, px
    hit: float  # share of scenes whose strongest unit's field centre is in the item's box
    chance: float  # the same for a unit drawn uniformly from the map (mean over scenes)
    map_shape: tuple[int, int]
    field: Field


def strongest_unit_hits(run: Run, data, scenes: int, size: int = 112, seed: int = 0) -> UnitHits:
    """One test item per black size x size scene; the class map of its true class at the scene's
    own size; whether the strongest unit's field centre lies in the item's tight box, against
    the share of all units whose centre does (a unit drawn at random)."""
    rng = random.Random(seed)
    hits, chance = 0, 0.0
    for _ in range(scenes):
        scene = make_scene(data.test_images, data.test_labels, 1, size, rng)
        item = scene.items[0]
        x = run.preprocess(scene.image, native=True)
        cam = class_activation_maps(run.model, x, item.label)[0]
        top, left, bottom, right = item.box
        h, w = cam.map.shape
        centres = [cam.field.center(i, j) for i in range(h) for j in range(w)]
        on = [top <= r < bottom and left <= c < right for r, c in centres]
        hits += on[cam.cell[0] * w + cam.cell[1]]
        chance += sum(on) / len(on)
    return UnitHits(scenes, size, hits / scenes, chance / scenes, (h, w), cam.field)
