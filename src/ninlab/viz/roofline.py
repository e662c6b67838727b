"""A training step's profile drawn (`ninlab.train.profile.Profile`): the roofline with each layer
that does arithmetic as a point, and beside it where the step's time goes, layer by layer (the
layers without FLOPs, batch norm, ReLU and pooling, have no place on a roofline's log axes but
do take time). Every text is at least 9 pt (12.5 px in the PNG at 100 dpi, see
`ninlab.plotting`).
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np

from ninlab.plotting import figure, plain_log_ticks, save_png
from ninlab.train.profile import LayerProfile, Profile

FONT = 9  # points: the smallest text of the figure
COLOURS = {"1x1 conv": "C3", "kxk conv": "C0", "other": "C7"}  # what kind of layer, its colour


def _group(layer: LayerProfile) -> str:
    if layer.is_1x1:
        return "1x1 conv"
    return "kxk conv" if layer.type.startswith("Conv") else "other"


def draw_roofline(ax, p: Profile, worst: int = 3) -> None:
    """Achieved GFLOP/s against FLOP per byte on log axes under the roof min(peak, intensity x
    bandwidth); a point's area is its share of the step's time; the `worst` layers with FLOPs
    (most time lost against the roof) are named in the legend."""
    points = [lay for lay in p.layers if lay.flops and lay.seconds]
    xs = np.array([lay.intensity for lay in points] + [p.ridge])
    grid = np.geomspace(max(xs.min() / 4, 0.05), xs.max() * 4, 200)
    ax.plot(grid, [p.attainable(i) for i in grid], "k-", lw=1.5,
            label=f"roof: {p.peak:.0f} GFLOP/s, {p.bandwidth:.0f} GB/s")  # fmt: skip
    for group, colour in COLOURS.items():
        mine = [lay for lay in points if _group(lay) == group]
        if mine:
            ax.scatter([lay.intensity for lay in mine], [lay.rate for lay in mine], color=colour,
                       s=[20 + 600 * lay.seconds / p.step_s for lay in mine], alpha=0.7,
                       edgecolor="k", lw=0.5)  # fmt: skip
            ax.scatter([], [], color=colour, s=40, alpha=0.7, edgecolor="k", lw=0.5, label=group)
    named = sorted(points, key=p.lost_s, reverse=True)[:worst]
    for k, lay in enumerate(named, 1):
        ax.annotate(str(k), (lay.intensity, lay.rate), xytext=(5, 5), textcoords="offset points",
                    fontsize=FONT, weight="bold")  # fmt: skip
        share = 100 * lay.rate / p.attainable(lay.intensity)
        ax.plot([], [], " ", label=f"{k}: {lay.name} ({share:.0f}% of its roof)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    plain_log_ticks(ax.xaxis)
    plain_log_ticks(ax.yaxis)
    ax.set_xlabel("arithmetic intensity (FLOP per byte, bytes a lower bound)", fontsize=FONT)
    ax.set_ylabel(f"achieved GFLOP/s ({p.precision})", fontsize=FONT)
    ax.tick_params(labelsize=FONT)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=FONT, loc="lower right", title="point area: share of the step's time",
              title_fontsize=FONT)  # fmt: skip
    ax.set_title(textwrap.fill(p.one_by_one(), 62), fontsize=FONT)


def draw_time(ax, p: Profile) -> None:
    """Forward and backward ms of each layer per step as stacked bars, top to bottom in the
    order they run, coloured by kind, with the step's remainder as `other`."""
    names = [lay.name.removeprefix("features.").removeprefix("head.") for lay in p.layers]
    y = np.arange(len(p.layers))
    fwd = np.array([1e3 * lay.forward_s for lay in p.layers])
    bwd = np.array([1e3 * lay.backward_s for lay in p.layers])
    colours = [COLOURS[_group(lay)] for lay in p.layers]
    ax.barh(y, fwd, color=colours, edgecolor="k", lw=0.5)
    ax.barh(y, bwd, left=fwd, color=colours, alpha=0.45, edgecolor="k", lw=0.5, hatch="//")
    ax.set_yticks(y, names)
    ax.invert_yaxis()
    ax.set_xlabel("ms per step (solid: forward, hatched: backward)", fontsize=FONT)
    ax.tick_params(labelsize=FONT)
    ax.grid(alpha=0.3, axis="x")
    rest = 1e3 * (p.step_s - p.layer_s)
    ax.set_title(
        f"a step: {1e3 * p.step_s:.0f} ms (batch {p.batch}); the layers add up to "
        f"{100 * p.coverage:.0f}% of it\n({rest:+.0f} ms: loss, optimizer, the rest)",
        fontsize=FONT,
    )


def roofline_figure(p: Profile):
    """Both panels side by side (`ninlab profile`'s PNG)."""
    height = max(4.8, 0.22 * len(p.layers) + 1.5)
    fig, (ax1, ax2) = figure(1, 2, figsize=(13, height), width_ratios=(3, 2))
    draw_roofline(ax1, p)
    draw_time(ax2, p)
    fig.suptitle(f"{p.model}: where a training step's time goes ({p.precision}, {p.threads} "
                 f"threads, batch {p.batch})", fontsize=FONT + 1)  # fmt: skip
    fig.tight_layout()
    return fig


def plot_roofline(p: Profile, path: str | Path) -> Path:
    """Write the profile's figure as a PNG; returns the path."""
    return save_png(roofline_figure(p), path)
