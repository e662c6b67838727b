"""Fuzzing every reader of untrusted bytes: each must return a correct result or refuse the input
with one NinlabError sentence, never end in another exception (a traceback).

    python bench/fuzz.py                   # 5,000 inputs, seed 0
    python bench/fuzz.py --n 20000 --seed 1

Inputs, spread evenly over the kinds below, start from a valid file written by the same code or
library that writes the real ones, then most are mutated with a seeded `random.Random` (bits
flipped, bytes set to 0/0x7f/0x80/0xff, bytes inserted or deleted, the file truncated, junk
appended, a slice repeated; half of the positions fall in the first 64 bytes, where headers are)
or changed in structure (a JSON field given another type, a safetensors header rewritten, a tar
member turned into a link). About one in ten is left valid and must be accepted.
  idx            read_idx: IDX files, raw or gzip (the bytes mutated before or after compression)
  cifar          _read_cifar + _check_labels: CIFAR-10/100 binary records
  dataset        load_dataset on a folder of Fashion-MNIST's 4 or CIFAR-10's 6 files, one changed
  tar            _extract: CIFAR-like .tar.gz archives, some with links, absolute or .. paths
  png ... bmp    read_image / load_image at a random size, mode and fit, one kind per format
                 (TIFF: also one tag of its IFD given another type or count)
  special        valid images to accept: 16-bit, CMYK, palette with transparency, LA/RGBA,
                 1x1, 1x5000, EXIF-rotated; and headers claiming 100-900 million pixels, which
                 must be refused before decoding (memory and time are reported)
  bomb           decompression bombs, which must be refused (or, once mutated, read correctly)
                 within bounded memory: a Fashion-MNIST .gz of 2 MB that inflates to 2 GiB
                 (its header promising all of it, or the published 60000x28x28 and then more)
                 or whose header promises more than it holds, read by load_dataset; CIFAR
                 archives with a member larger than the published file, a pax header of
                 512 MiB or 65 members, read by _extract; PNGs whose zTXt, iTXt or iCCP chunk
                 inflates to 200 MiB or that claim 2^31 x 2^31 or 60 million pixels in 57 bytes
  safetensors    load_weights: the 8-byte length, the JSON header (dtypes, shapes, offsets)
                 and the data mutated (the file carries its checksum, as ninlab writes it)
  converted      load_converted: a converted lenet_fc whose bytes are mutated, or whose metadata
                 names a model that would run code (os:system, subprocess:run, builtins:exec, a
                 file.py:callable that writes a canary) or sizes of a billion classes or
                 channels, resealed with a valid checksum as an attacker would: nothing may run
                 (the canary must never appear) and no memory may be taken for the sizes
  config         read_config: config.json with any JSON value in any field
  metrics        read_metrics: metrics.jsonl rows of any JSON (a row may lack fields; those
                 it has must be numbers, losses not negative, accuracies from 0 to 1)
  checkpoint     read_checkpoint: a real TrainState checkpoint, bytes of the zip or of its
                 data.pkl mutated (the zip's CRC is not checked), or values retyped
An accepted result is checked (a tensor of the declared shape and dtype, a config whose fields
have their annotated types, rows of numbers, a checkpoint with the keys `resume_run` uses); a
refusal must be one line. Prints per kind: tried, refused, accepted, tracebacks, wrong (accepted
but not correct) and unclear (refused in more than one line), ms per input and the slowest (on
one thread; R, bench/machine.py, is measured first on all), the peak memory of the process; exits
1 when any input ended in a traceback, a wrong result or an unclear refusal.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import gzip
import io
import json
import math
import random
import resource
import struct
import tarfile
import tempfile
import time
import traceback
import types
import typing
import warnings
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from machine import describe, matmul_rate
from PIL import Image, features
from safetensors.torch import load_file, save_file
from torch import nn

from ninlab.checksum import read_safetensors, sealed_metadata
from ninlab.convert import for_inference
from ninlab.data.catalog import (
    DATASETS,
    MAX_MEMBERS,
    _check_labels,
    _extract,
    _read_cifar,
    load_dataset,
)
from ninlab.data.idx import IDX_DTYPES, read_idx
from ninlab.data.images import load_image, read_image
from ninlab.errors import NinlabError
from ninlab.models import create_model
from ninlab.runs import (
    METRICS,
    load_converted,
    load_weights,
    read_checkpoint,
    read_config,
    read_metrics,
    save_converted,
)
from ninlab.train import TrainConfig, TrainState
from ninlab.train.optim import make_optimizer, make_scheduler

FORMATS = {"png": "PNG", "jpeg": "JPEG", "gif": "GIF", "webp": "WEBP", "tiff": "TIFF", "bmp": "BMP"}
EXAMPLES = 8  # tracebacks, wrong results and unclear refusals kept with their inputs
VALID = 0.1  # share of inputs left as written


# ---- mutations ----


def mutate(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    """`data` with one to three random edits; returns (bytes, what was done)."""
    b, done = bytearray(data), []
    for _ in range(rng.choice((1, 1, 2, 3))):
        at = _position(b, rng)
        op = rng.choice(("flip", "set", "insert", "delete", "truncate", "append", "repeat"))
        if op == "flip" and b:
            b[at] ^= 1 << rng.randrange(8)
        elif op == "set" and b:
            b[at] = rng.choice((0, 0x7F, 0x80, 0xFF, rng.randrange(256)))
        elif op == "insert":
            b[at:at] = rng.randbytes(rng.choice((1, 2, 4, 16)))
        elif op == "delete":
            del b[at : at + rng.choice((1, 2, 4, 16))]
        elif op == "truncate":
            del b[at:]
        elif op == "append":
            b += rng.randbytes(rng.choice((1, 16, 300)))
        elif op == "repeat":
            b[at:at] = b[at : at + rng.choice((4, 64))]
        done.append(f"{op}@{at}")
    return bytes(b), " ".join(done)


def _position(b: bytearray, rng: random.Random) -> int:
    """Half in the first 64 bytes (the header), half anywhere."""
    if not b:
        return 0
    return rng.randrange(min(64, len(b)) if rng.random() < 0.5 else len(b))


def json_value(rng: random.Random, depth: int = 0):
    """Any JSON value, nested at most three deep."""
    leaf = rng.choice(
        (None, True, False, 0, -1, 1, 2**63, 10**30, 0.5, -1e308, float("nan"), float("inf"),
         "", "x", "nin_fast", "L", "\u00e9\u0000", rng.randrange(-1000, 1000))
    )  # fmt: skip
    if depth >= 3 or rng.random() < 0.6:
        return leaf
    if rng.random() < 0.5:
        return [json_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {str(json_value(rng, 3)): json_value(rng, depth + 1) for _ in range(rng.randrange(4))}


def _with(rng: random.Random, base: bytes, structural: Callable[[], tuple[bytes, str]] | None):
    """A valid input (VALID), a structural change (if given, half the rest), or byte edits."""
    r = rng.random()
    if r < VALID:
        return base, "valid"
    if structural is not None and r < (1 + VALID) / 2:
        return structural()
    return mutate(base, rng)


# ---- the kinds: each makes one input and returns (description, read, check) ----


def idx_input(rng: random.Random, tmp: Path):
    code = rng.choice(list(IDX_DTYPES))
    dims = [rng.randrange(5) for _ in range(rng.choice((1, 2, 3)))]
    dtype = IDX_DTYPES[code]
    payload = rng.randbytes(math.prod(dims) * dtype.itemsize)
    raw = bytes([0, 0, code, len(dims)]) + b"".join(d.to_bytes(4, "big") for d in dims) + payload

    def structural():  # dimensions whose product np.prod would wrap (2**16 four times: 0)
        nd = rng.choice((0, 1, 3, 4, 9, 33, 65, 255))
        ds = [rng.choice((0, 1, 2, 255, 2**16, 2**31, 2**32 - 1)) for _ in range(nd)]
        size = math.prod(ds) % 2**64 * dtype.itemsize
        body = rng.randbytes(size if size < 4096 else rng.randrange(64))
        head = bytes([0, 0, code, nd]) + b"".join(d.to_bytes(4, "big") for d in ds)
        return head + body, f"dims {ds[:5]}{'...' * (nd > 5)}"

    gz = rng.random() < 0.5
    if gz and rng.random() < 0.5:  # damage the compressed stream
        data, how = _with(rng, gzip.compress(raw), None)
        plain = None
    else:
        plain, how = _with(rng, raw, structural)
        data = gzip.compress(plain) if gz else plain
    path = tmp / ("f.idx.gz" if gz else "f.idx")
    path.write_bytes(data)

    def check(t) -> bool:
        content = plain if plain is not None else gzip.decompress(data)
        shape = [int.from_bytes(content[4 + 4 * i : 8 + 4 * i], "big") for i in range(content[3])]
        ok = (
            list(t.shape) == shape
            and t.numel() * IDX_DTYPES[content[2]].itemsize == len(content) - 4 - 4 * content[3]
        )
        return ok and (how != "valid" or list(t.shape) == dims)

    return f"idx {'gz ' if gz else ''}{dims} {dtype} {how}", lambda: read_idx(path), check


def cifar_input(rng: random.Random, tmp: Path):
    spec = DATASETS[rng.choice(("cifar10", "cifar100"))]
    n = rng.randrange(1, 4)
    records = b"".join(
        bytes(rng.randrange(len(spec.classes)) for _ in range(spec.label_bytes))
        + rng.randbytes(3 * 32 * 32)
        for _ in range(n)
    )
    data, how = _with(rng, records, None)

    def read():
        images, labels = _read_cifar(spec, [(data, tmp / "x.bin")])
        _check_labels(spec, images, labels, "x.bin")
        return images, labels

    def check(result) -> bool:
        images, labels = result
        record = spec.label_bytes + 3 * 32 * 32
        return (
            tuple(images.shape) == (len(data) // record, 3, 32, 32)
            and images.dtype == torch.uint8
            and int(labels.max()) < len(spec.classes)
        )

    return f"{spec.name} {n} records {how}", read, check


def dataset_input(rng: random.Random, tmp: Path):
    """A whole data directory (Fashion-MNIST's four IDX files or CIFAR-10's six) with one file
    mutated or retyped, read by load_dataset."""
    root = tmp / f"data{rng.randrange(10**9)}"
    root.mkdir()
    name = rng.choice(("fashion-mnist", "cifar10"))
    spec = DATASETS[name]
    files = {}
    if name == "fashion-mnist":
        for prefix, n in (("train", 3), ("t10k", 2)):
            shape, body = [n, 28, 28], rng.randbytes(n * 28 * 28)
            files[f"{prefix}-images-idx3-ubyte"] = idx_bytes(0x08, shape, body)
            files[f"{prefix}-labels-idx1-ubyte"] = idx_bytes(0x08, [n], bytes(range(n)))
    else:
        for f in spec.files():
            files[f] = bytes([rng.randrange(10)]) + rng.randbytes(3 * 32 * 32)
    target = rng.choice(list(files))

    def structural():  # another IDX type or shape with a consistent length
        code = rng.choice([c for c in IDX_DTYPES if c != 0x08])
        dims = rng.choice(([2], [2, 1], [2, 28, 28], [2, 28, 28, 1]))
        body = rng.randbytes(math.prod(dims) * IDX_DTYPES[code].itemsize)
        return idx_bytes(code, dims, body), f"retyped {hex(code)} {dims}"

    idx = name == "fashion-mnist"
    files[target], how = _with(rng, files[target], structural if idx else None)
    gz = idx and rng.random() < 0.5
    for f, data in files.items():
        (root / (f + ".gz" * gz)).write_bytes(gzip.compress(data) if gz else data)

    def check(d) -> bool:
        ok = d.train_images.dtype == torch.uint8 and tuple(d.train_images.shape[1:]) == (
            spec.image_shape
        )
        labels = torch.cat([d.train_labels, d.test_labels])
        return (
            ok
            and len(d.train_images) == len(d.train_labels)
            and (0 <= int(labels.min()) and int(labels.max()) < len(spec.classes))
        )

    def read():
        return load_dataset(name, data_dir=root, download_ok=False, progress=False)

    return f"{name} {target} {how}", read, check


def idx_bytes(code: int, dims: list[int], body: bytes) -> bytes:
    return bytes([0, 0, code, len(dims)]) + b"".join(d.to_bytes(4, "big") for d in dims) + body


def tar_input(rng: random.Random, tmp: Path):
    names = ["test_batch.bin", "data_batch_1.bin"]
    evil = rng.choice((None, None, "symlink", "hardlink", "absolute", "dotdot", "fifo"))
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name in names:
            info = tarfile.TarInfo(f"cifar-10-batches-bin/{name}")
            content = rng.randbytes(rng.randrange(1, 200))
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
        if evil:
            info = tarfile.TarInfo("cifar-10-batches-bin/test_batch.bin")
            if evil == "symlink":
                info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
            elif evil == "hardlink":
                info.type, info.linkname = tarfile.LNKTYPE, "/etc/passwd"
            elif evil == "fifo":
                info.type = tarfile.FIFOTYPE
            else:
                info.name = "/tmp/test_batch.bin" if evil == "absolute" else "../test_batch.bin"
            tar.addfile(info, io.BytesIO(b""))
    data, how = (buf.getvalue(), "valid") if evil else _with(rng, buf.getvalue(), None)
    archive, dest = tmp / "a.tar.gz", tmp / f"out{rng.randrange(10**9)}"
    archive.write_bytes(data)
    dest.mkdir()

    def check(paths) -> bool:
        inside = all(p.resolve().is_relative_to(dest.resolve()) and p.is_file() for p in paths)
        return evil is None and inside

    return f"tar {evil or ''} {how}", lambda: _extract(archive, dest, names), check


def random_image(rng: random.Random, fmt: str) -> Image.Image:
    """A small image in a mode the format can save, noise or flat colour."""
    modes = {
        "png": ("L", "RGB", "RGBA", "LA", "P", "I;16", "1"),
        "jpeg": ("L", "RGB", "CMYK"),
        "gif": ("L", "P"),
        "webp": ("RGB", "RGBA"),
        "tiff": ("L", "RGB", "RGBA", "CMYK", "I;16", "1", "P"),
        "bmp": ("L", "RGB", "P", "1"),
    }[fmt]
    mode = rng.choice(modes)
    w, h = rng.randrange(1, 24), rng.randrange(1, 24)
    a = np.random.default_rng(rng.randrange(2**32)).integers(0, 256, (h, w, 4), dtype=np.uint8)
    img = Image.fromarray(a)
    if mode == "I;16":
        return Image.fromarray(a[..., 0].astype(np.uint16) * 257)
    if mode == "P":
        return img.convert("RGB").quantize(rng.choice((2, 16, 256)))
    return img.convert(mode)


def encode(img: Image.Image, fmt: str, **kw) -> bytes:
    out = io.BytesIO()
    img.save(out, FORMATS[fmt], **kw)
    return out.getvalue()


def image_check(mode: str, size: int | None, channels_axis: bool = False):
    def check(t) -> bool:
        t = t[0] if channels_axis else t
        c = 1 if mode == "L" else 3
        ok = t.dtype == torch.uint8 and t.dim() == 3 and t.shape[0] == c
        return ok and (size is None or tuple(t.shape[1:]) == (size, size))

    return check


def image_reader(rng: random.Random, path: Path):
    """read_image or load_image with a random mode, size and fit; (read, check, what)."""
    mode, size = rng.choice(("L", "RGB")), rng.choice((None, 16, 32))
    fit = rng.choice(("pad", "crop"))
    if rng.random() < 0.5:
        read = lambda: read_image(path, mode, size, fit)  # noqa: E731
        return read, image_check(mode, size), f"{mode} {size} {fit}"
    channels = 1 if mode == "L" else 3
    read = lambda: load_image(path, channels, size, fit)  # noqa: E731
    return read, image_check(mode, size, channels_axis=True), f"load {channels}ch {size} {fit}"


def format_input(fmt: str):
    def make(rng: random.Random, tmp: Path):
        img = random_image(rng, fmt)
        kw = {}
        if fmt == "jpeg" and rng.random() < 0.3:  # EXIF orientation: exif_transpose reads it
            exif = Image.Exif()
            exif[0x0112] = rng.randrange(1, 9)
            kw["exif"] = exif.tobytes()
        if fmt == "png" and img.mode == "P" and rng.random() < 0.5:
            kw["transparency"] = 0
        base = encode(img, fmt, **kw)
        retype = (lambda: retype_tiff_entry(base, rng)) if fmt == "tiff" else None
        data, how = _with(rng, base, retype)
        path = tmp / f"x.{fmt}"
        path.write_bytes(data)
        read, check, what = image_reader(rng, path)
        return f"{fmt} {img.mode} {img.size} {what} {how}", read, check

    return make


def retype_tiff_entry(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    """A little-endian TIFF with one entry of its first IFD given another type (1-18) or
    count: a value read as a fraction, a list or an offset elsewhere."""
    b = bytearray(data)
    ifd = struct.unpack("<I", b[4:8])[0]
    at = ifd + 2 + 12 * rng.randrange(struct.unpack("<H", b[ifd : ifd + 2])[0])
    tag = struct.unpack("<H", b[at : at + 2])[0]
    if rng.random() < 0.7:
        b[at + 2 : at + 4] = struct.pack("<H", rng.randrange(1, 19))
        return bytes(b), f"tag {tag} type {b[at + 2]}"
    b[at + 4 : at + 8] = struct.pack("<I", rng.choice((0, 2, 1000, 2**32 - 1)))
    return bytes(b), f"tag {tag} count {struct.unpack('<I', b[at + 4 : at + 8])[0]}"


def bomb(fmt: str, w: int, h: int) -> bytes:
    """A tiny file whose header claims w x h pixels."""
    small = encode(Image.new("L" if fmt == "gif" else "RGB", (1, 1)), fmt)
    b = bytearray(small)
    if fmt == "png":  # IHDR: width, height at 16..24, its CRC after the chunk's 13 bytes
        b[16:24] = struct.pack(">II", w, h)
        b[29:33] = struct.pack(">I", zlib.crc32(bytes(b[12:29])))
    elif fmt == "gif":  # logical screen and the first image descriptor, little-endian 16-bit
        b[6:10] = struct.pack("<HH", w, h)
        at = b.index(b"\x2c")
        b[at + 5 : at + 9] = struct.pack("<HH", w, h)
    elif fmt == "bmp":  # BITMAPINFOHEADER width and height
        b[18:26] = struct.pack("<ii", w, h)
    elif fmt == "jpeg":  # SOF0: height then width, big-endian 16-bit
        at = b.index(b"\xff\xc0")
        b[at + 5 : at + 9] = struct.pack(">HH", h, w)
    return bytes(b)


def special_images() -> list[tuple[str, str, bytes]]:
    """(name, format, bytes) of valid images of unusual kinds."""
    a = np.random.default_rng(0).integers(0, 256, (12, 9, 4), dtype=np.uint8)
    rgba = Image.fromarray(a)
    i16 = Image.fromarray(a[..., 0].astype(np.uint16) * 257)
    p = rgba.convert("RGB").quantize(16)
    exif = Image.Exif()
    exif[0x0112] = 6
    out = [
        ("I;16", "png", encode(i16, "png")),
        ("I;16", "tiff", encode(i16, "tiff")),
        ("CMYK", "jpeg", encode(rgba.convert("CMYK"), "jpeg")),
        ("CMYK", "tiff", encode(rgba.convert("CMYK"), "tiff")),
        ("P+transparency", "png", encode(p, "png", transparency=3)),
        ("P+transparency", "gif", encode(p, "gif", transparency=3)),
        ("LA", "png", encode(rgba.convert("LA"), "png")),
        ("RGBA", "png", encode(rgba, "png")),
        ("RGBA", "webp", encode(rgba, "webp", lossless=True)),
        ("RGBA", "tiff", encode(rgba, "tiff")),
        ("EXIF rotated", "jpeg", encode(rgba.convert("RGB"), "jpeg", exif=exif.tobytes())),
    ]
    for fmt in FORMATS:
        out.append(("1x1", fmt, encode(Image.new("RGB", (1, 1), (200, 10, 10)), fmt)))
        out.append(("1x5000", fmt, encode(Image.new("L", (1, 5000), 77), fmt)))
    return out


# over MAX_IMAGE_PIXELS (a warning in PIL, made an error) and over twice that (PIL's error)
BOMBS = [
    (f"bomb {w}x{h}", fmt, bomb(fmt, w, h))
    for fmt in ("png", "gif", "bmp", "jpeg")
    for w, h in ((10_000, 10_000), (30_000, 30_000))
]


SPECIAL = special_images() + BOMBS


def special_input(rng: random.Random, tmp: Path):
    name, fmt, data = rng.choice(SPECIAL)
    how = "valid"
    if rng.random() < 0.5:
        data, how = mutate(data, rng)
    path = tmp / f"s.{fmt}"
    path.write_bytes(data)
    read, check, what = image_reader(rng, path)
    if name.startswith("bomb") and how == "valid":
        check = lambda t: False  # noqa: E731  (a bomb must be refused)
    return f"{name} {fmt} {what} {how}", read, check


GIB = 2**30
SLICE = 64 * 2**20  # zeros per gzip member of a bomb: 2 GiB take 2 MB


def gzip_zeros(head: bytes, total: int) -> bytes:
    """A gzip file of `head`, then zeros up to `total` bytes, made of SLICE-byte members."""
    whole, rest = divmod(total - SLICE, SLICE)
    first = gzip.compress(head + bytes(SLICE - len(head)), 9)
    return first + gzip.compress(bytes(SLICE), 9) * whole + gzip.compress(bytes(rest), 9)


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bytes(w: int, h: int, chunks: bytes = b"", idat: bytes | None = None) -> bytes:
    """A grey 8-bit PNG of w x h: IHDR, `chunks`, then IDAT (zeros unless given)."""
    idat = zlib.compress(bytes((w + 1) * h)) if idat is None else idat
    ihdr = png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
    return b"\x89PNG\r\n\x1a\n" + ihdr + chunks + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")


def tar_of(members: list[tuple[str, int]], pax: int = 0) -> bytes:
    """A .tar.gz of CIFAR-10-named members of zeros (name, size), after a pax header of `pax`
    bytes when given (which tarfile would read whole)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name, size in members:
            info = tarfile.TarInfo(f"cifar-10-batches-bin/{name}")
            info.size = size
            tar.addfile(info, io.BytesIO(bytes(size)))
    if not pax:
        return gzip.compress(buf.getvalue(), 9)
    head = tarfile.TarInfo("././@PaxHeader")
    head.type, head.size = tarfile.XHDTYPE, pax
    block = head.tobuf(format=tarfile.USTAR_FORMAT)
    return gzip_zeros(block, len(block) + pax) + gzip.compress(buf.getvalue())


@functools.cache
def bombs() -> list[tuple[str, str, bytes]]:
    """(name, kind: "idx", "tar" or "png", bytes), made once (about 2 s)."""

    def head(*dims):
        return idx_bytes(0x08, list(dims), b"")

    def text(kind, n):
        lead = b"k\0\1\0\0\0" if kind == b"iTXt" else b"k\0\0"
        return png_chunk(kind, lead + zlib.compress(bytes(n), 9))

    return [
        ("idx header promises 2 GiB", "idx", gzip_zeros(head(2 * GIB // 784, 28, 28), 2 * GIB)),
        ("idx 60000x28x28 then 2 GiB", "idx", gzip_zeros(head(60_000, 28, 28), 2 * GIB)),
        ("idx promises more than it holds", "idx", gzip.compress(head(60_000, 28, 28) + bytes(99))),
        ("tar member 64 MiB", "tar", tar_of([("data_batch_1.bin", SLICE)])),
        ("tar pax header 512 MiB", "tar", tar_of([("test_batch.bin", 3073)], pax=512 * 2**20)),
        ("tar 65 members", "tar", tar_of([(f"{k}.txt", 1) for k in range(MAX_MEMBERS + 1)])),
        ("png zTXt 200 MiB", "png", png_bytes(8, 8, text(b"zTXt", 200 * 2**20))),
        ("png iTXt 200 MiB", "png", png_bytes(8, 8, text(b"iTXt", 200 * 2**20))),
        ("png iCCP 200 MiB", "png", png_bytes(8, 8, text(b"iCCP", 200 * 2**20))),
        ("png 2^31 x 2^31", "png", png_bytes(2**31 - 1, 2**31 - 1, idat=b"")),
        ("png 30000x2000 in 57 bytes", "png", png_bytes(30_000, 2_000, idat=b"")),
    ]


def bomb_input(rng: random.Random, tmp: Path):
    name, kind, data = rng.choice(bombs())
    how = "valid"
    if rng.random() < 0.5:
        data, how = mutate(data, rng)
    if kind == "idx":  # in a Fashion-MNIST folder, as train-images-idx3-ubyte.gz
        root = tmp / "bomb-data"  # 2 MB a bomb: one folder per case folder, rewritten
        root.mkdir(exist_ok=True)
        for prefix, n in (("train", 3), ("t10k", 2)):
            images = idx_bytes(0x08, [n, 28, 28], rng.randbytes(n * 784))
            (root / f"{prefix}-images-idx3-ubyte.gz").write_bytes(gzip.compress(images))
            labels = idx_bytes(0x08, [n], bytes(range(n)))
            (root / f"{prefix}-labels-idx1-ubyte.gz").write_bytes(gzip.compress(labels))
        (root / "train-images-idx3-ubyte.gz").write_bytes(data)
        read = lambda: load_dataset("fashion-mnist", data_dir=root, download_ok=False)  # noqa: E731
        check = lambda d: tuple(d.train_images.shape[1:]) == (1, 28, 28)  # noqa: E731
    elif kind == "tar":
        archive, dest = tmp / "b.tar.gz", tmp / f"out{rng.randrange(10**9)}"
        archive.write_bytes(data)
        sizes = {f: DATASETS["cifar10"].most_bytes(f) for f in DATASETS["cifar10"].files()}
        read = lambda: _extract(archive, dest, sizes)  # noqa: E731

        def check(paths) -> bool:
            return all(p.is_file() and p.stat().st_size <= sizes[p.name] for p in paths)
    else:
        path = tmp / "b.png"
        path.write_bytes(data)
        read, check, what = image_reader(rng, path)
        name += f" {what}"
    if how == "valid":
        check = lambda _: False  # noqa: E731  (a bomb must be refused)
    return f"{name} {how}", read, check


class Tiny(nn.Sequential):
    """Conv, batch norm (with its int64 counter) and linear: the kinds of tensors a model has."""

    def __init__(self):
        super().__init__(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Flatten(), nn.Linear(2, 3))


def safetensors_input(rng: random.Random, tmp: Path):
    model = Tiny()
    path = tmp / "w.safetensors"
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(path), metadata=sealed_metadata({"model": "tiny", "config": "{}"}, state))
    base = path.read_bytes()

    def structural():
        n = struct.unpack("<Q", base[:8])[0]
        header, data = json.loads(base[8 : 8 + n]), base[8 + n :]
        what = rng.choice(("length", "dtype", "shape", "offsets", "drop", "metadata", "data"))
        if what == "length":
            n = rng.choice((0, 1, n - 1, n + 1, len(base), 2**32, 2**63, 2**64 - 1))
            return struct.pack("<Q", n) + base[8:], f"length {n}"
        name = rng.choice([k for k in header if k != "__metadata__"])
        if what == "dtype":
            header[name]["dtype"] = rng.choice(
                ("F16", "BF16", "F64", "I64", "I32", "I8", "U8", "BOOL", "F8_E4M3", "C64", "X", 3)
            )
        elif what == "shape":
            header[name]["shape"] = rng.choice(([], [0], [-1], [2**40, 2**40], ["2"], [1] * 70))
        elif what == "offsets":
            a, b = header[name]["data_offsets"]
            header[name]["data_offsets"] = rng.choice(
                ([b, a], [a, len(data) + 8], [a - 4, b - 4], [0, 2**63], [a], [a, b, 1], ["0", b])
            )
        elif what == "drop":
            del header[name]
        elif what == "metadata":
            header["__metadata__"] = json_value(rng)
        else:
            return base[: 8 + n + rng.randrange(len(data))], "data truncated"
        text = json.dumps(header).encode() + b" " * rng.randrange(8)
        return struct.pack("<Q", len(text)) + text + data, f"{what} of {name}"

    data, how = _with(rng, base, structural)
    path.write_bytes(data)

    def check(_) -> bool:  # the file held tensors of the model's names, shapes and kinds
        saved, own = load_file(path), model.state_dict()
        return set(saved) == set(own) and all(
            saved[k].shape == own[k].shape
            and saved[k].is_floating_point() == own[k].is_floating_point()
            for k in own
        )

    return f"safetensors {how}", lambda: load_weights(model, path, "tiny"), check


class CodeRan(Exception):
    """A reader ran code named in a file: the worst failure, counted as a traceback."""


@functools.cache
def converted_base() -> tuple[dict[str, str], dict[str, torch.Tensor]]:
    """(metadata, tensors) of lenet_fc converted without a run, as `ninlab convert --model`
    writes it (made once)."""
    dense, conversion = for_inference(create_model("lenet_fc").eval(), (1, 28, 28))
    buf = Path(tempfile.mkdtemp(prefix="ninlab-fuzz-conv-")) / "lenet.safetensors"
    save_converted(dense, buf, conversion, None, {"model": "lenet_fc", "kwargs": {}})
    meta, tensors = read_safetensors(buf)
    buf.unlink()
    buf.parent.rmdir()
    return meta, tensors


def converted_input(rng: random.Random, tmp: Path):
    meta, tensors = converted_base()
    path, canary, evil = tmp / "c.safetensors", tmp / "CANARY", tmp / "evil.py"
    evil.write_text(f"from pathlib import Path\nPath({str(canary)!r}).write_text('ran')\n"
                    "def net(**kw):\n    Path({str(canary)!r}).write_text('ran')\n")  # fmt: skip
    save_file(tensors, str(path), metadata=meta)
    base = path.read_bytes()

    def structural():
        source = rng.choice((
            {"model": "os:system", "kwargs": {"command": f"touch {canary}"}},
            {"model": "subprocess:run", "kwargs": {"args": ["touch", str(canary)]}},
            {"model": "builtins:exec", "kwargs": {"source": f"open({str(canary)!r}, 'w')"}},
            {"model": f"{evil}:net", "kwargs": {}},
            {"model": "lenet_fc", "kwargs": {"num_classes": 10**9}},
            {"model": "lenet_fc", "kwargs": {"in_chans": 10**7}},
            {"model": "lenet_fc", "kwargs": json_value(rng)},
            {"model": json_value(rng), "kwargs": {}},
        ))  # fmt: skip
        changed = dict(meta, source=json.dumps(source))
        if rng.random() < 0.3:
            changed["conversion"] = json.dumps({"input_size": json_value(rng)})
        save_file(tensors, str(path), metadata=sealed_metadata(changed, tensors))
        return path.read_bytes(), f"source {json.dumps(source)[:60]}"

    data, how = _with(rng, base, structural)
    path.write_bytes(data)

    def read():
        try:
            return load_converted(path)
        finally:
            if canary.exists():
                canary.unlink()
                raise CodeRan(f"opening {path.name} ran code from its metadata")  # noqa: B012

    def check(result) -> bool:  # lenet_fc's converted tensors, its 10 classes on a 28 px image
        dense, config = result
        return config is None and dense(torch.zeros(1, 1, 28, 28)).shape[:2] == (1, 10)

    return f"converted {how}", read, check


def config_dict() -> dict:
    cfg = TrainConfig(classes=["a", "b"], in_chans=1, input_size=28, mean=[0.5], std=[0.25])
    return cfg.to_dict()


def fits(value, hint) -> bool:
    """Whether `value` has the annotated type (int excludes bool; floats must be finite)."""
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (types.UnionType, typing.Union):
        return any(fits(value, a) for a in args)
    if typing.get_origin(hint) is list:
        return isinstance(value, list) and all(fits(v, args[0]) for v in value)
    if hint is type(None):
        return value is None
    if hint is float:
        return type(value) is float and math.isfinite(value)
    return type(value) is hint


def config_input(rng: random.Random, tmp: Path):
    d = config_dict()

    def structural():
        what = rng.choice(("value", "value", "drop", "unknown", "top", "text"))
        if what == "top":
            return json.dumps(json_value(rng)).encode(), "top-level value"
        if what == "text":  # nested past the recursion limit, an int of 5,000 digits, not UTF-8
            text = rng.choice((b"[" * 100_000, b'{"seed": ' + b"1" * 5000 + b"}", b"\xff{}"))
            return text, f"text {text[:12]!r}"
        key = rng.choice(list(d))
        if what == "value":
            d[key] = json_value(rng)
        elif what == "drop":
            del d[key]
        else:
            d["x_" + key] = json_value(rng)
        return json.dumps(d).encode(), f"{what} {key}={str(d.get(key))[:30]}"

    data, how = _with(rng, json.dumps(d).encode(), structural)
    run = tmp / f"run{rng.randrange(10**9)}"
    run.mkdir()
    (run / "config.json").write_bytes(data)
    hints = typing.get_type_hints(TrainConfig)
    names = [f.name for f in dataclasses.fields(TrainConfig)]

    def check(cfg) -> bool:
        values = cfg.to_dict()
        return isinstance(cfg, TrainConfig) and all(fits(values[k], hints[k]) for k in names)

    return f"config {how}", lambda: read_config(run), check


def metrics_input(rng: random.Random, tmp: Path):
    rows = [{k: rng.random() * (1 if k.endswith("_acc") else 10) for k in METRICS}
            | {"epoch": e + 1} for e in range(3)]  # fmt: skip

    def structural():
        what = rng.choice(("value", "drop", "row", "line"))
        row = rng.choice(rows)
        key = rng.choice(METRICS)
        if what == "value":
            row[key] = json_value(rng)
        elif what == "drop":
            del row[key]
        elif what == "row":
            rows[rows.index(row)] = json_value(rng)
        text = "".join(json.dumps(r) + "\n" for r in rows)
        if what == "line":
            text += rng.choice(("{", "\n\n", "[" * 100_000, "1" * 5000, "\x00", "\ud800"))
        return text.encode("utf-8", "surrogatepass"), f"{what} {key}"

    data, how = _with(rng, "".join(json.dumps(r) + "\n" for r in rows).encode(), structural)
    run = tmp / f"run{rng.randrange(10**9)}"
    run.mkdir()
    (run / "metrics.jsonl").write_bytes(data)

    def check(result) -> bool:  # numbers; losses not negative, accuracies shares
        return all(
            isinstance(r, dict)
            and all(type(r[k]) in (int, float) for k in METRICS if k in r)
            and not any(r.get(k, 0) < 0 for k in ("train_loss", "test_loss"))
            and all(0 <= r.get(k, 0) <= 1 or r[k] != r[k] for k in ("train_acc", "test_acc"))
            for r in result
        )

    return f"metrics {how}", lambda: read_metrics(run), check


def checkpoint_bytes() -> bytes:
    cfg = TrainConfig(classes=["a", "b", "c"], in_chans=1, input_size=4)
    model = Tiny()
    opt = make_optimizer(model, cfg)
    state = TrainState(cfg, model, opt, make_scheduler(opt, cfg, 10), epoch=1, step=2)
    state.history.append({k: 0.5 for k in METRICS})
    buf = io.BytesIO()
    torch.save(state.checkpoint(), buf)
    return buf.getvalue()


CHECKPOINT = checkpoint_bytes()
PICKLE_SIZE = 2000  # about the size of data.pkl in CHECKPOINT


def checkpoint_input(rng: random.Random, tmp: Path):
    def structural():
        ckpt = torch.load(io.BytesIO(CHECKPOINT), weights_only=True)
        key = rng.choice(list(ckpt))
        if rng.random() < 0.3:
            del ckpt[key]
        else:
            ckpt[key] = rng.choice((None, "x", -1, 1.5, [], {}, torch.zeros(3), True))
        if rng.random() < 0.1:
            ckpt = rng.choice(([ckpt], "x", torch.zeros(2)))
        buf = io.BytesIO()
        torch.save(ckpt, buf)
        return buf.getvalue(), f"retyped {key}"

    def pickle_bytes():  # edits inside data.pkl: the zip's CRC is not checked on reading
        start = CHECKPOINT.index(b"data.pkl") + 8
        b = bytearray(CHECKPOINT)
        for _ in range(rng.choice((1, 2))):
            at = start + rng.randrange(PICKLE_SIZE)
            b[at] = rng.choice((0, 0x7F, 0x80, 0xFF, rng.randrange(256)))
        return bytes(b), f"pickle byte set at {at}"

    data, how = _with(rng, CHECKPOINT, rng.choice((structural, pickle_bytes)))
    run = tmp / f"run{rng.randrange(10**9)}"
    run.mkdir()
    (run / "checkpoint.pt").write_bytes(data)
    need = {"config": dict, "model": dict, "optimizer": dict, "scheduler": dict, "epoch": int,
            "step": int, "history": list, "partial": dict, "rng_cpu": torch.Tensor}  # fmt: skip

    def check(ckpt) -> bool:
        return (
            isinstance(ckpt, dict)
            and all(isinstance(ckpt.get(k), t) for k, t in need.items())
            and not any(isinstance(ckpt[k], bool) for k in ("epoch", "step"))
            and ckpt["rng_cpu"].dtype == torch.uint8
        )

    return f"checkpoint {how}", lambda: read_checkpoint(run), check


KINDS: dict[str, Callable] = {
    "idx": idx_input,
    "cifar": cifar_input,
    "dataset": dataset_input,
    "tar": tar_input,
    **{fmt: format_input(fmt) for fmt in FORMATS},
    "special": special_input,
    "bomb": bomb_input,
    "safetensors": safetensors_input,
    "converted": converted_input,
    "config": config_input,
    "metrics": metrics_input,
    "checkpoint": checkpoint_input,
}


# ---- the harness ----


def one_line(e: Exception) -> bool:
    text = str(e)
    return bool(text) and "\n" not in text


def fuzz(n: int = 5000, seed: int = 0, log=print) -> dict:
    """Run n inputs (spread evenly over KINDS) through their readers; counts per kind and the
    first few failures with the input that caused them."""
    Image.init()
    missing = [fmt for fmt, name in FORMATS.items() if name not in Image.SAVE]
    kinds = {k: f for k, f in KINDS.items() if k not in missing}
    if missing and log:
        log(f"skipped (this Pillow cannot write them): {', '.join(missing)}")
    names = list(kinds)
    counts = ("tried", "refused", "accepted", "tracebacks", "wrong", "unclear")
    by_kind = {k: dict.fromkeys(counts, 0) | {"slowest_s": 0.0, "seconds": 0.0} for k in names}
    examples = []
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory(prefix="ninlab-fuzz-") as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PIL's words on corrupt EXIF and TIFF tags
        for i in range(n):
            kind = names[i % len(names)]
            c = by_kind[kind]
            case_dir = Path(tmp) / str(i % 64)  # a few folders, reused
            case_dir.mkdir(exist_ok=True)
            what, read, check = kinds[kind](random.Random(rng.randrange(2**63)), case_dir)
            c["tried"] += 1
            t0 = time.perf_counter()
            failure = None
            try:
                result = read()
            except NinlabError as e:
                c["refused"] += 1
                if not one_line(e):
                    c["unclear"] += 1
                    failure = ("unclear", f"{type(e).__name__}: {str(e)[:300]!r}")
            except Exception as e:  # a traceback: what the reader must never end in
                c["tracebacks"] += 1
                where = traceback.extract_tb(e.__traceback__)[-1]
                failure = ("traceback", f"{type(e).__name__}: {str(e)[:200]} "
                           f"({Path(where.filename).name}:{where.lineno})")  # fmt: skip
            else:
                c["accepted"] += 1
                if not check(result):
                    c["wrong"] += 1
                    failure = ("wrong", f"accepted: {str(result)[:200]!r}")
            dt = time.perf_counter() - t0
            c["seconds"] += dt
            if dt > c["slowest_s"]:
                c["slowest_s"], c["slowest"] = dt, what
            if failure and len(examples) < EXAMPLES:
                examples.append({"kind": kind, "input": what, failure[0]: failure[1]})
    total = {k: sum(c[k] for c in by_kind.values()) for k in counts}
    return {**total, "by_kind": by_kind, "examples": examples,
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--n", type=int, default=5000, help="inputs to try (default 5000)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    print(describe(matmul_rate(repeats=3)))
    torch.set_num_threads(1)  # the readers' pace on one core
    print(f"Pillow {Image.__version__} (webp {features.check('webp')}, "
          f"jpeg {features.check('jpg')}, tiff {features.check('libtiff')}), "
          f"Image.MAX_IMAGE_PIXELS {Image.MAX_IMAGE_PIXELS:,}")  # fmt: skip
    t0 = time.perf_counter()
    r = fuzz(args.n, args.seed)
    wall = time.perf_counter() - t0
    print(f"\n{'kind':<12} {'tried':>6} {'refused':>8} {'accepted':>8} {'traceback':>9} "
          f"{'wrong':>6} {'unclear':>7} {'ms/input':>8} {'slowest ms':>10}")  # fmt: skip
    for kind, c in r["by_kind"].items():
        print(f"{kind:<12} {c['tried']:>6} {c['refused']:>8} {c['accepted']:>8} "
              f"{c['tracebacks']:>9} {c['wrong']:>6} {c['unclear']:>7} "
              f"{1000 * c['seconds'] / max(c['tried'], 1):>8.2f} "
              f"{1000 * c['slowest_s']:>10.1f}")  # fmt: skip
    for ex in r["examples"]:
        print(" ", ex)
    slow = max(r["by_kind"].values(), key=lambda c: c["slowest_s"])
    print(f"\nslowest input: {slow['slowest']} ({1000 * slow['slowest_s']:.0f} ms)")
    print(f"{wall:.1f} s wall, peak memory {r['peak_rss_mib']:.0f} MiB (the whole process)")
    print(
        f"{r['tried']:,} inputs tried, {r['tracebacks']} ended in a traceback "
        f"({r['wrong']} accepted wrongly, {r['unclear']} refused in more than one line)"
    )
    raise SystemExit(1 if r["tracebacks"] or r["wrong"] or r["unclear"] else 0)


if __name__ == "__main__":
    main()
