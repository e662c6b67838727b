"""Feature maps of one image, stage by stage, as one picture.

A stage is one entry of the model's `stage_names` (for a NiN: each mlpconv block's output, the
last one being the class maps). Each stage becomes a grid of its channels, strongest first
(ordered by the channel's mean activation over the map), on one colour scale per stage so that
the channels of a stage can be compared; the input image stands to the left of the grids.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib
import torch
from matplotlib.figure import Figure
from torch import nn

from ninlab.plotting import save_png


@torch.no_grad()
def stage_outputs(model: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Output of every stage in `model.stage_names` for input x (N, C, H, W), in forward order."""
    outputs: dict[str, torch.Tensor] = {}
    hooks = [
        model.get_submodule(name).register_forward_hook(
            lambda m, i, o, name=name: outputs.__setitem__(name, o.detach())
        )
        for name in model.stage_names
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


def channel_grid(
    maps: torch.Tensor, max_channels: int = 32, cols: int = 8
) -> tuple[torch.Tensor, torch.Tensor]:
    """Tile the channels of one image's maps (C, h, w), strongest mean activation first.

    Returns (grid, order): grid is (R h + R - 1, K w + K - 1) with K = min(cols, n) columns and
    R = ceil(n / K) rows of n = min(C, max_channels) tiles, one NaN pixel between tiles (drawn as
    background); order holds the channel index of each tile.
    """
    c, h, w = maps.shape
    order = maps.float().mean(dim=(1, 2)).argsort(descending=True, stable=True)[:max_channels]
    n = len(order)
    k = min(cols, n)
    r = math.ceil(n / k)
    grid = torch.full((r * (h + 1) - 1, k * (w + 1) - 1), float("nan"))
    for t, ch in enumerate(order.tolist()):
        i, j = divmod(t, k)
        grid[i * (h + 1) : i * (h + 1) + h, j * (w + 1) : j * (w + 1) + w] = maps[ch].float()
    return grid, order


def features_figure(display, outputs: dict[str, torch.Tensor], max_channels: int = 32, title=""):
    """The figure: the input (display: (H, W) or (H, W, 3) in [0, 1]) left, one grid per stage.

    `outputs` are the stage outputs of that one image, each (1, C, h, w).
    """
    grids = []
    for name, out in outputs.items():
        if out.dim() != 4:  # a stage after flattening has no map to show
            continue
        grid, order = channel_grid(out[0], max_channels)
        grids.append((name, out.shape[1:], grid, order))
    ratios = [max(g.shape[0] / g.shape[1], 0.08) for _, _, g, _ in grids]
    width = 11.0
    height = 0.6 + sum(width * 0.72 * r + 0.35 for r in ratios)
    fig = Figure(figsize=(width, max(height, 3.0)))
    gs = fig.add_gridspec(len(grids), 2, width_ratios=[1, 3], height_ratios=ratios)
    ax = fig.add_subplot(gs[:, 0])
    ax.imshow(display, cmap="gray", vmin=0, vmax=1)
    ax.set_title("input", fontsize=9)
    ax.axis("off")
    cmap = matplotlib.colormaps["viridis"].with_extremes(bad="white")  # the gaps between tiles
    for row, (name, shape, grid, order) in enumerate(grids):
        ax = fig.add_subplot(gs[row, 1])
        finite = grid[~grid.isnan()]
        lo, hi = float(finite.min()), float(finite.max())
        ax.imshow(grid.numpy(), cmap=cmap, vmin=lo, vmax=hi if hi > lo else lo + 1)
        shown = f"{len(order)} of {shape[0]}" if len(order) < shape[0] else f"all {shape[0]}"
        ax.set_title(
            f"{name}  {shape[0]}x{shape[1]}x{shape[2]}  ({shown} channels, strongest first; "
            f"range {lo:.2g}..{hi:.2g})",
            fontsize=8,
            loc="left",
        )
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def plot_features(
    display, outputs: dict[str, torch.Tensor], path: str | Path, max_channels: int = 32, title=""
) -> Path:
    """Write the feature-map figure as a PNG; returns the path."""
    return save_png(features_figure(display, outputs, max_channels, title), path)
