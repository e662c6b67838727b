"""Numbers as small PNGs, one array pixel per image pixel, for the live page (`ninlab explore`).

A matplotlib figure costs 100-300 ms to draw; the page needs a picture in a few milliseconds and
scales it itself (nearest neighbour for pixels, bilinear for a class map, as `ninlab.viz.cam`
draws it). The colours are the figures' own: "gray" for inputs, "jet" for class maps (the
report's and `ninlab cam`'s), "viridis" for feature maps (`ninlab features`); NaN is transparent.
"""

from __future__ import annotations

import io

import matplotlib
import numpy as np
import torch
from PIL import Image


def colour_png(values: torch.Tensor, cmap: str, lo: float, hi: float) -> bytes:
    """A 2-D tensor on the colour scale lo..hi of a matplotlib colour map as RGBA PNG bytes (a
    constant image gets a unit span, so it shows; NaN cells are transparent)."""
    v = values.detach().double().numpy()
    span = hi - lo if hi > lo else 1.0
    index = np.clip((np.nan_to_num(v, nan=lo) - lo) / span * 255.0, 0, 255).round().astype(np.uint8)
    lut = (matplotlib.colormaps[cmap](np.arange(256)) * 255).round().astype(np.uint8)  # 256 x 4
    rgba = lut[index]
    rgba[np.isnan(v), 3] = 0
    return _png(Image.fromarray(rgba, "RGBA"))


def pixels_png(image: torch.Tensor) -> bytes:
    """uint8 pixels (C, H, W) or (1, C, H, W), grey or RGB, as PNG bytes."""
    x = image.reshape(image.shape[-3:])
    array = x.permute(1, 2, 0).contiguous().numpy()
    return _png(Image.fromarray(array[:, :, 0] if x.shape[0] == 1 else array[:, :, :3]))


def display_png(display) -> bytes:
    """A display image, float (H, W) or (H, W, 3) in [0, 1] (`ninlab.runs.inputs.display_image`),
    as PNG bytes."""
    array = (np.clip(np.asarray(display), 0, 1) * 255).round().astype(np.uint8)
    return _png(Image.fromarray(array))


def colour_stops(cmap: str, n: int = 9) -> list[str]:
    """n colours evenly along a colour map, low to high, as "#rrggbb" (a colour bar's gradient)."""
    rgba = matplotlib.colormaps[cmap](np.linspace(0, 1, n))
    return ["#" + "".join(f"{round(255 * c):02x}" for c in row[:3]) for row in rgba]


def _png(img: Image.Image) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, format="PNG", compress_level=1)  # speed over a few hundred bytes
    return buffer.getvalue()
