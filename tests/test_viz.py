"""Seeing inside: feature grids, sparsity counts, class activation maps, the box, the HTML report.

Numbers here can be checked by hand: zero counts of a layer with known signs, a CAM box from
the field arithmetic of a 3x3 conv and a 2x2 pool, grid sizes from the tile arithmetic.
"""

import base64
import json
import re
import shutil
import subprocess
from collections import OrderedDict

import pytest
import torch
from PIL import Image
from torch import nn

from ninlab.analysis import relu_sparsity
from ninlab.claims import claim_24, read_run
from ninlab.cli import main
from ninlab.errors import NinlabError
from ninlab.models import NiN, NiNBlock, create_model
from ninlab.viz import (
    channel_grid,
    class_activation_map,
    class_activation_maps,
    class_index,
    plot_cam,
    plot_features,
    relu_channel_sparsity,
    sparser_with_depth,
    stage_outputs,
)
from ninlab.viz.report import SECTIONS

from .conftest import make_idx_dataset, make_run_dir

N_TEST = 50


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """An untrained nin_fast run on a random 50-image test set, with two epochs of metrics."""
    root = tmp_path_factory.mktemp("viz")
    make_idx_dataset(root / "data" / "fashion-mnist", n_train=20, n_test=N_TEST)
    run = root / "run"
    make_run_dir(run, "nin_fast", data_dir=str(root / "data"), seed=0)
    rows = [
        {"epoch": 1, "train_loss": 2.0, "train_acc": 0.3, "test_loss": 1.9, "test_acc": 0.35},
        {"epoch": 2, "train_loss": 1.5, "train_acc": 0.5, "test_loss": 1.6, "test_acc": 0.45},
    ]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return run


def ninlab(capsys, *argv):
    """Run the CLI in-process: (exit status, stdout, stderr)."""
    rc = main([str(a) for a in argv])
    out = capsys.readouterr()
    return rc, out.out, out.err


# ---- feature maps ----


def test_channel_grid_shape_and_order():
    maps = torch.arange(10, dtype=torch.float32)[:, None, None].expand(10, 4, 4)  # channel c = c
    grid, order = channel_grid(maps, max_channels=16, cols=8)
    # 10 tiles of 4x4 in 8 columns: 2 rows; 1 px gaps: (2*4 + 1, 8*4 + 7)
    assert grid.shape == (9, 39)
    assert order.tolist() == list(range(9, -1, -1))  # strongest mean first
    assert grid[0, 0] == 9 and grid[5, 0] == 1  # tile 8 (row 2, column 1) is channel 1
    assert grid[4].isnan().all() and grid[:, 4].isnan().all()  # the gaps
    grid, order = channel_grid(torch.rand(40, 3, 5), max_channels=32)
    assert grid.shape == (4 * 4 - 1, 8 * 6 - 1) and len(order) == 32  # 32 of 40, 4 rows of 8


def test_stage_outputs_and_features_png(tmp_path):
    model = create_model("nin_fast").eval()
    outputs = stage_outputs(model, torch.randn(1, 1, 28, 28))
    assert list(outputs) == list(model.stage_names)
    assert [o.shape[1] for o in outputs.values()] == [s["num_chs"] for s in model.feature_info]
    path = plot_features(torch.rand(28, 28).numpy(), outputs, tmp_path / "f.png", 16)
    assert Image.open(path).format == "PNG"


# ---- sparsity ----


def test_sparsity_of_a_layer_with_known_zeros():
    conv = nn.Conv2d(1, 3, 1)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([1.0, -1.0, 0.0]).view(3, 1, 1, 1))
        conv.bias.copy_(torch.tensor([0.0, 0.0, -1.0]))  # channel 2 is -1 everywhere: dead
    model = nn.Sequential(conv, nn.ReLU())
    x = torch.tensor([[[[1.0, -1.0], [0.0, 2.0]]], [[[-3.0, -1.0], [-2.0, 4.0]]]])  # 2 x 1 x 2 x 2
    (layer,) = relu_channel_sparsity(model, x, batch_size=1)
    # relu(x) is 0 where x <= 0: 2 + 3 of 8; relu(-x) where x >= 0: 3 + 1 of 8; relu(-1): 8 of 8
    assert layer.name == "1"
    assert layer.channel_zero_counts == [5, 4, 8] and layer.per_channel == 8
    assert layer.zeros == 17 / 24 and layer.channel_zeros == [5 / 8, 4 / 8, 1.0]
    assert layer.dead == [2]
    assert relu_sparsity(model, x) == [("1", 17 / 24)]  # the analysis module's number


def test_channel_sparsity_agrees_with_relu_sparsity():
    model = create_model("nin_fast").eval()
    x = torch.randn(6, 1, 28, 28)
    ours = [(t.name, t.zeros) for t in relu_channel_sparsity(model, x, batch_size=4)]
    theirs = relu_sparsity(model, x, batch_size=4)
    assert [n for n, _ in ours] == [n for n, _ in theirs]
    assert all(abs(a - b) < 1e-12 for (_, a), (_, b) in zip(ours, theirs, strict=True))


def test_sparser_with_depth_verdicts():
    assert sparser_with_depth([0.1, 0.2, 0.2]) == "holds"
    assert sparser_with_depth([0.1, 0.3, 0.2]) == "differs"
    assert sparser_with_depth([0.3, 0.2, 0.1]) == "does not hold"


def test_sparsity_cli_and_claims_agree(run_dir, capsys):
    rc, out, err = ninlab(capsys, "sparsity", run_dir, "--json")
    assert rc == 0, err
    d = json.loads(out)
    assert d["images"] == N_TEST and (run_dir / "sparsity.png").is_file()
    names = [layer["name"] for layer in d["layers"]]
    assert names[0] == "features.block1.relu" and len(names) == 6  # 5 feature ReLUs + class block
    first = d["layers"][0]
    assert len(first["channel_zeros"]) == first["channels"] == 16 and "init" in first
    # statement 24: the same verdict as `ninlab claims` on the same images
    claim = claim_24([read_run(run_dir)], N_TEST, None)
    assert d["verdict"] == claim.verdict
    rc, out, _ = ninlab(capsys, "sparsity", run_dir)
    assert rc == 0 and "statement 24" in out and "dead" in out and "at init" in out


# ---- class activation maps ----


def test_nin_class_map_mean_is_the_logit():
    model = create_model("nin_fast").eval()  # class conv + BN, no ReLU after it
    with torch.no_grad():  # non-trivial batch-norm statistics
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    x = torch.randn(3, 1, 28, 28)
    logits = model(x)
    for k, cam in enumerate(class_activation_maps(model, x, 4)):
        assert cam.method == "class map" and not cam.relu_after
        assert cam.map.shape == (4, 4) and cam.exact
        assert abs(cam.map_mean - logits[k, 4].item()) < 1e-5
    cam = class_activation_map(model, x[:1])
    assert cam.class_index == int(logits[0].argmax())
    assert "no ReLU after the class conv" in "\n".join(cam.lines([str(c) for c in range(10)]))


def test_classic_nin_says_a_relu_follows_the_class_conv():
    model = create_model("nin_cifar", num_classes=10).eval()
    cam = class_activation_map(model, torch.randn(1, 3, 32, 32), 3)
    assert cam.relu_after and cam.exact and (cam.map >= 0).all()
    assert cam.linear_mean is not None
    assert "a ReLU follows the class conv" in "\n".join(cam.lines([str(c) for c in range(10)]))


def test_cam_of_gap_linear_head_and_grad_cam_of_fc_head():
    x = torch.randn(2, 1, 28, 28)
    vgg = create_model("vgg_gap").eval()
    cams = class_activation_maps(vgg, x, [1, 5])
    logits = vgg(x)
    assert [c.method for c in cams] == ["CAM", "CAM"] and all(c.exact for c in cams)
    assert abs(cams[1].map_mean - logits[1, 5].item()) < 1e-5 and cams[1].map.shape == (7, 7)
    lenet = create_model("lenet_fc").eval()
    cam = class_activation_map(lenet, x[:1], 2)
    assert cam.method == "Grad-CAM" and cam.layer == "features.relu2"
    assert cam.exact is None and cam.map.shape == (10, 10) and (cam.map >= 0).all()


def tiny_nin() -> NiN:
    """One 3x3 box-filter block (weights 1/9), a 2x2 max pool, then a 1x1 class conv whose
    class 0 is +brightness and class 1 is -brightness: the class map is bright where the image is.

    Field of the class map: 3x3 conv (size 3, jump 1, start -1), 2x2 pool stride 2 (size 4,
    jump 2, start -1), 1x1 conv (unchanged).
    """
    features = OrderedDict(block1=NiNBlock(1, (1,), 3, padding=1), pool1=nn.MaxPool2d(2))
    model = NiN(features, NiNBlock(1, (2,), 1, final_relu=False), (1, 16, 16))
    with torch.no_grad():
        model.features.block1.conv.weight.fill_(1 / 9)
        model.features.block1.conv.bias.zero_()
        model.head.maps.block.conv.weight.copy_(torch.tensor([1.0, -1.0]).view(2, 1, 1, 1))
        model.head.maps.block.conv.bias.zero_()
    return model.eval()


def test_box_lands_on_a_bright_square(tmp_path):
    x = torch.zeros(1, 1, 16, 16)
    x[0, 0, 5:8, 10:13] = 1.0  # a 3x3 bright square: rows 5-7, columns 10-12
    cam = class_activation_map(tiny_nin(), x)
    # The box filter is 1 only at the square's centre (6, 11); pool cell (3, 5) covers rows 6-7,
    # columns 10-11, so it is the unique maximum. Its field: rows -1 + 2*3 = 5 .. 5 + 4, columns
    # -1 + 2*5 = 9 .. 9 + 4 (end exclusive).
    assert cam.class_index == 0 and cam.cell == (3, 5) and cam.map[3, 5] == 1.0
    assert (cam.field.size, cam.field.jump, cam.field.start) == ((4, 4), (2, 2), (-1, -1))
    assert cam.box == (5, 9, 9, 13)
    top, left, bottom, right = cam.box
    assert top <= 5 and bottom >= 8 and left <= 10 and right >= 13  # the whole square is inside
    assert cam.center == (6.5, 10.5) and cam.exact
    path = plot_cam(x[0, 0].numpy(), cam, ["bright", "dark"], tmp_path / "cam.png")
    assert Image.open(path).size[0] > 0


def test_class_names():
    classes = ["T-shirt/top", "Sneaker", "Ankle boot"]
    assert class_index("Sneaker", classes) == 1
    assert class_index("ankle_boot", classes) == 2 and class_index("t-shirt/top", classes) == 0
    with pytest.raises(NinlabError, match="choose one of 'T-shirt/top', 'Sneaker', 'Ankle boot'"):
        class_index("Shoe", classes)


# ---- the verbs ----


def test_features_and_cam_cli(run_dir, capsys, tmp_path):
    rc, out, err = ninlab(capsys, "features", run_dir, "--index", 3)
    assert rc == 0, err
    assert (run_dir / "features-3.png").is_file() and "features.block1" in out
    png = tmp_path / "shoe.png"
    Image.new("RGB", (40, 30), (200, 10, 10)).save(png)
    rc, out, err = ninlab(capsys, "features", run_dir, "--image", png, "--out", tmp_path / "o")
    assert rc == 0 and (tmp_path / "o" / "features-shoe.png").is_file(), err
    rc, out, err = ninlab(capsys, "cam", run_dir, "--index", 3, "--class", "sneaker")
    assert rc == 0, err
    assert (run_dir / "cam-3.png").is_file()
    assert "map of Sneaker" in out and "mean = logit: yes" in out and "box in input pixels" in out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["cam", "{run}", "--index", "50"], "--index 50 is out of range; the fashion-mnist test"),
        (["features", "{run}", "--index", "-1"], "--index -1 is out of range"),
        (["cam", "{run}", "--image", "{bad}"], "is not a readable image"),
        (["cam", "{run}", "--index", "0", "--class", "Shoe"], "choose one of 'T-shirt/top',"),
        (["cam", "{empty}", "--index", "0"], "has no weights"),
        (["sparsity", "{empty}"], "has no weights"),
        (["report", "{empty}"], "has no weights"),
    ],
)
def test_bad_input_is_one_sentence(run_dir, tmp_path, capsys, argv, message):
    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    empty = tmp_path / "empty"
    shutil.copytree(run_dir, empty, ignore=shutil.ignore_patterns("*.safetensors"))
    argv = [a.format(run=run_dir, bad=bad, empty=empty) for a in argv]
    rc, out, err = ninlab(capsys, *argv)
    assert rc == 2 and out == ""
    assert err.startswith("ninlab: error: ") and err.count("\n") == 1 and message in err


# ---- the report ----


@pytest.fixture(scope="module")
def report(run_dir):
    path = run_dir / "out" / "report.html"
    assert main(["report", str(run_dir), "--out", str(path), "--gallery", "3"]) == 0
    return path


def test_report_has_every_section_and_is_self_contained(report):
    text = report.read_text()
    for key, title in SECTIONS.items():
        assert f'<section id="{key}"><h2>{title}</h2>' in text
    assert "features.block1.conv" in text  # the model summary table
    assert "Statement 24" in text and "Right</h3>" in text and "Wrong</h3>" in text
    sources = re.findall(r'<img src="([^"]*)"', text)
    assert len(sources) == 3 + 2 * 3  # curves, confusion, sparsity; 3 right and 3 wrong CAMs
    for src in sources:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    refs = re.findall(r'(?:src|href)="([^"]*)"', text)
    assert all(r.startswith(("data:", "#")) for r in refs)  # nothing from outside the file
    assert "<link" not in text and "@import" not in text and "url(" not in text


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed: apt-get install chromium")
def test_report_in_headless_chromium(report, tmp_path):
    base = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu"]
    base += ["--disable-background-networking", "--no-first-run", "--disable-extensions"]
    base += ["--disable-sync", "--hide-scrollbars", f"--user-data-dir={tmp_path / 'profile'}"]
    base += ["--enable-logging=stderr", "--v=0"]
    url = report.resolve().as_uri()
    dom = subprocess.run([*base, "--dump-dom", url], capture_output=True, text=True, timeout=60)
    status = re.search(r'<div id="report-status"[^>]*>', dom.stdout)
    assert status, dom.stderr[-2000:]
    attrs = dict(re.findall(r'data-([a-z]+)="([^"]*)"', status.group(0)))
    images = len(re.findall(r"<img ", report.read_text()))
    assert attrs == {"images": str(images), "broken": "0", "errors": "0", "loaded": "yes"}
    shot = tmp_path / "shot.png"
    r = subprocess.run(
        [*base, f"--screenshot={shot}", "--window-size=1200,3000", url],
        capture_output=True,
        text=True,
        timeout=60,
    )
    for log in (dom.stderr, r.stderr):
        console = [line for line in log.splitlines() if "CONSOLE" in line]
        assert not [line for line in console if "Uncaught" in line or "ERROR" in line], console
    img = Image.open(shot).convert("L")
    assert img.size == (1200, 3000)
    lo, hi = img.getextrema()
    assert hi - lo > 100 and len(img.getcolors(1 << 16) or range(1 << 16)) > 10  # not blank
