"""`ninlab cam --native` on a canvas: the class is the one `ninlab predict` names for the same
file, and the strongest unit's field centre lies on the item (an untrained nin_fast: where its
map is strongest means nothing, so only the restriction can put the unit there)."""

import re

import pytest
import torch
from PIL import Image

from ninlab.cli import main

from ..conftest import make_idx_dataset, make_run_dir

ITEM = (30, 56, 58, 84)  # top, left, bottom, right: a 28x28 bright square on the 84 px canvas


@pytest.fixture(scope="module")
def canvas_run(tmp_path_factory):
    """An untrained nin_fast run on a tiny random data set, and an 84 px black canvas holding
    one bright square at ITEM."""
    root = tmp_path_factory.mktemp("cam")
    make_idx_dataset(root / "data" / "fashion-mnist", n_train=20, n_test=8)
    make_run_dir(root / "run", "nin_fast", data_dir=str(root / "data"), seed=0)
    pixels = torch.zeros(84, 84, dtype=torch.uint8)
    top, left, bottom, right = ITEM
    pixels[top:bottom, left:right] = 200
    Image.fromarray(pixels.numpy()).save(root / "canvas.png")
    return root / "run", root / "canvas.png"


def ninlab(capsys, *argv):
    rc = main([str(a) for a in argv])
    out = capsys.readouterr()
    return rc, out.out, out.err


@pytest.mark.slow
def test_native_cam_maps_the_class_predict_names_on_the_item(canvas_run, capsys, monkeypatch):
    run, canvas = canvas_run
    monkeypatch.chdir(canvas.parent)  # short paths, so a line is long only by what cam writes
    run, canvas, tmp_path = run.name, canvas.name, canvas.parent / "out"
    rc, out, err = ninlab(capsys, "predict", run, canvas)
    assert rc == 0, err
    name, prob = re.search(r"\n  (\S.*?) +(\d+\.\d\d)%\n", out).groups()  # its top class
    rc, out, err = ninlab(capsys, "cam", run, "--image", canvas, "--native", "--out", tmp_path)
    assert rc == 0, err
    assert f"ninlab predict names {name} ({prob}%) for it, made like a training image" in out
    assert f"  map of {name} at the picture's own size, 84x84:\n    probability " in out
    assert re.search(r"\n    probability \d+\.\d\d%, logit \S+ \(its forward predicts ", out)
    units = re.search(r"chosen among the (\d+) of 121 units whose field centre is on the ob", out)
    assert units and int(units[1]) == 12  # rows 35.5-51.5 x columns 59.5-83.5 (see test_cam)
    r, c = map(float, re.search(r"centre \((\S+), (\S+)\)", out).groups())
    top, left, bottom, right = ITEM
    assert top <= r < bottom and left <= c < right
    assert (tmp_path / "cam-canvas.png").is_file()
    assert max(len(line) for line in out.splitlines()) <= 80


@pytest.mark.slow
def test_native_cam_of_a_class_asked_for(canvas_run, capsys, tmp_path):
    run, canvas = canvas_run
    argv = ("cam", run, "--image", canvas, "--native", "--class", "sneaker", "--out", tmp_path)
    rc, out, err = ninlab(capsys, *argv)
    assert rc == 0, err
    assert "ninlab predict names " in out and "  map of Sneaker at the picture's own size" in out
