"""Reader for the IDX format of MNIST-like data sets (raw or .gz).

Layout (LeCun et al., http://yann.lecun.com/exdb/mnist/): two zero bytes, one dtype byte, one byte
with the number of dimensions, then one big-endian int32 per dimension, then the data, row-major.
"""

from __future__ import annotations

import gzip
import math
import zlib
from pathlib import Path

import numpy as np
import torch

from ninlab.errors import NinlabError

# dtype byte -> numpy dtype (big-endian as stored)
IDX_DTYPES = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
MAX_DIMS = 8  # images are N x H x W and labels N; numpy stops at 64


def read_bytes(path: str | Path) -> bytes:
    """The decompressed content of `path`, gzip or raw; a damaged gzip file raises NinlabError."""
    path = Path(path)
    if not path.is_file():
        raise NinlabError(f"{path} does not exist or is not a file.")
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            return gzip.decompress(raw)
        return raw
    except (EOFError, OSError, zlib.error) as e:
        raise NinlabError(
            f"{path} is truncated or corrupt ({e}); delete it so that ninlab fetches it again, "
            "or reinstall the data set."
        ) from None


def parse_idx(data: bytes, name: str = "<bytes>") -> torch.Tensor:
    """Parse IDX bytes into a tensor, checking magic number, dtype, dimensions and length."""
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise NinlabError(
            f"{name} is not an IDX file: wrong magic number "
            f"(expected 00 00 <dtype> <ndim>, found {data[:4].hex(' ') or 'nothing'})."
        )
    dtype_code, ndim = data[2], data[3]
    if dtype_code not in IDX_DTYPES:
        raise NinlabError(f"{name} has an unknown IDX dtype code 0x{dtype_code:02x}.")
    if not 1 <= ndim <= MAX_DIMS:
        raise NinlabError(
            f"{name} declares {ndim} dimensions; ninlab reads IDX files of 1 to {MAX_DIMS}."
        )
    header = 4 + 4 * ndim
    if len(data) < header:
        raise NinlabError(f"{name} is truncated inside its header ({len(data)} bytes).")
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    dtype = IDX_DTYPES[dtype_code]
    expected = header + math.prod(dims) * dtype.itemsize  # exact: np.prod wraps at 2**64
    if math.prod(max(d, 1) for d in dims) * dtype.itemsize >= 2**62:  # numpy's own limit, 0 or not
        raise NinlabError(
            f"{name} declares a {'x'.join(map(str, dims))} array of {dtype.name}, more than any "
            "file can hold; the file is corrupt."
        )
    if len(data) != expected:
        raise NinlabError(
            f"{name} has {len(data):,} bytes but its header ({'x'.join(map(str, dims))}, "
            f"{dtype.name}) needs {expected:,}; the file is truncated or corrupt."
        )
    array = np.frombuffer(data, dtype=dtype, offset=header).reshape(dims)
    return torch.from_numpy(array.astype(dtype.newbyteorder("="), copy=True))


def read_idx(path: str | Path) -> torch.Tensor:
    """Read an IDX file (.gz or raw) into a tensor of its dtype and shape."""
    return parse_idx(read_bytes(path), str(path))


def write_idx(path: str | Path, tensor: torch.Tensor, compress: bool | None = None) -> Path:
    """Write a uint8 tensor as an IDX file (gzip when the name ends in .gz): for tests and tools."""
    path = Path(path)
    array = tensor.numpy().astype(np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape
    )
    data = header + array.tobytes()
    if compress if compress is not None else path.suffix == ".gz":
        data = gzip.compress(data)
    path.write_bytes(data)
    return path
