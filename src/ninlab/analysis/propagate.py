"""Running a model's torch.fx graph node by node: output shapes, MACs and receptive fields.

The model is traced with torch.fx (torch.nn's modules are leaves, so each row is a module call
or a function called in a forward; the tracer also notes the output of every module call, so a
block such as "layer4" or "inception5b" is found: its output's row), then the graph is run on an
input of batch 1. A conv, linear, pooling, batch-norm or activation module is not run: its
output is an uninitialised tensor of the shape its hyperparameters give, and its MACs come from
the formula. Everything else (functions in forward, other modules) runs under FlopCounterMode
(`ninlab.analysis.macs`).

Receptive fields (`ninlab.analysis.fields`) follow each tensor: a map (N, C, H, W) has one window
per unit; a map whose positions were flattened (N, C, H*W), as attention does, keeps its field
until the positions are mixed (a product of two activations, a softmax over positions), after
which every unit sees the whole map. A row whose field is not one window says why in its note,
and the rows after it name where the field was lost. Normalisation layers are taken as
pointwise: their statistics are shared by all units and not counted in the field, as in Araujo
et al.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import fx, nn

from ninlab.analysis.fields import PIXEL, Field, conv_window, no_window, union, whole, window
from ninlab.analysis.macs import Count, counted
from ninlab.errors import NinlabError
from ninlab.models.layers import ELEMENTWISE, GlobalAvgPool, pair

# Modules that act on each pixel (and channel) alone: field passes through, 0 MACs, shape kept.
POINTWISE = (
    *ELEMENTWISE,
    nn.BatchNorm1d,
    nn.BatchNorm2d,
    nn.LocalResponseNorm,  # mixes channels of one pixel only
    nn.Softmax,
    nn.LogSoftmax,
)
# Normalised over the map: taken as pointwise for fields (see above), but run, since their
# shapes are checked against the input (LayerNorm's normalized_shape, GroupNorm's channels).
NORMS = (nn.GroupNorm, nn.LayerNorm, nn.InstanceNorm2d)
ATTENTION = (nn.MultiheadAttention, nn.TransformerEncoderLayer, nn.TransformerDecoderLayer)
# Modules whose output shape and MACs come from their hyperparameters, without running them.
SHAPED = (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d,
          nn.Linear, nn.Flatten, GlobalAvgPool, *POINTWISE)  # fmt: skip
# functions and methods, by name, that act on each element (one input) or merge aligned inputs
ELEMENTWISE_FUNCTIONS = {
    *"add sub mul truediv div floordiv mod pow neg pos abs exp log sqrt rsqrt relu relu6 "
    "leaky_relu gelu silu elu hardtanh hardswish hardsigmoid mish softplus sigmoid tanh clamp "
    "clip maximum minimum where masked_fill dropout dropout2d contiguous clone float half "
    "bfloat16 to type_as detach batch_norm layer_norm group_norm instance_norm "
    "add_ mul_ sub_ div_ relu_ sigmoid_ clamp_ iadd imul".split()
}
CONCAT = {"cat", "concat", "concatenate", "stack"}
RESHAPE = {*"flatten view reshape permute transpose unsqueeze squeeze getitem expand expand_as "
           "unflatten movedim swapaxes t".split()}  # fmt: skip
REDUCE = {"mean", "sum", "amax", "max", "adaptive_avg_pool2d", "adaptive_max_pool2d"}
PRODUCT = {"matmul", "bmm", "baddbmm", "einsum", "mm", "scaled_dot_product_attention"}
SOFTMAX = {"softmax", "log_softmax"}
WINDOWED = {"conv2d", "max_pool2d", "avg_pool2d"}


@dataclass
class Layer:
    """One row: a module call (or a function in forward) and what it costs."""

    name: str
    type: str
    output_shape: tuple[int, ...]  # without the batch dimension
    params: int
    macs: int  # counted; a lower bound when `missing` is not empty
    field: Field | None  # None: no single window (`note` says why)
    activation_bytes: int  # output elements x bytes per element, one sample
    missing: list[str] = field(default_factory=list)  # aten ops whose MACs nobody knows
    global_field: bool = False  # each unit sees the whole input map (after GAP / Flatten)
    note: str = ""  # why the field is not one window
    inputs: list[str] = field(default_factory=list)  # the rows a merge joins

    @property
    def known(self) -> bool:
        return not self.missing

    @property
    def flops(self) -> int:
        return 2 * self.macs


class _LeafTracer(fx.Tracer):
    """torch.nn's own modules (and ninlab's GlobalAvgPool) are graph nodes; the forward of any
    other module is traced through. The output node of every module call, leaves and blocks
    alike, is noted in `calls`."""

    def __init__(self):
        super().__init__()
        self.calls: dict[str, list[str]] = {}

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return isinstance(m, SHAPED) or super().is_leaf_module(m, qualname)

    def call_module(self, m, forward, args, kwargs):
        out = super().call_module(m, forward, args, kwargs)
        if isinstance(out, fx.Proxy):
            self.calls.setdefault(self.path_of_module(m), []).append(out.node.name)
        return out


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
    """Output shape of a module in SHAPED from its hyperparameters; None when it must run.

    Raises RuntimeError, as the module would, when the input does not fit.
    """
    shape = tuple(x.shape)
    if isinstance(m, nn.Conv2d | nn.MaxPool2d | nn.AvgPool2d) and x.dim() == 4:
        if isinstance(m, nn.Conv2d) and shape[1] != m.in_channels:
            raise RuntimeError(f"expected {m.in_channels} input channels, got {shape[1]}")
        if isinstance(m, nn.Conv2d) and m.padding == "same":
            hw = shape[2:]
        else:
            k, s, p, d = window(m, shape[2:])
            ceil = getattr(m, "ceil_mode", False)
            hw = tuple(_out_len(n, *a, ceil) for n, *a in zip(shape[2:], k, s, p, d, strict=True))
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
    if isinstance(m, nn.Flatten):
        a, b = m.start_dim % len(shape), m.end_dim % len(shape)
        return (*shape[:a], int(torch.tensor(shape[a : b + 1]).prod()), *shape[b + 1 :])
    if isinstance(m, GlobalAvgPool) and x.dim() == 4:
        return shape[:2]
    if isinstance(m, POINTWISE):
        return shape
    return None


def _formula(m: nn.Module, out: torch.Tensor) -> int:
    """MACs of a module not run (the convention of ninlab.analysis.macs)."""
    per_sample = out.numel() // max(out.shape[0], 1)
    if isinstance(m, nn.Conv2d):
        k = pair(m.kernel_size)
        return per_sample * (m.in_channels // m.groups) * k[0] * k[1]
    if isinstance(m, nn.Linear):
        return per_sample * m.in_features
    return 0


@dataclass
class _Tensor:
    """What the propagation knows of a tensor's units: their field, or where and why it was lost."""

    field: Field | None
    why: str = ""  # why the field is not one window
    lost_at: str = ""  # the node where it was lost
    whole: bool = False  # every unit sees the whole input map
    flat: tuple[int, int] | None = None  # (H, W) of a map whose positions are one axis now
    const: bool = False  # a parameter or buffer: no field of its own


def _detached(out):
    if isinstance(out, tuple | list):
        return type(out)(_detached(o) for o in out)
    return out.detach() if isinstance(out, torch.Tensor) else out


def _fn_name(n: fx.Node) -> str:
    t = n.target
    return t if isinstance(t, str) else getattr(t, "__name__", str(t))


def _arg(n: fx.Node, i: int, key: str, default=None):
    return n.kwargs[key] if key in n.kwargs else n.args[i] if len(n.args) > i else default


def _base_names(gm: fx.GraphModule, names: dict) -> dict[str, str]:
    """A row name per node: the module's name for a module call, "scope.function" for a
    function called in a module's forward (`Propagator.finish` numbers repeated names)."""
    base = {}
    for n in gm.graph.nodes:
        if n.op == "call_module":
            base[n.name] = names.get(id(gm.get_submodule(n.target)), n.target)
        elif n.op in ("call_function", "call_method"):
            stack = n.meta.get("nn_module_stack") or {}
            scope = next(reversed(stack.values()))[0] if stack else ""
            base[n.name] = f"{scope}.{_fn_name(n)}" if scope else _fn_name(n)
    return base


class Propagator(fx.Interpreter):
    """Runs the traced graph and records one Layer per tensor-producing node.

    With `real=False` a module in SHAPED is not run: its output is an uninitialised tensor of
    the shape its hyperparameters give (so a summary costs little arithmetic); everything else
    runs under FlopCounterMode (an unknown module on zeros of its input's shape).
    """

    def __init__(self, gm: fx.GraphModule, real: bool = False, names: dict | None = None):
        super().__init__(gm)
        self.extra_traceback = False  # fx's annotated traceback imports torch._dynamo (~2 s)
        self.real = real
        self.base = _base_names(gm, names or {})
        self.links: list[tuple[str, list[str]]] = []  # per row: where its field was lost, inputs
        self.info: dict[fx.Node, _Tensor] = {}
        self.shapes: dict[fx.Node, tuple] = {}
        self.rows: list[Layer] = []
        self.row_of: dict[str, int] = {}  # node name -> row index
        self.seen: set[int] = set()  # parameters already counted
        self.count = Count()

    def call_module(self, target, args, kwargs):
        m = self.fetch_attr(target)
        x = args[0] if len(args) == 1 and not kwargs and isinstance(args[0], torch.Tensor) else None
        if x is not None and isinstance(m, SHAPED) and not self.real:
            shape = _out_shape(m, x)
            if shape is not None:
                out = torch.empty(shape, dtype=x.dtype)  # values never read
                self.count = Count(_formula(m, out))
                return out
        if x is not None and not isinstance(m, SHAPED):
            args = (torch.zeros_like(x),)  # a module ninlab does not know, on defined values
        # with gradients on, attention and transformer layers take their composite path (linear,
        # bmm) rather than a fused kernel that FlopCounterMode has no formula for
        with torch.enable_grad():
            out, self.count = counted(m, *args, **kwargs)
        return _detached(out)

    def call_function(self, target, args, kwargs):
        out, self.count = counted(super().call_function, target, args, kwargs)
        return out

    def call_method(self, target, args, kwargs):
        out, self.count = counted(super().call_method, target, args, kwargs)
        return out

    def run_node(self, n: fx.Node):
        self.count = Count()
        out = super().run_node(n)
        first = out[0] if isinstance(out, tuple | list) and out else out
        if n.op == "placeholder" and isinstance(out, torch.Tensor):
            self.info[n], self.shapes[n] = _Tensor(PIXEL), tuple(out.shape)
        elif n.op == "get_attr" and isinstance(out, torch.Tensor):
            self.info[n], self.shapes[n] = _Tensor(None, const=True), tuple(out.shape)
        elif n.op in ("call_module", "call_function", "call_method"):
            if isinstance(out, torch.Tensor):
                self.shapes[n] = tuple(out.shape)
            if isinstance(first, torch.Tensor):
                self._record(n, out, first)
        return out

    def _lost(self, n: fx.Node, why: str) -> _Tensor:
        return _Tensor(None, why=why, lost_at=n.name)

    def _record(self, n: fx.Node, out, first: torch.Tensor) -> None:
        data = [a for a in n.all_input_nodes if a in self.info and not self.info[a].const]
        params = 0
        if n.op == "call_module":
            m = self.fetch_attr(n.target)
            kind = type(m).__name__
            if id(m) not in self.seen:  # a module called twice has its parameters counted once
                self.seen.add(id(m))
                params = sum(p.numel() for p in m.parameters())
        else:
            kind = _fn_name(n)
            for a in n.all_input_nodes:  # parameters a function in forward uses (F.conv2d)
                value = self.fetch_attr(a.target) if a.op == "get_attr" else None
                if isinstance(value, nn.Parameter) and id(value) not in self.seen:
                    self.seen.add(id(value))
                    params += value.numel()
        if not data:
            info = _Tensor(None, const=True)
        else:
            lost = next((self.info[a] for a in data if self.info[a].field is None), None)
            info = lost if lost is not None else self._field(n, first, data)
        self.info[n] = info
        merges = len(data) > 1 and kind in ELEMENTWISE_FUNCTIONS | CONCAT
        lost_here = info.field is None and not info.const and info.lost_at == n.name
        per_sample = first.numel() // max(first.shape[0], 1) if first.dim() else first.numel()
        self.row_of[n.name] = len(self.rows)
        self.links.append((info.lost_at if info.field is None and not info.const else "",
                           [a.name for a in data] if merges else []))  # fmt: skip
        self.rows.append(
            Layer(
                name=self.base[n.name],
                type=kind,
                output_shape=tuple(first.shape[1:]),
                params=params,
                macs=self.count.macs,
                field=info.field,
                activation_bytes=per_sample * first.element_size(),
                missing=self.count.missing,
                global_field=info.whole,
                note=info.why if lost_here else "",
            )
        )

    def finish(self) -> list[Layer]:
        """The rows, a repeated name numbered by call ("layer1.0.relu#2"), with the rows a merge
        joins and, after a row whose field is not one window, where it was lost."""
        total = {}
        for row in self.rows:
            total[row.name] = total.get(row.name, 0) + 1
        seen: dict[str, int] = {}
        for row in self.rows:
            if total[row.name] > 1:
                seen[row.name] = seen.get(row.name, 0) + 1
                row.name = f"{row.name}#{seen[row.name]}"
        node_row = {node: self.rows[i].name for node, i in self.row_of.items()}
        for row, (lost_at, inputs) in zip(self.rows, self.links, strict=True):
            row.inputs = [node_row.get(a, a) for a in inputs]
            if lost_at and not row.note:
                row.note = f"field lost at {node_row.get(lost_at, lost_at)}"
        return self.rows

    # --- receptive fields -------------------------------------------------------------------

    def _field(self, n: fx.Node, out: torch.Tensor, data: list[fx.Node]) -> _Tensor:
        """The field of node n's units, its data inputs' fields being known."""
        x, shape = self.info[data[0]], self.shapes.get(data[0])
        hw = tuple(shape[2:]) if shape and len(shape) == 4 and x.flat is None else None
        if n.op == "call_module":
            return self._module_field(n, self.fetch_attr(n.target), x, hw, out)
        name = _fn_name(n)
        if name in CONCAT:
            dim = _arg(n, 1, "dim", 0) % out.dim()
            if out.dim() == 4 and dim != 1:
                return self._lost(n, f"concatenation along axis {dim} joins different pixels")
            return self._merge(n, data)
        if name in ELEMENTWISE_FUNCTIONS:
            return x if len(data) == 1 else self._merge(n, data)
        if name in RESHAPE:
            return self._reshape(n, x, shape, tuple(out.shape))
        if name in REDUCE:
            return self._reduce(n, name, x, shape, hw, out)
        if name in SOFTMAX:
            dim = _arg(n, 1, "dim", -1)
            if x.flat and shape[dim] == x.flat[0] * x.flat[1]:
                return self._everything(n, [data[0]])
            if hw and dim % 4 in (2, 3):
                return self._lost(n, "a softmax along a spatial axis mixes its pixels")
            return x
        if name in PRODUCT:
            return self._product(n, name, data, x, shape)
        if name in WINDOWED and hw:
            return self._functional_window(n, name, x, hw)
        if name == "pad" and hw:
            if _arg(n, 2, "mode", "constant") == "circular":
                return self._lost(n, "circular padding wraps the field around the image")
            pad = list(_arg(n, 1, "pad")) + [0, 0, 0, 0]
            return _Tensor(x.field.padded(pad[2], pad[0]), whole=x.whole)
        if name in ("interpolate", "upsample"):
            return self._lost(n, "interpolation: neighbouring units share input pixels unevenly")
        return self._lost(n, f"ninlab does not know how {name} moves pixels")

    def _module_field(self, n, m: nn.Module, x: _Tensor, hw, out) -> _Tensor:
        why = no_window(m)
        if why:
            return self._lost(n, why)
        if isinstance(m, (*POINTWISE, *NORMS)):
            return x
        if (
            isinstance(m, GlobalAvgPool)
            or isinstance(m, nn.Flatten)
            and hw
            and m.start_dim in (1, -3)
        ):
            return _Tensor(x.field if x.whole or not hw else whole(x.field, hw), whole=True)
        if isinstance(m, nn.Flatten):
            return self._reshape(n, x, self.shapes.get(n.all_input_nodes[0]), tuple(out.shape))
        if isinstance(m, nn.Conv2d | nn.MaxPool2d | nn.AvgPool2d | nn.AdaptiveAvgPool2d |
                      nn.AdaptiveMaxPool2d) and hw:  # fmt: skip
            w = window(m, hw)
            if w is None:
                return self._lost(n, "adaptive pooling with windows of unequal size")
            f = x.field.after(*w)
            return _Tensor(f, whole=x.whole or (not isinstance(m, nn.Conv2d)
                                                and tuple(out.shape[2:]) == (1, 1)))  # fmt: skip
        if isinstance(m, ATTENTION) and x.flat:
            return self._everything(n, [a for a in n.all_input_nodes if a in self.info])
        if isinstance(m, nn.Linear):
            shape = self.shapes[n.all_input_nodes[0]]
            if len(shape) == 2 or x.flat and shape[-1] != x.flat[0] * x.flat[1]:
                return x  # on vectors, or on each position of a flattened map
            return self._lost(n, "a linear layer over the last axis of a map mixes its columns")
        return self._lost(n, f"ninlab does not know how {type(m).__name__} moves pixels")

    def _merge(self, n: fx.Node, data: list[fx.Node]) -> _Tensor:
        """Inputs joined unit by unit (addition, concatenation, a gate): the union of fields."""
        infos = [self.info[a] for a in data]
        f, why = union([i.field for i in infos if not i.whole], [i.field for i in infos if i.whole])
        if f is None:
            return self._lost(n, why)
        flat = next((i.flat for i in infos if i.flat), None)
        return _Tensor(f, whole=any(i.whole for i in infos), flat=flat)

    def _everything(self, n: fx.Node, data: list[fx.Node]) -> _Tensor:
        """Every position meets every other (attention): each unit sees the whole map."""
        fields = []
        for a in data:
            i, shape = self.info[a], self.shapes.get(a)
            hw = i.flat or (tuple(shape[2:]) if shape and len(shape) == 4 else None)
            fields.append(i.field if i.whole or hw is None else whole(i.field, hw, keep_jump=True))
        f, why = union([], fields)
        if f is None:
            return self._lost(n, why)
        flat = next((self.info[a].flat for a in data if self.info[a].flat), None)
        return _Tensor(f, whole=True, flat=flat)

    def _reshape(self, n: fx.Node, x: _Tensor, shape, out: tuple) -> _Tensor:
        if shape is None or out == shape:  # an item of a tuple, or no change
            return x
        if x.flat is None and len(shape) == 4:  # a map
            h, w = shape[2:]
            if len(out) == 2:  # every unit of (N, C*H*W) may see every pixel
                return _Tensor(x.field if x.whole else whole(x.field, (h, w)), whole=True)
            if len(out) >= 3 and tuple(out[-2:]) == (h, w):
                return x  # channels regrouped or an axis added, pixels in place
            if h * w in out[1:] and h * w > 1:
                return _Tensor(x.field, whole=x.whole, flat=(h, w))
            return self._lost(n, "a reshape that moves pixels between positions")
        if x.flat:
            h, w = x.flat
            if len(out) >= 4 and tuple(out[-2:]) == (h, w):
                return _Tensor(x.field, whole=x.whole)  # a map again
            if h * w in out[1:]:
                return x
            return self._lost(n, "a reshape that splits the flattened positions")
        return x  # vectors (a gate after global pooling) keep their field

    def _reduce(self, n, name, x: _Tensor, shape, hw, out) -> _Tensor:
        if name.startswith("adaptive"):
            if hw and pair(_arg(n, 1, "output_size")) == (1, 1):
                return _Tensor(x.field if x.whole else whole(x.field, hw), whole=True)
            return self._lost(n, f"{name} to a grid larger than 1x1")
        dims = _arg(n, 1, "dim")
        rank = len(shape)
        dims = set(range(rank)) if dims is None else {
            d % rank for d in ((dims,) if isinstance(dims, int) else dims)}  # fmt: skip
        if x.whole:
            return x
        if hw:
            if {2, 3} <= dims:
                return _Tensor(whole(x.field, hw), whole=True)
            return x if not dims & {2, 3} else self._lost(n, f"{name} along one spatial axis")
        if x.flat:
            at = [d for d in dims if shape[d] == x.flat[0] * x.flat[1]]
            return self._everything(n, [n.all_input_nodes[0]]) if at else x
        return x

    def _product(self, n, name, data, x: _Tensor, shape) -> _Tensor:
        """A product of two activations mixes all positions; with a weight, none."""
        if len(data) > 1 or name == "scaled_dot_product_attention":
            return self._everything(n, data)
        if x.flat and name in ("matmul", "mm", "bmm"):
            contracted = shape[-1] if n.args[0] is data[0] else shape[-2]
            if contracted == x.flat[0] * x.flat[1]:
                return self._everything(n, data)
            return x
        return self._lost(n, f"a {name} with a weight over a map's axes")

    def _functional_window(self, n, name, x: _Tensor, hw) -> _Tensor:
        """F.conv2d(input, weight, bias, stride, padding, dilation) and F.max/avg_pool2d(input,
        kernel_size, stride, padding[, dilation]), read from the call's arguments."""
        if name == "conv2d":
            weight = _arg(n, 1, "weight")
            kernel = self.shapes[weight][2:]
            args = (_arg(n, 3, "stride", 1), _arg(n, 4, "padding", 0), _arg(n, 5, "dilation", 1))
            k, s, p, d = conv_window(kernel, *args)
        else:
            k = pair(_arg(n, 1, "kernel_size"))
            s = pair(_arg(n, 2, "stride") or k)
            p = pair(_arg(n, 3, "padding", 0))
            d = pair(_arg(n, 4, "dilation", 1)) if name == "max_pool2d" else (1, 1)
        return _Tensor(x.field.after(k, s, p, d), whole=x.whole)


def trace(model: nn.Module) -> fx.GraphModule:
    """torch.fx graph of a model whose leaves are torch.nn's modules (see _LeafTracer);
    `gm.calls` maps each module's name to the output nodes of its calls."""
    tracer = _LeafTracer()
    if tracer.is_leaf_module(model, ""):  # a lone layer: make it a node of a graph
        model = nn.Sequential(model)
    try:
        graph = tracer.trace(model)
    except Exception as e:  # fx raises many types for untraceable Python
        raise NinlabError(
            f"{type(model).__name__} cannot be traced by torch.fx ({e}); summary needs a forward "
            "without data-dependent Python control flow."
        ) from None
    gm = fx.GraphModule(model, graph)
    gm.calls = tracer.calls
    return gm
