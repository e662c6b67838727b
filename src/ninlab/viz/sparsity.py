"""Sparsity by depth drawn: the share of exact zeros after each ReLU on a 0-100% axis, trained
and at initialisation, and dead channels as counts, with every text at least 9 pt (12.5 px in
the PNG at 100 dpi, see `ninlab.plotting`). The numbers and their verdict are
`ninlab.claims.sparsity.SparsityReport`.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

from matplotlib.ticker import MaxNLocator

from ninlab.claims.sparsity import SparsityReport
from ninlab.plotting import figure, save_png

FONT = 9  # points: the smallest text of the figures (12.5 px at 100 dpi)


CURVES = (("trained", "o-", "C0"), ("at initialisation", "s--", "C1"))  # label, style, colour


def _by_depth(ax, report: SparsityReport) -> range:
    """x axis: the ReLUs in depth order, named without "features."/"head."; returns the x."""
    depth = range(1, len(report.trained) + 1)
    names = [t.name.removeprefix("features.").removeprefix("head.") for t in report.trained]
    ax.set_xticks(list(depth), names, rotation=45, ha="right", rotation_mode="anchor")
    ax.set_xlabel("ReLU, by depth", fontsize=FONT)
    ax.tick_params(labelsize=FONT)
    ax.grid(alpha=0.3)
    return depth


def draw_zeros(ax, report: SparsityReport) -> None:
    """% exact zeros after each ReLU by depth, trained and at initialisation, on a 0-100% axis
    (a flat 50% looks flat); the title is the verdict in words (`SparsityReport.words`)."""
    depth = _by_depth(ax, report)
    for layers, (label, style, colour) in zip((report.trained, report.init), CURVES, strict=True):
        ax.plot(depth, [100 * t.zeros for t in layers], style, color=colour, label=label)
    ax.set_ylim(0, 100)
    ax.set_ylabel("exact zeros after ReLU (%)", fontsize=FONT)
    ax.legend(fontsize=FONT)
    ax.set_title(textwrap.fill(report.words(), 45), fontsize=FONT)


def draw_dead(ax, report: SparsityReport) -> None:
    """Dead channels per ReLU by depth, as counts on integer ticks, trained and at
    initialisation; each point above 0 says "k of C" (C = the layer's channels), so one dead
    channel of 128 reads as one channel."""
    depth = _by_depth(ax, report)
    curves = [[len(t.dead) for t in layers] for layers in (report.trained, report.init)]
    for dead, layers, (label, style, colour) in zip(
        curves, (report.trained, report.init), CURVES, strict=True
    ):
        ax.plot(depth, dead, style, color=colour, label=label)
        for x, k, t in zip(depth, dead, layers, strict=True):
            if not k:
                continue
            # over the point; where both curves meet, the at-init label one line higher
            above = 6 + (FONT + 3) * (dead is curves[1] and curves[0][x - 1] == k)
            ax.annotate(
                f"{k} of {len(t.channel_zero_counts)}",
                (x, k),
                xytext=(0, above),
                textcoords="offset points",
                ha="center",
                va="bottom",
                fontsize=FONT,
                color=colour,
                bbox={"boxstyle": "square,pad=0.1", "fc": "white", "ec": "none", "alpha": 0.8},
            )
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylim(0, max(1, *curves[0], *curves[1]) * 1.3)  # room over the highest point's label
    ax.set_xlim(0.5, len(depth) + 0.5)  # room for the labels of the first and last points
    ax.set_ylabel("dead channels (count)", fontsize=FONT)
    ax.legend(fontsize=FONT)
    total = sum(len(t.channel_zero_counts) for t in report.trained)
    ax.set_title(
        f"dead channels: zero on all {report.images:,} images\ntrained {sum(curves[0])} of "
        f"{total:,}; at initialisation {sum(curves[1])} of {total:,}",
        fontsize=FONT,
    )


def zeros_figure(report: SparsityReport):
    """`draw_zeros` alone, 5 x 3.8 inches (for the HTML report)."""
    fig, ax = figure(figsize=(5, 3.8))
    draw_zeros(ax, report)
    fig.tight_layout()
    return fig


def dead_figure(report: SparsityReport):
    """`draw_dead` alone, 5 x 3.8 inches (for the HTML report)."""
    fig, ax = figure(figsize=(5, 3.8))
    draw_dead(ax, report)
    fig.tight_layout()
    return fig


def sparsity_figure(report: SparsityReport, title: str = ""):
    """Both panels side by side, zeros and dead channels (`ninlab sparsity`'s PNG)."""
    fig, (ax1, ax2) = figure(1, 2, figsize=(10, 4.4))
    draw_zeros(ax1, report)
    draw_dead(ax2, report)
    if title:
        fig.suptitle(title, fontsize=FONT + 1)
    fig.tight_layout()
    return fig


def plot_sparsity(report: SparsityReport, path: str | Path, title: str = "") -> Path:
    """Write the sparsity-by-depth figure as a PNG; returns the path."""
    return save_png(sparsity_figure(report, title), path)
