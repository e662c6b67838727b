"""The surface every ninlab classifier shares: features, head, feature_info, default input."""

from __future__ import annotations

import torch
from torch import nn


class Classifier(nn.Module):
    """features (conv stack) -> head (to logits), like timm's models.

    Subclasses set `self.features` (an nn.Sequential whose named children include the stages
    listed in `stage_names`), `self.head`, and `self.default_input_size` (C, H, W).
    """

    default_input_size: tuple[int, int, int]
    stage_names: tuple[str, ...]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def get_classifier(self) -> nn.Module:
        return self.head

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
