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
A PNG's text and colour-profile chunks (zTXt, iTXt, iCCP) are inflated by Pillow within
PngImagePlugin.MAX_TEXT_CHUNK (1 MiB each, 64 MiB in all); past it they are refused as a bomb too.
An image that is real but does not fit in the memory left (a `ulimit -v`) is refused, not a
MemoryError.

A photo shown to a trained model (`read_file`) may also be made like the training images, as
their `Look` measures it (`measure_look`), along one path decided from the pixels alone (never
from the file's format or size), the same for predict, cam, features and locate:
- its backdrop is estimated from its border (ninlab.data.backdrop: a plane per channel, so a
  gradient is a backdrop too, and its noise, so a texture or sensor noise is not an object);
- lift: the backdrop is removed and the object given the training items' polarity and contrast:
  an object darker than its backdrop, on training items brighter than theirs, is inverted (so a
  product photo on white, a mid-grey backdrop and a dark one all end on the training background),
  and its strongest pixel raised to what 9 in 10 training items reach (`Look.contrast`: 255 for
  Fashion-MNIST), at most 8-fold;
- trim: cut to its object (the backdrop's foreground, specks of noise dropped), then centred on
  the training background in a square in which the object's longer side takes the share of the
  side that it takes in the training images. The makers of Fashion-MNIST trimmed each photo so
  (edges within 5% of the corner colour), then resized its longer side to 28: an item there spans
  the whole frame, and one that spans 2/3 of it, as a 200x200 item padded from a 300x200 photo
  does, is often another class.
An image the size of the training images is lifted but not trimmed: a test image saved as a
file gives what the test image gives.
"""

from __future__ import annotations

import struct
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from ninlab.data.backdrop import estimate_backdrop, foreground, lift, mask_box, object_sign
from ninlab.errors import NinlabError

FITS = ("pad", "crop")
MODES = ("L", "RGB")
BOMB_RATIO = 2**15  # pixels per byte of a compressed file
BOMB_FLOOR = 2**20  # pixels (a megapixel): any file may claim this many
RAW = {("TIFF", "raw"), ("BMP", 0), ("BMP", 3)}  # (format, compression) of data stored as is
# the formats ninlab opens: Pillow's decoders of plain pixels. Its other plugins stay shut (EPS
# runs Ghostscript, a program outside Python, on the file's PostScript)
FORMATS = ("PNG", "JPEG", "BMP", "GIF", "TIFF", "WEBP", "PPM")
# what PIL raises for a damaged file: its own fuzzers expect the first five; bench/fuzz.py found
# the others in Pillow 13.0 on TIFFs with a retyped tag: strip offsets stored as fractions
# (TypeError from seek), a colour map of signed bytes (OverflowError from array("B", ...))
DAMAGED = (OSError, ValueError, SyntaxError, EOFError, struct.error, TypeError, OverflowError)
# the words of the ValueError that Pillow 13.0 raises for a PNG whose zTXt, iTXt or iCCP chunk
# inflates past PngImagePlugin.MAX_TEXT_CHUNK (1 MiB), or whose text passes MAX_TEXT_MEMORY
PILLOW_BOMBS = ("Decompressed data too large", "Too much memory used in text chunks")
GREY_MODES = {"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"}
CHOICES = ("auto", "yes", "no")  # of invert and trim (--invert, --trim)
MID_GREY = 127.5  # a background darker than this is "dark", else "light"
TRIM_TOLERANCE = 12.75  # 5% of 255: how far from the border colour a pixel is part of the object
LOOK_SAMPLE = 1000  # training images that `measure_look` reads
LOOK_AGREE = 0.9  # the share of them whose background must be on one side of mid-grey


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


def border_level(x: torch.Tensor) -> float:
    """The brightness of a (C, H, W) image's background, 0-255: the mean over the channels of
    its `border_colour`."""
    return border_colour(x).float().mean().item()


def polarity(level: float) -> str:
    """ "dark" or "light": the side of mid-grey (127.5) of a background's brightness."""
    return "dark" if level < MID_GREY else "light"


def object_box(x: torch.Tensor) -> tuple[int, int, int, int] | None:
    """(left, top, right, bottom), right and bottom exclusive, of the pixels of a (C, H, W)
    image that differ from its border colour by more than TRIM_TOLERANCE in some channel; None
    when none do (a blank image)."""
    on = (x.float() - border_colour(x).float()[:, None, None]).abs().amax(0) > TRIM_TOLERANCE
    rows, cols = on.any(1).nonzero()[:, 0], on.any(0).nonzero()[:, 0]
    if len(rows) == 0:
        return None
    return cols[0].item(), rows[0].item(), cols[-1].item() + 1, rows[-1].item() + 1


@dataclass(frozen=True)
class Look:
    """How a run's training images look, for a photo to be made like them (`read_file`)."""

    background: str | None = None  # "dark" or "light"; None: they vary, or it is unknown
    share: float | None = None  # median share of the frame that the object's longer side spans
    source: str = "unknown"  # "training images", "config mean" or "unknown"
    level: float | None = None  # median brightness of their backgrounds, 0-255
    contrast: float | None = None  # largest difference from the border that 9 in 10 items reach


def measure_look(images: torch.Tensor, sample: int = LOOK_SAMPLE) -> Look:
    """The `Look` of the first `sample` of uint8 (N, C, H, W) training images. background: the
    side of mid-grey of at least LOOK_AGREE of their border colours (`border_level`), else None
    (natural photos, say). share: the median over images with an object of its longer side
    (`object_box`) / the image's longer side. level: the median brightness of their border
    colours; contrast: the 10th percentile of each image's largest difference from its border
    colour (a photo's object fainter than 9 in 10 training items is raised to it). Fashion-MNIST:
    dark, 1.0 (996 of its first 1000 items span the frame), level 0, contrast 255 (each of its
    first 1000 items reaches 254 or 255); items in a 20 px box of 28, as MNIST's digits are:
    share 20/28."""
    x = images[:sample].float()  # N x C x H x W
    frame = torch.cat([x[:, :, 0], x[:, :, -1], x[:, :, :, 0], x[:, :, :, -1]], 2)
    colour = frame.median(2).values  # N x C, `border_colour` of each image
    dark = (colour.mean(1) < MID_GREY).float().mean().item()
    background = "dark" if dark >= LOOK_AGREE else "light" if dark <= 1 - LOOK_AGREE else None
    away = (x - colour[:, :, None, None]).abs().amax(1)  # N x H x W
    on = away > TRIM_TOLERANCE
    spans = torch.stack([_span(on.any(2)), _span(on.any(1))]).amax(0)  # N, in pixels
    spans = spans[spans > 0].float() / max(x.shape[-2:])
    share = spans.median().item() if len(spans) else None
    level = colour.mean(1).median().item()
    contrast = away.flatten(1).amax(1).quantile(0.1).item()
    return Look(background, share, "training images", level, contrast)


def _span(on: torch.Tensor) -> torch.Tensor:
    """(N, L) booleans -> (N,) last true index - first true index + 1 (0 when none is true)."""
    n = on.shape[1]
    first = on.int().argmax(1)
    last = n - 1 - on.flip(1).int().argmax(1)
    return torch.where(on.any(1), last - first + 1, 0)


def look_from_mean(mean: list[float] | None) -> Look:
    """A `Look` from a run's normalisation mean alone (its data set unread): the background is
    "dark" below 0.35, "light" above 0.65 and unknown between (Fashion-MNIST 0.286, CIFAR-10
    about 0.47: natural photos); the object's share is unknown."""
    if not mean:
        return Look()
    m = sum(mean) / len(mean)
    background = "dark" if m < 0.35 else "light" if m > 0.65 else None
    return Look(background, None, "config mean")


@dataclass
class Preparation:
    """How an image file became a model's input; `line` says it in one line."""

    size: tuple[int, int]  # the file's width and height
    mode: str  # the file's PIL mode ("RGB", "L", "P", "RGBA", ...)
    out_size: tuple[int, int]  # width and height of the prepared image
    out_mode: str  # "L" or "RGB"
    fit: str  # a key of FIT_WORDS: how its shape was made the model's
    background: float  # brightness of the file's border colour, 0-255 (`border_level`)
    inverted: bool
    why: str  # what decided the inversion: "light border", "--invert yes", ...
    box: tuple[int, int, int, int] | None = None  # fit "trim": the object's pixels in the file

    def line(self, name: str, width: int = 80) -> str:
        """ "shoe.jpg: 300x200 RGB -> 28x28 L, cut to its object, inverted (light border)"
        in at most `width` columns: the name is the file's; when the line would be wider, the
        reason in brackets goes, then the name's end."""
        (w, h), (ow, oh) = self.size, self.out_size
        done = "inverted" if self.inverted else "not inverted"
        head = f"{w}x{h} {self.mode} -> {ow}x{oh} {self.out_mode}, {FIT_WORDS[self.fit]}, "
        name = Path(name).name
        tail = f"{done} ({self.why})"
        if len(name) + len(head) + len(tail) + 2 > width:
            tail = done
        room = width - len(head) - len(tail) - 2
        shown = name if len(name) <= room else name[: max(room - 1, 1)] + "…"
        return f"{shown}: {head}{tail}"

    def to_dict(self) -> dict:
        return asdict(self)


FIT_WORDS = {
    "as is": "as is",
    "own size": "at its own size",
    "resized": "resized",
    "pad": "padded to a square",
    "crop": "centre square cut out",
    "trim": "cut to its object",
}


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
    img = decode_as(img, mode, size)
    return fit_square(img, size, fit) if size else img


def decode_as(img: Image.Image, mode: str, size: int | None = None) -> Image.Image:
    """An opened image decoded, upright and in mode "L" or "RGB", at its own size or, for a
    JPEG when `size` is given, at the least of 1/2, 1/4 or 1/8 of it that is still S x S."""
    if size:
        img.draft(mode, (size, size))
    return _to_mode(_decode(img), mode)


def fit_square(img: Image.Image, size: int, fit: str = "pad") -> Image.Image:
    """A decoded image made S x S by `fit` ("pad" or "crop", see the module doc)."""
    w, h = img.size
    if fit == "crop":
        side = min(w, h)
        left, top = (w - side) // 2, (h - side) // 2
        return img.resize((size, size), Image.BILINEAR, box=(left, top, left + side, top + side))
    return _centre(img, size, border_colour(to_tensor(img)))


def _centre(img: Image.Image, size: int, fill: torch.Tensor, share: float = 1.0) -> Image.Image:
    """img scaled so that its longer side is `share` of S, centred on an S x S canvas of the
    colour `fill` (C,)."""
    scale = max(1, round(share * size)) / max(img.size)
    w, h = img.size
    inner = img.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.BILINEAR)
    colour = tuple(fill.tolist())
    canvas = Image.new(img.mode, (size, size), colour[0] if img.mode == "L" else colour)
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
        if empty:
            return UnreadableImage(path, "the file is empty")
        formats = f"{', '.join(FORMATS[:-1])} or PPM/PGM"
        return UnreadableImage(path, f"not an image in a format ninlab reads ({formats})")
    if any(words in str(error) for words in PILLOW_BOMBS):
        return UnreadableImage(
            path, f"a text or colour-profile chunk inflates past Pillow's bound ({error}), "
            "refused as a decompression bomb"
        )  # fmt: skip
    return UnreadableImage(path, f"corrupt or truncated ({error})")


def too_large(path, img: Image.Image) -> UnreadableImage:
    """For a MemoryError while decoding `img`: the image is real, the memory is short."""
    return UnreadableImage(
        path,
        f"its {img.width:,} x {img.height:,} pixels do not fit in the memory available (shrink "
        "it, or free some memory)",
    )


def open_image(path: str | Path) -> Image.Image:
    """Image.open (the header only) with a bomb refused, not warned about, and one sentence for
    any failure. Decoding happens later, in `prepare`."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(path, formats=FORMATS)
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
    return read_file(path, mode, size, fit)[0]


def read_file(
    path: str | Path,
    mode: str,
    size: int | None,
    fit: str = "pad",
    invert: str = "no",
    trim: str = "no",
    look: Look = Look(),
) -> tuple[torch.Tensor, Preparation]:
    """An image file as uint8 (C, S, S), made like the training images whose `Look` is `look`
    (see the module doc), and how it was. `trim` and `invert` are "yes", "no" or "auto".
    invert auto, when the training images are items on one background (look.background known),
    lifts the picture (backdrop removed, polarity and contrast the training items'); yes and no
    invert (255 - x) or not, and nothing more. trim auto cuts to the object when the training
    images are items on one background and the file is not S x S already, yes always (to
    look.share of the frame, else the whole frame). Without either, the image is `prepare`d; at
    its own size (size None) it is never trimmed."""
    path = Path(path)
    if path.is_dir():
        raise NinlabError(f"{path} is a folder; pass an image file.")
    if not path.is_file():
        raise NinlabError(f"image {path} does not exist.")
    img = open_image(path)
    try:
        (w, h), pil_mode = img.size, img.mode
        # a JPEG decodes at a reduced scale, kept at least WORKING x S so the backdrop is seen
        decoded = decode_as(img, mode, size and WORKING * size)
        if img.getexif().get(0x0112, 1) in (5, 6, 7, 8):  # orientation: turned a quarter
            w, h = h, w
        x = to_tensor(decoded)
        out, prep = made_like(x, look, size, fit, invert, trim, (w, h))
    except (OSError, ValueError, SyntaxError) as e:  # truncated or corrupt data (see _decode)
        raise unreadable(path, e) from None
    except MemoryError:  # under a `ulimit -v`, or a small machine: the pixels are real
        raise too_large(path, img) from None
    finally:
        img.close()
    return out, Preparation((w, h), pil_mode, *prep)


WORKING = 4  # a JPEG is decoded at no less than this many times the model's side


def made_like(
    x: torch.Tensor,
    look: Look,
    size: int | None = None,
    fit: str = "pad",
    invert: str = "auto",
    trim: str = "auto",
    file_size: tuple[int, int] | None = None,
) -> tuple[torch.Tensor, tuple]:
    """Decoded uint8 (C, H, W) pixels made like the training images whose `Look` is `look`, at
    S x S (size None: their own size, never trimmed), as `read_file` makes a file's (see it and
    the module doc); file_size (W, H) is the file's when x was decoded smaller (a JPEG's draft).
    Returns the pixels and the fields of a `Preparation` after its size and mode. A scene in
    `ninlab locate` is made so at its own size."""
    mode = "L" if x.shape[0] == 1 else "RGB"
    file_size = file_size or (x.shape[2], x.shape[1])
    backdrop = estimate_backdrop(x)
    lifting = invert == "auto" and look.background is not None
    own = file_size == (size, size)  # the training images' size: taken as trimmed already
    share = _trim_share(trim, look) if size and (trim == "yes" or not own) else None
    on = foreground(x, backdrop) if lifting or share else None
    box = mask_box(on) if share else None  # top, left, bottom, right
    if lifting:
        sign = object_sign(x, on, backdrop)
        level = look.level if look.level is not None else 255.0 * (look.background == "light")
        x = lift(x, backdrop, sign, level, look.contrast, on)
        fill = torch.full((x.shape[0],), round(level), dtype=torch.uint8)
        inverted = (sign > 0) != (look.background == "dark")
        why = "light on dark" if sign > 0 else "dark on light"  # item on its backdrop
    else:
        fill = border_colour(x)
        inverted, why = _inversion(invert, backdrop.level, look)
    picture = Image.fromarray(x.permute(1, 2, 0).numpy()[:, :, 0] if mode == "L"
                              else x.permute(1, 2, 0).numpy(), mode)  # fmt: skip
    (ww, hh), (fw, fh) = picture.size, file_size
    if box and box != (0, 0, hh, ww):
        top, left, bottom, right = box
        out = to_tensor(_centre(picture.crop((left, top, right, bottom)), size, fill, share))
        how, sx, sy = "trim", fw / ww, fh / hh  # a JPEG's draft: < 1
        box = (round(left * sx), round(top * sy), round(right * sx), round(bottom * sy))
    else:
        out, box = (to_tensor(fit_square(picture, size, fit)) if size else x), None
        square = "as is" if own else "resized"
        how = "own size" if not size else square if fw == fh else fit
    if inverted and not lifting:
        out = 255 - out
    return out, ((out.shape[2], out.shape[1]), mode, how, backdrop.level, inverted, why, box)


def _trim_share(trim: str, look: Look) -> float | None:
    """The share of the frame a trimmed object's longer side spans; None: no trimming."""
    if trim == "yes":
        return look.share or 1.0
    return look.share if trim == "auto" and look.background else None


def _inversion(invert: str, level: float, look: Look) -> tuple[bool, str]:
    """(whether to invert, why) for an image whose background's brightness is `level`."""
    if invert in ("yes", "no"):
        return invert == "yes", f"--invert {invert}"
    if look.background is None:
        known = look.source == "training images"
        return False, "training backgrounds vary" if known else "training background unknown"
    side = polarity(level)
    return side != look.background, f"{side} border"


def load_image(
    path: str | Path, channels: int, size: int | None = None, fit: str = "pad"
) -> torch.Tensor:
    """An image file as uint8 (1, channels, S, S), grey or RGB, prepared like training images."""
    return read_image(path, "L" if channels == 1 else "RGB", size, fit).unsqueeze(0)
