"""ninlab's counts checked against PyTorch's own: MACs against FlopCounterMode layer by layer, and
receptive fields against the input pixels whose gradient is non-zero for one output unit, on small
plain-torch twins of the reference shapes (residual, inception, squeeze-excitation, attention)."""

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from ninlab.analysis import receptive_field, summary
from ninlab.analysis.macs import counted
from ninlab.cli import main
from ninlab.models import load_model

REFNETS = Path(__file__).parents[2] / "examples" / "refnets.py"


def conv_bn(cin, cout, k, stride=1):
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride, k // 2, bias=False), nn.BatchNorm2d(cout))


class Residual(nn.Module):
    """ResNet's basic block with a projection shortcut (stride 2)."""

    def __init__(self, cin=4, cout=8):
        super().__init__()
        self.conv1, self.conv2 = conv_bn(cin, cout, 3, 2), conv_bn(cout, cout, 3)
        self.shortcut = conv_bn(cin, cout, 1, 2)

    def forward(self, x):
        return F.relu(self.conv2(F.relu(self.conv1(x))) + self.shortcut(x))


class Inception(nn.Module):
    """Four branches concatenated (average pooling in the pool branch: its gradient is dense)."""

    def __init__(self, c=4):
        super().__init__()
        self.b1 = nn.Conv2d(c, 4, 1)
        self.b2 = nn.Sequential(nn.Conv2d(c, 4, 1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1))
        self.b3 = nn.Sequential(nn.Conv2d(c, 2, 1), nn.ReLU(), nn.Conv2d(2, 4, 5, padding=2))
        self.b4 = nn.Sequential(nn.AvgPool2d(3, 1, 1), nn.Conv2d(c, 4, 1))

    def forward(self, x):
        return torch.cat([self.b1(x), self.b2(x), self.b3(x), self.b4(x)], 1)


class SqueezeExcite(nn.Module):
    """A 3x3 conv whose channels are gated by a function of the whole map."""

    def __init__(self, c=8):
        super().__init__()
        self.conv = nn.Conv2d(4, c, 3, padding=1)
        self.fc1, self.fc2 = nn.Linear(c, 2), nn.Linear(2, c)

    def forward(self, x):
        y = self.conv(x)
        gate = torch.sigmoid(self.fc2(F.relu(self.fc1(y.mean((2, 3))))))
        return y * gate[:, :, None, None]


class Attention(nn.Module):
    """Self-attention over the pixels, written with matmul, after a 3x3 conv."""

    def __init__(self, c=8):
        super().__init__()
        self.stem = nn.Conv2d(4, c, 3, padding=1)
        self.q, self.k, self.v = (nn.Conv2d(c, c, 1) for _ in range(3))

    def forward(self, x):
        x = self.stem(x)
        n, c, h, w = x.shape
        q, k, v = (f(x).flatten(2) for f in (self.q, self.k, self.v))  # N x C x HW
        a = torch.softmax(q.transpose(1, 2) @ k / math.sqrt(c), dim=-1)  # N x HW x HW
        return x + (v @ a.transpose(1, 2)).view(n, c, h, w)


TWINS = [Residual, Inception, SqueezeExcite, Attention]


def _positive(model):
    """Positive weights and inputs: every ReLU passes, so a zero gradient means "not seen"."""
    torch.manual_seed(0)
    for p in model.parameters():
        p.data.uniform_(0.01, 0.1)
    return model.eval()


@pytest.mark.parametrize("twin", TWINS)
def test_macs_equal_flop_counter_mode_layer_by_layer(twin):
    model = twin().eval()
    s = summary(model, (4, 12, 12))
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.zeros(1, 4, 12, 12))
    counts = {k: sum(v.values()) for k, v in counter.get_flop_counts().items()}
    root = type(model).__name__
    assert s.flops == counts["Global"] and not s.unknown
    for name, _ in model.named_modules():
        if name:
            ours = sum(r.macs for r in s.layers if r.name.split("#")[0].startswith(name))
            assert 2 * ours == counts.get(f"{root}.{name}", 0), name


@pytest.mark.slow
@pytest.mark.parametrize("twin", TWINS)
def test_fields_equal_the_pixels_a_unit_depends_on(twin):
    model, size = _positive(twin()), (4, 12, 12)
    s = summary(model, size)
    checked = 0
    for name, rows in [("", [len(s.layers) - 1]), *s.outputs.items()]:
        row = s.layers[rows[-1]]
        if len(row.output_shape) != 3:
            continue
        module = model.get_submodule(name) if name else model
        got = {}
        hook = module.register_forward_hook(lambda m, a, out, got=got: got.setdefault("y", out))
        x = (torch.rand(1, *size) + 0.1).requires_grad_(True)
        model(x)
        hook.remove()
        h, w = got["y"].shape[2:]
        for i, j in ((0, 0), (h // 2, w // 2), (h - 1, w - 1)):
            x.grad = None
            got["y"][0, :, i, j].sum().backward(retain_graph=True)  # all channels: the union
            seen = x.grad[0].abs().sum(0) > 0
            top, left, bottom, right = row.field.box(i, j)
            box = torch.zeros_like(seen)
            box[max(top, 0) : bottom, max(left, 0) : right] = True
            assert torch.equal(seen, box), (name, i, j, row.field)
            checked += 1
    assert checked >= 3


def test_fields_that_are_not_one_window_say_why():
    model = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1, padding_mode="circular"), nn.ReLU())
    s = summary(model, (1, 8, 8))
    assert s.layer("0").note == "circular padding wraps the field around the image"
    assert s.layer("1").field is None and s.layer("1").note == "field lost at 0"

    class Branches(nn.Module):
        def __init__(self, b: nn.Module):
            super().__init__()
            self.a, self.b = nn.Conv2d(1, 1, 3, padding=1), b

        def forward(self, x):
            return self.a(x) + self.b(x)

    # jump 1 against 4 (a 1x1 conv with stride 4 and padding 24 keeps the 16x16 size)
    add = summary(Branches(nn.Conv2d(1, 1, 1, 4, padding=24)), (1, 16, 16)).layer("add")
    assert add.note == "branches with different jumps (1 and 4 px): no single window"
    # centre 0 against 0.5 ("same" padding of an even kernel pads one side only)
    add = summary(Branches(nn.Conv2d(1, 1, 2, padding="same")), (1, 16, 16)).layer("add")
    assert (
        add.field is None
        and add.note == "branches misaligned: their centres differ by (0.5, 0.5) px"
    )
    up = summary(nn.Sequential(nn.Conv2d(1, 1, 3), nn.Upsample(scale_factor=2)), (1, 8, 8))
    assert up.layer("1").note.startswith("interpolation")
    table = up.table()
    assert " ? " not in table and "interpolation" in table


def test_reference_resnet50_from_a_file():
    resnet50 = load_model(f"{REFNETS}:resnet50")
    s = summary(resnet50, (3, 224, 224))
    assert (s.params, s.macs, s.unknown) == (25_557_032, 4_089_184_256, [])
    layer4 = receptive_field(resnet50, "layer4", (3, 224, 224))
    assert (layer4.size[0], layer4.jump[0], -layer4.start[0]) == (427, 32, 213)
    assert receptive_field(resnet50, "layer4.2.relu", (3, 224, 224)) == layer4  # its last call
    assert receptive_field(resnet50, "layer4.2.relu#1", (3, 224, 224)).size == (363, 363)
    assert s.layer("layer4.2.add").inputs == ["layer4.2.bn3", "layer4.1.relu#3"]


def test_cli_summary_of_a_file_and_of_attention(capsys):
    assert main(["summary", f"{REFNETS}:resnet50", "--input", "3x224x224"]) == 0
    out = capsys.readouterr().out
    assert "25,557,032" in out and "4,089,184,256" in out
    assert main(["summary", f"{REFNETS}:self_attention", "--kwargs", '{"channels": 16}',
                 "--input", "16x7x7", "--json"]) == 0  # fmt: skip
    d = __import__("json").loads(capsys.readouterr().out)
    model = load_model(f"{REFNETS}:self_attention", {"channels": 16})
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.zeros(1, 16, 7, 7))
    assert d["totals"]["macs_are_lower_bound"] is False
    assert d["totals"]["macs"] == counter.get_total_flops() // 2


@pytest.mark.parametrize(
    "spec, message",
    [
        ("nope", "unknown model 'nope'; name a name from `ninlab models`"),
        ("no_such_pkg.nets:vgg", "no module named 'no_such_pkg'"),
        ("missing.py:net", "missing.py is not a file"),
        (f"{REFNETS}:vgg17", "has no 'vgg17'; it defines"),
        (f"{REFNETS}:conv1x1", "conv1x1() raised TypeError"),
        ("{tmp}/nets.py:three", "nets.py:three() returned an int, not an nn.Module."),
        ("{tmp}/nets.py:broken", "raised ZeroDivisionError: division by zero"),
    ],
)
def test_a_model_that_cannot_be_loaded_is_one_sentence(spec, message, tmp_path, capsys):
    (tmp_path / "nets.py").write_text("def three():\n    return 3\n\n\ndef broken():\n    1 / 0\n")
    assert main(["summary", spec.format(tmp=tmp_path), "--input", "3x32x32"]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_multi_head_attention_is_counted_through_its_composite_path():
    """In eval mode without gradients nn.MultiheadAttention runs one fused kernel that
    FlopCounterMode has no formula for; ninlab counts the linear and bmm path it stands for."""

    class Tokens(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Conv2d(3, 8, 3)
            self.attn = nn.MultiheadAttention(8, 2, batch_first=True)

        def forward(self, x):
            t = self.stem(x).flatten(2).transpose(1, 2)  # N x HW x C
            return self.attn(t, t, t)[0]

    model = Tokens()
    s = summary(model, (3, 10, 10))
    with FlopCounterMode(display=False) as counter:  # training mode: the composite path
        model(torch.zeros(1, 3, 10, 10))
    assert not s.unknown and s.flops == counter.get_total_flops()
    assert s.layer("attn").global_field and s.layer("attn").field.size == (10, 10)


def test_every_product_flop_counter_mode_knows_is_counted():
    class Products(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.randn(6, 4, 3, 3))
            self.up = nn.ConvTranspose2d(6, 4, 3, stride=2)
            self.bias = nn.Parameter(torch.zeros(1, 17, 17))

        def forward(self, x):
            y = F.conv2d(x, self.w, padding=1)  # 6 x 8 x 8: 6*8*8 * 4*9 = 13,824 MACs
            y = self.up(y)  # 4 x 17 x 17
            t = y.flatten(2)  # 1 x 4 x 289
            s = torch.baddbmm(self.bias, t.transpose(1, 2)[:, :17], t[:, :, :17])  # 17*4*17
            q = t.transpose(1, 2)[:, None].contiguous()  # 1 x 1 x 289 x 4: the CPU flash kernel
            a = F.scaled_dot_product_attention(q, q, q)  # 2 * 289*289*4
            return a.sum() + s.sum() + torch.einsum("bcl,bdl->bcd", t, t).sum()  # 4*4*289

    model = Products().eval()
    s = summary(model, (4, 8, 8))
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model.up(torch.zeros(1, 6, 8, 8))
    rows = {r.type: r.macs for r in s.layers}
    assert rows["conv2d"] == 6 * 8 * 8 * 4 * 9
    assert rows["ConvTranspose2d"] == counter.get_total_flops() // 2
    assert rows["baddbmm"] == 17 * 4 * 17
    assert rows["scaled_dot_product_attention"] == 2 * 289 * 289 * 4
    assert rows["einsum"] == 4 * 4 * 289
    assert not s.unknown
    q = torch.randn(1, 2, 50, 8)
    with torch.no_grad():  # the kernel FlopCounterMode has no formula for, counted as CUDA's
        assert counted(F.scaled_dot_product_attention, q, q, q)[1].macs == 2 * 2 * 50 * 50 * 8


def test_a_model_file_may_use_dataclasses_and_its_own_imports(tmp_path):
    (tmp_path / "widths.py").write_text("WIDTH = 6\n")
    (tmp_path / "net.py").write_text(
        "from __future__ import annotations\n\nfrom dataclasses import dataclass\n\n"
        "from torch import nn\n\n"
        "from widths import WIDTH\n\n\n"
        "@dataclass\nclass Config:\n    width: int = WIDTH\n\n\n"
        "def net(width=None):\n    return nn.Conv2d(3, width or Config().width, 3)\n"
    )
    assert summary(load_model(f"{tmp_path}/net.py:net"), (3, 8, 8)).params == 6 * 27 + 6
    assert summary(load_model(f"{tmp_path}/net.py:net", {"width": 2}), (3, 8, 8)).params == 56
