"""Figures without a display: matplotlib's object API (no pyplot, so no global backend and no
figure to close), and figures as PNG bytes or files."""

from __future__ import annotations

import io
from pathlib import Path

from matplotlib.figure import Figure

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
