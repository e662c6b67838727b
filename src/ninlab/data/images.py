"""Reading user images (PNG, JPEG, ...) into uint8 tensors shaped like a data set's images."""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image, UnidentifiedImageError

from ninlab.errors import NinlabError


def load_image(path: str | Path, channels: int, size: int | None = None) -> torch.Tensor:
    """An image file as a uint8 tensor (1, channels, H, W): grey or RGB, optionally resized.

    Resizing uses PIL's antialiased bilinear filter, so a large photo shrinks without aliasing.
    """
    path = Path(path)
    if not path.is_file():
        raise NinlabError(f"image {path} does not exist.")
    try:
        with Image.open(path) as img:
            img = img.convert("L" if channels == 1 else "RGB")
            if size:
                img = img.resize((size, size), Image.BILINEAR)
            data = torch.frombuffer(bytearray(img.tobytes()), dtype=torch.uint8)
            w, h = img.size
    except (UnidentifiedImageError, OSError) as e:
        raise NinlabError(f"{path} is not a readable image ({e}).") from None
    return data.view(h, w, channels).permute(2, 0, 1).unsqueeze(0).contiguous()
