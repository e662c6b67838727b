"""Summary, MACs, receptive fields and the compare tables: numbers a person can check by hand."""

import json

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from ninlab.analysis import Field, parse_input_size, receptive_field, summary, working_sizes
from ninlab.analysis.compare import (
    conv1x1_vs_fc,
    fc_vs_gap_heads,
    inception_3a,
    nin_vs_alexnet,
    resnet_blocks,
)
from ninlab.analysis.relu_zeros import relu_sparsity
from ninlab.cli import main
from ninlab.errors import NinlabError
from ninlab.models import BasicBlock, Bottleneck, Inception, create_model, list_models


def chain(*layers):
    return nn.Sequential(*layers)


def test_three_3x3_convs_field_7():
    s = summary(chain(*(nn.Conv2d(1, 1, 3) for _ in range(3))), (1, 16, 16))
    assert [r.field.size for r in s.layers] == [(3, 3), (5, 5), (7, 7)]
    assert s.layers[-1].field == Field(size=(7, 7), jump=(1, 1), start=(0, 0))
    assert s.layers[-1].output_shape == (1, 10, 10)


def test_stride_2_pool_between_convs():
    # conv3 (r 3, j 1) -> maxpool 2/2 (r 3+1=4, j 2) -> conv3 pad 1 (r 4+2*2=8, j 2, start -2)
    s = summary(
        chain(nn.Conv2d(1, 1, 3), nn.MaxPool2d(2), nn.Conv2d(1, 1, 3, padding=1)), (1, 16, 16)
    )
    assert [r.field.size[0] for r in s.layers] == [3, 4, 8]
    assert [r.field.jump[0] for r in s.layers] == [1, 2, 2]
    assert s.layers[-1].field.start == (-2, -2)
    assert s.layers[-1].field.box(1, 0) == (0, -2, 8, 6)


def test_conv_params_and_macs_by_hand():
    # 3x3 conv 4 -> 8 on 10x10, padding 1: 8*4*9 + 8 = 296 parameters; 8*10*10 * 4*9 MACs
    s = summary(nn.Conv2d(4, 8, 3, padding=1), (4, 10, 10))
    assert (s.params, s.macs, s.flops) == (296, 28_800, 57_600)
    assert s.layers[0].activation_bytes == 8 * 10 * 10 * 4


@pytest.mark.slow
def test_inception_block_field_is_union_of_branches():
    s = summary(Inception(192, 64, 96, 128, 16, 32, pool_proj=32), (192, 28, 28))
    cat = s.layers[-1]
    assert cat.type == "cat" and cat.output_shape == (256, 28, 28)
    # branches: 1x1 (1), 1x1+3x3 (3), 1x1+5x5 (5), pool 3x3 + 1x1 (3): the union is the 5x5's
    assert cat.field == Field(size=(5, 5), jump=(1, 1), start=(-2, -2))
    assert s.weight_macs() == 163_328 * 28 * 28


def test_residual_block_field_and_downsample():
    s = summary(BasicBlock(64, 128, stride=2), (64, 56, 56))
    add = next(r for r in s.layers if r.type == "add")
    # main path: 3x3/2 pad 1 (r 3, j 2, start -1), 3x3 pad 1 (r 7, j 2, start -3); shortcut 1x1/2
    assert add.field == Field(size=(7, 7), jump=(2, 2), start=(-3, -3))
    assert add.output_shape == (128, 28, 28)
    b = summary(Bottleneck(256, 64), (256, 56, 56))
    assert b.layers[-1].field.size == (3, 3)


@pytest.mark.parametrize("name", list_models())
def test_flops_equal_flop_counter_mode(name):
    model = create_model(name).eval()
    s = summary(model)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(torch.zeros(1, *model.default_input_size))
    assert counter.get_total_flops() == 2 * s.weight_macs() == s.flops
    assert s.params == sum(p.numel() for p in model.parameters()) == sum(r.params for r in s.layers)
    assert not s.unknown


@pytest.mark.parametrize("name", list_models())
def test_shapes_from_hyperparameters_match_a_real_run(name):
    model = create_model(name)
    fast, real = summary(model), summary(model, real=True)
    assert [r.output_shape for r in fast.layers] == [r.output_shape for r in real.layers]
    assert fast.to_dict() == real.to_dict()


def test_gap_field_covers_the_whole_input():
    s = summary(create_model("nin_cifar"))
    last = s.layers[-1]
    assert last.global_field and last.output_shape == (10,)
    top, left, bottom, right = last.field.box(0, 0)
    assert top <= 0 and left <= 0 and bottom >= 32 and right >= 32


def test_receptive_field_of_named_layer():
    model = create_model("nin_d2l")
    f = receptive_field(model, "features.block1.conv")
    assert f == Field(size=(11, 11), jump=(4, 4), start=(0, 0))
    assert receptive_field(model, "features.block1.cccp2") == f  # 1x1 convs keep the field


def test_an_op_nobody_costs_is_named_and_the_total_is_a_lower_bound():
    class Spectral(nn.Module):  # an FFT: multiply-adds that FlopCounterMode has no formula for
        def forward(self, x):
            return torch.fft.ifft2(torch.fft.fft2(x)).real

    s = summary(chain(nn.Conv2d(1, 2, 3), Spectral(), nn.Conv2d(2, 2, 3)), (1, 8, 8))
    assert s.unknown == ["1.fft_fft2", "1.fft_ifft2"]
    assert s.layer("1.fft_fft2").missing == ["aten._fft_c2c"]
    assert s.macs == 2 * 36 * 9 + 2 * 16 * 18  # the two convs, counted
    assert s.layer("2").field is None and "field lost at" in s.layer("2").note
    assert "+" in s.table() and s.to_dict()["totals"]["macs_are_lower_bound"]


def test_ops_that_cost_nothing_are_known_to_cost_nothing():
    class Free(nn.Module):
        def __init__(self):
            super().__init__()
            self.norm = nn.GroupNorm(2, 4)

        def forward(self, x):
            y = self.norm(x).transpose(2, 3).transpose(2, 3) / 2
            return y.softmax(1)[:, None].squeeze(1).roll(1, dims=-1)

    s = summary(Free(), (4, 6, 6))
    assert s.macs == 0 and not s.unknown and not s.to_dict()["totals"]["macs_are_lower_bound"]
    roll = s.layers[-1]  # roll moves pixels around the border: no single window, and it says so
    assert roll.field is None and roll.note == "ninlab does not know how roll moves pixels"


def test_too_small_input_names_smallest_size():
    with pytest.raises(NinlabError, match="smallest square input that works is 1x67x67"):
        summary(create_model("nin_d2l"), (1, 32, 32))
    assert working_sizes(create_model("lenet_fc"), 1, 64) == (28, 31)
    with pytest.raises(NinlabError, match="from 1x193x193 to 1x224x224"):
        summary(create_model("alexnet_fc"), (1, 256, 256))


def test_a_layer_norm_over_the_map_fixes_the_input_size():
    model = chain(nn.Conv2d(1, 4, 3), nn.LayerNorm([4, 26, 26]), nn.AdaptiveAvgPool2d(1))
    assert working_sizes(model, 1, 64) == (28, 28)  # the norm runs: its shape is checked


def test_parse_input_size():
    assert parse_input_size("1x224x224", 3) == (1, 224, 224)
    assert parse_input_size("96", 3) == (3, 96, 96)
    assert parse_input_size("32X48", 1) == (1, 32, 48)
    for bad in ("", "1x2x", "a", "0", "1x2x3x4"):
        with pytest.raises(NinlabError, match="is not a size"):
            parse_input_size(bad, 1)


def test_cli_summary(capsys):
    assert main(["summary", "nin_d2l"]) == 0
    out = capsys.readouterr().out
    assert "features.block1.conv" in out and "762,297,352" in out and "1,992,166" in out
    assert main(["summary", "nin_cifar", "--input", "3x64x64", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["input_size"] == [3, 64, 64] and d["layers"][0]["output_shape"] == [192, 64, 64]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["summary", "nin_d2l", "--input", "1x32x32"], "smallest square input that works is"),
        (["summary", "nin_d2l", "--input", "1by2"], "is not a size"),
        (["summary", "nin_d2l", "--input", "3x224x224"], "cannot run on a 3x224x224 input"),
        (["summary", "no_such_model"], "unknown model"),
    ],
)
def test_cli_summary_bad_input(capsys, argv, message):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


# ---- every number the issue quotes ----


def test_inception_numbers():
    rows = {r[0]: r for r in inception_3a().rows}
    without = rows["without 1x1 reductions, no pool projection"]
    with_ = rows["with 1x1 reductions, no pool projection"]
    assert (without[1], with_[1]) == (387_072, 157_184)
    assert (without[2], with_[2]) == (387_072 * 784, 157_184 * 784)  # all stride 1, 28x28
    assert with_[4] == pytest.approx(387_072 / 157_184)
    assert rows["without 1x1 reductions, pool projection 1x1 32"][1] == 387_072 + 192 * 32
    assert rows["with 1x1 reductions, pool projection 1x1 32"][1] == 157_184 + 192 * 32


def test_resnet_numbers():
    rows = resnet_blocks().rows
    assert [r[1] for r in rows] == [73_728, 1_179_648, 69_632]
    assert [r[2] for r in rows] == [w * 56 * 56 for w in (73_728, 1_179_648, 69_632)]


def test_head_numbers():
    rows = fc_vs_gap_heads().rows
    assert rows[0][2] == rows[0][3] == 102_760_448  # VGG-16 fc6
    assert rows[1][2] == 6400 * 4096 + 4096 * 4096 + 4096 * 10  # alexnet_fc head
    assert rows[2][2] == 256 * 10 and rows[2][3] == 256 * 10 * 25
    assert rows[3][2] == 384 * 10 * 9 + 10 * 10  # nin_seed: 3x3 conv to classes, 1x1 conv
    nin, alex, ratio = nin_vs_alexnet().rows
    assert (nin[2], alex[2]) == (1_769_112, 46_764_746)
    assert nin[3] < alex[3] and ratio[2] > 20 > 2 > ratio[3] > 1


def test_1x1_vs_fc_numbers():
    conv, fc = conv1x1_vs_fc().rows
    assert conv[1:4] == (32, 36 * 32, "1x6x6") and fc[1:4] == (41_472, 41_472, "36")


def test_cli_compare(capsys):
    assert main(["compare"]) == 0
    out = capsys.readouterr().out
    for number in ("387,072", "157,184", "73,728", "1,179,648", "69,632", "102,760,448"):
        assert number in out
    assert "no biases" in out
    assert main(["compare", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 5


def test_relu_sparsity_counts_exact_zeros():
    model = chain(nn.Conv2d(1, 2, 1, bias=False), nn.ReLU(), nn.Flatten(), nn.ReLU())
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([1.0, -1.0]).view(2, 1, 1, 1))
    x = torch.tensor([1.0, -2.0, 3.0, 0.0]).view(1, 1, 2, 2)
    # channel 0: [1, 0, 3, 0], channel 1: [0, 2, 0, 0] -> 5 zeros of 8, unchanged by the 2nd ReLU
    assert relu_sparsity(model, x) == [("1", 5 / 8), ("3", 5 / 8)]
