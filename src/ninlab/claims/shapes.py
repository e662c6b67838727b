"""Claims 1-20 of the ledger: arithmetic, parameter counts and architecture, each checked by
running real modules every time (the verdict words are in `ninlab.claims.verdicts`; claims
21-25, about training, read run directories in `ninlab.claims`)."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ninlab.analysis import compare as cmp
from ninlab.analysis.summary import summary, working_sizes
from ninlab.claims.verdicts import DIFFERS, FAILS, HOLDS, Claim
from ninlab.models import NiNBlock, create_model
from ninlab.models.layers import conv1x1


def _g() -> torch.Generator:
    return torch.Generator().manual_seed(0)


def _max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a - b).abs().max().item()


def _shape(t: torch.Tensor) -> str:
    """(1, C, H, W) -> 'HxWxC', the notation the statements use."""
    _, c, h, w = t.shape
    return f"{h}x{w}x{c}"


@torch.no_grad()
def claim_1() -> Claim:
    conv = conv1x1(1, 1, bias=False)
    conv.weight.fill_(2.0)
    x = torch.rand(1, 1, 5, 5, generator=_g())
    ok = torch.equal(conv(x), 2 * x)
    return Claim(
        1,
        "a 1x1 conv with weight 2 on a one-channel image doubles it",
        "output = 2 x image",
        f"conv(x) == 2x exactly: {ok}",
        HOLDS if ok else FAILS,
    )


@torch.no_grad()
def claim_2() -> Claim:
    results = []
    for (h, c), filters in (((200, 50), 20), ((448, 100), 20)):
        y = conv1x1(c, filters)(torch.zeros(1, c, h, h))
        results.append(f"{h}x{h}x{c} -> {_shape(y)}")
    ok = results == ["200x200x50 -> 200x200x20", "448x448x100 -> 448x448x20"]
    return Claim(
        2,
        "a 1x1 conv keeps H and W; the filter count sets the channels",
        "200x200x50 -> 200x200x20; 448x448x100 -> 448x448x20",
        "; ".join(results),
        HOLDS if ok else FAILS,
    )


@torch.no_grad()
def claim_3() -> Claim:
    a, b = conv1x1(3, 6), conv1x1(6, 2)
    x = torch.zeros(1, 3, 4, 4)
    y1 = a(x)
    y2 = b(y1)
    got = (
        f"4x4x3 -> {_shape(y1)} -> {_shape(y2)}; filters {tuple(a.weight.shape[1:])} x6, "
        f"{tuple(b.weight.shape[1:])} x2"
    )
    ok = (_shape(y1), _shape(y2)) == ("4x4x6", "4x4x2")
    return Claim(
        3,
        "4x4x3 -> six 1x1x3 filters -> two 1x1x6 filters",
        "4x4x3 -> 4x4x6 -> 4x4x2",
        got,
        HOLDS if ok else FAILS,
    )


@torch.no_grad()
def claim_4() -> Claim:
    conv = conv1x1(16, 8, bias=False)
    x = torch.randn(1, 16, 5, 7, generator=_g())
    pixels = x[0].flatten(1).T  # (H*W) x C_in
    matmul = pixels @ conv.weight.view(8, 16).T  # (H*W) x C_out
    diff = _max_diff(conv(x)[0].flatten(1).T, matmul)
    return Claim(
        4,
        "a 1x1 conv is an FC layer applied to each pixel with shared weights",
        "(H*W x C_in) @ (C_in x C_out) = output",
        f"max |conv - matmul| = {diff:.1e} on a 5x7x16 input",
        HOLDS if diff < 1e-5 else FAILS,
    )


@torch.no_grad()
def claim_5() -> Claim:
    conv = conv1x1(32, 1, bias=False)
    x = torch.randn(1, 32, 6, 6, generator=_g())
    y = F.relu(conv(x))
    dots = F.relu(torch.einsum("chw,c->hw", x[0], conv.weight.view(32)))
    s = summary(nn.Sequential(conv, nn.ReLU()), (32, 6, 6))
    per_dot = s.macs // y.numel()
    diff = _max_diff(y[0, 0], dots)
    ok = y.numel() == 36 and per_dot == 32 and diff < 1e-5
    return Claim(
        5,
        "one 1x1x32 filter on 6x6x32 computes 36 dot products of 32 numbers",
        "36 dot products of 32",
        f"{y.numel()} outputs x {per_dot} MACs = {s.macs:,} MACs; "
        f"max |output - ReLU(dot)| = {diff:.1e}",
        HOLDS if ok else FAILS,
    )


def claim_6() -> Claim:
    cases = [(3, 8, 3), (64, 28, 1), (192, 16, 5)]
    rows, ok = [], True
    for c_in, c_out, k in cases:
        conv = nn.Conv2d(c_in, c_out, k)
        n, c, _, _ = conv.weight.shape
        y = conv(torch.zeros(1, c_in, k, k))
        ok &= c == c_in and n == c_out == y.shape[1]
        rows.append(f"{c_in}-ch input: {n} filters of {k}x{k}x{c} -> {y.shape[1]} channels")
    return Claim(
        6,
        "each filter has the input's channels; filters = output channels",
        "filter depth = C_in; #filters = C_out",
        "; ".join(rows),
        HOLDS if ok else FAILS,
    )


def _dense_matrix(layer: nn.Module, in_shape: tuple[int, ...]) -> torch.Tensor:
    """The matrix of a linear layer: column i is its output for the i-th unit input (no bias)."""
    n = int(torch.tensor(in_shape).prod())
    basis = torch.eye(n).view(n, *in_shape)
    with torch.no_grad():
        return layer(basis).flatten(1).T  # outputs x inputs


def claim_7() -> Claim:
    conv = nn.Conv2d(1, 1, 3, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.randn(1, 1, 3, 3, generator=_g()))
        m = _dense_matrix(conv, (1, 6, 6))  # 16 outputs x 36 inputs
        x = torch.randn(1, 1, 6, 6, generator=_g())
        diff = _max_diff(m @ x.flatten(), conv(x).flatten())
    nonzero = (m != 0).sum(1)
    window_ok = all(
        set(torch.nonzero(m[i * 4 + j]).flatten().tolist())
        == {(i + a) * 6 + (j + b) for a in range(3) for b in range(3)}
        for i in range(4)
        for j in range(4)
    )
    shared = all(torch.equal(m[r][m[r] != 0], conv.weight.flatten()) for r in range(m.shape[0]))
    ok = diff < 1e-5 and bool((nonzero == 9).all()) and window_ok and shared
    return Claim(
        7,
        "a 3x3 conv on 6x6 is an FC layer whose outputs see 9 of 36 inputs, shared weights",
        "9 of 36 inputs per output, same 9 weights",
        f"{m.shape[0]}x{m.shape[1]} matrix, {int(nonzero.min())}-{int(nonzero.max())} "
        f"non-zeros per row, all under the window: {window_ok}, the same 9 weights: {shared}; "
        f"max |matrix - conv| = {diff:.1e}",
        HOLDS if ok else FAILS,
    )


def claim_8() -> Claim:
    conv = nn.Conv2d(3, 3, 3, bias=False)
    fc = nn.Linear(27, 3, bias=False)
    with torch.no_grad():
        fc.weight.copy_(conv.weight.view(3, 27))  # the same weights, reshaped
        x = torch.randn(1, 3, 3, 3, generator=_g())
        diff = _max_diff(conv(x).flatten(), fc(x.flatten(1)).flatten())
    n = conv.weight.numel()
    return Claim(
        8,
        "a conv with a kernel as large as the map equals an FC layer (3 filters of 3x3 on 3x3x3)",
        "3 x 9 = 27 weights",
        f"{n} weights (3 filters x 3x3x3); equal to Linear 27->3 with the same {fc.weight.numel()} "
        f"weights, max |difference| {diff:.1e}: the equivalence holds, the count is {n}, not 27",
        FAILS if n != 27 else HOLDS,
    )


def claim_9() -> Claim:
    g = _g()
    a, b = nn.Conv2d(4, 6, 3, bias=False), nn.Conv2d(6, 5, 3, bias=False)
    with torch.no_grad():
        # composed kernel: W[o, i] = sum_m full_conv(W2[o, m], W1[m, i]) -> 5x5 (valid convs)
        w = F.conv2d(a.weight.permute(1, 0, 2, 3), b.weight.flip(-1, -2), padding=2)
        one = nn.Conv2d(4, 5, 5, bias=False)
        one.weight.copy_(w.permute(1, 0, 2, 3))
        x = torch.randn(2, 4, 9, 9, generator=g)
        linear = _max_diff(b(a(x)), one(x))
        relu = nn.Sequential(a, nn.ReLU(), b)
        y = torch.randn(2, 4, 9, 9, generator=g)
        additive = _max_diff(relu(x) + relu(y), relu(x + y))  # any single conv is additive
    ok = linear < 1e-4 and additive > 1e-2
    return Claim(
        9,
        "two linear convs compose into one; with a ReLU between they do not",
        "composable without ReLU only",
        f"3x3 then 3x3 = one 5x5 conv (max |diff| {linear:.1e}); with ReLU, "
        f"f(x)+f(y) vs f(x+y) differ by {additive:.2f}, so no single conv equals it",
        HOLDS if ok else FAILS,
    )


def claim_10() -> Claim:
    x = torch.zeros(1, 8, 32, 32)
    y = conv1x1(8, 8, stride=2)(x)
    z = nn.Sequential(conv1x1(8, 4), nn.MaxPool2d(2))(x)
    field = summary(conv1x1(8, 8, stride=2), (8, 32, 32)).layers[-1].field
    ok = y.shape[-1] == 16 and z.shape[-1] == 16
    return Claim(
        10,
        "a stride-2 1x1 conv halves the resolution; 1x1 convs combine with max pooling",
        "32 -> 16",
        f"stride-2 1x1 conv: 32x32 -> {y.shape[-2]}x{y.shape[-1]} (field "
        f"{field.size[0]}, jump {field.jump[0]}: it skips 3 of 4 pixels); 1x1 conv + max "
        f"pool 2: 32x32x8 -> {_shape(z)}",
        HOLDS if ok else FAILS,
    )


def claim_11() -> Claim:
    parts = []
    bands = {}
    for name in ("alexnet_fc", "nin_seed"):
        with torch.device("meta"):
            m = create_model(name)
        side = m.default_input_size[1]
        bands[name] = working_sizes(m, m.default_input_size[0], limit=2 * side)
        lo, hi = bands[name]
        parts.append(f"{name} accepts square sides {lo}-{hi}" + ("+" if hi == 2 * side else ""))
    nin_lo = bands["nin_seed"][0]
    return Claim(
        11,
        "an FC layer needs a fixed input size; a conv network accepts any size",
        "FC: fixed size; conv net: any size",
        "; ".join(parts) + f" (tried up to twice the default): the FC net takes a narrow "
        f"band, the GAP net any size from its minimum {nin_lo} px up, not any size",
        DIFFERS,
    )


def claim_12() -> Claim:
    block = NiNBlock(3, (16, 16, 16), 5, padding=2)
    s = summary(block, (3, 32, 32))
    fields = {row.name: row.field.size[0] for row in s.layers if row.type == "Conv2d"}
    relus = sum(row.type == "ReLU" for row in s.layers)
    sizes = list(fields.values())
    ok = len(set(sizes)) == 1
    shown = ", ".join(f"{k} {v}" for k, v in fields.items())
    return Claim(
        12,
        "a 1x1 conv adds depth and non-linearity without enlarging the field",
        "field unchanged by 1x1 convs",
        f"NiN block 5x5 + two 1x1: fields {shown}; {relus} ReLUs instead of 1",
        HOLDS if ok else FAILS,
    )


def claim_13() -> Claim:
    g = _g()
    a, b = nn.Conv2d(64, 64, 3, padding=1), conv1x1(64, 28)
    one = nn.Conv2d(64, 28, 3, padding=1)
    with torch.no_grad():
        for p in (*a.parameters(), *b.parameters()):
            p.copy_(torch.randn(p.shape, generator=g) * 0.1)
        w2 = b.weight.view(28, 64)
        one.weight.copy_(torch.einsum("om,mikl->oikl", w2, a.weight))  # W = W2 W1
        one.bias.copy_(w2 @ a.bias + b.bias)  # b = W2 b1 + b2
        x = torch.randn(1, 64, 14, 14, generator=g)
        diff = _max_diff(b(a(x)), one(x))
    two = sum(p.numel() for p in (*a.parameters(), *b.parameters()))
    n_one = sum(p.numel() for p in one.parameters())
    return Claim(
        13,
        "3x3x64 conv then 1x1 conv with 28 filters = one 3x3 conv with 28 outputs",
        "equal without a non-linearity",
        f"weights W2.W1, bias W2.b1 + b2: max |diff| "
        f"{diff:.1e}; {two:,} parameters as two layers vs {n_one:,} as one",
        HOLDS if diff < 1e-4 else FAILS,
    )


def claim_14() -> Claim:
    t = cmp.inception_3a()
    rows = {r[0]: r for r in t.rows}
    without = rows["without 1x1 reductions, no pool projection"]
    with_ = rows["with 1x1 reductions, no pool projection"]
    wo_p = rows["without 1x1 reductions, pool projection 1x1 32"]
    w_p = rows["with 1x1 reductions, pool projection 1x1 32"]
    ok = (without[1], with_[1]) == (387_072, 157_184)
    return Claim(
        14,
        "inception (3a): 1x1 reductions cut the weights about 2x",
        "387,072 vs 157,184, about 2x fewer",
        f"{without[1]:,} vs {with_[1]:,} ({with_[4]:.2f}x fewer, a little more than 2x); "
        f"with pool projection {wo_p[1]:,} vs {w_p[1]:,} ({w_p[4]:.2f}x); MACs at 28x28 "
        f"{without[2]:,} vs {with_[2]:,}",
        HOLDS if ok else FAILS,
    )


def claim_15() -> Claim:
    rows = cmp.resnet_blocks().rows
    w = [r[1] for r in rows]
    ok = w == [73_728, 1_179_648, 69_632] and abs(w[2] / w[0] - 1) < 0.1
    return Claim(
        15,
        "ResNet: bottleneck weights close to the 64-channel basic block",
        "73,728; 1,179,648; 69,632",
        f"{w[0]:,}; {w[1]:,}; {w[2]:,} (bottleneck = "
        f"{w[2] / w[0]:.2f} x the 64-ch block); MACs at 56x56 {rows[0][2]:,}; "
        f"{rows[1][2]:,}; {rows[2][2]:,}",
        HOLDS if ok else FAILS,
    )


def claim_16() -> Claim:
    row = cmp.fc_vs_gap_heads().rows[0]
    return Claim(
        16,
        "VGG's first FC layer on 512x7x7 has millions of weights",
        "millions (102,760,448)",
        f"{row[2]:,} weights, {row[3]:,} MACs",
        HOLDS if row[2] == 102_760_448 else FAILS,
    )


def claim_17_18() -> tuple[Claim, Claim]:
    rows = {r[0]: r for r in cmp.nin_vs_alexnet().rows}
    nin, alex = rows["nin_seed"], rows["alexnet_fc"]
    p_ratio, m_ratio = alex[2] / nin[2], alex[3] / nin[3]
    c17 = Claim(
        17,
        "NiN with a GAP head has far fewer parameters than AlexNet",
        "far fewer",
        f"nin_seed {nin[2]:,} vs alexnet_fc {alex[2]:,} ({p_ratio:.1f}x fewer)",
        HOLDS if p_ratio > 5 else FAILS,
    )
    c18 = Claim(
        18,
        "fewer parameters, so NiN is more computationally efficient",
        "efficiency follows the parameter count",
        f"MACs at 224 px: nin_seed {nin[3]:,} vs alexnet_fc {alex[3]:,}: only "
        f"{m_ratio:.2f}x fewer, against {p_ratio:.1f}x fewer parameters",
        DIFFERS if 1 < m_ratio < p_ratio / 2 else (HOLDS if m_ratio >= p_ratio / 2 else FAILS),
    )
    return c17, c18


def _blocks(model: nn.Module) -> list[tuple[str, NiNBlock]]:
    return [(n, m) for n, m in model.named_modules() if isinstance(m, NiNBlock)]


def claim_19() -> Claim:
    problems, notes = [], []
    for name in ("nin_seed", "nin_d2l"):
        m = create_model(name)
        blocks = _blocks(m)
        kernels = [b.conv.kernel_size[0] for _, b in blocks]
        channels = [b.out_channels for _, b in blocks]
        for bname, b in blocks:
            convs = [c for c in b if isinstance(c, nn.Conv2d)]
            if any(c.kernel_size != (1, 1) for c in convs[1:]):
                problems.append(f"{name}.{bname} has a non-1x1 conv after the first")
            layers = list(b)
            if any(not isinstance(layers[layers.index(c) + 1], nn.ReLU) for c in convs):
                problems.append(f"{name}.{bname}: a conv without a ReLU after it")
        pools = [p for p in m.modules() if isinstance(p, nn.MaxPool2d)]
        if any((p.kernel_size, p.stride) != (3, 2) for p in pools) or len(pools) != 3:
            problems.append(f"{name}: pooling is not three 3x3 stride-2 max pools")
        if any(isinstance(x, nn.Linear) for x in m.modules()):
            problems.append(f"{name} has a Linear layer")
        if channels[-1] != 10:
            problems.append(f"{name}'s last block has {channels[-1]} channels, not 10 classes")
        notes.append(
            f"{name}: kernels {kernels}, channels {channels}, then "
            f"{type(m.get_classifier()[-1]).__name__}"
        )
    with torch.device("meta"):
        alex = [
            c.out_channels for c in create_model("alexnet_fc").modules() if isinstance(c, nn.Conv2d)
        ]
    notes.append(f"AlexNet's first three convs {alex[:3]}; logits out, softmax in the loss")
    return Claim(
        19,
        "NiN: kxk conv + 1x1 convs with ReLU, 3x3/2 max pools, kernels 11-5-3, "
        "class-count last block, GAP, no FC",
        "as stated",
        "; ".join(notes + problems),
        FAILS if problems else HOLDS,
    )


def claim_20() -> Claim:
    parts, pattern = [], []
    for name in ("nin_cifar", "nin_seed", "nin_d2l"):
        seqs = []
        for _, b in _blocks(create_model(name))[:-1]:  # the class block ends in the classes
            c = [m.out_channels for m in b if isinstance(m, nn.Conv2d)]
            seqs.append("->".join(map(str, c)))
            # the statement: layer 2 (first 1x1) lowers the count, layer 3 (second 1x1) raises it
            pattern.append(len(c) >= 3 and c[1] < c[0] and c[2] > c[1])
        parts.append(f"{name}: {', '.join(seqs)}")
    return Claim(
        20,
        "the second layer (1x1) of a NiN block lowers the channels, the third raises them",
        "lower then raise within a block",
        "; ".join(parts) + f" (k x k conv -> 1x1 -> 1x1 per block): {sum(pattern)} of "
        f"{len(pattern)} blocks lower then raise",
        HOLDS if all(pattern) else FAILS if not any(pattern) else DIFFERS,
    )


SHAPE_CLAIMS: list[Callable[[], Claim]] = [
    claim_1,
    claim_2,
    claim_3,
    claim_4,
    claim_5,
    claim_6,
    claim_7,
    claim_8,
    claim_9,
    claim_10,
    claim_11,
    claim_12,
    claim_13,
    claim_14,
    claim_15,
    claim_16,
]


def shape_claims() -> list[Claim]:
    """Claims 1-20, checked now."""
    claims = [fn() for fn in SHAPE_CLAIMS]
    return [*claims, *claim_17_18(), claim_19(), claim_20()]
