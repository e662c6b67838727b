"""Feature maps stage by stage: the output of every stage of a model for an input, the stage
that holds the class maps, and the classes whose maps are strongest (drawn by
`ninlab.viz.features`)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


@torch.no_grad()
def stage_outputs(
    model: nn.Module, x: torch.Tensor, names: Sequence[str] | None = None
) -> dict[str, torch.Tensor]:
    """Output of every stage in `model.stage_names` (or of the modules named in `names`) for
    input x (N, C, H, W), in forward order; one forward pass. Each output is copied as it is
    made, so a later in-place ReLU does not change a batch norm's."""
    outputs: dict[str, torch.Tensor] = {}
    hooks = [
        model.get_submodule(name).register_forward_hook(
            lambda m, i, o, name=name: outputs.__setitem__(name, o.detach().clone())
        )
        for name in (model.stage_names if names is None else names)
    ]
    was_training = model.training
    model.eval()
    try:
        model(x)
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()
    return outputs


def class_map_stage(outputs: dict[str, torch.Tensor], classes: list[str] | None) -> str | None:
    """The stage holding the class maps: the last one, when its output (N, C, h, w) has one
    channel per class (C = len(classes)); None when there are no classes or no such stage."""
    if not classes or not outputs:
        return None
    name, out = list(outputs.items())[-1]
    return name if out.dim() == 4 and out.shape[1] == len(classes) else None


def strongest_classes(
    maps: torch.Tensor, classes: list[str], k: int = 3
) -> list[tuple[str, float]]:
    """(class, mean of its map) for the k classes whose maps (C, h, w), one per class, have the
    largest mean, strongest first; for a NiN that mean is the class's logit."""
    means = maps.float().mean(dim=(1, 2))
    order = means.argsort(descending=True, stable=True)[:k]
    return [(classes[c], means[c].item()) for c in order.tolist()]
