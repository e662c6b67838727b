"""The ledger: textbook statements about 1x1 convolutions and NiN, checked against ninlab.

Each claim (numbered as in the project's claims list) has the value it states, the value ninlab
computes, and a verdict:
  holds          the computation agrees with the statement (exactly, or within the stated word)
  does not hold  it contradicts the statement
  differs        partly right; `computed` says how it differs
  needs a run    a statement about training: pass run directories (`ninlab claims --run DIR`)
Arithmetic and shape claims (1-20) run real modules every time; training claims (21-25) take
their numbers from the named run directories, never from this file.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ninlab.analysis import compare as cmp
from ninlab.analysis.sparsity import relu_sparsity, sparser_with_depth
from ninlab.analysis.summary import summary
from ninlab.errors import NinlabError
from ninlab.models import NiNBlock, create_model
from ninlab.models.layers import conv1x1

HOLDS, FAILS, DIFFERS, NEEDS_RUN = "holds", "does not hold", "differs", "needs a run"
SEED_CURVE = (33.98, 59.43, 65.87, 67.74, 69.70, 73.27, 79.59, 84.71, 85.51, 85.74)  # claim 21
SEED_TOLERANCE = 1.0  # percentage points within which a re-run "holds" for claim 21


@dataclass
class Claim:
    number: int
    statement: str
    stated: str
    computed: str
    verdict: str
    run: str | None = None  # the run directory the verdict comes from


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
    from ninlab.analysis.summary import working_sizes

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


# ---- training claims: from run directories ----


@dataclass
class RunRecord:
    """What the ledger reads from a run directory: config and per-epoch test accuracy (%)."""

    path: Path
    config: dict
    accs: list[float]  # test accuracy per epoch, in percent

    @property
    def model(self) -> str:
        return self.config.get("model", "?")

    @property
    def label(self) -> str:
        return f"{self.path} ({self.model}, {self.config.get('dataset', '?')})"


def read_run(path: str | Path) -> RunRecord:
    """Config and test accuracies of a run directory (metrics.jsonl, else metrics.csv)."""
    from ninlab.runs import read_config

    path = Path(path)
    config = read_config(path)
    rows: list[dict] = []
    if (path / "metrics.jsonl").is_file():
        for i, line in enumerate((path / "metrics.jsonl").read_text().splitlines()):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError:
                    raise NinlabError(
                        f"{path / 'metrics.jsonl'} line {i + 1} is not JSON; the run is damaged."
                    ) from None
    elif (path / "metrics.csv").is_file():
        import csv

        with open(path / "metrics.csv", newline="") as f:
            rows = [{k: float(v) for k, v in r.items() if v} for r in csv.DictReader(f)]
    accs = []
    for r in rows:
        acc = r.get("test_acc", r.get("test_accuracy"))
        if acc is not None:
            accs.append(100 * acc if acc <= 1 else acc)  # fractions (0-1) or percent
    return RunRecord(path, config, accs)


def _curve_text(accs: list[float]) -> str:
    return ", ".join(f"{a:.2f}" for a in accs)


def claim_21(runs: list[RunRecord]) -> Claim:
    stmt = "classic NiN, Fashion-MNIST at 224, SGD 0.1, batch 64, 10 epochs: 85.74%"
    stated = f"85.74% (curve {_curve_text(SEED_CURVE)})"
    run = next((r for r in runs if r.config.get("recipe") == "seed" and r.accs), None)
    run = run or next((r for r in runs if r.model == "nin_seed" and r.accs), None)
    if run is None:
        return Claim(
            21, stmt, stated, "needs a run of recipe seed: `ninlab train --recipe seed`", NEEDS_RUN
        )
    want = {
        "model": "nin_seed",
        "dataset": "fashion-mnist",
        "input_size": 224,
        "lr": 0.1,
        "batch_size": 64,
        "epochs": 10,
        "limit_train": None,
    }
    off = [
        f"{k}={run.config[k]}" for k, v in want.items() if k in run.config and run.config[k] != v
    ]
    final = run.accs[-1]
    delta = final - 85.74
    verdict = HOLDS if abs(delta) <= SEED_TOLERANCE and not off else DIFFERS
    computed = (
        f"{final:.2f}% after {len(run.accs)} epochs ({delta:+.2f} points; holds within "
        f"{SEED_TOLERANCE}); curve {_curve_text(run.accs)}"
    )
    if off:
        computed += f"; the run differs from the recipe: {', '.join(off)}"
    return Claim(21, stmt, stated, computed, verdict, str(run.path))


def _pick(runs: list[RunRecord], model: str, dataset: str | None = None) -> RunRecord | None:
    return next(
        (
            r
            for r in runs
            if r.model == model and r.accs and dataset in (None, r.config.get("dataset"))
        ),
        None,
    )


def claim_22(runs: list[RunRecord]) -> Claim:
    stmt = "one 1x1 conv per block trains better and faster than two on a small data set"
    one = _pick(runs, "nin_seed")
    two = _pick(runs, "nin_d2l", one.config.get("dataset") if one else None)
    if one is None or two is None:
        return Claim(
            22,
            stmt,
            "one 1x1 better",
            "needs runs of nin_seed and nin_d2l on the same data set (--run twice)",
            NEEDS_RUN,
        )
    better = one.accs[-1] > two.accs[-1]
    auc1, auc2 = sum(one.accs) / len(one.accs), sum(two.accs) / len(two.accs)
    faster = auc1 > auc2
    verdict = HOLDS if better and faster else FAILS if not (better or faster) else DIFFERS
    return Claim(
        22,
        stmt,
        "one 1x1 better and faster",
        f"final {one.accs[-1]:.2f}% (one) vs {two.accs[-1]:.2f}% (two); mean over epochs "
        f"{auc1:.2f}% vs {auc2:.2f}% (faster = higher mean)",
        verdict,
        f"{one.path}, {two.path}",
    )


def claim_23(runs: list[RunRecord]) -> Claim:
    stmt = "NiN's Fashion-MNIST test accuracy is a little lower than AlexNet's"
    alex = _pick(runs, "alexnet_fc", "fashion-mnist")
    nin = _pick(runs, "nin_seed", "fashion-mnist") or _pick(runs, "nin_d2l", "fashion-mnist")
    if alex is None or nin is None:
        return Claim(
            23,
            stmt,
            "NiN a little lower",
            "needs runs of nin_seed (or nin_d2l) and alexnet_fc on fashion-mnist (--run twice)",
            NEEDS_RUN,
        )
    gap = alex.accs[-1] - nin.accs[-1]
    verdict = FAILS if gap <= 0 else HOLDS if gap <= 3 else DIFFERS
    return Claim(
        23,
        stmt,
        "NiN a little lower (within 3 points)",
        f"{nin.model} {nin.accs[-1]:.2f}% vs alexnet_fc {alex.accs[-1]:.2f}% "
        f"({gap:+.2f} points for AlexNet)",
        verdict,
        f"{nin.path}, {alex.path}",
    )


def _test_sample(path: Path, samples: int, data_dir: str | None):
    from ninlab.data import load_dataset
    from ninlab.runs import load_run

    run = load_run(path)
    ds = load_dataset(
        run.config.get("dataset", "fashion-mnist"), data_dir=data_dir or run.config.get("data_dir")
    )
    return run, ds.test_images[:samples], run.preprocess(ds.test_images[:samples])


def _with_weights(runs: list[RunRecord]) -> list[RunRecord]:
    from ninlab.runs import WEIGHTS

    return [r for r in runs if any((r.path / w).is_file() for w in WEIGHTS)]


def claim_24(runs: list[RunRecord], samples: int, data_dir: str | None) -> Claim:
    stmt = "in a trained CNN, feature maps get sparser (more exact zeros after ReLU) with depth"
    runs = _with_weights(runs)
    if not runs:
        return Claim(
            24, stmt, "sparser with depth", "needs a run with weights (`--run DIR`)", NEEDS_RUN
        )
    r = runs[0]
    run, _, x = _test_sample(r.path, samples, data_dir)
    fr = relu_sparsity(run.model, x)
    values = [f for _, f in fr]
    verdict = sparser_with_depth(values)
    shown = ", ".join(f"{n.split('.', 1)[-1]} {100 * f:.1f}%" for n, f in fr)
    return Claim(
        24,
        stmt,
        "zeros increase with depth",
        f"zeros after each ReLU over {len(x)} test images: {shown}"
        + ("" if verdict == HOLDS else "; not monotone"),
        verdict,
        str(r.path),
    )


@torch.no_grad()
def claim_25(runs: list[RunRecord], samples: int, data_dir: str | None) -> Claim:
    stmt = (
        "the last layer's strongest activations, mapped back through the field, locate the object"
    )
    nin_runs = [r for r in _with_weights(runs) if r.model.startswith("nin")]
    r = nin_runs[0] if nin_runs else None
    if r is None or r.config.get("dataset") not in ("mnist", "fashion-mnist", "kmnist"):
        return Claim(
            25,
            stmt,
            "locates the object",
            "needs a NiN run on a black-background "
            "data set (mnist, fashion-mnist, kmnist); see also `ninlab cam`",
            NEEDS_RUN,
        )
    from ninlab.data.transforms import resize

    run, raw, x = _test_sample(r.path, samples, data_dir)
    maps = run.model.class_maps(x)  # N x classes x h x w
    pred = run.model.forward_head(run.model.forward_features(x)).argmax(1)
    cmap = maps[torch.arange(len(x)), pred]  # N x h x w
    s = summary(run.model, tuple(x.shape[1:]))
    field = next(row.field for row in reversed(s.layers) if len(row.output_shape) == 3)
    h, w = cmap.shape[1:]
    centers = torch.tensor([[field.center(i, j) for j in range(w)] for i in range(h)])  # h w 2
    img = resize(raw.float(), x.shape[-2:])[:, 0]  # N x H x W, 0-255
    fg = img > 0.1 * img.amax(dim=(1, 2), keepdim=True)  # the object: pixels above 10% of max
    rows = centers[..., 0].round().long().clamp(0, img.shape[1] - 1)
    cols = centers[..., 1].round().long().clamp(0, img.shape[2] - 1)
    on_object = fg[:, rows, cols]  # N x h x w: is each unit's field centre on the object?
    best = cmap.flatten(1).argmax(1)
    hit = on_object.flatten(1)[torch.arange(len(x)), best].float().mean().item()
    chance = on_object.float().mean().item()
    return Claim(
        25,
        stmt,
        "the strongest unit's field centre is on the object",
        f"{100 * hit:.1f}% of {len(x)} test images (any unit: {100 * chance:.1f}%), "
        f"{h}x{w} class map, field {field.size[0]} px, jump {field.jump[0]} px",
        HOLDS if hit > chance else FAILS,
        str(r.path),
    )


ARITHMETIC: list[Callable[[], Claim]] = [
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


def check_claims(
    run_dirs: list[str | Path] = (), samples: int = 256, data_dir: str | None = None
) -> list[Claim]:
    """Every claim, checked: 1-20 by running modules, 21-25 from the given run directories."""
    runs = [read_run(p) for p in run_dirs]  # a bad directory fails before any work
    claims = [fn() for fn in ARITHMETIC]
    claims += [*claim_17_18(), claim_19(), claim_20()]
    claims += [claim_21(runs), claim_22(runs), claim_23(runs)]
    claims += [claim_24(runs, samples, data_dir), claim_25(runs, samples, data_dir)]
    return sorted(claims, key=lambda c: c.number)


def claims_table(claims: list[Claim]) -> str:
    """One block per claim: number, verdict, statement; then stated and computed values."""
    lines = []
    for c in claims:
        lines.append(f"{c.number:>2}  {c.verdict.upper():<13}  {c.statement}")
        lines.append(f"    stated:   {c.stated}")
        lines.append(f"    computed: {c.computed}")
        if c.run:
            lines.append(f"    run:      {c.run}")
    counts = {v: sum(c.verdict == v for c in claims) for v in (HOLDS, FAILS, DIFFERS, NEEDS_RUN)}
    lines.append("")
    lines.append(", ".join(f"{n} {v}" for v, n in counts.items()))
    return "\n".join(lines)


def claims_dicts(claims: list[Claim]) -> list[dict]:
    return [asdict(c) for c in claims]
