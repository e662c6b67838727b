"""Exact zeros after each ReLU: how sparse a network's feature maps are, layer by layer.

  zeros(layer)      = (outputs == 0) / outputs, over every position of every image
  zeros(layer, c)   = the same over channel c only
  dead channel      = a channel with zeros(layer, c) = 1: zero at every position of every image
Counts are integers, so "dead" is exact, not a threshold.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from ninlab.progress import bar as progress_bar


@dataclass
class LayerSparsity:
    """Zero counts of one ReLU's output."""

    name: str  # module name; "name#2" for a module's second call in one forward
    channel_zero_counts: list[int]  # per channel: outputs that are exactly 0
    per_channel: int  # outputs per channel (images x positions)

    @property
    def zeros(self) -> float:
        return sum(self.channel_zero_counts) / (self.per_channel * len(self.channel_zero_counts))

    @property
    def channel_zeros(self) -> list[float]:
        return [z / self.per_channel for z in self.channel_zero_counts]

    @property
    def dead(self) -> list[int]:
        """Channels that are zero on every image, at every position."""
        return [c for c, z in enumerate(self.channel_zero_counts) if z == self.per_channel]

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "zeros": self.zeros,
            "channels": len(self.channel_zero_counts),
            "dead": self.dead,
            "channel_zeros": self.channel_zeros,
        }


@torch.no_grad()
def relu_channel_sparsity(
    model: nn.Module,
    images: torch.Tensor,
    batch_size: int = 256,
    transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    progress: str | None = None,
) -> list[LayerSparsity]:
    """Zero counts per channel after every nn.ReLU, in the order they run, over all `images`.

    `images` are model inputs, or raw images that `transform` turns into inputs batch by batch
    (e.g. `run.preprocess`, so that a whole test set never sits in memory as floats). The channel
    is dim 1 of the ReLU's output ((N, C, H, W) or (N, C)); names follow `relu_sparsity`.
    progress: the description of a progress bar (shown on a terminal), or None for none.
    """
    names = {id(m): name for name, m in model.named_modules()}
    counts: dict[str, torch.Tensor] = {}
    per_channel: dict[str, int] = {}
    calls: dict[int, int] = {}

    def hook(m, inputs, out):
        calls[id(m)] = calls.get(id(m), 0) + 1
        k = calls[id(m)]
        key = names[id(m)] + (f"#{k}" if k > 1 else "")
        o = out.reshape(out.shape[0], out.shape[1] if out.dim() > 1 else 1, -1)  # N x C x hw
        z = (o == 0).sum(dim=(0, 2))  # C
        counts[key] = counts[key] + z if key in counts else z
        per_channel[key] = per_channel.get(key, 0) + o.shape[0] * o.shape[2]

    hooks = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.ReLU)]
    was_training = model.training
    model.eval()
    bar = progress_bar(len(images), progress or "", "img", progress is not None)
    try:
        with bar:
            for i in range(0, len(images), batch_size):
                calls.clear()
                x = images[i : i + batch_size]
                model(transform(x) if transform else x)
                bar.update(len(x))
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()
    return [LayerSparsity(k, counts[k].tolist(), per_channel[k]) for k in counts]


def relu_sparsity(
    model: nn.Module, images: torch.Tensor, batch_size: int = 64
) -> list[tuple[str, float]]:
    """Fraction of exact zeros in the output of every nn.ReLU, in the order they run: (name,
    zeros(layer)) over all of `images` (model inputs, (N, C, H, W)); see relu_channel_sparsity."""
    return [(s.name, s.zeros) for s in relu_channel_sparsity(model, images, batch_size)]
