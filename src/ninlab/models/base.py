"""The surface every ninlab classifier shares: features, head, feature_info, default input."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from ninlab.errors import NinlabError


class Classifier(nn.Module):
    """features (conv stack) -> head (to logits), like timm's models.

    Subclasses set `self.features` (an nn.Sequential whose named children include the stages
    listed in `stage_names`), `self.head`, and `self.default_input_size` (C, H, W).
    """

    default_input_size: tuple[int, int, int]
    stage_names: tuple[str, ...]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The conv stack: (N, C, H, W) images -> (N, C', H', W') maps."""
        try:
            return self.features(x)
        except RuntimeError:
            self.check_input_size(x)  # one sentence when the size is why; free when it runs
            raise

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        """The head: feature maps -> (N, num_classes) logits."""
        return self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) images -> (N, num_classes) logits."""
        try:
            return self.forward_head(self.forward_features(x))
        except RuntimeError:
            self.check_input_size(x)  # an FC head fails here on a size it was not built for
            raise

    def get_classifier(self) -> nn.Module:
        """The module that maps features to logits (timm's name for it)."""
        return self.head

    def input_sides(self) -> tuple[int, int | None] | None:
        """Smallest and largest square side the model runs on (largest None: no limit, as with
        a GAP head), or None when not even the default size runs.

        Found once by running zeros through it in eval mode: every layer's output size grows
        with its input size, so the sides that run form one band around the default side, and
        bisection finds its ends (about 2 log2(side) small forward passes)."""
        if not hasattr(self, "_input_sides"):
            self._input_sides = _probe_sides(self)
        return self._input_sides

    def check_input_size(self, x: torch.Tensor) -> None:
        """Raise one NinlabError saying which sizes work when x's height or width is outside the
        band of `input_sides`; otherwise return (the caller's own error then stands)."""
        sides = self.input_sides() if x.dim() == 4 else None
        if sides is None:
            return
        (lo, hi), (h, w) = sides, x.shape[-2:]
        if min(h, w) >= lo and (hi is None or max(h, w) <= hi):
            return
        name, side = getattr(self, "model_name", type(self).__name__), self.default_input_size[-1]
        takes = f"inputs of {lo} px or more a side" if hi is None else f"{lo} to {hi} px a side"
        if hi is not None:
            takes = "its fully-connected head takes " + (f"{lo} px only" if hi == lo else takes)
        raise NinlabError(
            f"{name} cannot run on a {h}x{w} input: {'it takes ' * (hi is None)}{takes} "
            f"({side} by default); resize the images to {side} px first."
        ) from None

    @property
    def any_input_size(self) -> bool:
        """Whether any input size works: the head pools over all positions (GAP) instead of
        flattening a map of one size into a Linear layer."""
        return not any(isinstance(m, nn.Flatten) for m in self.head.modules())

    @property
    def feature_info(self) -> list[dict]:
        """Per stage: module name, output channels and total stride (reduction) at default input."""
        if not hasattr(self, "_feature_info"):
            self._feature_info = _trace_stages(self)
        return self._feature_info


def side_band(fits: Callable[[int], bool], ref: int, top: int) -> tuple[int, int]:
    """(smallest, largest) square side s <= top with fits(s), given fits(ref). Every layer's
    output grows with its input, so the sides that fit form one band around ref: bisected on
    each side of it (about 2 log2(top) calls)."""
    bad, ok = 0, ref  # smallest: bad < lo <= ok
    while ok - bad > 1:
        mid = (ok + bad) // 2
        bad, ok = (bad, mid) if fits(mid) else (mid, ok)
    lo = ok
    if fits(top):
        return lo, top
    ok, bad = ref, top  # largest: ok <= hi < bad
    while bad - ok > 1:
        mid = (ok + bad) // 2
        ok, bad = (mid, bad) if fits(mid) else (ok, mid)
    return lo, ok


def _probe_sides(model: Classifier) -> tuple[int, int | None] | None:
    c, side = model.default_input_size[0], model.default_input_size[-1]
    p = next(model.parameters())
    modes = [(m, m.training) for m in model.modules()]

    def runs(s: int) -> bool:
        try:  # the unguarded path: a failure here is an answer, not an error to explain
            model.forward_head(
                model.features(torch.zeros(1, c, s, s, dtype=p.dtype, device=p.device))
            )
        except RuntimeError:
            return False
        return True

    try:
        model.eval()  # batch norm in training mode refuses a 1x1 map of one image
        with torch.no_grad():
            if not runs(side):
                return None
            lo, hi = side_band(runs, side, 2 * side)
            # pooled over all positions, or runs at twice its side: no largest side
            return (lo, None) if model.any_input_size or hi == 2 * side else (lo, hi)
    finally:
        for m, training in modes:
            m.training = training


def _trace_stages(model: Classifier) -> list[dict]:
    c, h, w = model.default_input_size
    shapes: dict[str, tuple] = {}
    hooks = [
        model.get_submodule(name).register_forward_hook(
            lambda m, i, o, name=name: shapes.__setitem__(name, tuple(o.shape))
        )
        for name in model.stage_names
    ]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, c, h, w))
    finally:
        model.train(was_training)
        for hook in hooks:
            hook.remove()
    return [
        {"module": name, "num_chs": shapes[name][1], "reduction": h / shapes[name][2]}
        for name in model.stage_names
    ]
