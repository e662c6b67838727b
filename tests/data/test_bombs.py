"""Decompression bombs end in one sentence, quickly and in bounded memory: IDX .gz files that
inflate to 2 GiB, IDX headers that promise more or less than their stream holds, tar members and
tar headers larger than any data set's archive has, and PNGs whose header or text chunks claim
more than they are. The bombs that would take gigabytes run in a child under `ulimit -v 1000000`
(1 GB of address space, of which importing torch takes about 640 MB): a traceback or a
MemoryError there fails the test."""

import gzip
import io
import os
import struct
import subprocess
import sys
import tarfile
import time
import zlib
from dataclasses import replace

import pytest
import torch

from ninlab.data import catalog as datasets
from ninlab.data import inflate, read_idx
from ninlab.data.catalog import DATASETS, MAX_MEMBERS, OTHER_MEMBER, TAR_HEADERS, _extract
from ninlab.data.images import read_image
from ninlab.data.inflate import CHUNK, Limit, read_bytes
from ninlab.errors import NinlabError

from ..conftest import make_idx_dataset, write_idx

ULIMIT_KB = 1_000_000
GIB = 2**30
SLICE = 64 * 2**20  # bytes of zeros per gzip member: the bombs are members one after another


def gzip_zeros(head: bytes, total: int) -> bytes:
    """A gzip file of `head` then zeros up to `total` bytes, made of SLICE-byte members, so that
    2 GiB cost 2 MB and a fraction of a second to write."""
    first = gzip.compress(head + bytes(SLICE - len(head)), 9)
    whole, rest = divmod(total - SLICE, SLICE)
    return first + gzip.compress(bytes(SLICE), 9) * whole + gzip.compress(bytes(rest), 9)


def idx_head(*dims: int) -> bytes:
    return bytes([0, 0, 0x08, len(dims)]) + b"".join(d.to_bytes(4, "big") for d in dims)


def limited(argv: list[str], tmp_path) -> tuple[subprocess.CompletedProcess, float]:
    """`python ARGV...` run under `ulimit -v ULIMIT_KB`, its cache in tmp_path; (result, s)."""
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    env.pop("NINLAB_DATA", None)
    command = f'ulimit -v {ULIMIT_KB}; exec "$@"'
    t0 = time.perf_counter()
    r = subprocess.run(["bash", "-c", command, "bash", sys.executable, *argv],
                       capture_output=True, text=True, env=env, timeout=120)  # fmt: skip
    return r, time.perf_counter() - t0


def one_sentence(r: subprocess.CompletedProcess, *needles: str) -> None:
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])
    assert r.stderr.startswith("ninlab: error: ") and r.stderr.count("\n") == 1, r.stderr
    assert "Traceback" not in r.stderr and "MemoryError" not in r.stderr
    for needle in needles:
        assert needle in r.stderr, r.stderr


# ---- IDX ----


@pytest.fixture
def fashion_dir(tmp_path):
    """Fashion-MNIST's four files, small, in tmp_path/data: a bomb replaces one of them."""
    make_idx_dataset(tmp_path / "data", n_train=20, n_test=10)
    return tmp_path / "data"


@pytest.mark.parametrize(
    "head, needles",
    [
        # a valid header for 2 GiB of images, then the zeros it promises: refused on the header
        (idx_head(2 * GIB // 784, 28, 28), ["promises 2,147,483,424 bytes in its header "
         "(2739137x28x28, uint8), more than the published fashion-mnist file "
         "train-images-idx3-ubyte (47,040,016 bytes)"]),
        # Fashion-MNIST's own header, then 2 GiB: refused once 47 MB are inflated
        (idx_head(60_000, 28, 28), ["holds more than the 47,040,016 bytes that its header "
         "(60000x28x28, uint8) promises"]),
    ],
    ids=["header-promises-2GiB", "stream-holds-2GiB"],
)  # fmt: skip
@pytest.mark.slow
def test_gzip_bomb_under_ulimit(fashion_dir, tmp_path, head, needles):
    """A 2 MB .gz that inflates to 2 GiB, found through --data-dir: before, `ninlab data
    fashion-mnist` peaked at 4.47 GB and took 16 s, and under this ulimit ended in MemoryError."""
    bomb = fashion_dir / "train-images-idx3-ubyte.gz"
    bomb.write_bytes(gzip_zeros(head, 2 * GIB))
    assert bomb.stat().st_size < 3 * 2**20
    argv = ["-m", "ninlab", "data", "fashion-mnist", "--data-dir", str(fashion_dir)]
    r, seconds = limited(argv, tmp_path)
    one_sentence(r, str(bomb), *needles)
    assert seconds < 60, seconds  # about 3 s, most of it importing torch


@pytest.mark.slow
def test_idx_without_a_known_size_is_bounded_by_memory(tmp_path):
    """read_idx of a file of no known data set: the header may promise no more than half of the
    memory left (under the ulimit: a few hundred MB), so 2 GiB are refused before inflating."""
    path = tmp_path / "f.idx.gz"
    path.write_bytes(gzip_zeros(idx_head(2, GIB), 2 * GIB + 12))
    code = ("import sys\nfrom ninlab.data import read_idx\nfrom ninlab.errors import NinlabError\n"
            "try:\n    read_idx(sys.argv[1])\nexcept NinlabError as e:\n"
            "    sys.exit(f'ninlab: error: {e}')\n")  # fmt: skip
    r, _ = limited(["-c", code, str(path)], tmp_path)
    assert r.returncode == 1 and r.stderr.count("\n") == 1, r.stderr  # sys.exit(str): status 1
    assert (
        "promises 2,147,483,660 bytes in its header (2x1073741824, uint8), more than half of "
        "the memory available" in r.stderr
    ), r.stderr


def test_idx_stream_shorter_or_longer_than_its_header(tmp_path):
    x = torch.arange(24, dtype=torch.uint8).view(2, 3, 4)
    good = write_idx(tmp_path / "good.gz", x)
    assert torch.equal(read_idx(good), x)
    short = tmp_path / "short.gz"
    short.write_bytes(gzip.compress(idx_head(2, 3, 4) + bytes(23)))
    with pytest.raises(NinlabError, match=r"has 39 bytes but its header \(2x3x4, uint8\) needs 40"):
        read_idx(short)
    long = tmp_path / "long.gz"
    long.write_bytes(gzip.compress(idx_head(2, 3, 4) + bytes(CHUNK + 25)))
    with pytest.raises(NinlabError, match=r"holds more than the 40 bytes that its header"):
        read_idx(long)


def test_inflating_stops_one_chunk_past_the_bound(tmp_path, monkeypatch):
    """The bound is checked after every piece of at most CHUNK bytes: a stream of 1 GiB under a
    bound of 3 chunks is read up to the fourth piece, then refused."""
    path = tmp_path / "zeros.gz"
    path.write_bytes(gzip_zeros(b"", GIB))
    pieces = []
    real = inflate.inflated

    def counted(p):
        for piece in real(p):
            pieces.append(len(piece))
            yield piece

    monkeypatch.setattr(inflate, "inflated", counted)
    with pytest.raises(NinlabError, match=r"holds more than the test's bound \(3,145,728 bytes\)"):
        read_bytes(path, Limit(3 * CHUNK, "the test's bound", "as expected"))
    assert sum(pieces) <= 4 * CHUNK, sum(pieces)


def test_gzip_members_padding_and_damage(tmp_path):
    """Read as gzip.decompress reads: members one after another and zeros between them; a bad
    CRC, a cut stream or junk after the last member is one sentence."""
    data = gzip.compress(b"abc") + bytes(5) + gzip.compress(b"def")
    path = tmp_path / "f.gz"
    path.write_bytes(data)
    assert read_bytes(path) == gzip.decompress(data) == b"abcdef"
    for name, bad in [("crc", data[:-9] + bytes([data[-9] ^ 1]) + data[-8:]),
                      ("cut", data[:-3]), ("junk", data + b"junk")]:  # fmt: skip
        path.write_bytes(bad)
        with pytest.raises(NinlabError, match="is truncated or corrupt") as e:
            read_bytes(path)
        assert "\n" not in str(e.value), name


# ---- tar ----


def tar_bytes(members: list[tuple[tarfile.TarInfo, bytes]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def member(name: str, size: int) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(f"cifar-10-batches-bin/{name}")
    info.size = size
    return info, bytes(size)


CIFAR10 = {f: DATASETS["cifar10"].most_bytes(f) for f in DATASETS["cifar10"].files()}


@pytest.mark.parametrize(
    "members, needles",
    [
        ([member("data_batch_1.bin", 40 * 2**20)],
         ["41,943,040 bytes, more than the 30,730,000 of the published data_batch_1.bin"]),
        ([member("readme.html", OTHER_MEMBER + 1)],
         ["1,048,577 bytes, more than the 1,048,576 of any file besides the data"]),
        ([member(f"{k}.txt", 1) for k in range(MAX_MEMBERS + 1)],
         [f"more than {MAX_MEMBERS} members"]),
    ],
    ids=["member-too-large", "other-member-too-large", "too-many-members"],
)  # fmt: skip
def test_tar_members_past_the_published_sizes(tmp_path, members, needles):
    archive, dest = tmp_path / "a.tar.gz", tmp_path / "out"
    archive.write_bytes(gzip.compress(tar_bytes(members), 1))
    with pytest.raises(NinlabError) as e:
        _extract(archive, dest, CIFAR10)
    assert "\n" not in str(e.value) and all(n in str(e.value) for n in needles), str(e.value)
    assert not dest.exists() or not any(dest.rglob("*"))


@pytest.mark.slow
def test_tar_pax_header_bomb_under_ulimit(tmp_path):
    """A pax header that says it is 512 MiB long, which tarfile would read whole into memory,
    then a member: refused once TAR_HEADERS bytes of headers are read."""
    pax = tarfile.TarInfo("././@PaxHeader")
    pax.type, pax.size = tarfile.XHDTYPE, 512 * 2**20
    head = pax.tobuf(format=tarfile.USTAR_FORMAT)
    tail = tar_bytes([member("test_batch.bin", 3073)])
    archive = tmp_path / "a.tar.gz"
    archive.write_bytes(gzip_zeros(head, len(head) + pax.size) + gzip.compress(tail))
    code = ("import sys\nfrom pathlib import Path\nfrom ninlab.data.catalog import _extract\n"
            "from ninlab.errors import NinlabError\ntry:\n"
            "    _extract(Path(sys.argv[1]), Path(sys.argv[2]), ['test_batch.bin'])\n"
            "except NinlabError as e:\n    sys.exit(f'ninlab: error: {e}')\n")  # fmt: skip
    r, _ = limited(["-c", code, str(archive), str(tmp_path / "out")], tmp_path)
    assert r.returncode == 1 and r.stderr.count("\n") == 1, r.stderr
    assert f"has more than {TAR_HEADERS:,} bytes of tar headers" in r.stderr, r.stderr


def test_tar_bomb_through_download(tmp_path, monkeypatch, capsys):
    """load_dataset fetches CIFAR-10 (here from a file: address) and refuses the archive whose
    data_batch_1.bin is larger than the published one, in the one sentence of `ninlab data`."""
    archive = tmp_path / "cifar-10-binary.tar.gz"
    archive.write_bytes(gzip.compress(tar_bytes([member("data_batch_1.bin", 31_000_000)]), 1))
    spec = replace(DATASETS["cifar10"], urls=(archive.as_uri(),), archive_sha256=None)
    monkeypatch.setitem(DATASETS, "cifar10", spec)
    from ninlab.cli import main

    (tmp_path / "empty").mkdir()
    assert main(["data", "cifar10", "--data-dir", str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "downloading failed" in err, err
    assert "31,000,000 bytes, more than the 30,730,000 of the published data_batch_1.bin" in err
    assert not any(datasets.cache_dir(spec).rglob("*.bin"))


def test_cifar_file_larger_than_published(tmp_path):
    """A CIFAR-10 batch in --data-dir holds at most its 10,000 records: a .gz of more is refused
    while inflating."""
    for f in DATASETS["cifar10"].files():
        (tmp_path / f"{f}.gz").write_bytes(gzip.compress(bytes(3073), 1))
    (tmp_path / "test_batch.bin.gz").write_bytes(gzip_zeros(b"", 2 * SLICE))
    with pytest.raises(NinlabError, match="holds more than the published cifar10 file "
                       r"test_batch.bin \(30,730,000 bytes\)"):  # fmt: skip
        datasets.load_dataset("cifar10", data_dir=tmp_path, download_ok=False)


# ---- images ----


def chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png(w: int, h: int, chunks: bytes = b"", idat: bytes | None = None, rgb=False) -> bytes:
    """An 8-bit grey (or RGB) PNG of w x h: its IHDR, `chunks`, then IDAT (zeros unless given)."""
    idat = zlib.compress(bytes((1 + w * (3 if rgb else 1)) * h), 1) if idat is None else idat
    ihdr = chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2 if rgb else 0, 0, 0, 0))
    return b"\x89PNG\r\n\x1a\n" + ihdr + chunks + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def text_chunk(kind: bytes, inflated: int) -> bytes:
    """A zTXt, iTXt or iCCP chunk whose compressed text inflates to `inflated` zeros."""
    head = b"k\0\1\0\0\0" if kind == b"iTXt" else b"k\0\0"
    return chunk(kind, head + zlib.compress(bytes(inflated), 9))


@pytest.mark.parametrize(
    "data, needle",
    [
        (png(2**31 - 1, 2**31 - 1, idat=b""), "over 89,478,485 pixels, refused as a decompression"),
        (png(30_000, 2_000, idat=b""), "30,000 x 2,000 pixels claimed by a file of 57 bytes"),
        (png(8, 8, text_chunk(b"zTXt", 200 * 2**20)), "a text or colour-profile chunk inflates"),
        (png(8, 8, text_chunk(b"iTXt", 200 * 2**20)), "a text or colour-profile chunk inflates"),
        (png(8, 8, text_chunk(b"iCCP", 200 * 2**20)), "a text or colour-profile chunk inflates"),
        (png(8, 8, b"".join(text_chunk(b"zTXt", 2**20 - 99) for _ in range(70))),
         "(Too much memory used in text chunks"),
    ],
    ids=["2^31-squared", "60Mpx-in-57-bytes", "zTXt-200MiB", "iTXt-200MiB", "iCCP-200MiB",
         "70-text-chunks"],
)  # fmt: skip
def test_png_bombs_are_one_sentence(tmp_path, data, needle):
    path = tmp_path / "bomb.png"
    path.write_bytes(data)
    t0 = time.perf_counter()
    with pytest.raises(NinlabError) as e:
        read_image(path, "L", 28)
    assert "\n" not in str(e.value) and needle in str(e.value), str(e.value)
    assert time.perf_counter() - t0 < 10


@pytest.mark.slow
def test_a_real_image_too_large_for_the_memory_left(tmp_path):
    """A valid 9000 x 9000 RGB PNG (81 million pixels, under Pillow's bound) needs more than the
    ulimit leaves: refused in one sentence, or read, never a MemoryError."""
    path = tmp_path / "big.png"
    path.write_bytes(png(9000, 9000, rgb=True))
    code = ("import sys\nfrom ninlab.data.images import read_image\n"
            "from ninlab.errors import NinlabError\ntry:\n"
            "    print(tuple(read_image(sys.argv[1], 'RGB', 28).shape))\n"
            "except NinlabError as e:\n    sys.exit(f'ninlab: error: {e}')\n")  # fmt: skip
    r, _ = limited(["-c", code, str(path)], tmp_path)
    if r.returncode == 0:
        assert r.stdout.strip() == "(3, 28, 28)"
    else:
        assert r.returncode == 1 and r.stderr.count("\n") == 1, r.stderr
        assert "its 9,000 x 9,000 pixels do not fit in the memory available" in r.stderr
