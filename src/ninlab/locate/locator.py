"""Finding objects in a scene larger than the training images, with a classifier alone.

Windows of the training size, every `stride` pixels (2 by default), are classified. A classifier
has no "nothing here" class: it names a class for an empty window too. So a window is a
candidate only when its top class reaches `min_score` and at least `min_fill` of its pixels are
foreground (farther than 10% of the range from the background, the median colour of the
scene's border). Candidates are taken in order of probability x wholeness (the share of the
foreground in and around the window that lies inside it: 1 for a window that holds a whole
object, about 0.5 for one that cuts it in half) x centring (1 minus the distance of the
foreground's centroid from the window's centre, in window sides: training images are centred);
one is dropped when it overlaps a kept window by more than `overlap` (IoU) or when most of its
foreground lies in kept windows already.

Scoring: "crops" runs the model on each candidate window as on a training image; "dense" takes
the scores of all windows from the convolutionalized model (`ninlab.convert.convolutionalize`;
OverFeat, Sermanet et al. 2013; FCN, Long et al. 2015) in one pass per offset. They differ
where the model pads (nin_fast pads every conv and pools with ceil_mode): a crop sees padding
at its edges, a window of the dense pass the scene around it, so the dense scores are those of
a model looking at a slightly larger field than it was trained on (bench/localise.py measures
both). Each detection gets three boxes:
- window: the training-size window that was classified;
- CAM (Zhou et al. 2016, arXiv:1512.04150): the class map of the scene (its own size, one
  pass) upsampled to pixels over the window, scaled to [0, 1] there, thresholded at 0.2; the box
  of the largest 4-connected region;
- unit: the receptive field of the strongest class-map unit whose field centre lies in the
  window, clipped to the image.
For a GAP model (NiN, vgg_gap) the class map is the per-unit evidence whose window average is
the window's logit; for an FC head there is no finer map, and all three boxes are the window.
"""

from __future__ import annotations

import functools
import random
import time
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from ninlab.analysis import Field, receptive_field
from ninlab.analysis.cam import cam_method, class_activation_maps
from ninlab.convert import convolutionalize
from ninlab.data.images import border_colour
from ninlab.errors import NinlabError
from ninlab.locate.scenes import Box, iou, make_scene
from ninlab.runs import Run

METHODS = ("window", "cam", "unit")
CAM_THRESHOLD = 0.2  # of the map scaled to [0, 1] (Zhou et al. 2016)


@dataclass
class Detection:
    class_index: int
    prob: float  # softmax probability of the class in its window
    window: Box
    cam: Box
    unit: Box

    def box(self, method: str) -> Box:
        return getattr(self, method)


@dataclass
class Located:
    """The detections in one scene, and how they were found."""

    detections: list[Detection]
    size: tuple[int, int]  # (H, W) of the scene
    window: tuple[int, int]  # the training size
    stride: int  # pixels between windows
    grid: tuple[int, int]  # windows scored (rows, columns)
    seconds: float  # wall time of scoring and boxing

    def to_dict(self, classes: list[str]) -> dict:
        return {
            "size": list(self.size),
            "window": list(self.window),
            "stride": self.stride,
            "grid": list(self.grid),
            "seconds": round(self.seconds, 4),
            "detections": [{"class": classes[d.class_index], **asdict(d)} for d in self.detections],
        }


SCORINGS = ("crops", "dense")


def locate(
    run: Run,
    image: torch.Tensor,
    min_score: float = 0.5,
    overlap: float = 0.3,
    min_fill: float = 0.1,
    stride: int = 2,
    scoring: str = "crops",
) -> Located:
    """Detections in a uint8 (1, C, H, W) scene at least as large as the training size.

    Windows of the training size every `stride` pixels are scored (see the module doc):
    "crops" runs the model on each window that has foreground, exactly as on a training image;
    "dense" takes the convolutionalized model's grid in one pass per offset (stride must divide
    the model's own). The two differ where the model pads: a crop sees zero padding at its edge,
    the dense pass the scene around it."""
    t0 = time.perf_counter()
    (ch, cw), (h, w) = run.input_shape[1:], image.shape[-2:]
    if h < ch or w < cw:
        raise NinlabError(
            f"the image is {h}x{w} px, smaller than the {ch}x{cw} px windows the model was "
            "trained on; use `ninlab predict` for it."
        )
    if scoring not in SCORINGS:
        raise NinlabError(f"unknown scoring {scoring!r}; choose {' or '.join(SCORINGS)}.")
    dense = _convolutionalized(run.model, run.input_shape)
    x = run.preprocess(image, native=True)
    tops, lefts = range(0, h - ch + 1, stride), range(0, w - cw + 1, stride)
    fg = _foreground(image)
    fill, whole = _fill_and_whole(fg, (ch, cw), stride)
    with torch.no_grad():
        if scoring == "crops":
            k = len(run.classes)
            probs = _crop_scores(run.model, x, (ch, cw), stride, fill >= min_fill, k)
        else:
            probs = _dense_scores(dense, x, stride)[:, : len(tops), : len(lefts)]
        maps = dense.class_maps(x)[0].float() if dense.window is not None else None
    best, cls = probs.max(0)
    cells = ((best >= min_score) & (fill >= min_fill)).nonzero().tolist()
    rank = best * whole * _centred(fg, (ch, cw), stride)  # whole, centred objects first
    candidates = sorted(((float(rank[i, j]), float(best[i, j]), int(cls[i, j]), i, j)
                         for i, j in cells), reverse=True)  # fmt: skip
    field = _map_field(run, x) if maps is not None else None
    kept: list[Detection] = []
    claimed = torch.zeros_like(fg)  # the pixels of the windows kept so far
    for _, p, k, i, j in candidates:
        window = (tops[i], lefts[j], tops[i] + ch, lefts[j] + cw)
        inside = (slice(window[0], window[2]), slice(window[1], window[3]))
        seen = fg[inside]
        if any(iou(window, d.window) > overlap for d in kept) or (
            (seen & claimed[inside]).sum() > 0.5 * seen.sum()  # mostly an object already found
        ):
            continue
        claimed[inside] = True
        unit = cam = window  # an FC head: nothing finer than the window
        if maps is not None:
            a, b = _strongest_unit(maps[k], field, window)
            unit, cam = _clip(field.box(a, b), h, w), _cam_box(maps[k], field, window)
        kept.append(Detection(k, p, window, cam, unit))
    grid = (len(tops), len(lefts))
    return Located(kept, (h, w), (ch, cw), stride, grid, time.perf_counter() - t0)


@functools.lru_cache(maxsize=4)
def _convolutionalized(model, input_shape):
    """The convolutionalized copy of a model, made once per model (a deep copy costs time)."""
    return convolutionalize(model, input_shape)


def _crop_scores(model, x, window, stride: int, wanted: torch.Tensor, k: int) -> torch.Tensor:
    """k x nt x nl probabilities of the wanted windows (the rest 0), each run as a crop."""
    crops = x.unfold(2, window[0], stride).unfold(3, window[1], stride)  # 1 x C x nt x nl x h x w
    out = torch.zeros(k, *wanted.shape)
    for part in wanted.nonzero().split(512):
        batch = crops[0, :, part[:, 0], part[:, 1]].permute(1, 0, 2, 3)  # B x C x h x w
        out[:, part[:, 0], part[:, 1]] = torch.softmax(model(batch.contiguous()).float(), 1).T
    return out


def _dense_scores(dense, x, stride: int) -> torch.Tensor:
    """K x nt x nl probabilities from the convolutionalized model, one pass per offset."""
    s = dense.stride
    if s % stride:
        raise NinlabError(f"dense scoring needs a --stride that divides the model's {s} px.")
    passes = {(dy, dx): torch.softmax(dense(x[:, :, dy:, dx:])[0].float(), 0)
              for dy in range(0, s, stride) for dx in range(0, s, stride)}  # fmt: skip
    k = passes[(0, 0)].shape[0]
    nt, nl = passes[(0, 0)].shape[1] * (s // stride), passes[(0, 0)].shape[2] * (s // stride)
    out = torch.zeros(k, nt, nl)
    for (dy, dx), g in passes.items():
        rows, cols = range(dy // stride, nt, s // stride), range(dx // stride, nl, s // stride)
        n, m = min(len(rows), g.shape[1]), min(len(cols), g.shape[2])
        out[:, rows[0] : rows[0] + n * (s // stride) : s // stride,
            cols[0] : cols[0] + m * (s // stride) : s // stride] = g[:, :n, :m]  # fmt: skip
    return out


def _strongest_unit(m: torch.Tensor, field: Field, window: Box) -> tuple[int, int]:
    """(i, j) of the largest map value among the units whose field centre lies in the window."""
    rows = [i for i in range(m.shape[0]) if window[0] <= field.center(i, 0)[0] < window[2]]
    cols = [j for j in range(m.shape[1]) if window[1] <= field.center(0, j)[1] < window[3]]
    region = m[rows][:, cols]
    a, b = divmod(int(region.flatten().argmax()), region.shape[1])
    return rows[a], cols[b]


def _centred(fg: torch.Tensor, window: tuple[int, int], stride: int) -> torch.Tensor:
    """Per window: 1 - the distance of its foreground's centroid from its centre, in window
    sides (|dy| + |dx|): 1 for an object centred as the training images centre theirs."""
    f = fg.float()[None, None]
    h, w = fg.shape
    ys = torch.arange(h, dtype=torch.float)[:, None].expand(h, w)[None, None]
    xs = torch.arange(w, dtype=torch.float)[None, :].expand(h, w)[None, None]
    n = F.avg_pool2d(f, window, stride, divisor_override=1)[0, 0].clamp_min(1)
    cy = F.avg_pool2d(f * ys, window, stride, divisor_override=1)[0, 0] / n
    cx = F.avg_pool2d(f * xs, window, stride, divisor_override=1)[0, 0] / n
    tops = torch.arange(cy.shape[0], dtype=torch.float)[:, None] * stride
    lefts = torch.arange(cx.shape[1], dtype=torch.float)[None, :] * stride
    dy = (cy - tops - (window[0] - 1) / 2).abs() / window[0]
    dx = (cx - lefts - (window[1] - 1) / 2).abs() / window[1]
    return (1 - dy - dx).clamp_min(0)


def _fill_and_whole(fg: torch.Tensor, window: tuple[int, int], stride: int):
    """Per window (nt x nl): the share of its pixels that are foreground, and the share of the
    foreground in and around it (a ring of a quarter window) that lies inside it: 1 when the
    window holds a whole object, about 0.5 when it cuts one in half."""
    f = fg.float()[None, None]
    inside = F.avg_pool2d(f, window, stride, divisor_override=1)[0, 0]
    rh, rw = window[0] // 4, window[1] // 4
    around = F.avg_pool2d(F.pad(f, (rw, rw, rh, rh)), (window[0] + 2 * rh, window[1] + 2 * rw),
                          stride, divisor_override=1)[0, 0]  # fmt: skip
    return inside / (window[0] * window[1]), inside / around.clamp_min(1)


def _foreground(image: torch.Tensor) -> torch.Tensor:
    """H x W: pixels farther than 10% of the range from the background, the median colour of
    the image's one-pixel border."""
    x = image[0].float()  # C x H x W
    return (x - border_colour(x)[:, None, None]).abs().amax(0) > 25.5


def _map_field(run: Run, x: torch.Tensor) -> Field:
    """The receptive field of the class map's units at this input size."""
    _, layer = cam_method(run.model)
    return receptive_field(run.model, layer, tuple(x.shape[1:]))


def _clip(box: Box, h: int, w: int) -> Box:
    top, left, bottom, right = box
    return max(top, 0), max(left, 0), min(bottom, h), min(right, w)


def _cam_box(m: torch.Tensor, field: Field, window: Box) -> Box:
    """Zhou et al.'s box: the map upsampled to pixels (bilinear, each unit at its field centre)
    over the window, scaled to [0, 1] there (minimum to maximum, as in their code), thresholded
    at 0.2; the box of the largest 4-connected region."""
    (jr, jc), (top, left, bottom, right) = field.jump, window
    (r0, c0), rows, cols = field.center(0, 0), torch.arange(top, bottom), torch.arange(left, right)
    # map coordinates of each pixel, then [-1, 1] for grid_sample (align_corners: -1 = unit 0)
    u = (rows.float() - r0) / jr / max(m.shape[0] - 1, 1) * 2 - 1
    v = (cols.float() - c0) / jc / max(m.shape[1] - 1, 1) * 2 - 1
    grid = torch.stack(torch.meshgrid(v, u, indexing="xy"), -1)[None]  # 1 x H x W x (x, y)
    up = F.grid_sample(m[None, None], grid, mode="bilinear", padding_mode="border",
                       align_corners=True)[0, 0]  # fmt: skip
    up = (up - up.min()) / (up.max() - up.min()).clamp_min(1e-12)
    on = up >= CAM_THRESHOLD
    a, b, c, d = _largest_region_box(on)
    return top + a, left + b, top + c, left + d


def _largest_region_box(on: torch.Tensor) -> Box:
    """Box of the largest 4-connected region of a boolean H x W mask (labels spread by max)."""
    label = torch.where(on, torch.arange(1, on.numel() + 1, dtype=torch.float).view(on.shape), 0.0)
    cross = torch.tensor([[0, 1, 0], [1, 1, 1], [0, 1, 0]], dtype=torch.bool)
    while True:
        padded = F.pad(label, (1, 1, 1, 1))
        shifted = [padded[a : a + on.shape[0], b : b + on.shape[1]]
                   for a in range(3) for b in range(3) if cross[a, b]]  # fmt: skip
        spread = torch.stack(shifted).amax(0) * on
        if torch.equal(spread, label):
            break
        label = spread
    ids, counts = label[on].unique(return_counts=True)
    rows, cols = (label == ids[counts.argmax()]).nonzero(as_tuple=True)
    return int(rows.min()), int(cols.min()), int(rows.max()) + 1, int(cols.max()) + 1


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
