"""Reader for the IDX format of MNIST-like data sets (raw or .gz).

Layout (LeCun et al., http://yann.lecun.com/exdb/mnist/): two zero bytes, one dtype byte, one byte
with the number of dimensions, then one big-endian int32 per dimension, then the data, row-major.
The header thus promises the file's exact length: a .gz file is inflated no further than that
(ninlab.data.inflate), so a small file that inflates to gigabytes is refused in a second.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from ninlab.data.inflate import Limit, read_bytes
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


def promised(head: bytes, name: str = "<bytes>") -> tuple[int, str] | None:
    """(total length, "60000x28x28, uint8") that the first bytes of an IDX file promise, or None
    while they are too few to say; a wrong magic number, dtype or dimension count, or dimensions
    that no file could hold, raise NinlabError."""
    got = _header(head, name)
    if got is None:
        return None
    dims, dtype = got
    length = 4 + 4 * len(dims) + math.prod(dims) * dtype.itemsize  # exact: np.prod wraps at 2**64
    return length, f"{'x'.join(map(str, dims))}, {dtype.name}"


def _header(head: bytes, name: str) -> tuple[list[int], np.dtype] | None:
    """(dims, dtype) of an IDX header, checked; None while `head` is too short to hold it."""
    if len(head) >= 2 and (head[0] != 0 or head[1] != 0):
        raise _not_idx(head, name)
    if len(head) < 4:
        return None
    dtype_code, ndim = head[2], head[3]
    if dtype_code not in IDX_DTYPES:
        raise NinlabError(f"{name} has an unknown IDX dtype code 0x{dtype_code:02x}.")
    if not 1 <= ndim <= MAX_DIMS:
        raise NinlabError(
            f"{name} declares {ndim} dimensions; ninlab reads IDX files of 1 to {MAX_DIMS}."
        )
    header = 4 + 4 * ndim
    if len(head) < header:
        return None
    dims = [int.from_bytes(head[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    dtype = IDX_DTYPES[dtype_code]
    if math.prod(max(d, 1) for d in dims) * dtype.itemsize >= 2**62:  # numpy's own limit, 0 or not
        raise NinlabError(
            f"{name} declares a {'x'.join(map(str, dims))} array of {dtype.name}, more than any "
            "file can hold; the file is corrupt."
        )
    return dims, dtype


def _not_idx(data: bytes, name: str) -> NinlabError:
    return NinlabError(
        f"{name} is not an IDX file: wrong magic number "
        f"(expected 00 00 <dtype> <ndim>, found {data[:4].hex(' ') or 'nothing'})."
    )


def parse_idx(data: bytes, name: str = "<bytes>") -> torch.Tensor:
    """Parse IDX bytes into a tensor, checking magic number, dtype, dimensions and length."""
    got = promised(data, name)
    if got is None:
        if len(data) < 4:
            raise _not_idx(data, name)
        raise NinlabError(f"{name} is truncated inside its header ({len(data)} bytes).")
    expected, said = got
    if len(data) != expected:
        raise NinlabError(
            f"{name} has {len(data):,} bytes but its header ({said}) needs {expected:,}; the "
            "file is truncated or corrupt."
        )
    dims, dtype = _header(data, name)
    array = np.frombuffer(data, dtype=dtype, offset=4 + 4 * len(dims)).reshape(dims)
    return torch.from_numpy(array.astype(dtype.newbyteorder("="), copy=True))


def read_idx(path: str | Path, limit: Limit | None = None) -> torch.Tensor:
    """Read an IDX file (.gz or raw) into a tensor of its dtype and shape, inflating no more than
    its header promises, which must be within `limit` (default: half of the memory available)."""
    return parse_idx(read_bytes(path, limit, lambda head: promised(head, str(path))), str(path))
