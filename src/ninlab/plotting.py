"""Figures without a display: matplotlib's object API (no pyplot, so no global backend and no
figure to close), and figures as PNG bytes or files.

Text size: a font of s points drawn at d dots per inch is s * d / 72 pixels high, so at the
default 100 dpi the 9-point minimum of the report's figures is 12.5 px in the PNG; a page that
shows the PNG at 72% of its width still shows that text 9 px high (see `smallest_text_px`).
"""

from __future__ import annotations

import io
from pathlib import Path

from matplotlib.figure import Figure
from matplotlib.text import Text
from matplotlib.ticker import FuncFormatter

from ninlab.files import write_bytes


def figure(nrows: int = 1, ncols: int = 1, figsize: tuple[float, float] = (6, 4), **kw):
    """(figure, axes) as pyplot.subplots makes them, for a figure that is only saved."""
    fig = Figure(figsize=figsize)
    return fig, fig.subplots(nrows, ncols, **kw)


def png_bytes(fig: Figure, dpi: int = 100) -> bytes:
    """A figure as PNG bytes."""
    buf = io.BytesIO()
    fig.savefig(buf, dpi=dpi, format="png")
    return buf.getvalue()


def save_png(fig: Figure, path: str | Path, dpi: int = 100) -> Path:
    """Write a figure as a PNG (atomically, creating the folder); returns the path."""
    return write_bytes(path, png_bytes(fig, dpi))


def smallest_text_px(fig: Figure, dpi: int = 100) -> float | None:
    """Height in PNG pixels of the smallest visible text of the figure drawn at `dpi`
    (font size in points * dpi / 72); None when it has no text."""
    fig.draw_without_rendering()  # tick labels get their text when the figure is laid out
    sizes = [
        t.get_fontsize()
        for t in fig.findobj(Text)
        if t.get_visible() and t.get_text().strip() and t.get_figure() is not None
    ]
    return min(sizes) * dpi / 72 if sizes else None


def plain_log_ticks(axis) -> None:
    """Label a log axis in plain numbers (20, 50, 100, not 2 x 10^1), minor ticks at 2 and 5."""
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}" if f"{v:g}"[0] in "25" else ""))
