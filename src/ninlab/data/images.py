"""Reading image files (PNG, JPEG, BMP, GIF, WebP, TIFF) into uint8 tensors, one way for all.

Every image a model sees from a file goes through `prepare`: the first frame, transparency laid
on black, 16-bit samples scaled to 8 bits, converted to grey ("L") or "RGB", then made square
without distorting it and resized to S x S with PIL's antialiased bilinear filter:
- fit "pad": scaled so that its longer side is S, then centred on an S x S canvas filled with the
  median colour of the image's border (the background, for a photographed object);
- fit "crop": the centred square of its shorter side, then scaled to S.
Images larger than PIL's decompression-bomb limit (Image.MAX_IMAGE_PIXELS, about 89 million
pixels) are refused before they are decoded, and so are files that claim over BOMB_FLOOR pixels
and more pixels per byte of the file than any image reaches: 8 when the data are stored raw (TIFF
"raw", BMP without RLE: a 1-bit image), BOMB_RATIO otherwise. Blank 4000 x 4000 images written by
Pillow 13.0 reach 23,700 pixels per byte as lossless WebP, 16,300 as TIFF group 4, 7,900 as 1-bit
PNG, 1,200 as GIF, 85 as JPEG. Found by bench/fuzz.py: one flipped bit in the header of a 766-byte
raw TIFF claims 75 million pixels, which PIL decodes as zeros (1.2 s and 1.4 GB of memory).
"""

from __future__ import annotations

import struct
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from ninlab.errors import NinlabError

FITS = ("pad", "crop")
MODES = ("L", "RGB")
BOMB_RATIO = 2**15  # pixels per byte of a compressed file
BOMB_FLOOR = 2**20  # pixels (a megapixel): any file may claim this many
RAW = {("TIFF", "raw"), ("BMP", 0), ("BMP", 3)}  # (format, compression) of data stored as is
# what PIL raises for a damaged file: its own fuzzers expect the first five; bench/fuzz.py found
# the others in Pillow 13.0 on TIFFs with a retyped tag: strip offsets stored as fractions
# (TypeError from seek), a colour map of signed bytes (OverflowError from array("B", ...))
DAMAGED = (OSError, ValueError, SyntaxError, EOFError, struct.error, TypeError, OverflowError)
GREY_MODES = {"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"}


def mode_of(pil_mode: str) -> str:
    """The ninlab mode ("L" or "RGB") that an image of this PIL mode is read as by default."""
    return "L" if pil_mode in GREY_MODES else "RGB"


def _to_mode(img: Image.Image, mode: str) -> Image.Image:
    if img.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):  # 16-bit or float samples
        a = np.array(img, dtype=np.float32)  # 4 bytes a pixel, in place: 8-bit results as float64
        a /= 1.0 if img.mode == "F" else 65535.0 if a.max(initial=0) > 255 else 255.0
        a *= 255.0
        a += 0.5
        img = Image.fromarray(np.clip(a, 0, 255, out=a).astype(np.uint8), "L")
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "La", "RGBa", "PA"):  # transparency laid on black
        rgba = img.convert("RGBA")
        img = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        img.alpha_composite(rgba)
    return img.convert(mode)


def border_colour(x: torch.Tensor) -> torch.Tensor:
    """The median of the one-pixel frame of a (C, H, W) image, per channel: its background,
    for a photographed object or a scene of items (C,)."""
    frame = torch.cat([x[:, 0], x[:, -1], x[:, :, 0], x[:, :, -1]], 1)  # C x border pixels
    return frame.median(1).values


def _decode(img: Image.Image) -> Image.Image:
    """The image decoded and turned upright by its EXIF orientation. Damaged data raises OSError,
    ValueError or SyntaxError: the other DAMAGED errors are raised as OSError, so that a caller
    (read_image, a folder's decoding) catches those three."""
    try:
        img.load()
        return ImageOps.exif_transpose(img)
    except (OSError, ValueError, SyntaxError):
        raise
    except DAMAGED as e:
        raise OSError(f"{type(e).__name__}: {e}") from None


def prepare(img: Image.Image, mode: str, size: int | None, fit: str = "pad") -> Image.Image:
    """An opened image as the models see it: mode "L" or "RGB", S x S (see the module doc);
    size None keeps the image's own size."""
    if size:  # JPEG: decode at 1/2, 1/4 or 1/8 scale when that still gives S x S or more
        img.draft(mode, (size, size))
    img = _to_mode(_decode(img), mode)
    if not size:
        return img
    w, h = img.size
    if fit == "crop":
        side = min(w, h)
        left, top = (w - side) // 2, (h - side) // 2
        return img.resize((size, size), Image.BILINEAR, box=(left, top, left + side, top + side))
    scale = size / max(w, h)
    inner = img.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.BILINEAR)
    fill = tuple(border_colour(to_tensor(img)).tolist())
    canvas = Image.new(mode, (size, size), fill[0] if mode == "L" else fill)
    canvas.paste(inner, ((size - inner.width) // 2, (size - inner.height) // 2))
    return canvas


def to_tensor(img: Image.Image) -> torch.Tensor:
    """A PIL image in mode "L" or "RGB" -> uint8 (C, H, W)."""
    c = 1 if img.mode == "L" else 3
    data = torch.frombuffer(bytearray(img.tobytes()), dtype=torch.uint8)
    return data.view(img.height, img.width, c).permute(2, 0, 1).contiguous()


class UnreadableImage(NinlabError):
    """A file that is not a readable image; `why` says it in a few words."""

    def __init__(self, path, why: str):
        super().__init__(f"{path} is not a readable image: {why}.")
        self.why = why


def unreadable(path, error: Exception) -> UnreadableImage:
    if isinstance(error, UnidentifiedImageError):
        empty = Path(path).is_file() and Path(path).stat().st_size == 0
        return UnreadableImage(path, "the file is empty" if empty else "not an image format")
    return UnreadableImage(path, f"corrupt or truncated ({error})")


def open_image(path: str | Path) -> Image.Image:
    """Image.open (the header only) with a bomb refused, not warned about, and one sentence for
    any failure. Decoding happens later, in `prepare`."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(path)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise UnreadableImage(
            path, f"over {Image.MAX_IMAGE_PIXELS:,} pixels, refused as a decompression bomb"
        ) from None
    except DAMAGED as e:  # UnidentifiedImageError is an OSError
        raise unreadable(path, e) from None
    pixels, size = img.width * img.height, Path(path).stat().st_size
    raw = (img.format, img.info.get("compression")) in RAW
    if pixels > max(BOMB_FLOOR, (8 if raw else BOMB_RATIO) * size):
        img.close()
        raise UnreadableImage(
            path,
            f"{img.width:,} x {img.height:,} pixels claimed by a file of {size:,} bytes, "
            "refused as a decompression bomb",
        )
    return img


def read_image(path: str | Path, mode: str, size: int | None, fit: str = "pad") -> torch.Tensor:
    """An image file prepared (see `prepare`) as uint8 (C, S, S)."""
    path = Path(path)
    if path.is_dir():
        raise NinlabError(f"{path} is a folder; pass an image file.")
    if not path.is_file():
        raise NinlabError(f"image {path} does not exist.")
    img = open_image(path)
    try:
        return to_tensor(prepare(img, mode, size, fit))
    except (OSError, ValueError, SyntaxError) as e:  # truncated or corrupt data (see _decode)
        raise unreadable(path, e) from None
    finally:
        img.close()


def load_image(
    path: str | Path, channels: int, size: int | None = None, fit: str = "pad"
) -> torch.Tensor:
    """An image file as uint8 (1, channels, S, S), grey or RGB, prepared like training images."""
    return read_image(path, "L" if channels == 1 else "RGB", size, fit).unsqueeze(0)
