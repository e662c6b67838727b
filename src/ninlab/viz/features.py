"""Feature maps of one image, stage by stage, as one picture.

A stage is one entry of the model's `stage_names` (for a NiN: each mlpconv block's output, the
last one being the class maps). Each stage becomes a grid of its channels, strongest first
(ordered by the channel's mean activation over the map), on one colour scale per stage so that
the channels of a stage can be compared; the input image stands to the left of the grids.

Given the class names, the class maps (the last stage, with one channel per class) are drawn as
tiles labelled with their class and mean: for a NiN whose head is the class maps then global
average pooling, that mean is the class's logit, so the strongest tile is the prediction.
Every text is at least 9 pt (12.5 px in the PNG at 100 dpi, see `ninlab.plotting`).
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib
import torch
from matplotlib.figure import Figure

from ninlab.analysis.stages import class_map_stage
from ninlab.plotting import save_png


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


FONT = 9  # points: the smallest text of the figure (12.5 px at 100 dpi)
WIDTH = 11.0  # inches of the whole figure
GRIDS = 0.72 * WIDTH  # inches the grids column gets, about (its width ratio 3:1, less margins)
LABEL = 0.45  # inches above a class tile for its two label lines at FONT
TEXT_WIDTH = FONT * 0.6 / 72  # inches per character of FONT, about, in DejaVu Sans
CMAP = matplotlib.colormaps["viridis"].with_extremes(bad="white")  # the gaps between tiles


def features_figure(
    display,
    outputs: dict[str, torch.Tensor],
    max_channels: int = 32,
    title="",
    classes: list[str] | None = None,
):
    """The figure: the input (display: (H, W) or (H, W, 3) in [0, 1]) left, one grid per stage.

    `outputs` are the stage outputs of that one image, each (1, C, h, w). With `classes`, the
    class maps (see `class_map_stage`) are tiles labelled with the class over its map's mean
    ("Ankle boot" over "2.31"), strongest first.
    """
    class_stage = class_map_stage(outputs, classes)
    rows = []  # (name, maps (C, h, w), height / width of the row's drawing)
    for name, out in outputs.items():
        if out.dim() != 4:  # a stage after flattening has no map to show
            continue
        c, h, w = out.shape[1:]
        if name == class_stage:
            r, k = _tile_layout(min(c, max_channels))
            ratio = r * (h / (w * k) + LABEL / GRIDS)  # tiles GRIDS / k wide, each with a label
        else:
            grid, _ = channel_grid(out[0], max_channels)
            ratio = max(grid.shape[0] / grid.shape[1], 0.08)
        rows.append((name, out[0], ratio))
    height = 0.6 + sum(GRIDS * r + 0.4 for _, _, r in rows)
    fig = Figure(figsize=(WIDTH, max(height, 3.0)))
    gs = fig.add_gridspec(len(rows), 2, width_ratios=[1, 3], height_ratios=[r for *_, r in rows])
    ax = fig.add_subplot(gs[:, 0])
    ax.imshow(display, cmap="gray", vmin=0, vmax=1)
    ax.set_title("input", fontsize=FONT)
    ax.axis("off")
    for row, (name, maps, _) in enumerate(rows):
        if name == class_stage:
            _draw_class_tiles(fig, gs[row, 1], name, maps, classes, max_channels)
        else:
            _draw_grid(fig.add_subplot(gs[row, 1]), name, maps, max_channels)
    if title:
        fig.suptitle(title, fontsize=FONT + 1)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.15 / fig.get_figheight()))  # a gap under the title
    return fig


def _tile_layout(n: int, most: int = 8) -> tuple[int, int]:
    """(rows, columns) for n tiles, at most `most` a row, rows as even as they go (10: 2 x 5)."""
    r = math.ceil(n / most)
    return r, math.ceil(n / r)


def value_range(values: torch.Tensor) -> tuple[float, float]:
    """(lowest, highest) of the values that are not NaN."""
    finite = values[~values.isnan()]
    return float(finite.min()), float(finite.max())


def _imshow(ax, image: torch.Tensor, lo: float, hi: float) -> None:
    """Draw on the colour scale lo..hi (a constant image gets a unit span, so it shows)."""
    ax.imshow(image.numpy(), cmap=CMAP, vmin=lo, vmax=hi if hi > lo else lo + 1)
    ax.axis("off")


def _shown(n: int, c: int) -> str:
    return f"{n} of {c}" if n < c else f"all {c}"


def _draw_grid(ax, name: str, maps: torch.Tensor, max_channels: int) -> None:
    """One stage as one image: its channels tiled, strongest first, on one colour scale."""
    grid, order = channel_grid(maps, max_channels)
    lo, hi = value_range(grid)
    _imshow(ax, grid, lo, hi)
    c, h, w = maps.shape
    ax.set_title(
        f"{name}  {c}x{h}x{w}  ({_shown(len(order), c)} channels, strongest first; "
        f"range {lo:.2g}..{hi:.2g})",
        fontsize=FONT,
        loc="left",
    )


def _draw_class_tiles(
    fig: Figure, spec, name: str, maps: torch.Tensor, classes: list[str], max_channels: int
) -> None:
    """The class maps as one small image per class, labelled with the class name and the map's
    mean, strongest first, all on one colour scale; a title row above them."""
    c, h, w = maps.shape
    order = maps.float().mean(dim=(1, 2)).argsort(descending=True, stable=True)[:max_channels]
    r, k = _tile_layout(len(order))
    tile = GRIDS / k  # inches, about, of a tile's width
    # hspace is a fraction of the mean row height: leave LABEL inches above each tile row
    sub = spec.subgridspec(r + 1, k, height_ratios=[0.01] + [1] * r, hspace=LABEL / (tile * h / w))
    head = fig.add_subplot(sub[0, :])
    head.axis("off")
    lo, hi = value_range(maps[order].float())
    head.set_title(
        f"{name}  {c}x{h}x{w}  class maps ({_shown(len(order), c)}, strongest mean first; "
        f"one scale {lo:.2g}..{hi:.2g})",
        fontsize=FONT,
        loc="left",
    )
    most = max(int(tile / TEXT_WIDTH), 6)  # characters that fit over a tile
    for t, ch in enumerate(order.tolist()):
        i, j = divmod(t, k)
        ax = fig.add_subplot(sub[1 + i, j])
        _imshow(ax, maps[ch].float(), lo, hi)
        label = classes[ch] if len(classes[ch]) <= most else classes[ch][: most - 1] + "…"
        ax.set_title(f"{label}\n{maps[ch].float().mean().item():.2f}", fontsize=FONT)


def plot_features(
    display,
    outputs: dict[str, torch.Tensor],
    path: str | Path,
    max_channels: int = 32,
    title="",
    classes: list[str] | None = None,
) -> Path:
    """Write the feature-map figure as a PNG; returns the path."""
    return save_png(features_figure(display, outputs, max_channels, title, classes), path)
