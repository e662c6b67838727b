"""Per-layer summary of a model: output shape, parameters, MACs, receptive field, memory.

Convention (the one place ninlab defines it):
  1 MAC = one multiply-add of a weight with an input value.  FLOPs = 2 x MACs.
  Conv2d: MACs = C_out x H_out x W_out x (C_in / groups) x kH x kW.
  Linear: MACs = out_features x in_features (x any leading non-batch dims).
  Bias adds, batch norm, activations, pooling, concatenation and residual additions do no MACs:
  they are listed as known layers with 0 MACs. Counts are per sample (batch 1). This is the count
  `torch.utils.flop_counter.FlopCounterMode` makes for convolutions and matrix products
  (2 FLOPs per multiply-add, bias not counted), which the tests check for every registered model.

Receptive field (Araujo, Norris, Sim, "Computing Receptive Fields of Convolutional Neural
Networks", Distill 2019), per axis, for a layer with kernel k, stride s, padding p, dilation d:
  r_out = r_in + (d (k - 1)) j_in      field size in input pixels
  j_out = j_in s                       jump: input pixels between neighbouring output units
  start_out = start_in - p j_in        first input pixel seen by output unit 0
Output unit i sees input pixels start + i jump ... start + i jump + size - 1; `start` is negative
where the field hangs over the zero padding, and the field is not clipped to the image. A merge
(inception concatenation, residual addition) takes the union of its inputs' fields, so networks
with branches are exact, not treated as a chain. Global average pooling and Flatten make every
unit see the whole map (a window as large as the map).

Method: the model is traced with torch.fx (every module without children is a leaf, so each
row is a real module call), then the graph is run on shape-only "meta" tensors, so the summary
costs no arithmetic. A leaf it does not know is listed as unknown: its MACs and its field (and
the fields after it) are reported as unknown, never as 0.
"""

from __future__ import annotations

import operator
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import fx, nn

from ninlab.errors import NinlabError
from ninlab.models.layers import ELEMENTWISE, GlobalAvgPool, pair

# Modules that act on each pixel (and channel) alone: field passes through, 0 MACs.
POINTWISE = (
    *ELEMENTWISE,
    nn.BatchNorm1d,
    nn.BatchNorm2d,
    nn.LocalResponseNorm,  # mixes channels of one pixel only
    nn.Softmax,
    nn.LogSoftmax,
)
POINTWISE_FUNCTIONS = {
    F.relu,
    torch.relu,
    F.relu6,
    F.leaky_relu,
    F.gelu,
    F.silu,
    torch.sigmoid,
    torch.tanh,
    F.dropout,
    F.softmax,
    F.log_softmax,
    operator.neg,
}
POINTWISE_METHODS = {"relu", "sigmoid", "tanh", "softmax", "log_softmax", "contiguous", "clone"}
MERGE_FUNCTIONS = {operator.add, torch.add, operator.mul, torch.mul, torch.cat, torch.concat}
MERGE_METHODS = {"add", "mul", "add_"}
RESHAPE = {torch.flatten}
RESHAPE_METHODS = {"flatten", "view", "reshape"}


@dataclass(frozen=True)
class Field:
    """Receptive field of output unit (0, 0) in input pixels, per axis (height, width)."""

    size: tuple[int, int]
    jump: tuple[int, int]
    start: tuple[int, int]

    def box(self, i: int, j: int) -> tuple[int, int, int, int]:
        """Input pixels seen by output unit (i, j): (top, left, bottom, right), end exclusive."""
        top = self.start[0] + i * self.jump[0]
        left = self.start[1] + j * self.jump[1]
        return top, left, top + self.size[0], left + self.size[1]

    def center(self, i: int, j: int) -> tuple[float, float]:
        """Centre of unit (i, j)'s field in input pixel coordinates (row, column)."""
        top, left, bottom, right = self.box(i, j)
        return (top + bottom - 1) / 2, (left + right - 1) / 2

    def after(self, k, s, p, d=(1, 1)) -> Field:
        """The field after a window of kernel k, stride s, padding p, dilation d (per axis)."""
        return Field(
            size=tuple(
                r + d_ * (k_ - 1) * j
                for r, k_, d_, j in zip(self.size, k, d, self.jump, strict=False)
            ),
            jump=tuple(j * s_ for j, s_ in zip(self.jump, s, strict=False)),
            start=tuple(st - p_ * j for st, p_, j in zip(self.start, p, self.jump, strict=False)),
        )

    def text(self, which: str) -> str:
        h, w = getattr(self, which)
        return str(h) if h == w else f"{h}x{w}"


PIXEL = Field(size=(1, 1), jump=(1, 1), start=(0, 0))


@dataclass
class Layer:
    """One row: a module call (or a merge/reshape in forward) and what it costs."""

    name: str
    type: str
    output_shape: tuple[int, ...]  # without the batch dimension
    params: int
    macs: int | None  # None: a layer ninlab does not know
    field: Field | None  # None: unknown (after an unknown layer)
    activation_bytes: int  # output elements x bytes per element, one sample
    known: bool = True
    global_field: bool = False  # each unit sees the whole input map (after GAP / Flatten)

    @property
    def flops(self) -> int | None:
        return None if self.macs is None else 2 * self.macs


@dataclass
class Summary:
    """Rows and totals; `params` is every parameter of the model, counted once."""

    model: str
    input_size: tuple[int, int, int]
    layers: list[Layer]
    params: int
    unknown: list[str] = field(default_factory=list)

    @property
    def macs(self) -> int:
        """MACs of the known layers (a lower bound when `unknown` is not empty)."""
        return sum(layer.macs or 0 for layer in self.layers)

    @property
    def flops(self) -> int:
        return 2 * self.macs

    @property
    def activation_bytes(self) -> int:
        """Sum of every layer's output size (not the peak: no buffer reuse is assumed)."""
        return sum(layer.activation_bytes for layer in self.layers)

    def layer(self, name: str) -> Layer:
        """The row of a module (qualified name, e.g. "features.block1.conv")."""
        for row in self.layers:
            if row.name == name:
                return row
        raise NinlabError(f"{self.model} has no layer {name!r}; `ninlab summary` lists them.")

    def weight_macs(self, types=(nn.Conv2d, nn.Linear)) -> int:
        names = {t.__name__ for t in types}
        return sum(row.macs or 0 for row in self.layers if row.type in names)

    def to_dict(self) -> dict:
        layers = []
        for row in self.layers:
            d = asdict(row)
            d["output_shape"] = list(row.output_shape)
            d["flops"] = row.flops
            d["field"] = (
                None if row.field is None else {k: list(v) for k, v in asdict(row.field).items()}
            )
            layers.append(d)
        return {
            "model": self.model,
            "input_size": list(self.input_size),
            "convention": "1 MAC = 1 multiply-add; FLOPs = 2 x MACs; per sample; bias, BN, "
            "activations and pooling count 0 MACs",
            "layers": layers,
            "totals": {
                "params": self.params,
                "macs": self.macs,
                "flops": self.flops,
                "activation_bytes": self.activation_bytes,
                "macs_are_lower_bound": bool(self.unknown),
            },
            "unknown": self.unknown,
        }

    def table(self) -> str:
        header = ("layer", "type", "output", "params", "MACs", "field", "jump", "start", "memory")
        rows = [header]
        for r in self.layers:
            f = r.field
            rows.append(
                (
                    r.name,
                    r.type if r.known else f"{r.type} (unknown)",
                    "x".join(map(str, r.output_shape)),
                    f"{r.params:,}",
                    "?" if r.macs is None else f"{r.macs:,}",
                    "?" if f is None else f.text("size") + (" (all)" if r.global_field else ""),
                    "?" if f is None else f.text("jump"),
                    "?" if f is None else f.text("start"),
                    _bytes(r.activation_bytes),
                )
            )
        widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
        right = {3, 4, 5, 6, 7, 8}
        lines = [
            "  ".join(
                c.rjust(w) if i in right else c.ljust(w)
                for i, (c, w) in enumerate(zip(row, widths, strict=False))
            ).rstrip()
            for row in rows
        ]
        lines.insert(1, "-" * len(lines[0]))
        bound = " (lower bound: unknown layers)" if self.unknown else ""
        lines += [
            "",
            f"model        {self.model}, input {'x'.join(map(str, self.input_size))}, batch 1",
            f"parameters   {self.params:,}",
            f"MACs         {self.macs:,}{bound}",
            f"FLOPs        {self.flops:,} (= 2 x MACs){bound}",
            f"activations  {_bytes(self.activation_bytes)} (sum of layer outputs)",
            "convention   1 MAC = 1 multiply-add; bias, BN, activations, pooling: 0 MACs",
            "field        size, jump and start (first pixel of unit 0, < 0 in padding) in input px",
        ]
        if self.unknown:
            lines.append(
                f"unknown      {', '.join(self.unknown)}: MACs and fields not counted; "
                "ninlab knows conv, linear, pool, BN, activation, dropout, merge layers"
            )
        return "\n".join(lines)


def _bytes(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError


class _LeafTracer(fx.Tracer):
    """Treat every module without children (and torch.nn's own modules) as one graph node."""

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return next(m.children(), None) is None or super().is_leaf_module(m, qualname)


def _window(m: nn.Module, in_hw: tuple[int, int]) -> tuple | None:
    """(k, s, p, d) of a windowed module, per axis; None when the window is not fixed."""
    if isinstance(m, nn.Conv2d):
        k, s, d = pair(m.kernel_size), pair(m.stride), pair(m.dilation)
        if isinstance(m.padding, str):  # "valid" or "same" (left/top padding)
            p = (
                (0, 0)
                if m.padding == "valid"
                else tuple(di * (ki - 1) // 2 for ki, di in zip(k, d, strict=False))
            )
        else:
            p = pair(m.padding)
        return k, s, p, d
    if isinstance(m, nn.MaxPool2d | nn.AvgPool2d):
        k = pair(m.kernel_size)
        s = pair(m.stride if m.stride is not None else m.kernel_size)
        d = pair(getattr(m, "dilation", 1))
        return k, s, pair(m.padding), d
    if isinstance(m, nn.AdaptiveAvgPool2d | nn.AdaptiveMaxPool2d):
        out = pair(m.output_size)
        out = tuple(i if o is None else o for o, i in zip(out, in_hw, strict=False))
        if any(i % o for i, o in zip(in_hw, out, strict=False)):
            return None  # windows of unequal size: no single field
        k = tuple(i // o for i, o in zip(in_hw, out, strict=False))
        return k, k, (0, 0), (1, 1)
    return None


def _global(f: Field | None, in_hw: tuple[int, int]) -> Field | None:
    """The field of a unit that sees the whole map (a window as large as the map)."""
    return None if f is None else f.after(in_hw, in_hw, (0, 0))


def _union(fields: list[Field | None]) -> Field | None:
    """Merge of branches: the union of their fields (jumps must agree)."""
    if not fields or any(f is None for f in fields) or len({f.jump for f in fields}) > 1:
        return None
    start = tuple(min(f.start[a] for f in fields) for a in (0, 1))
    end = tuple(max(f.start[a] + f.size[a] for f in fields) for a in (0, 1))
    return Field(
        size=tuple(e - s for e, s in zip(end, start, strict=False)),
        jump=fields[0].jump,
        start=start,
    )


def _out_len(n: int, k: int, s: int, p: int, d: int, ceil: bool) -> int:
    """Output length of a window along one axis (the formula torch's conv and pool layers use)."""
    span = n + 2 * p - d * (k - 1) - 1
    if span < 0:
        raise RuntimeError(f"input length {n} is smaller than the window {d * (k - 1) + 1}")
    out = (-(-span // s) if ceil else span // s) + 1
    if ceil and (out - 1) * s >= n + p:  # the last window must start inside the input
        out -= 1
    return out


def _out_shape(m: nn.Module, x: torch.Tensor) -> tuple[int, ...] | None:
    """Output shape of a known module from its hyperparameters; None for unknown modules.

    Raises RuntimeError, as the module would, when the input does not fit.
    """
    shape = tuple(x.shape)
    if isinstance(m, nn.Conv2d | nn.MaxPool2d | nn.AvgPool2d) and x.dim() == 4:
        if isinstance(m, nn.Conv2d) and shape[1] != m.in_channels:
            raise RuntimeError(f"expected {m.in_channels} input channels, got {shape[1]}")
        if isinstance(m, nn.Conv2d) and m.padding == "same":
            hw = shape[2:]
        else:
            k, s, p, d = _window(m, shape[2:])
            ceil = getattr(m, "ceil_mode", False)
            hw = tuple(_out_len(n, *a, ceil) for n, *a in zip(shape[2:], k, s, p, d, strict=False))
        c = m.out_channels if isinstance(m, nn.Conv2d) else shape[1]
        return (shape[0], c, *hw)
    if isinstance(m, nn.AdaptiveAvgPool2d | nn.AdaptiveMaxPool2d) and x.dim() == 4:
        out = tuple(
            i if o is None else o for o, i in zip(pair(m.output_size), shape[2:], strict=False)
        )
        return (*shape[:2], *out)
    if isinstance(m, nn.Linear):
        if shape[-1] != m.in_features:
            raise RuntimeError(f"expected {m.in_features} input features, got {shape[-1]}")
        return (*shape[:-1], m.out_features)
    if isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d) and shape[1] != m.num_features:
        raise RuntimeError(f"expected {m.num_features} channels, got {shape[1]}")
    if isinstance(m, POINTWISE):
        return shape
    if isinstance(m, nn.Flatten):
        a, b = m.start_dim % len(shape), m.end_dim % len(shape)
        return (*shape[:a], int(torch.tensor(shape[a : b + 1]).prod()), *shape[b + 1 :])
    if isinstance(m, GlobalAvgPool) and x.dim() == 4:
        return shape[:2]
    return None


class _Propagator(fx.Interpreter):
    """Runs the traced graph and records one Layer per tensor-producing node.

    With `real=False` a known module is not run: its output is an uninitialised tensor of the
    shape its hyperparameters give (so a summary costs no arithmetic); the functions in forward
    (cat, +, mean, flatten) run on those, and an unknown module runs on zeros of its input shape.
    """

    def __init__(self, gm: fx.GraphModule, real: bool = False, names: dict | None = None):
        super().__init__(gm)
        self.extra_traceback = False  # fx's annotated traceback imports torch._dynamo (~2 s)
        self.real = real
        self.names = names or {}
        self.fields: dict[fx.Node, Field | None] = {}
        self.global_nodes: set[fx.Node] = set()
        self.shapes: dict[fx.Node, tuple] = {}
        self.rows: list[Layer] = []
        self.seen: set[int] = set()

    def call_module(self, target, args, kwargs):
        m = self.fetch_attr(target)
        if not self.real and len(args) == 1 and not kwargs and isinstance(args[0], torch.Tensor):
            shape = _out_shape(m, args[0])
            if shape is not None:
                return torch.empty(shape, dtype=args[0].dtype)  # values never read
            args = (torch.zeros_like(args[0]),)
        return m(*args, **kwargs)

    def run_node(self, n: fx.Node):
        out = super().run_node(n)
        if isinstance(out, torch.Tensor):
            self.shapes[n] = tuple(out.shape)
            if n.op == "placeholder":
                self.fields[n] = PIXEL
            elif n.op in ("call_module", "call_function", "call_method"):
                self._record(n, out)
            else:
                self.fields[n] = None
        return out

    def _in(self, n: fx.Node) -> fx.Node | None:
        return next((a for a in n.all_input_nodes if a in self.shapes), None)

    def _record(self, n: fx.Node, out: torch.Tensor) -> None:
        src = self._in(n)
        f_in = self.fields.get(src) if src is not None else None
        in_shape = self.shapes.get(src, ())
        in_hw = tuple(in_shape[2:4]) if len(in_shape) == 4 else None
        macs: int | None = 0
        known = True
        params = 0
        f_out: Field | None = None
        is_global = src in self.global_nodes
        per_sample = out.numel() // max(out.shape[0], 1) if out.dim() else out.numel()
        if n.op == "call_module":
            m = self.fetch_attr(n.target)
            name, kind = self.names.get(id(m), n.target), type(m).__name__
            if id(m) not in self.seen:  # a module called twice has its parameters counted once
                self.seen.add(id(m))
                params = sum(p.numel() for p in m.parameters())
            window = _window(m, in_hw) if in_hw else None
            if isinstance(m, nn.Conv2d):
                k = pair(m.kernel_size)
                macs = per_sample * (m.in_channels // m.groups) * k[0] * k[1]
                f_out = f_in.after(*window) if f_in else None
            elif isinstance(m, nn.Linear):
                macs = per_sample * m.in_features
                f_out, is_global = (f_in, is_global) if len(in_shape) == 2 else (None, False)
            elif isinstance(
                m, nn.MaxPool2d | nn.AvgPool2d | nn.AdaptiveAvgPool2d | nn.AdaptiveMaxPool2d
            ):
                f_out = f_in.after(*window) if f_in and window else None
                is_global = tuple(out.shape[2:]) == (1, 1)
            elif isinstance(m, GlobalAvgPool) or (
                isinstance(m, nn.Flatten) and in_hw and m.start_dim in (1, -3)
            ):
                f_out, is_global = _global(f_in, in_hw) if in_hw else f_in, True
            elif isinstance(m, (*POINTWISE, nn.Flatten)):
                f_out = f_in
            else:
                macs, known, is_global = None, False, False
        else:
            fn = n.target
            name = n.name
            kind = fn if isinstance(fn, str) else getattr(fn, "__name__", str(fn))
            method = fn if n.op == "call_method" else None
            tensor_inputs = [a for a in n.all_input_nodes if a in self.shapes]
            if fn in MERGE_FUNCTIONS or method in MERGE_METHODS:
                f_out = _union([self.fields.get(a) for a in tensor_inputs])
                is_global = bool(tensor_inputs) and all(
                    a in self.global_nodes for a in tensor_inputs
                )
            elif fn in POINTWISE_FUNCTIONS or method in POINTWISE_METHODS:
                f_out = f_in
            elif fn in RESHAPE or method in RESHAPE_METHODS:
                if in_hw and out.dim() == 2:  # (N, C, H, W) -> (N, C*H*W): every unit sees all
                    f_out, is_global = _global(f_in, in_hw), True
                elif tuple(out.shape) == tuple(in_shape):
                    f_out = f_in
            elif (fn is torch.mean or method == "mean") and in_hw and out.shape[0] == in_shape[0]:
                dims = n.kwargs.get("dim", n.args[1] if len(n.args) > 1 else None)
                dims = {d % 4 for d in ((dims,) if isinstance(dims, int) else tuple(dims or ()))}
                if dims == {2, 3}:
                    f_out, is_global = _global(f_in, in_hw), True
                else:
                    macs, known = None, False
            else:
                macs, known = None, False
        if not known:
            f_out = None
        self.fields[n] = f_out
        if is_global:
            self.global_nodes.add(n)
        self.rows.append(
            Layer(
                name=name,
                type=kind,
                output_shape=tuple(out.shape[1:]),
                params=params,
                macs=macs,
                field=f_out,
                activation_bytes=per_sample * out.element_size(),
                known=known,
                global_field=is_global,
            )
        )


def trace(model: nn.Module) -> fx.GraphModule:
    """torch.fx graph of a model whose leaves are its modules without children."""
    if next(model.children(), None) is None:  # a lone layer: make it a node of a graph
        model = nn.Sequential(model)
    try:
        graph = _LeafTracer().trace(model)
    except Exception as e:  # fx raises many types for untraceable Python
        raise NinlabError(
            f"{type(model).__name__} cannot be traced by torch.fx ({e}); summary needs a forward "
            "without data-dependent Python control flow."
        ) from None
    return fx.GraphModule(model, graph)


def _model_name(model: nn.Module) -> str:
    return getattr(model, "model_name", type(model).__name__)


def summary(
    model: nn.Module, input_size: tuple[int, int, int] | None = None, real: bool = False
) -> Summary:
    """A row per layer (shape, parameters, MACs, receptive field, memory) and the totals.

    `input_size` is (C, H, W), one sample; default: the model's `default_input_size`.
    Raises NinlabError when the input is too small (or, for FC heads, the wrong size) for the
    model, naming the square sizes that work. `real=True` runs every module on real tensors
    instead of taking known modules' output shapes from their hyperparameters (same result).
    """
    if input_size is None:
        input_size = getattr(model, "default_input_size", None)
        if input_size is None:
            raise NinlabError("the model has no default_input_size; pass input_size=(C, H, W).")
    input_size = tuple(int(v) for v in input_size)
    prop = _propagate(model, input_size, real)
    rows = prop.rows
    return Summary(
        model=_model_name(model),
        input_size=input_size,
        layers=rows,
        params=sum(p.numel() for p in model.parameters()),
        unknown=[r.name for r in rows if not r.known],
    )


def _propagate(model: nn.Module, input_size: tuple, real: bool = False) -> _Propagator:
    # the first name of each module (NiN's "class_head.block.conv", not the alias "head.maps...")
    names = {id(m): name or type(m).__name__ for name, m in model.named_modules()}
    prop = _Propagator(trace(model), real, names)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            prop.run(torch.zeros(1, *input_size))
    except RuntimeError as e:
        model.train(was_training)
        _raise_size_error(model, input_size)
        reason = str(e).strip().splitlines()[0].rstrip(".")
        shown = "x".join(map(str, input_size))
        raise NinlabError(
            f"{_model_name(model)} cannot run on a {shown} input ({reason})."
        ) from None
    finally:
        model.train(was_training)
    return prop


def _fits(gm: fx.GraphModule, size: tuple[int, int, int]) -> bool:
    try:
        _Propagator(gm).run(torch.zeros(1, *size))
    except RuntimeError:
        return False
    return True


def working_sizes(model: nn.Module, in_chans: int, limit: int = 1024) -> tuple[int, int] | None:
    """Smallest and largest square side (up to `limit`) that the model accepts; None if none.

    Shape-only (no arithmetic). Each layer's output size grows with its input size, so the sides
    that fit form one band: bisected on both sides of a side that fits (the model's default side,
    else the first found by trying every side from 1). A network with a GAP head accepts every
    side from its smallest on; one with an FC head only a narrow band around its default.
    """
    gm = trace(model)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():

            def fits(side: int) -> bool:
                return _fits(gm, (in_chans, side, side))

            ref = getattr(model, "default_input_size", (0, 0, 0))[1]
            if not (0 < ref <= limit and fits(ref)):
                ref = next((s for s in range(1, limit + 1) if fits(s)), None)
                if ref is None:
                    return None
            bad, ok = 0, ref  # smallest: bad < side <= ok
            while ok - bad > 1:
                mid = (ok + bad) // 2
                bad, ok = (bad, mid) if fits(mid) else (mid, ok)
            lo = ok
            if fits(limit):
                return lo, limit
            ok, bad = ref, limit  # largest: ok <= side < bad
            while bad - ok > 1:
                mid = (ok + bad) // 2
                ok, bad = (mid, bad) if fits(mid) else (ok, mid)
            return lo, ok
    finally:
        model.train(was_training)


def _raise_size_error(model: nn.Module, input_size: tuple[int, int, int]) -> None:
    c, h, w = input_size
    default = getattr(model, "default_input_size", None)
    if default is not None and not _fits(trace(model), (c, *default[1:])):
        return  # not even the default size fits: not a size problem (channels, say)
    side = max(h, w, *(default or (0, 0, 0))[1:])
    sizes = working_sizes(model, c, limit=max(2 * side, 64))
    if sizes is None:
        return  # not a size problem: let the original error through
    lo, hi = sizes
    shown = "x".join(map(str, input_size))
    name = _model_name(model)
    if h < lo or w < lo:
        raise NinlabError(
            f"input {shown} is too small for {name}; the smallest square input that works is "
            f"{c}x{lo}x{lo}."
        )
    if h > hi or w > hi:
        raise NinlabError(
            f"input {shown} is too large for {name} (its fully-connected layers fix the input "
            f"size); square inputs from {c}x{lo}x{lo} to {c}x{hi}x{hi} work."
        )


def receptive_field(
    model: nn.Module, layer: str, input_size: tuple[int, int, int] | None = None
) -> Field:
    """Receptive field (size, jump, start per axis) of the output units of a named layer."""
    row = summary(model, input_size).layer(layer)
    if row.field is None:
        raise NinlabError(f"the field of {layer} is unknown: an unknown layer comes before it.")
    return row.field


def parse_input_size(text: str, in_chans: int) -> tuple[int, int, int]:
    """ "1x224x224" -> (1, 224, 224); "224" -> (in_chans, 224, 224); "HxW" -> (in_chans, H, W)."""
    parts = text.lower().replace("×", "x").split("x")
    try:
        values = [int(p) for p in parts]
    except ValueError:
        values = []
    if len(values) not in (1, 2, 3) or any(v <= 0 for v in values):
        raise NinlabError(
            f"--input {text!r} is not a size; write CxHxW (1x224x224), HxW or one side (224)."
        )
    if len(values) == 1:
        return (in_chans, values[0], values[0])
    if len(values) == 2:
        return (in_chans, *values)
    return tuple(values)
