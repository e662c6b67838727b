"""Detections drawn: the scene with each detection's window, CAM and unit boxes, labelled with
class and probability (the detections are `ninlab.locate`'s)."""

from __future__ import annotations

from pathlib import Path

from matplotlib.patches import Rectangle

from ninlab.locate.locator import Located
from ninlab.plotting import figure, save_png

COLOURS = {"window": "yellow", "cam": "cyan", "unit": "magenta"}


def locate_figure(display, located: Located, classes: list[str], title: str = ""):
    """The scene with each detection's three boxes, labelled with class and probability."""
    h, w = located.size
    fig, ax = figure(1, 1, figsize=(6, 6 * h / w + 0.6))
    ax.imshow(display, cmap="gray", vmin=0, vmax=1, extent=(-0.5, w - 0.5, h - 0.5, -0.5))
    for d in located.detections:
        for method, colour in COLOURS.items():
            top, left, bottom, right = d.box(method)
            ax.add_patch(Rectangle((left - 0.5, top - 0.5), right - left, bottom - top,
                                   fill=False, edgecolor=colour, linewidth=1.5))  # fmt: skip
        ax.text(d.window[1], d.window[0] - 1, f"{classes[d.class_index]} {100 * d.prob:.0f}%",
                color="yellow", fontsize=9, va="bottom")  # fmt: skip
    ax.set_xlim(-0.5, w - 0.5)
    ax.set_ylim(h - 0.5, -0.5)
    ax.axis("off")
    legend = "  ".join(f"{m}: {c}" for m, c in COLOURS.items())
    fig.suptitle(f"{title}\nboxes: {legend}" if title else f"boxes: {legend}", fontsize=9)
    fig.tight_layout()
    return fig


def plot_locate(display, located: Located, classes: list[str], path, title: str = "") -> Path:
    """Write the detections' figure (`locate_figure`) as a PNG; returns the path."""
    return save_png(locate_figure(display, located, classes, title), path)
