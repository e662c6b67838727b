"""Reading a data file that may be gzip-compressed, never past a bound known before it is read.

A gzip file of 2 MB can inflate to 2 GiB (a "decompression bomb"), so nothing is inflated whole:
`inflated` yields the content in pieces of at most CHUNK bytes, and `read_bytes` stops as soon as
the content passes its bound. The bound is the exact length that the file's own header promises
(an IDX header, `promise`), which must itself be within a `Limit` known beforehand: the size of
the published file for a built-in data set, else half of the memory available. Memory stays
within the bound plus one CHUNK, and a bomb is refused after inflating at most that much.
"""

from __future__ import annotations

import os
import resource
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from ninlab.errors import NinlabError

CHUNK = 2**20  # bytes read, and inflated, at a time
GZIP_MAGIC = b"\x1f\x8b"
GZIP_WBITS = 31  # zlib's gzip framing: it checks the header, the CRC-32 and the length


@dataclass(frozen=True)
class Limit:
    """The most bytes a file may hold once inflated, and the words for a refusal."""

    bytes: int
    what: str  # what the bound is: "the published fashion-mnist file train-images-idx3-ubyte"
    fix: str  # what the user can do: "replace it with the published one"


def available_memory() -> int:
    """Bytes that a new allocation can take: MemAvailable (else the free pages), and no more
    than the address space that `ulimit -v` leaves this process."""
    have = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                have = int(line.split()[1]) * 1024
    except OSError:
        pass
    if have is None:
        have = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft != resource.RLIM_INFINITY:
        have = min(have, max(soft - _address_space(), 0))
    return have


def _address_space() -> int:
    """Bytes of address space this process uses now (VmSize), which RLIMIT_AS bounds."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def memory_limit() -> Limit:
    """The bound on a file of no known size: half of the memory available."""
    return Limit(
        available_memory() // 2,
        "half of the memory available",
        "the file is corrupt, or it needs a machine with more memory",
    )


def inflated(path: str | Path) -> Iterator[bytes]:
    """The content of `path` in pieces of at most CHUNK bytes: inflated when it starts as a gzip
    file does (members one after another, zero padding between them, as `gzip.decompress`
    reads them), else as it is. A damaged or truncated gzip stream raises NinlabError."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            if f.read(2) != GZIP_MAGIC:
                f.seek(0)
                while piece := f.read(CHUNK):
                    yield piece
                return
            f.seek(0)
            yield from _members(f)
    except (OSError, EOFError, zlib.error) as e:
        raise NinlabError(
            f"{path} is truncated or corrupt ({e}); delete it so that ninlab fetches it again, "
            "or reinstall the data set."
        ) from None


def _members(f) -> Iterator[bytes]:
    """Inflate the gzip members of file `f`, CHUNK bytes of output at most per piece."""
    d, started, pending = zlib.decompressobj(GZIP_WBITS), False, b""
    while True:
        if not pending:
            pending = f.read(CHUNK)
            if not pending:
                break
        if not started:  # between members: zeros pad, anything else must be a gzip header
            pending = pending.lstrip(b"\0")
            if not pending:
                continue
            started = True
        piece = d.decompress(pending, CHUNK)
        if d.eof:
            pending, d, started = d.unused_data, zlib.decompressobj(GZIP_WBITS), False
        else:
            pending = d.unconsumed_tail
        if piece:
            yield piece
    while started and (piece := d.decompress(b"", CHUNK)):  # output zlib still holds
        yield piece
    if started and not d.eof:
        raise EOFError("the compressed stream ends before its end marker")


def read_bytes(
    path: str | Path,
    limit: Limit | None = None,
    promise: Callable[[bytes], tuple[int, str] | None] | None = None,
) -> bytes:
    """The content of `path` (gzip or raw), refused in one sentence as soon as it passes
    `limit` (default `memory_limit()`) or, when `promise(first_bytes)` gives (length, what the
    header says), that length; a promise beyond `limit` is refused before inflating. A stream
    shorter than its promise is returned, for the format's reader to say so."""
    path = Path(path)
    if not path.is_file():
        raise NinlabError(f"{path} does not exist or is not a file.")
    limit = limit or memory_limit()
    pieces, size, promised, said = [], 0, None, ""
    stream = inflated(path)
    try:
        for piece in stream:
            pieces.append(piece)
            size += len(piece)
            if promise is not None and promised is None:
                got = promise(b"".join(pieces))
                if got is not None:
                    promised, said = got
                    if promised > limit.bytes:
                        raise NinlabError(
                            f"{path} promises {promised:,} bytes in its header ({said}), more "
                            f"than {limit.what} ({limit.bytes:,} bytes); {limit.fix}."
                        )
            if promised is not None and size > promised:
                raise NinlabError(
                    f"{path} holds more than the {promised:,} bytes that its header ({said}) "
                    "promises; the file is corrupt or not what its header says."
                )
            if size > limit.bytes:
                raise NinlabError(
                    f"{path} holds more than {limit.what} ({limit.bytes:,} bytes); {limit.fix}."
                )
        return b"".join(pieces)
    except MemoryError:
        raise NinlabError(
            f"not enough memory to read {path} ({size:,} bytes read so far); close other "
            "programs or use a machine with more memory."
        ) from None
    finally:
        stream.close()
