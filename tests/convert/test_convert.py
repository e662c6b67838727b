"""ninlab.convert: 1x1 convs <=> Linear, convolutionalize, sliding window, fusion, export, CLI."""

import copy
from collections import OrderedDict
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn

from ninlab.analysis import working_sizes
from ninlab.cli import main
from ninlab.convert import (
    Conversion,
    apply_linear_per_pixel,
    check_sliding_window,
    conv1x1_as_matmul,
    conv1x1_to_linear,
    convolutionalize,
    fc_to_conv,
    fold_batchnorm,
    for_inference,
    fuse_linear_1x1,
    fuse_pair,
    linear_to_conv1x1,
    unfused_1x1,
)
from ninlab.models import Conv1x1, NiNBlock, create_model, list_models
from ninlab.models.layers import GlobalAvgPool
from ninlab.runs import load_converted

from ..conftest import make_run_dir

MODELS = list_models()  # every FC-head baseline and NiN model


def close(a, b, tol=1e-5):
    """|a - b| <= tol * max(1, max|b|): 1e-5 absolute for logits of size 1, relative above."""
    return (a - b).abs().max().item() <= tol * max(1.0, b.abs().max().item())


# --- 1x1 conv <=> Linear -----------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(2, 3, 4, 4), (1, 3, 1, 1), (5, 3, 7, 2)])
def test_linear_and_conv1x1_are_the_same_map(shape):
    linear = nn.Linear(3, 6)
    x = torch.randn(shape)
    conv = linear_to_conv1x1(linear)
    assert torch.equal(conv.weight.flatten(1), linear.weight)
    assert close(conv(x), apply_linear_per_pixel(linear, x))
    cl = x.contiguous(memory_format=torch.channels_last)  # a Conv1x1: computed by F.linear
    assert isinstance(conv, Conv1x1) and close(conv(cl), apply_linear_per_pixel(linear, x))
    back = conv1x1_to_linear(conv)
    assert torch.equal(back.weight, linear.weight) and torch.equal(back.bias, linear.bias)


def test_fc_to_conv_respects_channel_major_flatten():
    linear = nn.Linear(4 * 3 * 5, 7)
    x = torch.randn(2, 4, 3, 5)
    conv = fc_to_conv(linear, (4, 3, 5))
    assert conv.kernel_size == (3, 5)
    assert close(conv(x).flatten(1), linear(x.flatten(1)))


def test_channel_mixing_by_hand():
    """4x4x3 -> six 1x1 filters -> 4x4x6 -> two -> 4x4x2, as conv and as (H*W)xC matmul."""
    x = torch.arange(48.0).reshape(3, 4, 4)  # x[c, h, w] = 16c + 4h + w
    w1 = torch.tensor(
        [[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 1], [1, -1, 0], [0, 2, -1]], dtype=torch.float
    )  # 6 x 3
    w2 = torch.tensor([[1, 0, 0, 0, 0, 0], [0, 0, 0, 1, -1, 1]], dtype=torch.float)  # 2 x 6
    h6 = conv1x1_as_matmul(x, w1)
    assert h6.shape == (6, 4, 4)
    assert torch.equal(h6, F.conv2d(x[None], w1[:, :, None, None])[0])
    # pixel (1, 2) holds (6, 22, 38): filter 4 sums it to 66, filter 5 gives 6 - 22 = -16
    assert h6[:, 1, 2].tolist() == [6, 22, 38, 66, -16, 6]
    h2 = conv1x1_as_matmul(h6, w2, bias=torch.tensor([0.0, 1.0]))
    assert h2.shape == (2, 4, 4)
    assert h2[:, 1, 2].tolist() == [6, 66 + 16 + 6 + 1]
    pixels = x.reshape(3, 16).T  # 16 x 3, one row per pixel
    assert torch.equal(h2.reshape(2, 16).T, pixels @ w1.T @ w2.T + torch.tensor([0.0, 1.0]))


# --- convolutionalize over the registry -------------------------------------------------------


@pytest.fixture(scope="module")
def built():
    torch.manual_seed(0)
    return {name: create_model(name).eval() for name in MODELS}


@pytest.mark.slow
@pytest.mark.parametrize("name", MODELS)
def test_convolutionalize_and_fold_keep_logits(built, name):
    model = built[name]
    x = torch.randn(2, *model.default_input_size)
    dense, conversion = for_inference(model)
    assert not any(isinstance(m, nn.Linear | nn.Flatten | nn.BatchNorm2d) for m in dense.modules())
    with torch.no_grad():
        ref = model(x)
        grid = dense(x)
        assert grid.shape == (2, 10, 1, 1)
        assert close(grid.flatten(1), ref)
        assert close(convolutionalize(model)(x).flatten(1), ref)
        folded, pairs = fold_batchnorm(model)
        assert close(folded(x), ref)
    # stem, then 3 x (conv, 1x1) in nin_fast, 3 x (conv, 1x1, 1x1) in nin_fast2, 2 x in fast_fc;
    # nin_whiten: 3 x (conv, 1x1) after a stem without batch norm
    folds = {"nin_fast": 7, "nin_wide": 7, "nin_fast2": 10, "fast_fc": 5, "nin_whiten": 6}
    assert len(pairs) == folds.get(name, 0)


def valid_twin(model):
    """The model with every padding and ceil_mode removed, at the smallest input that still
    gives its Flatten the trained shape (for GAP models: its own input size, or the smallest that
    works where that is too small without padding)."""
    twin = copy.deepcopy(model)
    layers = [m for m in twin.modules() if isinstance(m, nn.Conv2d | nn.MaxPool2d | nn.AvgPool2d)]
    for m in layers:
        m.padding = (0, 0) if isinstance(m, nn.Conv2d) else 0
        if not isinstance(m, nn.Conv2d):
            m.ceil_mode = False
    flatten = [m for m in twin.modules() if isinstance(m, nn.Flatten)]
    if flatten:  # walk the layers backwards from the map the Linear was sized for
        c, size, _ = model.default_input_size
        with torch.no_grad():
            size = model.features(torch.zeros(1, *model.default_input_size)).shape[-1]
        for m in reversed([m for m in twin.features.modules() if m in layers]):
            k, s, d = (m.kernel_size, m.stride, getattr(m, "dilation", 1))
            k, s, d = (v[0] if isinstance(v, tuple) else v for v in (k, s, d))
            size = (size - 1) * s + d * (k - 1) + 1
        twin.default_input_size = (c, size, size)
    else:
        c, size, _ = model.default_input_size
        size = max(size, working_sizes(twin, c, limit=4 * size)[0])
        twin.default_input_size = (c, size, size)
    return twin


@pytest.mark.slow
@pytest.mark.parametrize("name", MODELS)
def test_sliding_window(built, name):
    """Exact on crops for the unpadded twin of every model; for the registry models themselves,
    exact only where only the first layer pads (lenet_fc), else a named border effect."""
    model = built[name]
    twin = valid_twin(model)
    dense = convolutionalize(twin)
    c, h, w = twin.default_input_size
    s = dense.stride
    check = check_sliding_window(twin, dense, torch.randn(c, h + s, w + 2 * s))
    assert check.grid == (2, 3) and check.compared == 6
    assert check.exact and check.ok(), check

    dense = convolutionalize(model)
    c, h, w = model.default_input_size
    check = check_sliding_window(model, dense, torch.randn(c, h + s, w + s))
    assert check.compared == 4
    if name == "lenet_fc":
        assert check.exact and check.ok(), check
    else:
        assert not check.exact and "pad" in check.reason and "features." in check.reason
        assert check.max_abs_diff > 1e-6  # the border effect is real, not hidden


def test_dense_map_of_nin_is_its_class_maps(built):
    model = built["nin_fast"]
    x = torch.randn(1, 1, 60, 44)
    dense = convolutionalize(model)
    with torch.no_grad():
        assert close(dense.class_maps(x), model.class_maps(x))
        assert dense(x).shape == (1, 10, 5, 3)  # (60 - 28) / 8 + 1 by (44 - 28) / 8 + 1


def test_smallest_input_before_and_after_conversion(built):
    # nin_seed: 11x11/4 conv, 3x3/2 pool, 5x5 conv (pad 2), pool, 3x3 (pad 1), pool, 3x3 (pad 1):
    # the last pool needs a 3x3 map, so 3 -> 7 -> 15 -> 67 ((15 - 1) * 4 + 11) going back
    assert working_sizes(built["nin_seed"], 1, limit=224)[0] == 67
    assert working_sizes(built["lenet_fc"], 1, limit=64) == (28, 31)  # the FC head fixes the size
    lo, hi = working_sizes(convolutionalize(built["lenet_fc"]), 1, limit=64)
    assert (lo, hi) == (28, 64)  # convolutionalized: any size from the trained one up


def test_gap_then_linear_becomes_1x1_then_window(built):
    dense = convolutionalize(built["vgg_gap"])
    names = list(dense.layers._modules)
    assert names[-2:] == ["head_fc", "window"]
    assert dense.layers.window.kernel_size == (7, 7) and dense.layers.window.stride == 1


# --- fusion ------------------------------------------------------------------------------------


def test_fuse_conv_then_1x1():
    model = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.Conv2d(8, 4, 1))
    x = torch.randn(2, 3, 9, 9)
    fused, pairs = fuse_linear_1x1(model)
    assert pairs == [("0", "1")] and len(fused) == 1 and fused[0].kernel_size == (3, 3)
    with torch.no_grad():
        assert close(fused(x), model(x))


def test_fold_then_fuse_chain_of_1x1():
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, bias=False), nn.BatchNorm2d(8), nn.Conv2d(8, 8, 1), nn.Dropout(0.5),
        nn.Conv2d(8, 5, 1), nn.BatchNorm2d(5), nn.ReLU(), nn.Conv2d(5, 2, 1),
    )  # fmt: skip
    for bn in (model[1], model[5]):  # non-trivial running statistics
        bn.running_mean.uniform_(-1, 1), bn.running_var.uniform_(0.5, 2), bn.weight.data.normal_()
    x = torch.randn(2, 3, 8, 8)
    folded, folds = fold_batchnorm(model)
    fused, pairs = fuse_linear_1x1(folded)
    assert folds == [("0", "1"), ("4", "5")]
    assert pairs == [("0", "2"), ("0", "4")]  # the ReLU stops the third
    with torch.no_grad():
        assert close(fused(x), model.eval()(x))
    assert sum(isinstance(m, nn.Conv2d) for m in fused) == 2


def test_fuse_nin_blocks_without_relu():
    model = nn.Sequential(
        NiNBlock(3, (16,), 3, padding=1, final_relu=False), NiNBlock(16, (8,), 1, final_relu=False)
    )
    x = torch.randn(1, 3, 6, 6)
    fused, pairs = fuse_linear_1x1(model)
    assert pairs == [("0.conv", "1.conv")]
    with torch.no_grad():
        assert close(fused(x), model(x))


def test_nothing_fuses_in_nin_fast(built):
    folded, _ = fold_batchnorm(convolutionalize(built["nin_fast"]))
    _, pairs = fuse_linear_1x1(folded)
    assert pairs == []  # a ReLU ends every block before the class conv


def test_what_keeps_each_1x1_conv_unfused():
    model = nn.Sequential(
        nn.Conv2d(3, 3, 1), nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 8, 1), nn.MaxPool2d(2),
        nn.Dropout(), nn.Conv2d(8, 4, 1), nn.Conv2d(4, 4, 3, groups=2), nn.Conv2d(4, 2, 1),
    )  # fmt: skip
    assert unfused_1x1(model) == [
        ("0", "input"), ("3", "ReLU"), ("6", "MaxPool2d"),
        ("8", "Conv2d with groups 2, zeros padding"),
    ]  # fmt: skip
    fused, pairs = fuse_linear_1x1(nn.Sequential(nn.Conv2d(3, 8, 3), nn.Conv2d(8, 4, 1)))
    assert pairs == [("0", "1")] and unfused_1x1(fused) == []


@pytest.mark.parametrize(
    "name, why",
    [
        ("nin_fast", "each of the 3 1x1 convs follows a ReLU, not a conv"),
        ("lenet_fc", "each of the 2 1x1 convs follows a ReLU, not a conv"),
        ("vgg_gap", "the one 1x1 conv follows a ReLU, not a conv"),
    ],
)
def test_convert_says_why_no_pair_fused(built, name, why):
    _, conversion = for_inference(built[name])
    assert conversion.fused_text() == f"fused conv pairs: 0 ({why})"
    mixed = Conversion((1, 8, 8), 1, unfused=[("a", "ReLU"), ("b", "ReLU"), ("c", "MaxPool2d")])
    assert mixed.fused_text() == (
        "fused conv pairs: 0 (each of the 3 1x1 convs follows a ReLU (2) or a MaxPool2d (1), not "
        "a conv)"
    )


def test_fuse_pair_refuses_across_nonlinearity():
    model = nn.Sequential(
        OrderedDict(conv=nn.Conv2d(3, 4, 3), relu=nn.ReLU(), cccp=nn.Conv2d(4, 4, 1))
    )
    with pytest.raises(ValueError, match=r"'relu' \(ReLU\) between them is not linear"):
        fuse_pair(model, "conv", "cccp")
    model.relu = nn.BatchNorm2d(4)
    with pytest.raises(ValueError, match="run fold_batchnorm first"):
        fuse_pair(model, "conv", "cccp")
    model.relu = nn.Identity()
    x = torch.randn(1, 3, 5, 5)
    with torch.no_grad():
        assert close(fuse_pair(model, "conv", "cccp")(x), model(x))
    with pytest.raises(ValueError, match="1x1 Conv2d"):
        fuse_pair(nn.Sequential(nn.Conv2d(3, 4, 1), nn.Conv2d(4, 4, 3)), "0", "1")


# --- bad input ---------------------------------------------------------------------------------


def test_bad_input_names_the_layer():
    with pytest.raises(ValueError, match="in_features=10 but a flattened 2x2x2 map has 8"):
        fc_to_conv(nn.Linear(10, 3), (2, 2, 2))
    with pytest.raises(ValueError, match=r"kernel_size=\(3, 3\)"):
        conv1x1_to_linear(nn.Conv2d(3, 4, 3))
    no_flatten = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Linear(6, 2))
    no_flatten.default_input_size = (1, 8, 8)
    with pytest.raises(ValueError, match="'1' \\(Linear\\).*does not follow a Flatten"):
        convolutionalize(no_flatten)
    wrong = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten(), nn.Linear(100, 2))
    with pytest.raises(ValueError, match="'2' has in_features=100 but the Flatten before it"):
        convolutionalize(wrong, (1, 8, 8))
    odd = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten(), nn.BatchNorm1d(144), nn.Linear(144, 2))
    with pytest.raises(ValueError, match="'2' \\(BatchNorm1d\\) after a Flatten is not supported"):
        convolutionalize(odd, (1, 8, 8))
    with pytest.raises(ValueError, match="neither an nn.Sequential"):
        convolutionalize(GlobalAvgPool(), (1, 8, 8))


# --- CLI ---------------------------------------------------------------------------------------


@pytest.mark.slow
def test_cli_convert_and_load(tmp_path, capsys):
    model, _ = make_run_dir(tmp_path / "run")
    out = tmp_path / "conv.safetensors"
    assert main(["convert", str(tmp_path / "run"), "--out", str(out), "--batch-size", "4"]) == 0
    text = capsys.readouterr().out
    assert "folded batch norm: 7 pairs" in text and "images/s" in text and "x)" in text
    diff = float(text.split("max |converted - original| = ")[1].split()[0])
    assert diff <= 1e-5
    dense, config = load_converted(out)
    x = torch.randn(2, 1, 28, 28)
    with torch.no_grad():
        assert close(dense(x).flatten(1), model(x))
    assert config.model == "nin_fast" and config.classes[0] == "T-shirt/top"


@pytest.mark.slow
def test_cli_export_onnx(tmp_path, capsys):
    pytest.importorskip("onnxscript")
    make_run_dir(tmp_path / "run", "lenet_fc")
    out = tmp_path / "lenet.onnx"
    assert main(["export", str(tmp_path / "run"), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert out.is_file()
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        assert "check skipped" in text
    else:
        assert "outputs equal to 0.0001 on both sizes" in text and "1x1x36x31" in text


@pytest.mark.parametrize(
    "argv, message",
    [
        (["convert", "{tmp}/none", "--out", "{tmp}/x.safetensors"], "does not exist"),
        (["convert", "{tmp}/run", "--out", "{tmp}/run/config.json/x.safetensors"], "is a file"),
        (["export", "{tmp}/run", "--out", "{tmp}/run"], "is a folder"),
    ],
)
def test_cli_bad_input_is_one_sentence(tmp_path, capsys, argv, message):
    make_run_dir(tmp_path / "run")
    assert main([a.format(tmp=tmp_path) for a in argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("ninlab: error: ") and message in err
    assert err.endswith(".") and "\n" not in err and "Traceback" not in err


@pytest.mark.parametrize("verb, suffix", [("convert", "safetensors"), ("export", "onnx")])
def test_cli_batch_size_below_one_is_refused_by_the_parser(tmp_path, capsys, verb, suffix):
    make_run_dir(tmp_path / "run")
    argv = [verb, str(tmp_path / "run"), "--out", str(tmp_path / f"x.{suffix}")]
    with pytest.raises(SystemExit) as stop:
        main([*argv, "--batch-size", "0"])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert err.strip().endswith("argument --batch-size: must be at least 1 (got 0)")
    assert not (tmp_path / f"x.{suffix}").exists()


def test_cli_export_without_onnx_is_one_sentence(tmp_path, capsys, monkeypatch):
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name in ("onnx", "onnxscript") else find_spec(name, *a),
    )
    make_run_dir(tmp_path / "run")
    assert main(["export", str(tmp_path / "run"), "--out", str(tmp_path / "m.onnx")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ninlab: error: ONNX export needs the package(s) onnx, onnxscript, not")
    assert not (tmp_path / "m.onnx").exists()


@pytest.mark.slow
def test_convert_a_model_named_without_a_run(tmp_path, capsys):
    out = tmp_path / "lenet.safetensors"
    assert main(["convert", "--model", "lenet_fc", "--out", str(out), "--batch-size", "4"]) == 0
    printed = capsys.readouterr().out
    assert "model lenet_fc (its own weights), input 1x28x28" in printed
    assert float(printed.split("max |converted - original| = ")[1].split()[0]) < 1e-5
    dense, config = load_converted(out)  # rebuilt from its spec, with the converted weights
    saved = load_file(str(out))
    assert config is None and all(torch.equal(v, saved[k]) for k, v in dense.state_dict().items())
    refnets = Path(__file__).parents[2] / "examples" / "refnets.py"
    argv = ["convert", "--model", f"{refnets}:vgg16", "--input", "3x224x224", "--out", str(out)]
    assert main(argv) == 2
    assert "VGG is neither an nn.Sequential" in capsys.readouterr().err
    assert main(["convert", "--out", str(out)]) == 2
    assert "give a RUN_DIR or --model MODEL" in capsys.readouterr().err
