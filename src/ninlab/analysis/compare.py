"""With-versus-without tables: what 1x1 convolutions save, computed from real modules.

Each table builds the modules (ninlab's Inception, BasicBlock, Bottleneck, NiN and AlexNet
models, torch layers) and reads weights and MACs off them with `summary`, so no number here is
typed in. Weights are the entries of conv and linear weight tensors only (no biases, no batch
norm), as in the textbook counts; MACs follow the convention in `ninlab.analysis.summary`.
Large layers (VGG-16's first FC layer, AlexNet) are built on the "meta" device: real modules
with real shapes, but no memory and no random initialisation.

Sources of the designs: Szegedy et al. 2014 (GoogLeNet, table 1, inception 3a); He et al. 2015
(ResNet, fig. 5); Simonyan & Zisserman 2014 (VGG-16); Lin et al. 2013 (NiN).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from ninlab.analysis.summary import summary
from ninlab.models import BasicBlock, Bottleneck, Inception, create_model
from ninlab.models.layers import GlobalAvgPool, conv1x1
from ninlab.terminal import WIDTH, table, wrap

WEIGHTS_ONLY = "weights: conv and linear weight entries only (no biases, no batch norm)"


@dataclass
class Table:
    """A titled table of numbers; `text()` for people, `to_dict()` for --json."""

    title: str
    header: tuple[str, ...]
    rows: list[tuple]
    notes: list[str] = field(default_factory=list)

    def text(self, width: int | None = WIDTH) -> str:
        """The table in `width` columns (None: a line per row, however long): the names of the
        first column and long headers wrap, the numbers never do."""
        cells = [tuple(_cell(v) for v in row) for row in self.rows]
        right = range(1, len(self.header))
        lines = table(self.header, cells, right, width, wrap_column=0, rule=True)
        title = wrap(self.title, width)
        notes = [line for n in self.notes for line in wrap(n, width, "* ", "  ")]
        return "\n".join([*title, "=" * max(map(len, title)), *lines, *notes])

    def to_dict(self) -> dict:
        return {
            "title": self.title,
            "rows": [dict(zip(self.header, row, strict=False)) for row in self.rows],
            "notes": self.notes,
        }


def _cell(v) -> str:
    if isinstance(v, bool) or v is None:
        return "-" if v is None else str(v)
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        return f"{v:.2f}x"
    return str(v)


def weights(module: nn.Module) -> int:
    """Entries of the weight tensors of every Conv2d and Linear in the module."""
    return sum(m.weight.numel() for m in module.modules() if isinstance(m, nn.Conv2d | nn.Linear))


def cost(module: nn.Module, input_size: tuple[int, int, int]) -> dict:
    """Weights, all parameters, MACs and output shape of a module on one input of (C, H, W)."""
    s = summary(module, input_size)
    return {
        "weights": weights(module),
        "params": s.params,
        "macs": None if s.unknown else s.macs,
        "output": "x".join(map(str, s.layers[-1].output_shape)),
    }


def inception_3a() -> Table:
    """GoogLeNet inception (3a) on 192x28x28 with and without 1x1 reductions / pool projection."""
    size = (192, 28, 28)
    results = {}
    for proj in (None, 32):
        for reduce in (False, True):
            block = Inception(192, 64, 96, 128, 16, 32, pool_proj=proj, reduce=reduce)
            results[proj, reduce] = cost(block, size)
    rows = []
    for proj in (None, 32):
        without, with_ = results[proj, False], results[proj, True]
        pool = "pool projection 1x1 32" if proj else "no pool projection"
        rows.append((f"without 1x1 reductions, {pool}", *_cols(without), None, None))
        rows.append(
            (
                f"with 1x1 reductions, {pool}",
                *_cols(with_),
                without["weights"] / with_["weights"],
                without["macs"] / with_["macs"],
            )
        )
    return Table(
        "Inception (3a) on a 192x28x28 input: 1x1 64, 3x3 128 (reduce 96), 5x5 32 (reduce 16)",
        ("design", "weights", "MACs", "output", "weights saved", "MACs saved"),
        rows,
        [WEIGHTS_ONLY, "saved = without / with, for the same pool branch"],
    )


def _cols(c: dict) -> tuple:
    return c["weights"], c["macs"], c["output"]


def resnet_blocks() -> Table:
    """Two 3x3 convs (basic block) at 64 and 256 channels versus the 256-d bottleneck, 56x56."""
    designs = [
        ("basic block: two 3x3 convs, 64 channels", BasicBlock(64, 64), 64),
        ("basic block: two 3x3 convs, 256 channels", BasicBlock(256, 256), 256),
        ("bottleneck: 1x1 256->64, 3x3 64, 1x1 64->256", Bottleneck(256, 64), 256),
    ]
    rows = [(name, *_cols(cost(block, (c, 56, 56)))) for name, block, c in designs]
    basic64, basic256 = rows[0][1], rows[1][1]
    rows = [(*r, r[1] / basic64, basic256 / r[1]) for r in rows]
    return Table(
        "ResNet blocks on a 56x56 map",
        ("design", "weights", "MACs", "output", "/ 64-ch basic", "256-ch basic /"),
        rows,
        [WEIGHTS_ONLY, "ratios of weights (MACs scale the same at one map size)"],
    )


def fc_vs_gap_heads(num_classes: int = 10) -> Table:
    """FC heads (VGG-16's first FC layer, AlexNet's head) versus 1x1 class convs + GAP."""
    with torch.device("meta"):  # shapes only: VGG's layer alone would be 411 MB of float32
        vgg_fc6 = nn.Sequential(nn.Flatten(), nn.Linear(512 * 7 * 7, 4096))
        alexnet = create_model("alexnet_fc", num_classes=num_classes)
        nin = create_model("nin_seed", num_classes=num_classes)
    alex_map = summary(alexnet).layer("features.pool5").output_shape  # 256 x 5 x 5 at 224 px
    nin_map = summary(nin).layer("features.pool3").output_shape  # 384 x 5 x 5
    gap_1x1 = nn.Sequential(conv1x1(alex_map[0], num_classes, bias=False), GlobalAvgPool())
    designs = [
        ("VGG-16 fc6: Linear 25088->4096 on 512x7x7", vgg_fc6, (512, 7, 7)),
        ("alexnet_fc head: Linear 6400-4096-4096-10", alexnet.get_classifier(), alex_map),
        (f"1x1 conv 256->{num_classes} + GAP on AlexNet's map", gap_1x1, alex_map),
        ("nin_seed head: 3x3 conv, 1x1 conv, GAP", nin.get_classifier(), nin_map),
    ]
    rows = []
    for name, module, size in designs:
        c = cost(module, size)
        rows.append((name, "x".join(map(str, size)), c["weights"], c["macs"], c["output"]))
    return Table(
        "Fully-connected heads versus 1x1 class convolutions + global average pooling",
        ("head", "input", "weights", "MACs", "output"),
        rows,
        [
            WEIGHTS_ONLY,
            f"{num_classes} classes; AlexNet is ninlab's alexnet_fc (Dive into Deep "
            "Learning 8.1: 5x5 map at 224 px)",
        ],
    )


def nin_vs_alexnet(num_classes: int = 10) -> Table:
    """Whole networks at 224 px: nin_seed (GAP head) versus alexnet_fc (FC head)."""
    rows = []
    with torch.device("meta"):
        models = {n: create_model(n, num_classes=num_classes) for n in ("nin_seed", "alexnet_fc")}
    costs = {n: summary(m) for n, m in models.items()}
    for name, s in costs.items():
        rows.append((name, "x".join(map(str, s.input_size)), s.params, s.macs, s.flops))
    nin, alex = costs["nin_seed"], costs["alexnet_fc"]
    rows.append(("alexnet_fc / nin_seed", "", alex.params / nin.params, alex.macs / nin.macs, None))
    return Table(
        "NiN versus an AlexNet-style network at 224 px (all parameters, biases included)",
        ("model", "input", "parameters", "MACs", "FLOPs"),
        rows,
        [
            "the parameter ratio is far larger than the MAC ratio: convolutions, not FC layers, "
            "do most of the arithmetic"
        ],
    )


def conv1x1_vs_fc() -> Table:
    """A 1x1 conv on 32x6x6 versus an FC layer on the flattened 1152 values (same output size)."""
    g = torch.Generator().manual_seed(0)
    conv = conv1x1(32, 1, bias=False)
    fc = nn.Linear(32 * 6 * 6, 6 * 6, bias=False)
    # The FC layer that equals the conv: the conv's 32 weights at each output's own pixel, 0 else.
    equal_fc = nn.Linear(32 * 6 * 6, 6 * 6, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.randn(conv.weight.shape, generator=g))
        w = torch.zeros(36, 32, 36)  # output pixel x channel x input pixel
        w[torch.arange(36), :, torch.arange(36)] = conv.weight.view(1, 32)
        equal_fc.weight.copy_(w.reshape(36, 32 * 36))
        x = torch.randn(1, 32, 6, 6, generator=g)
        diff = (conv(x).flatten(1) - equal_fc(x.flatten(1))).abs().max().item()
    rows = [
        ("1x1 conv, 1 filter of 1x1x32", *_cols(cost(conv, (32, 6, 6))), 32),
        (
            "Linear 1152->36 (flattened input)",
            *_cols(cost(nn.Sequential(nn.Flatten(), fc), (32, 6, 6))),
            32 * 6 * 6,
        ),
    ]
    nonzero = int((equal_fc.weight != 0).sum())
    return Table(
        "A 1x1 convolution versus a fully-connected layer on a 32x6x6 input",
        ("layer", "weights", "MACs", "output", "inputs per output"),
        rows,
        [
            WEIGHTS_ONLY,
            f"the 1x1 conv is the Linear 1152->36 whose weight matrix has {nonzero:,} non-zero "
            f"entries of {equal_fc.weight.numel():,} (each output sees its own pixel's 32 "
            f"channels, the same 32 weights everywhere); max |difference| {diff:.1e}",
        ],
    )


def compare() -> list[Table]:
    """Every with-versus-without table of `ninlab compare`."""
    return [inception_3a(), resnet_blocks(), fc_vs_gap_heads(), nin_vs_alexnet(), conv1x1_vs_fc()]
