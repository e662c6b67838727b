"""Finding objects in scenes: --native keeps the input size, scenes and boxes by hand, and
`ninlab locate` with a small model trained in the test on bars that it must find in a scene.
Scene kinds, the lifted scene and its windows: tests/locate/test_scenes.py."""

import json
import random

import pytest
import torch
from PIL import Image

from ninlab.cli import main
from ninlab.data.backdrop import regions
from ninlab.locate.locator import locate
from ninlab.locate.scenes import iou, make_scene, object_box
from ninlab.runs import load_run
from ninlab.runs.inputs import training_look

from ..conftest import make_run_dir, write_idx


@pytest.mark.slow
def test_native_keeps_the_image_size(tmp_path, capsys):
    run = tmp_path / "run"
    make_run_dir(run, "nin_fast")
    img = tmp_path / "wide.png"
    Image.new("L", (60, 44), 0).save(img)
    assert (
        main(["features", str(run), "--image", str(img), "--native", "--out", str(tmp_path)]) == 0
    )
    assert "16x44x60" in capsys.readouterr().out  # block1 at the image's own 44 x 60
    assert main(["cam", str(run), "--image", str(img), "--native", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "6x8: mean" in out and " of 44x60\n" in out  # 44/8 -> 6, 60/8 -> 8
    assert main(["cam", str(run), "--image", str(img), "--out", str(tmp_path)]) == 0
    assert "4x4: mean" in capsys.readouterr().out  # resized to 28 x 28 without --native


def test_native_with_an_fc_head_is_one_sentence(tmp_path, capsys):
    run = tmp_path / "run"
    make_run_dir(run, "lenet_fc")
    img = tmp_path / "x.png"
    Image.new("L", (40, 40)).save(img)
    assert main(["cam", str(run), "--image", str(img), "--native"]) == 2
    err = capsys.readouterr().err
    assert "lenet_fc has a fully-connected head that takes only 28x28 inputs" in err
    assert err.count("\n") == 1


def test_scene_items_and_boxes_by_hand():
    patch = torch.zeros(1, 28, 28, dtype=torch.uint8)
    patch[0, 5:9, 10:20] = 200
    assert object_box(patch, 100, 50) == (105, 60, 109, 70)
    assert iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(50 / 150)
    images = patch[None].repeat(4, 1, 1, 1)
    scene = make_scene(images, torch.arange(4), 3, 84, random.Random(0))
    assert scene.image.shape == (1, 1, 84, 84) and len(scene.items) == 3
    for k, a in enumerate(scene.items):
        assert scene.image[0, 0, a.box[0], a.box[1]] == 200
        assert all(iou(a.patch, b.patch) == 0 for b in scene.items[k + 1 :])
    assert int(scene.image.sum()) == 3 * 40 * 200


def test_regions_without_diagonals_are_four_connected():
    on = torch.zeros(6, 6, dtype=torch.bool)
    on[0, 0] = on[1, 1] = True  # diagonal: two regions of one pixel, or one of two
    on[3:6, 2:5] = True  # 9 pixels
    assert regions(on, diagonal=False) == [(3, 2, 6, 5), (0, 0, 1, 1), (1, 1, 2, 2)]
    assert regions(on) == [(3, 2, 6, 5), (0, 0, 2, 2)]


def _bars(n, g):
    """Two classes of 28x28 images: a horizontal (0) or vertical (1) bright bar, random place
    and length, on black."""
    images = torch.zeros(n, 28, 28, dtype=torch.uint8)
    labels = torch.arange(n) % 2
    for k in range(n):
        a, b = torch.randint(4, 10, (2,), generator=g).tolist()
        length = int(torch.randint(14, 22, (1,), generator=g))
        if labels[k] == 0:
            images[k, 10 + a // 2 : 14 + a // 2, b : b + length] = 255
        else:
            images[k, b : b + length, 10 + a // 2 : 14 + a // 2] = 255
    return images, labels


@pytest.fixture(scope="module")
def bars_run(tmp_path_factory):
    """nin_fast trained for 2 epochs on 2,000 bar images (a few seconds)."""
    root = tmp_path_factory.mktemp("bars")
    g = torch.Generator().manual_seed(0)
    d = root / "mnist"
    d.mkdir()
    for prefix, n in (("train", 2000), ("t10k", 200)):
        images, labels = _bars(n, g)
        write_idx(d / f"{prefix}-images-idx3-ubyte", images)
        write_idx(d / f"{prefix}-labels-idx1-ubyte", labels.to(torch.uint8))
    out = root / "run"
    assert main(["train", "--dataset", "mnist", "--data-dir", str(root), "--epochs", "2",
                 "--batch-size", "64", "--out", str(out), "--no-progress"]) == 0  # fmt: skip
    return load_run(out), _bars(8, torch.Generator().manual_seed(5))


@pytest.mark.slow
def test_one_item_is_found_and_two_items_give_two_detections(bars_run):
    run, (images, labels) = bars_run
    scene = torch.zeros(1, 1, 84, 84, dtype=torch.uint8)
    scene[0, 0, 30:58, 20:48] = images[0]  # a horizontal bar
    look = training_look(run)  # the bars span 14-21 px of their 28
    assert 0.5 < look.share < 0.8
    found = locate(run, scene, look=look)
    assert len(found.detections) == 1
    d = found.detections[0]
    assert d.class_index == 0 and iou(d.window, (30, 20, 58, 48)) >= 0.5
    truth = object_box(images[0][None], 30, 20)
    assert max(iou(d.box(m), truth) for m in ("window", "cam", "unit")) > 0
    scene[0, 0, 0:28, 56:84] = images[1]  # and a vertical one
    found = locate(run, scene, look=look)
    assert sorted(d.class_index for d in found.detections) == [0, 1]


@pytest.mark.slow
def test_locate_cli_prints_and_draws(bars_run, tmp_path, capsys):
    run, (images, _) = bars_run
    canvas = torch.zeros(84, 84, dtype=torch.uint8)
    canvas[40:68, 8:36] = images[1]
    path = tmp_path / "scene.png"
    Image.fromarray(canvas.numpy(), "L").save(path)
    argv = ["locate", str(run.path), "--image", str(path), "--out", str(tmp_path)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    # the bar's 20 px take 0.61 of a window (as the bars take of their 28 px): 33 px
    assert "84x84 px, 1 window of 33 px (at 28x28), 1 detection in" in out
    assert (tmp_path / "locate-scene.png").is_file()
    assert main([*argv, "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["prepared"]["why"] == "the locator lifts it"  # read as it is
    d = printed["detections"][0]
    assert d["class"] == "1" and set(d) >= {"window", "cam", "unit", "prob"}
    assert iou(tuple(d["window"]), (40, 8, 68, 36)) >= 0.5
    assert main([*argv, "--scoring", "dense", "--threads", "1", "--no-mirror"]) == 0
    assert "1 window of 33 px (at 28x28)" in capsys.readouterr().out
    small = tmp_path / "small.png"
    Image.new("L", (20, 20)).save(small)
    assert main(["locate", str(run.path), "--image", str(small)]) == 2
    assert "smaller than the 28x28 px windows" in capsys.readouterr().err


def test_an_fc_head_locates_with_window_boxes(tmp_path):
    """lenet_fc has no finer map than its windows: every box is the window."""
    make_run_dir(tmp_path / "run", "lenet_fc", mean=[0.0], std=[1.0])
    run = load_run(tmp_path / "run")
    scene = torch.zeros(1, 1, 60, 60, dtype=torch.uint8)
    scene[0, 0, 20:40, 10:30] = 255
    found = locate(run, scene, min_score=0.0)
    assert found.detections and all(d.window == d.cam == d.unit for d in found.detections)
    assert found.windows == 1 and found.detections[0].window == (20, 10, 40, 30)
