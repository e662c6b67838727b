"""Seeing inside: feature grids, sparsity counts, class activation maps, the box, the HTML report.

Numbers here can be checked by hand: zero counts of a layer with known signs, a CAM box from
the field arithmetic of a 3x3 conv and a 2x2 pool, grid sizes from the tile arithmetic.
"""

import base64
import html
import json
import re
import shutil
import subprocess
from collections import OrderedDict

import pytest
import torch
from PIL import Image
from torch import nn

from ninlab.analysis import (
    LayerSparsity,
    class_activation_map,
    class_activation_maps,
    class_map_stage,
    relu_channel_sparsity,
    relu_sparsity,
    stage_outputs,
    strongest_classes,
)
from ninlab.analysis.cam import box_share, peak_on_background, smallest_box_share
from ninlab.claims.ledger import claim_24, read_run
from ninlab.claims.sparsity import (
    CONCLUSION,
    SparsityReport,
    dead_words,
    sparser_with_depth,
    zeros_words,
)
from ninlab.cli import main
from ninlab.errors import NinlabError
from ninlab.models import NiN, NiNBlock, create_model
from ninlab.plotting import smallest_text_px
from ninlab.runs import BEST, evaluate_run, load_run, read_facts, read_metrics, train_run
from ninlab.runs.inputs import class_index
from ninlab.train import precision_recall_f1, resolve
from ninlab.viz import channel_grid, plot_cam, plot_features
from ninlab.viz.cam import cam_panels
from ninlab.viz.features import features_figure
from ninlab.viz.report import SECTIONS, build_report
from ninlab.viz.sparsity import dead_figure, sparsity_figure, zeros_figure

from ..conftest import make_idx_dataset, make_run_dir

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


FASHION = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat"]
FASHION += ["Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


@pytest.mark.slow
def test_class_maps_are_labelled_by_class_and_mean():
    model = create_model("nin_fast").eval()
    outputs = stage_outputs(model, torch.randn(1, 1, 28, 28))
    # class map c is c - 5 everywhere: means -5..4, strongest Ankle boot (9), then Bag (8), ...
    outputs["head.maps.block"] = (torch.arange(10.0) - 5)[None, :, None, None].expand(1, 10, 4, 4)
    assert class_map_stage(outputs, FASHION) == "head.maps.block"
    assert class_map_stage(outputs, FASHION[:9]) is None and class_map_stage(outputs, None) is None
    top = strongest_classes(outputs["head.maps.block"][0], FASHION)
    assert top == [("Ankle boot", 4.0), ("Bag", 3.0), ("Sneaker", 2.0)]
    fig = features_figure(torch.rand(28, 28).numpy(), outputs, 32, "image 0", FASHION)
    assert smallest_text_px(fig) >= 12.5  # 9 pt at 100 dpi
    titles = [ax.get_title() for ax in fig.axes if "\n" in ax.get_title()]
    assert titles == [f"{FASHION[c]}\n{c - 5:.2f}" for c in range(9, -1, -1)]
    assert any("class maps (all 10" in ax.get_title(loc="left") for ax in fig.axes)
    plain = features_figure(torch.rand(28, 28).numpy(), outputs, 32, "image 0")
    assert not any("\n" in ax.get_title() for ax in plain.axes)  # no classes: an unlabelled grid
    assert smallest_text_px(plain) >= 12.5


def test_features_cli_names_the_strongest_class_maps(run_dir, capsys, tmp_path):
    rc, out, err = ninlab(capsys, "features", run_dir, "--index", 0, "--out", tmp_path)
    assert rc == 0, err
    lines = out.splitlines()
    k = next(i for i, line in enumerate(lines) if line.startswith("  strongest class maps: "))
    assert lines[k - 1].lstrip().startswith("head.maps.block")  # under the class maps' line
    assert len(lines[k].split(", ")) == 3 and max(map(len, lines)) <= 100


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


def layers(*percent: int, channels: int = 1) -> list[LayerSparsity]:
    """Layers whose zeros are the given percentages (100 outputs per channel)."""
    return [LayerSparsity(f"l{k}", [z] * channels, 100) for k, z in enumerate(percent)]


@pytest.mark.parametrize(
    "percent, words",
    [
        ((12, 30, 64), "zeros rise at every depth, from 12% at the first ReLU to 64% at the last"),
        (
            (20, 20, 50),
            "zeros never fall with depth, from 20% at the first ReLU to 50% at the last",
        ),
        (
            (20, 50, 40, 60),
            "zeros go from 20% at the first ReLU to 60% at the last but fall at 1 of 3 steps",
        ),
        (
            (20, 70, 30),
            "zeros go from 20% at the first ReLU to 30% at the last (range 20–70%) but fall at 1 "
            "of 2 steps",
        ),
        (
            (47, 55, 50),
            "zeros stay at 47–55% at every depth, ending 3 points above the start but falling at "
            "1 of 2 steps",
        ),
        ((55, 47, 50), "zeros stay at 47–55% at every depth"),
        ((60, 40, 20), "zeros fall from 60% at the first ReLU to 20% at the last"),
        ((10, 60, 5), "zeros fall from 10% at the first ReLU to 5% at the last (range 5–60%)"),
    ],
)
def test_sparsity_verdict_in_words(percent, words):
    fractions = [p / 100 for p in percent]
    verdict = sparser_with_depth(fractions)
    assert zeros_words(fractions) == f"{words}: {CONCLUSION[verdict]}"
    report = SparsityReport("r", "w", 1, layers(*percent), layers(*percent))
    assert report.words() == zeros_words(fractions)


def test_each_verdict_has_its_own_conclusion():
    assert len(set(CONCLUSION.values())) == len(CONCLUSION) == 3
    assert zeros_words([0.1, 0.2]).endswith(": sparser with depth")  # not "not sparser ..."
    assert zeros_words([0.2, 0.1]).endswith(": not sparser with depth")


def test_dead_channels_in_words():
    net = layers(0, 0, 0, channels=128) + [LayerSparsity("features.block3.relu", [0] * 768, 100)]
    assert dead_words(net) == "no dead channel among 1,152"
    net[3].channel_zero_counts[17] = 100  # zero at all 100 outputs: dead
    assert dead_words(net) == "1 dead channel of 1,152 (features.block3.relu: channel 17)"
    net[0].channel_zero_counts[:20] = [100] * 20
    assert dead_words(net) == (
        "21 dead channels of 1,152 (l0: channels 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, "
        "14, 15, ... (20 in all); features.block3.relu: channel 17)"
    )
    report = SparsityReport("r", "w", 1, net, layers(0, 0, 0, 0, channels=288))
    assert report.dead_words() == dead_words(net)


def test_sparsity_figures_are_readable():
    trained = layers(47, 55, 50, channels=128)
    trained[1].channel_zero_counts[5] = 100  # one dead channel of 128
    report = SparsityReport("r", "w", 1000, trained, layers(50, 49, 51, channels=128))
    zeros, dead = zeros_figure(report), dead_figure(report)
    for fig in (zeros, dead, sparsity_figure(report, "nin_fast on fashion-mnist")):
        assert smallest_text_px(fig) >= 12.5  # 9 pt at 100 dpi
    assert tuple(zeros.get_size_inches()) == tuple(dead.get_size_inches()) == (5, 3.8)
    (ax,) = zeros.axes
    assert ax.get_ylim() == (0, 100)  # a flat ~50% looks flat
    assert ax.get_title().replace("\n", " ") == report.words()
    (ax,) = dead.axes
    assert [t.get_text() for t in ax.texts] == ["1 of 128"]  # a count, not 0.78%
    assert all(float(y).is_integer() for y in ax.get_yticks()) and ax.get_ylim()[0] == 0
    assert "trained 1 of 384" in ax.get_title()


@pytest.mark.slow
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
    (claim,) = claim_24([read_run(run_dir)], N_TEST, None)
    assert d["verdict"] == claim.verdict
    assert d["words"].endswith(": " + CONCLUSION[d["verdict"]]) and " 624" in d["dead_words"]
    rc, out, _ = ninlab(capsys, "sparsity", run_dir)
    assert rc == 0 and "dead" in out and "at init" in out
    claim_line = f"(claim 24 of `ninlab claims`: {d['verdict']}; at initialisation: "
    assert claim_line + f"{d['verdict_at_init']})" in out
    assert " ".join(out.split()).count(d["words"]) == 1  # the words, wrapped
    assert max(len(line) for line in out.splitlines() if not line.startswith("wrote ")) <= 80


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
    # the box: 4 x 4 of 16 x 16 pixels; the peak's cell, rows 5.5-7.5 and columns 9.5-11.5
    # around the centre, holds the square, not the background (0, the border's value)
    assert box_share(cam) == 16 / 256 and not peak_on_background(x[0, 0].numpy(), cam)
    # the smallest box: a corner unit's, rows -1..2 clipped to 0..2, the same for columns
    assert smallest_box_share(cam) == 9 / 256
    moved = torch.zeros(16, 16)
    moved[12:15, 1:4] = 1.0  # the same square elsewhere: the peak's cell is now background
    assert peak_on_background(moved.numpy(), cam)
    fig = cam_panels(x[0, 0].numpy(), cam, ["bright", "dark"], cam)
    assert len(fig.axes) == 3 + 1 and smallest_text_px(fig) >= 12.5  # 3 panels, a colour bar


def test_class_names():
    classes = ["T-shirt/top", "Sneaker", "Ankle boot"]
    assert class_index("Sneaker", classes) == 1
    assert class_index("ankle_boot", classes) == 2 and class_index("t-shirt/top", classes) == 0
    with pytest.raises(NinlabError, match="choose one of 'T-shirt/top', 'Sneaker', 'Ankle boot'"):
        class_index("Shoe", classes)


# ---- the verbs ----


@pytest.mark.slow
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
    assert "  (the probability of one forward pass, as eval, predict and report give it)\n" in out


def test_cam_of_a_flip_run_gives_the_probability_eval_gives_too(run_dir, capsys, tmp_path):
    tta = tmp_path / "tta"
    make_run_dir(tta, "nin_fast", data_dir=str(run_dir.parent / "data"), tta_flip=True)
    rc, out, err = ninlab(capsys, "cam", tta, "--index", 3, "--out", tmp_path)
    assert rc == 0, err
    run = load_run(tta)
    image = run.dataset().test_item(3)[0]
    cam = class_activation_map(run.model, run.preprocess(image))  # one plain forward
    both = run.probabilities(image)[0, cam.class_index].item()  # image and mirror averaged
    assert f"probability {100 * cam.prob:.2f}%" in out
    flip = "  (one plain forward; with test-time flip, as eval and predict give it: "
    assert f"{flip}{100 * both:.2f}%)\n" in out


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
def trained(run_dir):
    """A nin_fast run that training wrote (facts, full metrics): 2 epochs on the 20 images."""
    cfg = resolve("fast", epochs=2, batch_size=10, data_dir=str(run_dir.parent / "data"),
                  device="cpu", threads=1)  # fmt: skip
    return train_run(cfg, run_dir.parent / "trained", progress=False, log=None)[1]


@pytest.fixture(scope="module")
def report(trained):
    path = trained / "out" / "report.html"
    assert main(["report", str(trained), "--out", str(path), "--gallery", "3"]) == 0
    return path


def _section(text: str, key: str) -> str:
    return text.split(f'<section id="{key}">')[1].split("</section>")[0]


@pytest.mark.slow
def test_report_has_every_section_and_is_self_contained(report):
    text = report.read_text()
    for key, title in SECTIONS.items():
        assert f'<section id="{key}"><h2>{title}</h2>' in text
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in text
    assert "features.block1.conv" in text  # the model summary table
    sources = re.findall(r'<img src="([^"]*)"', text)
    assert len(sources) >= 4 + 2  # four curves and two sparsity panels, then CAMs and mistakes
    for src in sources:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    # every figure's smallest text is at least 9 pt: 12.5 px in the PNG at 100 dpi
    sizes = [float(v) for v in re.findall(r'data-text-px="([\d.]+)"', text)]
    assert len(sizes) >= 6 and min(sizes) >= 12.5
    refs = re.findall(r'(?:src|href)="([^"]*)"', text)
    assert all(r.startswith(("data:", "#")) for r in refs)  # nothing from outside the file
    assert "<link" not in text and "@import" not in text and "url(" not in text


@pytest.mark.slow
def test_report_states_the_run_facts_training_recorded(trained, report):
    facts = _section(report.read_text(), "facts")
    (session,) = read_facts(trained)
    history = read_metrics(trained)
    assert session["started"].replace("T", " ") in facts
    assert f"{history[-1]['elapsed']:,.1f} s of training and test evaluation over 2 epochs" in facts
    rates = [r["images_per_s"] for r in history]
    assert f"{sorted(rates)[0]:,.0f} to {sorted(rates)[1]:,.0f}" in facts
    assert f"cpu ({html.escape(session['device_name'])}), {session['precision']} precision, 1 " \
        "threads" in facts  # fmt: skip
    assert f"torch {torch.__version__}" in facts and html.escape(session["command"]) in facts
    best = max(history, key=lambda r: r["test_acc"])
    assert f"epoch {best['epoch']}, {100 * best['test_acc']:.2f}%: {BEST}" in facts
    assert "test-time flip</th><td>no: every probability" in facts
    assert "20 training images, 50 test images on this page" in facts


def test_report_numbers_agree_with_the_evaluation(trained, report):
    text = report.read_text()
    ev = evaluate_run(load_run(trained))
    classes = _section(text, "classes")
    assert f"({ev.correct:,} of 50 images)" in classes
    precision, recall, f1 = precision_recall_f1(ev.confusion)
    for k, name in enumerate(ev.run.classes):
        row = f'<td>{html.escape(name)}</td><td class="num">{int(ev.confusion[k].sum())}</td>'
        assert row in classes and f"{f1[k]:.3f}" in classes
    # examples by rule: the most confident right predictions, most confident first
    cams = _section(text, "cams")
    right = cams.split("Most confident right")[1].split("Most confident wrong")[0]
    shown = [int(i) for i in re.findall(r"<figcaption>#(\d+):", right)]
    ok = (ev.preds == ev.labels).nonzero().flatten()
    expect = ok[ev.confidence[ok].argsort(descending=True, stable=True)][:3].tolist()
    assert shown == expect
    assert "chosen by rule" in cams
    drawn = len(shown) + 2 * cams.count("<b>predicted ")
    assert f"Checked on the {drawn} maps drawn: " in cams  # a mistake has two maps
    assert "each averages to the model's logit for its class" in cams
    sparsity = _section(text, "sparsity")
    assert '<a href="#claim-24">claim 24</a>' in sparsity and 'id="claim-24"' in text


@pytest.mark.slow
def test_report_of_a_run_without_facts_says_so(run_dir):
    page = build_report(load_run(run_dir), gallery=1).html
    facts = _section(page, "facts")
    assert facts.count("not recorded (trained by a ninlab that did not record its facts)") == 4


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# a 420 px wide frame: headless Chromium draws no window narrower than 500 px
FRAME = """<!DOCTYPE html><html><body style="margin: 0"><div id="status"></div>
<iframe id="f" src="{src}" style="width: 420px; height: 3000px; border: 0"></iframe>
<script>document.getElementById("f").addEventListener("load", function () {{
  var s = this.contentDocument.getElementById("report-status");
  var out = document.getElementById("status");
  Array.prototype.forEach.call(s.attributes, function (a) {{ out.setAttribute(a.name, a.value); }});
}});</script></body></html>"""


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed: apt-get install chromium")
@pytest.mark.parametrize("width", [420, 1400])
def test_report_in_headless_chromium(report, tmp_path, width):
    """At a phone's 420 px and a desktop's 1400 px: every image decodes, no script error, nothing
    overflows sideways, no text under 9 px (figures as scaled), and the screenshot is a page."""
    base = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
    base += ["--disable-background-networking", "--no-first-run", "--disable-extensions"]
    base += ["--disable-sync", "--allow-file-access-from-files"]
    base += [f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0"]
    page = report
    if width < 500:
        page = tmp_path / "frame.html"
        page.write_text(FRAME.format(src=report.resolve().as_uri()))
    url, size = page.resolve().as_uri(), f"--window-size={max(width, 500)},3000"
    dom = subprocess.run([*base, size, "--dump-dom", url], capture_output=True, text=True,
                         timeout=60)  # fmt: skip
    status = re.search(r'<div id="(?:report-)?status"[^>]*>', dom.stdout)
    assert status, dom.stderr[-2000:]
    attrs = dict(re.findall(r'data-([a-z-]+)="([^"]*)"', status.group(0)))
    images = len(re.findall(r"<img ", report.read_text()))
    assert (attrs["images"], attrs["broken"], attrs["errors"]) == (str(images), "0", "0")
    assert attrs["loaded"] == "yes" and attrs["viewport"] == str(width)
    assert attrs["overflow"] == "0"  # wide tables and figures scroll in their own boxes
    assert float(attrs["figure-text"]) >= 9 and float(attrs["html-text"]) >= 9
    shot = tmp_path / "shot.png"
    r = subprocess.run([*base, size, f"--screenshot={shot}", url], capture_output=True,
                       text=True, timeout=60)  # fmt: skip
    for log in (dom.stderr, r.stderr):
        console = [line for line in log.splitlines() if "CONSOLE" in line]
        assert not [line for line in console if "Uncaught" in line or "ERROR" in line], console
    img = Image.open(shot).convert("L")
    assert img.size == (max(width, 500), 3000)
    lo, hi = img.getextrema()
    assert hi - lo > 100 and len(img.getcolors(1 << 16) or range(1 << 16)) > 10  # not blank
