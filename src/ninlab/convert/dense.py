"""Fully-connected heads as convolutions: dense class-score grids and the sliding-window check.

`convolutionalize` rewrites a classifier so that every Flatten -> Linear chain is a convolution
(FCN, Long et al. 2015; OverFeat, Sermanet et al. 2013). On the training size the result's
grid is 1x1 and equals the logits; on a larger image it is a grid of class scores, one per
crop of the training size, taken every `stride` pixels.

Global average pooling over an h0 x w0 map is an h0 x w0 average pool: `convolutionalize` turns
it into `AvgPool2d((h0, w0), stride=1)` (the "window"), and moves the Linear layers after it in
front of it as 1x1 convs (they commute with a mean: mean(Wx + b) = W mean(x) + b). So a NiN's
or a CAM net's `class_maps` are the per-pixel class scores, and the grid averages them over
each crop's window.
"""

from __future__ import annotations

import copy
import math
from collections import OrderedDict
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ninlab.analysis import working_sizes
from ninlab.convert.chains import Slot, chain
from ninlab.convert.linear import fc_to_conv, linear_to_conv1x1
from ninlab.models.layers import ELEMENTWISE, GlobalAvgPool, pair

_AFFINE = (nn.Dropout, nn.Dropout2d, nn.Identity)  # commute with a mean over a window
_SPATIAL = (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)


class DenseClassifier(nn.Module):
    """A classifier rewritten as convolutions: (N, C, H, W) -> class-score grid (N, K, h, w).

    On `default_input_size` the grid is 1x1 and `logits(x)` equals the original model's logits.
    On a larger input grid cell (i, j) scores the crop of the default size starting at pixel
    (i * stride, j * stride) (exactly so under the conditions of `check_sliding_window`).
    """

    def __init__(
        self,
        layers: OrderedDict[str, nn.Module],
        input_size: tuple[int, int, int],
        stride: int,
        window: str | None,
    ):
        super().__init__()
        self.layers = nn.Sequential(layers)
        self.default_input_size = tuple(input_size)
        self.stride = stride
        self.window = window

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)  # N x K x h x w

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Mean of the grid: the original logits on the default size, else the crops' mean."""
        return self(x).mean(dim=(2, 3))

    def smallest_side(self) -> int:
        """The smallest square input side whose grid is at least 1x1; below it PyTorch raises
        and onnxruntime returns an empty grid. Found once, from shapes alone, by
        `ninlab.analysis.working_sizes` (a bisection up to the default side)."""
        if not hasattr(self, "_smallest_side"):
            c, h, _ = self.default_input_size
            self._smallest_side = (working_sizes(self, c, limit=h) or (h, h))[0]
        return self._smallest_side

    def class_maps(self, x: torch.Tensor) -> torch.Tensor:
        """Scores before the window average: (N, K, h', w') at the stride of the conv stack.

        For a GAP model (NiN, vgg_gap) these are the per-pixel class maps; for an FC model they
        are the grid itself.
        """
        for name, layer in self.layers.named_children():
            if name == self.window:
                break
            x = layer(x)
        return x


def convolutionalize(
    model: nn.Module, input_shape: tuple[int, int, int] | None = None
) -> DenseClassifier:
    """A copy of `model` in which every Flatten -> Linear chain is a convolution.

    The first Linear after a Flatten of a C x H x W map becomes an H x W conv (`fc_to_conv`),
    each later Linear a 1x1 conv; global average (max) pooling over an h0 x w0 map becomes an
    h0 x w0 average (max) pool with stride 1. `input_shape` (C, H, W) is the size the model was
    trained at (default: its `default_input_size`). Raises ValueError naming the layer when a
    Linear does not follow a Flatten, does not fit the flattened size, or a layer after the
    Flatten is not one that acts on each number alone.
    """
    input_shape = tuple(input_shape or model.default_input_size)
    model = copy.deepcopy(model).eval()
    slots = chain(model, descend=_holds_head)
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    mode = "spatial"  # then "flat" after a Flatten, "pooled" after a global pool
    window: tuple[str, nn.Module] | None = None  # a global pool not yet placed
    window_name = None
    flat_shape = None
    stride = 1
    p = next(model.parameters(), None)
    x = torch.zeros(1, *input_shape, dtype=p.dtype if p is not None else torch.float32)
    with torch.no_grad():
        for slot in slots:
            m, key = slot.module, slot.name.replace(".", "_")
            if mode == "spatial":
                if isinstance(m, nn.Linear):
                    raise ValueError(
                        f"layer {slot.name!r} (Linear) receives a {x.dim()}-D input "
                        f"{tuple(x.shape)} and does not follow a Flatten, so it is not a "
                        f"fully-connected layer on a feature map."
                    )
                if isinstance(m, nn.Flatten):
                    _check_flatten(slot, x)
                    mode, flat_shape = "flat", tuple(x.shape[1:])
                elif (pool := _global_pool(m, x)) is not None:
                    mode = "pooled"
                    if pool[1]:
                        window = ("window", pool[0])
                    else:  # a max does not commute with a Linear: pool here
                        window_name = key
                        layers[key] = pool[0]
                else:
                    stride *= _stride(m, x, slot)
                    layers[key] = m
                x = _run(slot, m, x)
                continue
            if isinstance(m, nn.Flatten) and mode == "pooled":
                x = _run(slot, m, x)
                continue
            if isinstance(m, nn.Linear):
                if flat_shape is not None:
                    if m.in_features != math.prod(flat_shape):
                        c, h, w = flat_shape
                        raise ValueError(
                            f"layer {slot.name!r} has in_features={m.in_features} but the "
                            f"Flatten before it gives {c}x{h}x{w} = {c * h * w} at input "
                            f"{'x'.join(map(str, input_shape))}; pass the input size the "
                            f"model was trained at."
                        )
                    layers[key] = fc_to_conv(m, flat_shape)
                    flat_shape = None
                else:
                    layers[key] = linear_to_conv1x1(m)
            elif isinstance(m, ELEMENTWISE):
                if window is not None and not isinstance(m, _AFFINE):
                    window_name = key + "_window"
                    layers[window_name] = window[1]  # a non-linearity does not commute with a mean
                    window = None
                layers[key] = m
            else:
                where = "a Flatten" if mode == "flat" else "global pooling"
                raise ValueError(
                    f"layer {slot.name!r} ({type(m).__name__}) after {where} is not supported; "
                    f"convolutionalize handles Linear, Dropout and pointwise activations there."
                )
            x = _run(slot, m, x)
    if mode == "flat" and flat_shape is not None:
        raise ValueError("the model ends in a Flatten with no Linear after it; nothing to convert.")
    if window is not None:
        window_name = "window"
        layers[window_name] = window[1]
    return DenseClassifier(layers, input_shape, stride, window_name)


@dataclass
class SlidingWindowCheck:
    """What `check_sliding_window` compared and found."""

    stride: int  # pixels between grid cells
    crop: tuple[int, int]  # crop size (the model's default input)
    grid: tuple[int, int]  # the dense grid's cells (h, w)
    compared: int  # cells compared with a crop
    max_abs_diff: float  # over all compared cells and classes
    scale: float  # max |score| of the crops, for a relative reading
    exact: bool  # whether equality is guaranteed (see `check_sliding_window`)
    reason: str  # why it is or is not

    def ok(self, atol: float = 1e-5, rtol: float = 1e-5) -> bool:
        """Exact and |dense - crop| <= atol + rtol * max|crop score|."""
        return self.exact and self.max_abs_diff <= atol + rtol * self.scale


@torch.no_grad()
def check_sliding_window(
    model: nn.Module, conv_model: DenseClassifier, image: torch.Tensor, batch: int = 16
) -> SlidingWindowCheck:
    """Compare each cell of `conv_model(image)` with `model` on the matching crop.

    Cell (i, j) is compared with the model's scores on the crop of size `default_input_size`
    starting at (i * s, j * s), s = `conv_model.stride`, for every crop that lies in the image.

    When equality is exact: the dense evaluation and a crop's own evaluation see the same
    numbers at every layer only if no layer pads (zero padding, or ceil_mode pooling, which
    reads past the edge). A crop then sees zeros at its edges where the full image has pixels,
    and every cell differs (a border effect, not a conversion error). One case is rescued:
    zero padding p in the very first layer (lenet_fc's conv1). Padding the whole image by p
    and evaluating crops of size S + 2p with that layer's padding removed is exactly what the
    model computes on a crop whose padding ring holds the real neighbouring pixels (zeros
    only at the image's own border); that is what is compared then. `exact` says whether
    these conditions hold; `max_abs_diff` is measured either way.
    """
    if image.dim() == 3:
        image = image[None]
    model = copy.deepcopy(model).eval()
    conv_model = conv_model.eval()
    grid = conv_model(image)  # 1 x K x gh x gw
    _, _, height, width = image.shape
    _, ch, cw = conv_model.default_input_size
    s = conv_model.stride
    exact, reason, first_pad = _exactness(model)
    crop_h, crop_w = ch, cw
    if first_pad:
        name, conv = first_pad
        pad = conv.padding
        conv.padding = (0, 0)
        image = F.pad(image, (pad[1], pad[1], pad[0], pad[0]))
        crop_h, crop_w = ch + 2 * pad[0], cw + 2 * pad[1]
    cells = [
        (i, j)
        for i in range(grid.shape[2])
        for j in range(grid.shape[3])
        if i * s + ch <= height and j * s + cw <= width
    ]
    diff, scale = 0.0, 0.0
    for k in range(0, len(cells), batch):
        part = cells[k : k + batch]
        crops = torch.cat(
            [image[:, :, i * s : i * s + crop_h, j * s : j * s + crop_w] for i, j in part]
        )
        ref = model(crops)  # B x K
        got = torch.stack([grid[0, :, i, j] for i, j in part])  # B x K
        diff = max(diff, (got - ref).abs().max().item())
        scale = max(scale, ref.abs().max().item())
    return SlidingWindowCheck(
        stride=s,
        crop=(ch, cw),
        grid=(grid.shape[2], grid.shape[3]),
        compared=len(cells),
        max_abs_diff=diff,
        scale=scale,
        exact=exact,
        reason=reason,
    )


def _exactness(model: nn.Module) -> tuple[bool, str, tuple[str, nn.Conv2d] | None]:
    slots = chain(model)
    padded = []
    for k, slot in enumerate(slots):
        for sub_name, m in slot.module.named_modules():
            if isinstance(m, _SPATIAL) and (_pads(m) or getattr(m, "ceil_mode", False)):
                padded.append((k, f"{slot.name}.{sub_name}".rstrip("."), m))
    if not padded:
        return True, "no layer pads, so every crop sees what the dense evaluation sees", None
    k, name, m = padded[0]
    if (
        len(padded) == 1
        and k == 0
        and isinstance(m, nn.Conv2d)
        and m.padding_mode == "zeros"
        and isinstance(m.padding, tuple)
    ):
        return (
            True,
            f"only the first layer {name!r} pads, so crops of the zero-padded image are compared",
            (name, m),
        )
    if (
        k == 0 and isinstance(m, nn.Conv2d) and len(padded) > 1
    ):  # the first layer alone could be rescued
        k, name, m = padded[1]
    how = "ceil_mode reads past its edge" if getattr(m, "ceil_mode", False) else "zeros"
    return (
        False,
        f"{name!r} ({type(m).__name__}) pads its input ({how}), so a crop sees padding where "
        f"the full image has pixels (a border effect)",
        None,
    )


def _pads(m: nn.Module) -> bool:
    p = m.padding
    if isinstance(p, str):
        return p != "valid"
    return any(v > 0 for v in (p if isinstance(p, tuple) else (p,)))


def _holds_head(seq: nn.Sequential) -> bool:
    """Whether a Sequential holds a Flatten, a Linear or a global pool (so must be opened)."""
    heads = (nn.Flatten, nn.Linear, GlobalAvgPool, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)
    return any(isinstance(m, heads) for m in seq.modules())


def _global_pool(m: nn.Module, x: torch.Tensor) -> tuple[nn.Module, bool] | None:
    """(the h0 x w0 window pool equal to `m` on this input, whether a Linear commutes with it)."""
    if x.dim() != 4:
        return None
    hw = tuple(x.shape[2:])
    if isinstance(m, GlobalAvgPool):
        return nn.AvgPool2d(hw, stride=1), True
    if isinstance(m, nn.AdaptiveAvgPool2d | nn.AdaptiveMaxPool2d) and pair(m.output_size) == (
        1,
        1,
    ):
        if isinstance(m, nn.AdaptiveAvgPool2d):
            return nn.AvgPool2d(hw, stride=1), True
        return nn.MaxPool2d(hw, stride=1), False
    return None


def _check_flatten(slot: Slot, x: torch.Tensor) -> None:
    m = slot.module
    if x.dim() != 4 or m.start_dim != 1 or m.end_dim not in (-1, 3):
        raise ValueError(
            f"layer {slot.name!r} ({m!r}) does not flatten a (N, C, H, W) map into (N, C*H*W), "
            f"so the Linear after it cannot become a convolution."
        )


def _stride(m: nn.Module, x: torch.Tensor, slot: Slot) -> int:
    if isinstance(m, _SPATIAL):
        return pair(m.stride)[0]
    if isinstance(m, nn.Sequential):
        out = 1
        for child in m:
            out *= _stride(child, x, slot)
            x = child(x)
        return out
    y = m(x)
    return max(1, round(x.shape[2] / y.shape[2])) if y.dim() == 4 else 1


def _run(slot: Slot, m: nn.Module, x: torch.Tensor) -> torch.Tensor:
    try:
        return m(x)
    except RuntimeError as e:
        msg = str(e).splitlines()[0].rstrip(".")
        raise ValueError(
            f"layer {slot.name!r} ({type(m).__name__}) fails on a {tuple(x.shape)} input "
            f"({msg}); pass the input size the model was trained at."
        ) from None
