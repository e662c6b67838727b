"""Exact zeros after each ReLU: how sparse a trained network's feature maps are, layer by layer."""

from __future__ import annotations

import torch
from torch import nn


@torch.no_grad()
def relu_sparsity(
    model: nn.Module, images: torch.Tensor, batch_size: int = 64
) -> list[tuple[str, float]]:
    """Fraction of exact zeros in the output of every nn.ReLU, in the order they run.

    fraction = (number of output elements == 0) / (number of output elements), over all of
    `images` (already preprocessed, (N, C, H, W)). A ReLU module called twice in one forward
    (ResNet blocks reuse theirs) gives one entry per call, named "name#2", "name#3", ...
    """
    names = {id(m): name for name, m in model.named_modules()}
    zeros: dict[str, int] = {}
    totals: dict[str, int] = {}
    calls: dict[int, int] = {}

    def hook(m, inputs, out):
        calls[id(m)] = calls.get(id(m), 0) + 1
        k = calls[id(m)]
        key = names[id(m)] + (f"#{k}" if k > 1 else "")
        zeros[key] = zeros.get(key, 0) + int((out == 0).sum())
        totals[key] = totals.get(key, 0) + out.numel()

    hooks = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.ReLU)]
    was_training = model.training
    model.eval()
    try:
        for i in range(0, len(images), batch_size):
            calls.clear()
            model(images[i : i + batch_size])
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()
    return [(key, zeros[key] / totals[key]) for key in totals]
