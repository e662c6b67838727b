"""Class activation maps, and the box of input pixels behind the strongest evidence.

Three kinds of map, by the model's head:
  NiN ("class map")  the last block's output for the class, `model.class_maps(x)`: no gradients.
                     GAP averages these maps into the logits, so mean(map) = logit. When the class
                     conv is linear (nin_fast: conv + BN, no ReLU) the map is the class conv's own
                     evidence, negative parts included. The classic NiN (nin_seed, nin_d2l,
                     nin_cifar) has a ReLU after the class conv: its map is clipped at 0, and the
                     class conv's own map (before that ReLU) averages to something else.
  GAP + Linear ("CAM", Zhou et al. 2016, arXiv:1512.04150)
                     M_c(i, j) = sum_k w_ck f_k(i, j) + b_c over the last feature maps f_k, so
                     mean(M_c) = logit (the bias is kept so that this is exact).
  otherwise ("Grad-CAM", Selvaraju et al. 2017, arXiv:1610.02391) on the last stage:
                     M_c = ReLU(sum_k a_ck f_k), a_ck = mean over (i, j) of d logit_c / d f_k(i, j).
                     Its mean is not the logit.
The strongest unit (i, j) of the map is projected back to the input with the receptive field of
the map's layer (`ninlab.analysis.receptive_field`): it sees rows start + i jump ... + size - 1
(and columns likewise), clipped to the image.

On a picture larger than the training images (`ninlab cam --native`: one 28 px test item on an
84 px black canvas) most units see only background, where the bias and the padding alone make
some of them strong: with the item's own class the map's maximum lay off the item in 10 of 30
canvases (the default run, bench/wild_cam.py, seed 0). Given the picture's foreground
(`ninlab.data.backdrop.foreground`), the strongest unit is chosen among the units whose field
centre lies on it (`units_on`); the map, its mean and the logit are untouched. Its field then
hit the item (IoU >= 0.3 with its 28x28 patch) in 30 of 30; Zhou et al.'s box (the map
upsampled, scaled min to max, cut at 0.2, largest region) in 0 of 30: most of an empty canvas
lies above 0.2 of a range whose minimum is far below zero.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ninlab.analysis.fields import Field
from ninlab.analysis.summary import receptive_field
from ninlab.data.backdrop import regions
from ninlab.errors import NinlabError
from ninlab.models import GlobalAvgPool, NiN

CAM_THRESHOLD = 0.2  # zhou_box: of the map scaled to [0, 1] (Zhou et al. 2016)

EXACT_TOL = 1e-5  # |mean(map) - logit| <= EXACT_TOL * max(1, |logit|) counts as equal (float32)


@dataclass
class CAM:
    """The class activation map of one image for one class, and where its maximum lies."""

    method: str  # "class map" (NiN), "CAM" (GAP + Linear head) or "Grad-CAM"
    layer: str  # the module whose output units the map's cells are
    class_index: int
    map: torch.Tensor  # h x w: evidence for the class at each unit of `layer`
    logit: float  # the model's logit for the class (one plain forward, no test-time flip)
    prob: float  # softmax probability of the class in that forward
    predicted: int  # the arg-max class of that forward
    field: Field  # receptive field of `layer`'s units, in input pixels
    input_size: tuple[int, int]  # (H, W) of the model input
    relu_after: bool = False  # NiN: a ReLU follows the class conv, so the map is clipped at 0
    linear_mean: float | None = None  # NiN with that ReLU: mean of the class conv's own map
    allowed: torch.Tensor | None = None  # h x w: the units `cell` is chosen among (None: all)
    reach: int = 0  # px from the foreground within which the allowed units' centres lie (0: on it)

    @property
    def map_mean(self) -> float:
        return self.map.double().mean().item()

    @property
    def exact(self) -> bool | None:
        """Whether mean(map) equals the logit (None for Grad-CAM, whose mean is not a logit)."""
        if self.method == "Grad-CAM":
            return None
        return abs(self.map_mean - self.logit) <= EXACT_TOL * max(1.0, abs(self.logit))

    @property
    def cell(self) -> tuple[int, int]:
        """(i, j) of the map's maximum among the allowed units (the first in row-major order on
        a tie)."""
        m = self.map if self.allowed is None else self.map.masked_fill(~self.allowed, -torch.inf)
        i, j = divmod(int(m.flatten().argmax()), self.map.shape[1])
        return i, j

    @property
    def peak(self) -> tuple[int, int]:
        """(i, j) of the map's own maximum, over all units."""
        i, j = divmod(int(self.map.flatten().argmax()), self.map.shape[1])
        return i, j

    @property
    def box(self) -> tuple[int, int, int, int]:
        """Input pixels that the strongest (allowed) unit sees, clipped to the image: (top, left,
        bottom, right), bottom and right exclusive."""
        top, left, bottom, right = self.field.box(*self.cell)
        h, w = self.input_size
        return max(top, 0), max(left, 0), min(bottom, h), min(right, w)

    @property
    def center(self) -> tuple[float, float]:
        """Centre (row, column) of the strongest unit's field, in input pixels."""
        return self.field.center(*self.cell)

    def lines(self, classes: list[str], native: bool = False) -> list[str]:
        """What `ninlab cam` prints: the numbers behind the picture (native: the input is the
        picture at its own size, and the first line says so)."""
        name = classes[self.class_index]
        i, j = self.cell
        top, left, bottom, right = self.box
        f = self.field
        h, w = self.input_size
        out = [
            f"predicted {classes[self.predicted]}; map of {name}: probability "
            f"{100 * self.prob:.2f}%, logit {self.logit:.4g}",
            f"{self.method} of {self.layer}, {self.map.shape[0]}x{self.map.shape[1]}: "
            f"mean {self.map_mean:.4g}",
        ]
        if native:  # the class came from elsewhere (the picture made like a training image)
            out[0] = f"map of {name} at the picture's own size, {h}x{w}:"
            out.insert(1, f"  probability {100 * self.prob:.2f}%, logit {self.logit:.4g} (its "
                          f"forward predicts {classes[self.predicted]})")  # fmt: skip
        if self.exact is None:
            out.append("  Grad-CAM weighs channels by gradients; its mean is not the logit")
        else:
            diff = abs(self.map_mean - self.logit)
            out.append(f"  mean = logit: {'yes' if self.exact else 'no'} (|difference| {diff:.2e})")
        if self.relu_after:
            same = abs(self.linear_mean - self.logit) <= EXACT_TOL * max(1.0, abs(self.logit))
            why = "it has no negative cell, so it equals the logit" if same else "not the logit"
            out += [
                "  a ReLU follows the class conv (classic NiN): this map is taken after it, so",
                "  it is >= 0 and negative evidence is cut off; the class conv's own map (before",
                f"  the ReLU) averages to {self.linear_mean:.4g}: {why}",
            ]
        elif self.method == "class map":
            out.append("  no ReLU after the class conv: the map is its linear evidence, exactly")
        out.append(
            f"strongest unit ({i}, {j}) = {float(self.map[i, j]):.4g}; its field: size "
            f"{f.text('size')}, jump {f.text('jump')}, start {f.text('start')} px"
        )
        if self.allowed is not None:
            where = "on" if self.reach == 0 else f"{self.reach} px from"
            out.append(
                f"  chosen among the {int(self.allowed.sum())} of {self.allowed.numel()} units "
                f"whose field centre is {where} the object"
            )
            if self.peak != self.cell:
                a, b = self.peak
                out.append(f"  (the map's own maximum, unit ({a}, {b}) = "
                           f"{float(self.map[a, b]):.4g}, lies off it)")  # fmt: skip
        out.append(
            f"box in input pixels: rows {top}-{bottom - 1}, columns {left}-{right - 1} of "
            f"{self.input_size[0]}x{self.input_size[1]}"
        )
        out.append(
            f"  (the field clipped to the image); centre ({self.center[0]:.1f}, "
            f"{self.center[1]:.1f})"
        )
        return out


def _last_leaf(model: nn.Module, name: str) -> str:
    """The last module without children under `name` (the summary's row for its output)."""
    leaves = [
        f"{name}.{n}" if n else name
        for n, m in model.get_submodule(name).named_modules()
        if next(m.children(), None) is None
    ]
    return leaves[-1]


def _gap_linear(model: nn.Module) -> nn.Linear | None:
    """The Linear layer of a head that is global average pooling then one Linear, else None."""
    head = getattr(model, "head", None)
    if not isinstance(head, nn.Sequential):
        return None
    skip = (nn.Dropout, nn.Identity, nn.Flatten)
    layers = [m for m in head if not isinstance(m, skip)]
    pool = (GlobalAvgPool, nn.AdaptiveAvgPool2d)
    if len(layers) == 2 and isinstance(layers[0], pool) and isinstance(layers[1], nn.Linear):
        if isinstance(layers[0], nn.AdaptiveAvgPool2d) and layers[0].output_size not in (1, (1, 1)):
            return None
        return layers[1]
    return None


def cam_method(model: nn.Module) -> tuple[str, str]:
    """(method, layer) that `class_activation_maps` uses for this model."""
    if isinstance(model, NiN):
        return "class map", _last_leaf(model, "head.maps.block")
    if _gap_linear(model) is not None:
        return "CAM", _last_leaf(model, "features")
    stages = getattr(model, "stage_names", None)
    if not stages:
        raise NinlabError(f"{type(model).__name__} has no stage_names to take a Grad-CAM from.")
    return "Grad-CAM", _last_leaf(model, stages[-1])


def class_activation_maps(
    model: nn.Module,
    x: torch.Tensor,
    classes: int | list[int] | None = None,
    foreground: torch.Tensor | None = None,
    field: Field | None = None,
) -> list[CAM]:
    """One CAM per image of x (N, C, H, W, preprocessed) for the given class(es); None: the
    predicted class of each image. foreground: (N, H, W) or (H, W) booleans, the objects'
    pixels of each image (`ninlab.data.backdrop.foreground`); with it, the strongest unit is
    chosen among those whose field centre lies on them (`units_on`). field: the receptive field
    of the map's layer at this input size, when the caller has it (else the model is traced
    for it, `receptive_field`: 0.15 s for nin_fast)."""
    method, layer = cam_method(model)
    masks = None
    if foreground is not None:
        masks = foreground[None].expand(len(x), -1, -1) if foreground.dim() == 2 else foreground
        if masks.shape != (len(x), *x.shape[2:]):
            raise NinlabError(
                f"the foreground masks are {tuple(foreground.shape)}, not one {x.shape[2]}x"
                f"{x.shape[3]} mask per image of the input; make them from the same pictures."
            )
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            logits = model(x)  # N x classes: the forward the maps are checked against
        n = len(x)
        pred = logits.argmax(1)
        if classes is None:
            cls = pred
        else:
            cls = torch.as_tensor([classes] * n if isinstance(classes, int) else classes)
            if len(cls) != n or not ((cls >= 0) & (cls < logits.shape[1])).all():
                raise NinlabError(
                    f"classes {cls.tolist()} do not fit {n} image(s) of a model with "
                    f"{logits.shape[1]} classes (0..{logits.shape[1] - 1})."
                )
        rows = torch.arange(n)
        relu_after = False
        linear = None
        if method == "class map":
            maps, relu_after, linear = _nin_maps(model, x, cls)
        elif method == "CAM":
            maps = _cam_maps(model, x, cls)
        else:
            maps = _grad_cam_maps(model, x, cls, layer)
    finally:
        model.train(was_training)
    field = field or receptive_field(model, layer, tuple(x.shape[1:]))
    probs = torch.softmax(logits.double(), 1)
    on = [None] * len(x)
    if masks is not None:
        on = [units_on(masks[k], field, tuple(maps.shape[1:])) for k in range(len(x))]
    return [
        CAM(
            method=method,
            layer=layer,
            class_index=int(cls[k]),
            map=maps[k],
            logit=float(logits[k, cls[k]]),
            prob=float(probs[k, cls[k]]),
            predicted=int(pred[k]),
            field=field,
            input_size=tuple(x.shape[2:]),
            relu_after=relu_after,
            linear_mean=None if linear is None else float(linear[k]),
            allowed=None if on[k] is None else on[k][0],
            reach=0 if on[k] is None else on[k][1],
        )
        for k in rows.tolist()
    ]


def class_activation_map(
    model: nn.Module,
    x: torch.Tensor,
    class_index: int | None = None,
    foreground: torch.Tensor | None = None,
    field: Field | None = None,
) -> CAM:
    """The CAM of one image x (1, C, H, W) for class_index (default: the predicted class); with
    foreground (H x W booleans), its strongest unit lies on the object (`units_on`); field as
    in `class_activation_maps`."""
    return class_activation_maps(model, x, class_index, foreground, field)[0]


def units_on(mask: torch.Tensor, field: Field, shape: tuple[int, int]) -> tuple[torch.Tensor, int]:
    """(h x w booleans, d): the units of an h x w map whose field centre lies within d pixels
    (Chebyshev) of the H x W boolean `mask`, for the least d at which any does: d = 0, the
    centre lies on the mask, for all but an object thinner than the gap between centres. A
    centre (r, c) lies on the pixels nearest it (floor and ceiling of r and of c, clipped to the
    image: 1, 2 or 4 of them). An empty mask allows every unit (d = 0)."""
    h, w = shape
    if not mask.any():
        return torch.ones(h, w, dtype=torch.bool), 0
    big, side = max(mask.shape), mask.float()[None, None]
    rows = torch.tensor([field.center(i, 0)[0] for i in range(h)])
    cols = torch.tensor([field.center(0, j)[1] for j in range(w)])
    near_r = [v.clamp(0, mask.shape[0] - 1).long() for v in (rows.floor(), rows.ceil())]
    near_c = [v.clamp(0, mask.shape[1] - 1).long() for v in (cols.floor(), cols.ceil())]
    for d in range(big):
        grown = F.max_pool2d(side, 2 * d + 1, 1, d)[0, 0].bool() if d else mask  # H x W
        on = torch.zeros(h, w, dtype=torch.bool)
        for r in near_r:
            for c in near_c:
                on |= grown[r][:, c]
        if on.any():
            return on, d
    return torch.ones(h, w, dtype=torch.bool), 0  # no centre near the image at all


@torch.no_grad()
def _nin_maps(model: NiN, x: torch.Tensor, cls: torch.Tensor):
    """N x h x w class maps; whether a ReLU follows the class conv; the pre-ReLU map means."""
    last = model.head.maps.block[-1]
    relu_after = isinstance(last, nn.ReLU)
    before = {}
    hook = last.register_forward_hook(lambda m, i, o: before.__setitem__("z", i[0].detach()))
    try:
        maps = model.class_maps(x)  # N x classes x h x w
    finally:
        hook.remove()
    rows = torch.arange(len(x))
    linear = before["z"][rows, cls].double().mean(dim=(1, 2)) if relu_after else None
    return maps[rows, cls], relu_after, linear


@torch.no_grad()
def _cam_maps(model: nn.Module, x: torch.Tensor, cls: torch.Tensor) -> torch.Tensor:
    fc = _gap_linear(model)
    f = model.forward_features(x)  # N x K x h x w
    w = fc.weight[cls]  # N x K
    b = fc.bias[cls] if fc.bias is not None else torch.zeros(len(x))
    return torch.einsum("nk,nkhw->nhw", w, f) + b[:, None, None]


def _grad_cam_maps(model: nn.Module, x: torch.Tensor, cls: torch.Tensor, layer: str):
    acts = {}
    hook = model.get_submodule(layer).register_forward_hook(
        lambda m, i, o: acts.__setitem__("f", o)
    )
    try:
        with torch.enable_grad():
            x = x.detach().requires_grad_(True)  # a graph even when the weights are frozen
            logits = model(x)
            score = logits[torch.arange(len(x)), cls].sum()  # images do not mix in eval mode
            (grad,) = torch.autograd.grad(score, acts["f"])
    finally:
        hook.remove()
    f = acts["f"].detach()  # N x K x h x w
    alpha = grad.mean(dim=(2, 3), keepdim=True)  # N x K x 1 x 1
    return F.relu((alpha * f).sum(1))  # N x h x w


BOX_MOST = 0.6  # a box over more than this share of the image says nothing about where: left out


def box_share(cam: CAM) -> float:
    """The share of the input's pixels inside the strongest unit's (clipped) box."""
    top, left, bottom, right = cam.box
    h, w = cam.input_size
    return (bottom - top) * (right - left) / (h * w)


def smallest_box_share(cam: CAM) -> float:
    """The least share of the image any unit's (clipped) box of this map covers: above
    BOX_MOST, no box of this model at this input size is ever drawn."""
    h, w = cam.input_size
    shares = []
    for i in range(cam.map.shape[0]):
        for j in range(cam.map.shape[1]):
            top, left, bottom, right = cam.field.box(i, j)
            rows = min(bottom, h) - max(top, 0)
            cols = min(right, w) - max(left, 0)
            shares.append(max(rows, 0) * max(cols, 0) / (h * w))
    return min(shares)


def peak_on_background(display, cam: CAM, tol: float = 0.05) -> bool:
    """Whether the map's maximum lies on background: every input pixel within half a jump of the
    strongest unit's field centre is within `tol` of the image border's median value."""
    x = torch.as_tensor(display, dtype=torch.float32)
    x = x if x.dim() == 2 else x.mean(-1)  # H x W
    border = torch.cat([x[0], x[-1], x[:, 0], x[:, -1]]).median()
    (r, c), (jr, jc) = cam.center, cam.field.jump
    h, w = x.shape
    rows = slice(max(int(r - jr / 2 + 0.5), 0), min(int(r + jr / 2 + 0.5), h - 1) + 1)
    cols = slice(max(int(c - jc / 2 + 0.5), 0), min(int(c + jc / 2 + 0.5), w - 1) + 1)
    patch = x[rows, cols]
    return patch.numel() > 0 and bool(((patch - border).abs() <= tol).all())


def boxes_shown(cams: list[CAM]) -> bool:
    """Whether a picture of these maps draws their boxes: only when none covers more than
    BOX_MOST of the image."""
    return all(box_share(c) <= BOX_MOST for c in cams)


def zhou_box(m: torch.Tensor, field: Field, window: tuple[int, int, int, int]):
    """Zhou et al.'s box (arXiv:1512.04150) of an h x w class map `m` over `window` (top, left,
    bottom, right in input pixels; so is the box): the map upsampled to pixels (bilinear, each
    unit at its field centre) over the window, scaled to [0, 1] there (minimum to maximum, as
    in their code), thresholded at CAM_THRESHOLD; the box of the largest 4-connected region."""
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
    a, b, c, d = regions(on, diagonal=False)[0]  # the first in raster order on a tie
    return top + a, left + b, top + c, left + d
