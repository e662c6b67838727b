"""A folder of your own images: reading and preparing each file, the census, the cache, the
split, training on it, and one sentence for each folder that cannot work."""

import json
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from ninlab.cli import main
from ninlab.data import FolderOptions, load_dataset, load_folder
from ninlab.data import folders as folders_module
from ninlab.data.images import UnreadableImage, read_image
from ninlab.errors import NinlabError

sys.path.insert(0, str(Path(__file__).parents[2] / "examples"))
import shapes  # noqa: E402  (examples/shapes.py: the generated folder docs/your-images.md uses)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """3 classes x 500 generated images (PNG, JPEG, RGBA, grey), plus 2 corrupt files."""
    return shapes.write_folder(tmp_path_factory.mktemp("shapes") / "shapes", per_class=500)


def _one_line_error(argv, capsys, *needles):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("ninlab: error: ") and err.count("\n") == 1, err
    for needle in needles:
        assert needle in err, err


# ---- one file ----


def _save(tmp_path, img, name="x.png"):
    img.save(tmp_path / name)
    return tmp_path / name


def test_pad_keeps_the_whole_image_on_its_border_colour(tmp_path):
    """40x20, grey 50 with a white 10x10 square in the middle -> 20x20: scaled by 1/2 to 20x10
    at rows 5..14, padded with the border's 50 above and below."""
    img = Image.new("L", (40, 20), 50)
    img.paste(255, (15, 5, 25, 15))
    x = read_image(_save(tmp_path, img), "L", 20, "pad")[0]
    assert x.shape == (20, 20)
    assert (x[:5] == 50).all() and (x[15:] == 50).all()
    assert x[10, 10] == 255 and x[10, 0] == 50  # the square's centre, the left border


def test_crop_takes_the_centre_square(tmp_path):
    """40x20, left half 0 and right half 255: the centre 20x20 is half and half."""
    img = Image.new("L", (40, 20), 0)
    img.paste(255, (20, 0, 40, 20))
    x = read_image(_save(tmp_path, img), "L", 10, "crop")[0]
    assert (x[:, :4] == 0).all() and (x[:, 6:] == 255).all()


def test_modes_become_grey_or_rgb(tmp_path):
    rgba = Image.new("RGBA", (2, 1))
    rgba.putpixel((0, 0), (255, 0, 0, 0))  # transparent red -> laid on black
    rgba.putpixel((1, 0), (255, 0, 0, 255))
    assert read_image(_save(tmp_path, rgba), "RGB", None)[:, 0].tolist() == [[0, 255], [0, 0],
                                                                              [0, 0]]  # fmt: skip
    deep = Image.new("I;16", (2, 1))
    deep.putpixel((0, 0), 65535)
    deep.putpixel((1, 0), 100 * 257)
    assert read_image(_save(tmp_path, deep), "L", None).flatten().tolist() == [255, 100]
    cmyk = Image.new("CMYK", (3, 3), (0, 255, 255, 0))  # red in CMYK
    assert read_image(_save(tmp_path, cmyk, "c.tif"), "RGB", None)[:, 1, 1].tolist() == [255, 0, 0]
    palette = Image.new("P", (5, 7))
    assert read_image(_save(tmp_path, palette, "p.gif"), "RGB", 4).shape == (3, 4, 4)
    dot = Image.new("RGB", (1, 1), (9, 8, 7))  # 1x1 and very thin images pad fine
    assert read_image(_save(tmp_path, dot), "RGB", 6)[:, 3, 3].tolist() == [9, 8, 7]
    thin = Image.new("L", (300, 1), 77)
    assert (read_image(_save(tmp_path, thin), "L", 8) == 77).all()


@pytest.mark.parametrize("ext", ["png", "jpg", "bmp", "gif", "webp", "tif"])
def test_every_format_reads_alike(tmp_path, ext):
    """A 16x8 image, left half red and right half blue, in each format: the pixels agree with
    the PNG's (lossy formats within 40 levels away from the edge)."""
    img = Image.new("RGB", (16, 8), (255, 0, 0))
    img.paste((0, 0, 255), (8, 0, 16, 8))
    x = read_image(_save(tmp_path, img, f"x.{ext}"), "RGB", None)
    assert x.shape == (3, 8, 16)
    inner = x[:, :, [1, 2, 13, 14]].int()
    want = torch.tensor([255, 255, 0, 0, 0, 0, 0, 0, 0, 0, 255, 255]).view(3, 1, 4)
    assert (inner - want).abs().max() <= 40


def test_a_decompression_bomb_is_refused_not_decoded(tmp_path, monkeypatch):
    path = _save(tmp_path, Image.new("L", (30, 30)))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    with pytest.raises(UnreadableImage, match="decompression bomb"):
        read_image(path, "L", 8)


@pytest.mark.parametrize(
    "data, why",
    [
        (b"", "the file is empty"),
        (b"hello", "not an image in a format ninlab reads"),
        (None, "corrupt or truncated"),
    ],  # fmt: skip
)
def test_bad_files_say_why(tmp_path, data, why):
    path = tmp_path / "bad.png"
    if data is None:  # a PNG cut in half
        _save(tmp_path, Image.new("RGB", (64, 64), (1, 2, 3)), "full.png")
        data = (tmp_path / "full.png").read_bytes()[:60]
    path.write_bytes(data)
    with pytest.raises(UnreadableImage, match=why):
        read_image(path, "RGB", 8)


# ---- a folder ----


@pytest.mark.slow
def test_a_folder_trains_and_everything_downstream_reads_it(folder, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--data", str(folder), "--epochs", "3", "--out", str(out),
                 "--no-progress"]) == 0  # fmt: skip
    log = capsys.readouterr().out
    assert "1,500 images of 3 classes" in log and "32x32 RGB padded to a square" in log
    assert "(32 px: the median shorter side; RGB: the mode of 1,350 of 1,500 images)" in log
    assert "skipped 2 unreadable files (circle/broken.png, square/truncated.jpg)" in log
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["test_acc"] >= 0.90
    cfg = json.loads((out / "config.json").read_text())
    assert (cfg["dataset"], cfg["image_size"], cfg["image_mode"]) == (str(folder), 32, "RGB")
    assert cfg["classes"] == ["circle", "square", "triangle"] and cfg["input_size"] == 32
    files = json.loads((out / "files.json").read_text())
    assert (len(files["train"]), len(files["test"])) == (1350, 150)
    assert set(files["skipped"]) == {"circle/broken.png", "square/truncated.jpg"}
    assert not set(files["train"]) & set(files["test"])
    # eval reads the same test split from the cache: the same accuracy
    assert main(["eval", str(out), "--weights", "final"]) == 0
    assert f"accuracy {100 * rows[-1]['test_acc']:.2f}%" in capsys.readouterr().out
    for verb, where in (
        (["cam", "--index", "0"], "cams"),
        (["features", "--index", "1"], "features"),
        (["sparsity", "--limit", "20"], "sparsity.png"),
        (["report", "--limit", "30"], "report.html"),
        (["convert"], "conv.safetensors"),
        (["export"], "m.onnx"),
    ):
        assert main([verb[0], str(out), *verb[1:], "--out", str(tmp_path / where)]) == 0, verb
    capsys.readouterr()
    # a new image of that kind
    new = tmp_path / "new-triangle.png"
    shapes.shape_image("triangle", shapes.random.Random(123)).save(new)
    assert main(["predict", str(out), str(new)]) == 0
    top = capsys.readouterr().out.splitlines()[1].split()[0]
    assert top == "triangle"


def test_a_second_read_comes_from_the_cache_and_a_changed_folder_is_read_again(
    folder, tmp_path, monkeypatch
):
    (tmp_path / "copy").mkdir()
    small = shapes.write_folder(tmp_path / "copy", per_class=20, seed=5)
    lines = []
    first = load_folder(small, log=lines.append)
    assert any(line.startswith("decoded 60 images") for line in lines)

    def no_decoding(*args):
        raise AssertionError("decoded again")

    monkeypatch.setattr(folders_module, "_decode", no_decoding)
    lines.clear()
    again = load_folder(small, log=lines.append)
    assert torch.equal(first.train_images, again.train_images)
    assert not any(line.startswith("decoded") for line in lines)
    monkeypatch.undo()
    Image.new("RGB", (30, 30), (200, 0, 0)).save(small / "square" / "extra.png")
    lines.clear()
    changed = load_folder(small, log=lines.append)
    assert any(line.startswith("decoded 61 images") for line in lines)
    assert len(changed.train_images) + len(changed.test_images) == 61


def test_the_split_is_stratified_and_seeded(tmp_path):
    root = shapes.write_folder(tmp_path / "f", per_class=8)
    a = load_folder(root, FolderOptions(val_split=0.25, seed=1))
    assert a.test_labels.bincount().tolist() == [2, 2, 2]
    assert a.train_labels.bincount().tolist() == [6, 6, 6]  # the corrupt files are extra
    lines = []
    b = load_folder(root, FolderOptions(val_split=0.25, seed=1), log=lines.append)
    assert "warning: few training images in circle (6), square (6), triangle (6)" in lines[-1]
    c = load_folder(root, FolderOptions(val_split=0.25, seed=2))
    assert a.files == b.files and a.files["test"] != c.files["test"]


def test_train_and_val_folders_give_the_split(tmp_path):
    for split, n in (("train", 6), ("val", 2)):
        for colour in ("red", "blue"):
            d = tmp_path / "f" / split / colour
            d.mkdir(parents=True)
            for i in range(n):
                Image.new("RGB", (20 + i, 20), colour).save(d / f"{i}.png")
    data = load_dataset(str(tmp_path / "f"))
    assert data.classes == ("blue", "red")
    assert (len(data.train_images), len(data.test_images)) == (12, 4)
    assert all(f.startswith("val/") for f in data.files["test"])
    assert data.image_shape == (3, 20, 20)


@pytest.mark.slow
def test_the_pool_of_processes_reads_the_same(tmp_path, monkeypatch):
    root = shapes.write_folder(tmp_path / "f", per_class=10)
    alone = load_folder(root, FolderOptions(image_size=24))
    monkeypatch.setattr(folders_module, "PROBE", 2)
    monkeypatch.setattr(folders_module, "POOL_WORTH_S", 0.0)
    monkeypatch.setattr(folders_module, "cache_root", lambda: tmp_path / "other-cache")
    pooled = load_folder(root, FolderOptions(image_size=24))
    assert torch.equal(alone.train_images, pooled.train_images)
    assert alone.skipped == pooled.skipped


def test_a_folder_too_large_for_memory_is_refused_before_decoding(tmp_path, monkeypatch):
    root = shapes.write_folder(tmp_path / "f", per_class=4)
    monkeypatch.setattr(folders_module, "available_memory", lambda: 10_000)
    with pytest.raises(NinlabError, match="more than half of the 0.0 MiB of memory available"):
        load_folder(root)


@pytest.mark.slow
def test_data_prints_the_census(folder, capsys):
    assert main(["data", str(folder)]) == 0
    text = capsys.readouterr().out
    assert "files        1,502: 1,500 images, 2 unreadable" in text
    assert "circle/broken.png: the file is empty" in text
    assert "read as      32x32 RGB, padded to a square" in text
    assert main(["data", str(folder), "--json"]) == 0
    census = json.loads(capsys.readouterr().out)
    assert [(c["train"], c["test"], c["skipped"]) for c in census["classes"]] == [
        (450, 50, 1), (450, 50, 1), (450, 50, 0)]  # fmt: skip
    assert census["modes"] == {"RGB": 1200, "L": 150, "RGBA": 150}
    assert census["width"][0] >= 24 and census["width"][2] <= 64


@pytest.mark.parametrize(
    "make, needles",
    [
        ("empty_class", ["class 'dog' has no readable training image", "(2 unreadable files"]),
        ("no_subfolders", ["has no sub-folders; put the images of each class"]),
        ("no_files", ["holds no files in its class folders (a, b)"]),
        ("a_file", ["is a file, not a folder"]),
        ("missing", ["does not exist"]),
        ("extra_test_class", ["has no counterpart in"]),
    ],
)
def test_folders_that_cannot_work_are_one_sentence(tmp_path, capsys, make, needles):
    root = tmp_path / "f"
    if make == "empty_class":
        for name in ("cat", "dog"):
            (root / name).mkdir(parents=True)
        for i in range(3):
            Image.new("L", (9, 9), 10 * i).save(root / "cat" / f"{i}.png")
        (root / "dog" / "a.png").write_bytes(b"")
        (root / "dog" / "b.jpg").write_bytes(b"not a jpeg")
    elif make == "no_subfolders":
        root.mkdir()
        Image.new("L", (9, 9)).save(root / "x.png")
    elif make == "no_files":
        (root / "a").mkdir(parents=True)
        (root / "b").mkdir()
    elif make == "a_file":
        root.write_bytes(b"x")
    elif make == "extra_test_class":
        for split, name in (("train", "a"), ("test", "a"), ("test", "zebra")):
            (root / split / name).mkdir(parents=True)
            Image.new("L", (9, 9)).save(root / split / name / "0.png")
    _one_line_error(["train", "--data", str(root), "--out", str(tmp_path / "run")], capsys,
                    *needles)  # fmt: skip
    assert not (tmp_path / "run").exists()


def test_unknown_names_mention_folders(capsys, tmp_path):
    _one_line_error(["train", "--dataset", "nosuchset", "--out", str(tmp_path / "r")], capsys,
                    "unknown data set 'nosuchset'", "or pass a folder of images")  # fmt: skip


def test_bad_folder_options_are_one_sentence(folder, capsys, tmp_path):
    argv = ["train", "--data", str(folder), "--val-split", "1.5", "--out", str(tmp_path / "r")]
    _one_line_error(argv, capsys, "--val-split must be between 0 and 1")
