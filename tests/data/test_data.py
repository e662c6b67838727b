import gzip
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from ninlab.cli import main
from ninlab.data import (
    DATASETS,
    BatchLoader,
    load_dataset,
    random_erase,
    random_flip,
    random_translate,
    read_idx,
    resize,
    shift,
    to_float,
)
from ninlab.errors import NinlabError

from ..conftest import make_idx_dataset, write_idx

FASHION = Path("/usr/share/datasets/fashion-mnist")


def test_idx_round_trip(tmp_path):
    x = torch.arange(24, dtype=torch.uint8).reshape(2, 3, 4)
    for name in ("a.idx", "a.idx.gz"):
        write_idx(tmp_path / name, x)
        assert torch.equal(read_idx(tmp_path / name), x)
    raw = (tmp_path / "a.idx").read_bytes()
    # header: 00 00 08 03, then 2, 3, 4 as big-endian int32
    assert raw[:16] == bytes([0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4])


def test_load_from_data_dir(tmp_path):
    tensors = make_idx_dataset(tmp_path / "fashion-mnist")
    ds = load_dataset("fashion-mnist", data_dir=tmp_path, download_ok=False)
    assert ds.train_images.shape == (60, 1, 28, 28) and ds.test_images.shape == (20, 1, 28, 28)
    assert torch.equal(ds.train_images[:, 0], tensors["train"][0])
    assert ds.train_labels[:3].tolist() == [0, 1, 2]
    assert ds.classes[9] == "Ankle boot"


@pytest.mark.skipif(not FASHION.is_dir(), reason="Debian's dataset-fashion-mnist is not installed")
def test_real_fashion_mnist():
    ds = load_dataset("fashion-mnist", download_ok=False)
    assert len(ds.train_images) == 60_000 and len(ds.test_images) == 10_000
    assert ds.train_labels[:5].tolist() == [9, 0, 0, 3, 0]
    assert ds.train_labels.bincount().tolist() == [6000] * 10
    assert ds.sources["train-images-idx3-ubyte"].startswith(str(FASHION))


def _expect_error(match, *args, **kw):
    with pytest.raises(NinlabError, match=match):
        load_dataset(*args, **kw)


def test_truncated_gzip(tmp_path):
    make_idx_dataset(tmp_path)
    f = tmp_path / "train-images-idx3-ubyte.gz"
    f.write_bytes(f.read_bytes()[:500])
    _expect_error("train-images-idx3-ubyte.gz is truncated or corrupt", data_dir=tmp_path)


def test_wrong_magic(tmp_path):
    make_idx_dataset(tmp_path, gz=False)
    f = tmp_path / "t10k-labels-idx1-ubyte"
    f.write_bytes(b"\x01\x02" + f.read_bytes()[2:])
    _expect_error("t10k-labels-idx1-ubyte is not an IDX file: wrong magic", data_dir=tmp_path)


def test_wrong_length(tmp_path):
    make_idx_dataset(tmp_path, gz=False)
    f = tmp_path / "train-images-idx3-ubyte"
    f.write_bytes(f.read_bytes()[:-7])
    # 16-byte header + 60 * 28 * 28 = 47,056 bytes expected; 7 fewer written
    _expect_error(r"has 47,049 bytes but its header \(60x28x28", data_dir=tmp_path)


def test_mismatched_counts(tmp_path):
    make_idx_dataset(tmp_path)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", torch.zeros(59, dtype=torch.uint8))
    _expect_error("60 images but 59 labels", data_dir=tmp_path)


def test_label_out_of_range(tmp_path):
    make_idx_dataset(tmp_path)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", torch.full((20,), 12, dtype=torch.uint8))
    _expect_error(
        r"label 12 is out of range for fashion-mnist, which has 10 classes", data_dir=tmp_path
    )


def test_missing_directory(tmp_path):
    _expect_error("data directory .*nowhere does not exist", data_dir=tmp_path / "nowhere")


def test_unknown_dataset():
    _expect_error("unknown data set 'svhn'; choose one of fashion-mnist", "svhn")


def test_not_found_names_every_place(tmp_path):
    with pytest.raises(NinlabError) as e:
        load_dataset("kmnist", data_dir=tmp_path, download_ok=False)
    msg = str(e.value)
    assert str(tmp_path) in msg and "/usr/share/datasets/kmnist" in msg
    assert "ninlab/kmnist" in msg and "--data-dir DIR" in msg


def test_download_checks_hash_of_decompressed_content(tmp_path, monkeypatch):
    """The real download path, served from local files through a file:// address."""
    server = tmp_path / "server"
    tensors = make_idx_dataset(server)
    hashes = {}
    for f in server.iterdir():
        import hashlib

        hashes[f.name[:-3]] = hashlib.sha256(gzip.decompress(f.read_bytes())).hexdigest()
    spec = replace(DATASETS["mnist"], urls=(server.as_uri() + "/",), sha256=hashes)
    monkeypatch.setitem(DATASETS, "mnist", spec)
    ds = load_dataset("mnist")
    assert torch.equal(ds.test_images[:, 0], tensors["t10k"][0])
    assert "ninlab/mnist/" in ds.sources["t10k-images-idx3-ubyte"]

    # a served file whose content differs from the published hash is rejected and not kept
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache2"))
    bad = dict(hashes, **{"t10k-labels-idx1-ubyte": "0" * 64})
    monkeypatch.setitem(DATASETS, "mnist", replace(spec, sha256=bad))
    _expect_error("does not match its published SHA-256|does not match the published", "mnist")
    assert not (tmp_path / "cache2/ninlab/mnist/t10k-labels-idx1-ubyte.gz").exists()


def test_a_failed_download_leaves_no_empty_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    missing = (tmp_path / "nowhere").as_uri() + "/"  # a file:// address with nothing there
    monkeypatch.setitem(DATASETS, "mnist", replace(DATASETS["mnist"], urls=(missing,)))
    _expect_error("downloading failed", "mnist")
    assert not (tmp_path / "cache" / "ninlab").exists()  # neither ninlab/ nor ninlab/mnist/


def test_cifar_binary(tmp_path):
    folder = tmp_path / "cifar10" / "cifar-10-batches-bin"
    folder.mkdir(parents=True)
    records = []
    for i, name in enumerate([f"data_batch_{k}.bin" for k in range(1, 6)] + ["test_batch.bin"]):
        rec = torch.randint(0, 256, (4, 3073), dtype=torch.uint8)
        rec[:, 0] = torch.tensor([i, 1, 2, 9])
        (folder / name).write_bytes(rec.numpy().tobytes())
        records.append(rec)
    ds = load_dataset("cifar10", data_dir=tmp_path, download_ok=False)
    assert ds.train_images.shape == (20, 3, 32, 32) and ds.test_images.shape == (4, 3, 32, 32)
    assert ds.test_labels.tolist() == [5, 1, 2, 9]
    assert torch.equal(ds.train_images[0].flatten(), records[0][0, 1:])
    (folder / "test_batch.bin").write_bytes(records[5].numpy().tobytes()[:-1])
    _expect_error("not a whole number of 3073-byte records", "cifar10", data_dir=tmp_path)


def test_cifar100_class_table():
    assert len(DATASETS["cifar100"].classes) == 100
    assert len(set(DATASETS["cifar100"].classes)) == 100


def test_transforms():
    x = torch.arange(16.0).reshape(1, 1, 4, 4).repeat(8, 1, 1, 1)
    g = torch.Generator().manual_seed(0)
    shifted = random_translate(x, 1, g)
    assert shifted.shape == x.shape
    for img in shifted:  # each is the original shifted by at most one pixel, zero-filled
        assert any(torch.equal(img, shift(x[0], dy, dx)) for dy in (-1, 0, 1) for dx in (-1, 0, 1))
    flipped = random_flip(x, torch.Generator().manual_seed(0), p=1.0)
    assert torch.equal(flipped[0, 0, 0], torch.tensor([3.0, 2.0, 1.0, 0.0]))
    assert resize(x, 8).shape == (8, 1, 8, 8)
    u = torch.tensor([[[[0, 255]]]], dtype=torch.uint8)
    assert to_float(u, 0.5, 0.5).flatten().tolist() == [-1.0, 1.0]


def test_random_erase_zeroes_one_clipped_square_per_image():
    x = torch.ones(64, 1, 8, 8)
    erased = random_erase(x, 3, torch.Generator().manual_seed(0))
    for img in erased[:, 0]:
        rows, cols = (img == 0).nonzero(as_tuple=True)
        h, w = rows.max() - rows.min() + 1, cols.max() - cols.min() + 1
        assert len(rows) == h * w  # one filled rectangle of zeros
        assert 2 <= h <= 3 and 2 <= w <= 3  # a 3x3 square, clipped at most to 2 at a border
    # a process holding images 16..31 of the batch gets exactly those images' squares
    part = random_erase(x[16:32], 3, torch.Generator().manual_seed(0), of=64, part=slice(16, 32))
    assert torch.equal(part, erased[16:32])
    assert random_erase(x, 0) is x


def test_shift_by_hand():
    x = torch.arange(1, 10, dtype=torch.uint8).reshape(1, 1, 3, 3)  # 1 2 3 / 4 5 6 / 7 8 9
    assert shift(x, 1, 0)[0, 0].tolist() == [[0, 0, 0], [1, 2, 3], [4, 5, 6]]  # down, black top
    assert shift(x, -1, 0)[0, 0].tolist() == [[4, 5, 6], [7, 8, 9], [0, 0, 0]]  # up
    assert shift(x, 0, 1)[0, 0].tolist() == [[0, 1, 2], [0, 4, 5], [0, 7, 8]]  # right
    assert shift(x, 0, -1)[0, 0].tolist() == [[2, 3, 0], [5, 6, 0], [8, 9, 0]]  # left
    assert shift(x, 1, -1)[0, 0].tolist() == [[0, 0, 0], [2, 3, 0], [5, 6, 0]]
    assert torch.equal(shift(x, 0, 0), x) and shift(x, 1, 0).dtype == torch.uint8


def test_loader_reproducible():
    images, labels = torch.arange(10).view(10, 1), torch.arange(10)
    a = BatchLoader(images, labels, batch_size=4, seed=3)
    b = BatchLoader(images, labels, batch_size=4, seed=3)
    first = [y.tolist() for _, y in a]
    assert first == [y.tolist() for _, y in b]
    assert sorted(sum(first, [])) == list(range(10)) and len(a) == 3
    a.set_epoch(1)
    assert [y.tolist() for _, y in a] != first


def test_cli_data(tmp_path, capsys):
    make_idx_dataset(tmp_path / "fashion-mnist")
    assert main(["data", "fashion-mnist", "--data-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "train        60 images" in out and "Ankle boot" in out


def test_cli_bad_input_is_one_sentence(tmp_path, capsys):
    assert main(["data", "nope"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ninlab: error: unknown data set 'nope'") and "Traceback" not in err
    assert err.count("\n") == 1
