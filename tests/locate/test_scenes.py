"""Scene kinds and what the locator makes of them, by hand: an item's truth box at a known
scale, how an item lies on a backdrop, the lifted scene and its windows, score on known boxes,
and dense scores equal to a pass over the whole scene."""

import argparse
import random

import pytest
import torch
from PIL import Image

from ninlab.cli import main
from ninlab.cli.locate import add_arguments
from ninlab.data.backdrop import regions
from ninlab.locate import KINDS, Kind, make_scene, score
from ninlab.locate.locator import Detection, Located, _convolutionalized, _dense_scores, _margin
from ninlab.locate.proposals import crops, ground, measures, square
from ninlab.locate.scenes import backdrop, object_box, scaled
from ninlab.runs import load_run

from ..conftest import make_run_dir


def _full(value: int = 255, n: int = 1) -> torch.Tensor:
    """n 28 x 28 items of one value filling their frame."""
    return torch.full((n, 1, 28, 28), value, dtype=torch.uint8)


def test_an_item_scaled_to_40_px_has_a_40_px_truth_box():
    kind = Kind(sides=(40, 40), items=1)
    scene = make_scene(_full(), torch.tensor([3]), 1, 40, random.Random(0), kind)
    (item,) = scene.items
    assert item.patch == item.box == (0, 0, 40, 40) and item.label == 3
    assert bool((scene.image == 255).all())


def test_scaling_a_half_bar_to_56_px_by_hand():
    """Bilinear x2: output column j samples column (j + 0.5) / 2 - 0.5 of the item, so column 28
    is 13.75 (a quarter of 255 = 64, over the 10% of the box) and 29 is 14.25 (0)."""
    item = torch.zeros(1, 28, 28, dtype=torch.uint8)
    item[0, :, :14] = 255  # the left half
    big = scaled(item, 56)
    assert big.shape == (1, 56, 56) and big[0, 0, 27:30].tolist() == [191, 64, 0]
    assert object_box(big, 10, 20) == (10, 20, 66, 49)
    assert torch.equal(scaled(_full()[0], 20), _full()[0, :, :20, :20])  # uniform stays so


def test_an_item_covers_a_grey_backdrop_as_light_of_its_coverage():
    """bg + (255 - bg) v / 255: v = 255 hides the backdrop, v = 0 shows it, v = 102 on 100
    gives 100 + 155 x 0.4 = 162."""
    kind = Kind("grey", levels=(100, 100), items=1)
    for v, out in ((255, 255), (0, 100), (102, 162)):
        scene = make_scene(_full(v), torch.tensor([0]), 1, 56, random.Random(1), kind)
        top, left, bottom, right = scene.items[0].patch
        assert int(scene.image[0, 0, top, left]) == out
        assert int(scene.image[0, 0, (top + 28) % 56, (left + 28) % 56]) == 100  # off the item


def test_a_mirrored_item_is_flipped_left_to_right():
    item = torch.zeros(1, 1, 28, 28, dtype=torch.uint8)
    item[0, 0, :, :5] = 255  # a stripe on the left
    scene = make_scene(item, torch.tensor([0]), 1, 28, random.Random(0), Kind(mirrored=True))
    assert (
        bool((scene.image[0, 0, :, 23:] == 255).all()) and int(scene.image[0, 0, :, :23].sum()) == 0
    )
    assert scene.items[0].box == (0, 23, 28, 28)


def test_backdrops_by_hand():
    rng = random.Random(0)
    grey = backdrop(Kind("grey", levels=(100, 100)), 1, 8, rng)
    assert bool((grey == 100).all())
    ramp = backdrop(Kind("gradient", levels=(0, 160)), 1, 64, rng)
    assert 0 <= ramp.min() <= 30 and 130 <= ramp.max() <= 160  # its two ends
    noise = backdrop(Kind("noise", noise=60), 1, 64, rng)
    assert noise.min() == 0 and noise.max() == 60 and bool((noise == noise.round()).all())


@pytest.mark.parametrize("name", list(KINDS))
def test_every_kind_keeps_its_patches_apart_and_its_boxes_inside(name):
    kind = KINDS[name]
    images = _full(200, 10)
    rng = random.Random(2)
    for _ in range(5):
        scene = make_scene(images, torch.arange(10), kind.items, 112, rng, kind)
        assert scene.image.shape == (1, 1, 112, 112) and len(scene.items) == kind.items
        for k, a in enumerate(scene.items):
            side = a.patch[2] - a.patch[0]
            assert side == a.patch[3] - a.patch[1] and (kind.sides or (28, 28))[0] <= side
            assert side <= (kind.sides or (28, 28))[1] and a.box == a.patch  # full-frame items
            assert all(max(0, min(a.patch[2], b.patch[2]) - max(a.patch[0], b.patch[0]))
                       * max(0, min(a.patch[3], b.patch[3]) - max(a.patch[1], b.patch[1])) == 0
                       for b in scene.items[k + 1 :])  # fmt: skip


def test_a_grey_scene_with_one_bright_square_is_lifted_and_windowed_at_the_square():
    scene = torch.full((1, 90, 90), 100, dtype=torch.uint8)
    scene[0, 30:50, 40:60] = 255  # a 20 px square
    g = ground(scene)
    assert g.sign == 1 and g.mask[30:50, 40:60].all() and int(g.mask.sum()) == 400
    assert int(g.picture[0, 40, 50]) == 255 and int(g.picture[0, 0, 0]) == 0  # backdrop gone
    (region,) = regions(g.mask)
    assert square(region) == (30, 40, 50, 60)
    assert square(region, share=0.5) == (20, 30, 60, 70)  # the square takes half the side
    # a window on the square's right half: its ring (5 px) reaches 5 of the 10 columns left out;
    # the foreground's centroid (column 54.5) lies 5 px left of the window's centre (59.5)
    fill, whole, centred = measures(g.mask, [(30, 40, 50, 60), (30, 50, 50, 70)])
    assert fill.tolist() == [1.0, 0.5] and whole.tolist() == pytest.approx([1.0, 200 / 300])
    assert centred.tolist() == [1.0, 1 - 5 / 20]


def test_a_dark_object_on_a_light_backdrop_is_lifted_bright():
    scene = torch.full((1, 60, 60), 220, dtype=torch.uint8)
    scene[0, 10:30, 20:30] = 20
    g = ground(scene)
    assert g.sign == -1 and int(g.picture[0, 20, 25]) == 255 and int(g.picture.sum()) == 200 * 255


def test_squares_and_crops_by_hand():
    assert square((10, 10, 20, 30)) == (5, 10, 25, 30)  # a wide box: its width is the side
    assert square((0, 0, 2, 2)) == (-3, -3, 5, 5)  # at least 8 px
    picture = torch.arange(16, dtype=torch.uint8).view(1, 4, 4)
    assert torch.equal(crops(picture, [(0, 0, 4, 4)], (4, 4), 0)[0], picture)  # same size: as is
    edge = crops(picture, [(-2, -2, 2, 2)], (4, 4), 7)[0, 0]  # past the edge: the fill
    assert (
        edge[:2].eq(7).all()
        and edge[:, :2].eq(7).all()
        and edge[2:, 2:].tolist() == [[0, 1], [4, 5]]
    )


def test_score_counts_found_and_false_on_known_boxes():
    scene = make_scene(_full(), torch.tensor([1]), 1, 28, random.Random(0))
    hit = Detection(1, 0.9, (0, 0, 28, 28), (0, 0, 28, 28), (0, 0, 28, 28))
    wrong = Detection(2, 0.9, (0, 0, 28, 28), (0, 0, 28, 28), (0, 0, 28, 28))
    off = Detection(1, 0.9, (0, 14, 28, 42), (0, 0, 28, 28), (0, 0, 28, 28))  # IoU 1/3
    for found, want in (([hit], (1, 0)), ([wrong], (0, 1)), ([off], (0, 1)), ([hit, hit], (1, 1))):
        located = Located(found, (28, 28), (28, 28), len(found), (28, 28), 0.0)
        assert score(located, scene) == want


@pytest.mark.slow
def test_a_dense_window_scores_what_a_pass_over_the_whole_scene_gives_it(tmp_path):
    """The margin makes the dense score of a window that of the whole scene's grid cell."""
    make_run_dir(tmp_path / "run", "nin_fast", mean=[0.0], std=[1.0])
    run = load_run(tmp_path / "run")
    dense = _convolutionalized(run.model, run.input_shape)
    assert _margin(run, dense) == 24  # 4 units of 40 px fields every 8 px: 16 before, 20 after
    g = torch.Generator().manual_seed(0)
    picture = torch.randint(0, 256, (1, 112, 112), generator=g, dtype=torch.uint8)
    with torch.no_grad():
        full = torch.softmax(dense(run.preprocess(picture[None], native=True))[0], 0)
        probs = _dense_scores(run, dense, picture, [(32, 40, 60, 68)], 0.0, mirror=False)
    assert torch.allclose(probs[0], full[:, 4, 5], atol=1e-5)  # cell (32 / 8, 40 / 8)


def test_threads_is_parsed_and_checked(tmp_path, capsys):
    p = argparse.ArgumentParser()
    add_arguments(p)
    args = p.parse_args(["run", "--image", "scene.png", "--threads", "3", "--no-mirror"])
    assert args.threads == 3 and args.mirror is False
    assert p.parse_args(["run", "--image", "scene.png"]).threads is None  # torch's default
    with pytest.raises(SystemExit) as stop:
        main(["locate", str(tmp_path), "--image", "scene.png", "--threads", "0"])
    assert stop.value.code == 2
    assert capsys.readouterr().err.strip().endswith("--threads: must be at least 1 (got 0)")


@pytest.mark.slow
def test_threads_sets_torchs_threads(tmp_path, capsys):
    make_run_dir(tmp_path / "run", "lenet_fc", mean=[0.0], std=[1.0])
    path = tmp_path / "scene.png"
    image = torch.zeros(40, 40, dtype=torch.uint8)
    image[10:30, 12:28] = 255
    Image.fromarray(image.numpy(), "L").save(path)
    argv = ["locate", str(tmp_path / "run"), "--image", str(path), "--out", str(tmp_path)]
    before = torch.get_num_threads()
    try:
        assert main([*argv, "--threads", "1", "--min-score", "0"]) == 0
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    assert "40x40 px, 1 window of 20 px (at 28x28)" in capsys.readouterr().out
