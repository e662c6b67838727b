"""Per-layer summary of any model: output shape, parameters, MACs, receptive field, memory.

MACs follow the convention written once in `ninlab.analysis.macs` (FlopCounterMode's count, per
sample); receptive fields the rules in `ninlab.analysis.fields` (Araujo et al., Distill 2019);
`ninlab.analysis.propagate` runs the traced graph and makes one row per node.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
from torch import fx, nn

from ninlab.analysis.fields import Field
from ninlab.analysis.propagate import Layer, Propagator, trace
from ninlab.errors import NinlabError
from ninlab.models.base import side_band
from ninlab.terminal import table, wrap


@dataclass
class Summary:
    """Rows and totals; `params` is every parameter of the model, counted once. `outputs` maps
    each module's name to the rows of its calls' outputs (a block's output is a merge inside)."""

    model: str
    input_size: tuple[int, int, int]
    layers: list[Layer]
    params: int
    outputs: dict[str, list[int]] = field(default_factory=dict)

    @property
    def unknown(self) -> list[str]:
        """Rows with operations whose MACs are not known (the totals are then a lower bound)."""
        return [r.name for r in self.layers if r.missing]

    @property
    def macs(self) -> int:
        """MACs of every row (a lower bound when `unknown` is not empty)."""
        return sum(layer.macs for layer in self.layers)

    @property
    def flops(self) -> int:
        return 2 * self.macs

    @property
    def activation_bytes(self) -> int:
        """Sum of every layer's output size (not the peak: no buffer reuse is assumed)."""
        return sum(layer.activation_bytes for layer in self.layers)

    def layer(self, name: str) -> Layer:
        """The row of a module's output: "layer4" (a block), "features.conv" (a leaf), the last
        call of a module called several times, or one call of it ("relu#2"); or a row's name."""
        base, _, k = name.partition("#")
        calls = self.outputs.get(base)
        if calls and (not k or k.isdigit() and 1 <= int(k) <= len(calls)):
            return self.layers[calls[int(k) - 1 if k else -1]]
        for row in self.layers:
            if row.name == name:
                return row
        if calls:
            raise NinlabError(f"{base} is called {len(calls)} times; name a call from "
                              f"{base}#1 to {base}#{len(calls)}.")  # fmt: skip
        raise NinlabError(f"{self.model} has no layer {name!r}; `ninlab summary` lists them.")

    def weight_macs(self, types=(nn.Conv2d, nn.Linear)) -> int:
        """MACs of the rows of these module types and of their subclasses (ninlab's frozen
        PatchWhitening is a Conv2d)."""
        names, todo = set(), list(types)
        while todo:
            t = todo.pop()
            names.add(t.__name__)
            todo += t.__subclasses__()
        return sum(row.macs for row in self.layers if row.type in names)

    def to_dict(self) -> dict:
        layers = []
        for row in self.layers:
            d = asdict(row)
            d["output_shape"] = list(row.output_shape)
            d["flops"] = row.flops
            d["field"] = (
                None
                if row.field is None
                else {k: list(getattr(row.field, k)) for k in ("size", "jump", "start")}
            )
            layers.append(d)
        return {
            "model": self.model,
            "input_size": list(self.input_size),
            "convention": "1 MAC = 1 multiply-add; FLOPs = 2 x MACs; per sample; as "
            "FlopCounterMode counts; bias, norms, activations, softmax, pooling count 0 MACs",
            "layers": layers,
            "totals": {
                "params": self.params,
                "macs": self.macs,
                "flops": self.flops,
                "activation_bytes": self.activation_bytes,
                "macs_are_lower_bound": bool(self.unknown),
            },
            "unknown": self.unknown,
            "outputs": {k: [self.layers[i].name for i in v] for k, v in self.outputs.items()},
        }

    def table(self, width: int | None = None) -> str:
        """The rows and the totals; width None (the default, as the HTML report shows them):
        every column, however wide. In `width` columns (`ninlab summary` gives WIDTH) the notes
        go under the table, a merge's type loses its inputs ("add", not "add(x, proj)"), and
        the columns of DROP are left out in turn, said in a last line."""
        names = ("layer", "type", "output", "params", "MACs", "field", "jump", "start", "memory",
                 "note")  # fmt: skip
        rows = [self._cells(r, inputs=width is None) for r in self.layers]
        keep = list(names) if width is None else list(names[:-1])
        dropped = []
        while True:
            index = [names.index(n) for n in keep]
            right = {k for k, n in enumerate(keep) if n in RIGHT}
            lines = table(keep, [[r[i] for i in index] for r in rows], right, None, rule=True)
            if width is None or max(map(len, lines)) <= width or not DROP[len(dropped) :]:
                break
            dropped.append(DROP[len(dropped)])
            keep.remove(dropped[-1])
        bound = " (lower bound: see 'unknown')" if self.unknown else ""
        lines += [
            "",
            f"model        {self.model}, input {'x'.join(map(str, self.input_size))}, batch 1",
            f"parameters   {self.params:,}",
            f"MACs         {self.macs:,}{bound}",
            f"FLOPs        {self.flops:,} (= 2 x MACs){bound}",
            f"activations  {_bytes(self.activation_bytes)} (sum of layer outputs)",
        ]
        label = " " * 13
        convention = ("1 MAC = 1 multiply-add, as FlopCounterMode counts; bias, norms, "
                      "activations, softmax, pooling: 0 MACs")  # fmt: skip
        lines += wrap(convention, width, "convention   ", label)
        fields = ("size, jump and start (first pixel of unit 0, < 0 in padding) in input px; '-' "
                  "with a note where there is no single window")  # fmt: skip
        lines += wrap(fields, width, "field        ", label)
        if self.unknown:
            ops = sorted({op for r in self.layers for op in r.missing})
            lines += wrap(f"{', '.join(self.unknown)} run {', '.join(ops)}, whose MACs neither "
                          "FlopCounterMode nor ninlab knows; they are not counted (marked +)",
                          width, "unknown      ", label)  # fmt: skip
        if width is not None:
            notes = [(r.name, note) for r, c in zip(self.layers, rows, strict=True)
                     if (note := c[-1])]  # fmt: skip
            for k, (name, note) in enumerate(notes):
                lines += wrap(f"{name}: {note}", width, "notes        " if k == 0 else label,
                              label + "  ")  # fmt: skip
            hidden = dropped + ["merge inputs"] * any(r.inputs for r in self.layers)
            if hidden:
                lines += wrap(f"(--wide adds {_and(hidden)})", width)
        return "\n".join(lines)

    def _cells(self, r: Layer, inputs: bool = True) -> tuple[str, ...]:
        """A row's cells, in the order of the table's columns (the type with a merge's inputs
        when `inputs`)."""
        f = r.field
        missing = f"misses {', '.join(r.missing)}" if r.missing else ""
        return (
            r.name,
            f"{r.type}({', '.join(r.inputs)})" if r.inputs and inputs else r.type,
            "x".join(map(str, r.output_shape)),
            f"{r.params:,}",
            f"{r.macs:,}" + ("+" if r.missing else ""),
            "-" if f is None else f.text("size") + (" (all)" if r.global_field else ""),
            "-" if f is None else f.text("jump"),
            "-" if f is None else f.text("start"),
            _bytes(r.activation_bytes),
            "; ".join(t for t in (missing, r.note) if t),
        )


RIGHT = ("params", "MACs", "field", "jump", "start", "memory")  # right-aligned columns
DROP = ("memory", "start", "jump", "type")  # left out in this order until a table fits


def _and(items: list[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


def _bytes(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError


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
    outputs = {
        name: [prop.row_of[node] for node in nodes if node in prop.row_of]
        for name, nodes in prop.module.calls.items()
    }
    return Summary(
        model=_model_name(model),
        input_size=input_size,
        layers=prop.finish(),
        params=sum(p.numel() for p in model.parameters()),
        outputs={k: v for k, v in outputs.items() if v},
    )


def _propagate(model: nn.Module, input_size: tuple, real: bool = False) -> Propagator:
    # the first name of each module (NiN's "class_head.block.conv", not the alias "head.maps...")
    names = {id(m): name or type(m).__name__ for name, m in model.named_modules()}
    try:
        gm = trace(model)
    except NinlabError:  # fx cannot follow the forward, unless the forward fails on its own
        _raise_forward_error(model, input_size)
        raise
    prop = Propagator(gm, real, names)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            prop.run(torch.zeros(1, *input_size))
    except RuntimeError as e:
        model.train(was_training)
        _raise_size_error(model, input_size)
        raise NinlabError(
            f"{_model_name(model)} cannot run on a {_shown(input_size)} input ({_first_line(e)})."
        ) from None
    except Exception:  # raised by the model's own code (a check, a function it calls)
        model.train(was_training)
        _raise_forward_error(model, input_size)
        raise
    finally:
        model.train(was_training)
    return prop


def _raise_forward_error(model: nn.Module, input_size: tuple) -> None:
    """Raise, in one sentence, what the model's forward raises when run for real (eval mode,
    zeros of batch 1), so that its own error is not blamed on tracing; return if it runs."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, *input_size))
    except Exception as e:
        error = f"{type(e).__name__}: {_first_line(e)}" if _first_line(e) else type(e).__name__
        raise NinlabError(
            f"{_model_name(model)}'s forward raised {error} (on an input of size "
            f"{_shown(input_size)}); fix the model, or pass the input size it expects."
        ) from None
    finally:
        model.train(was_training)


def _shown(input_size: tuple) -> str:
    return "x".join(map(str, input_size))


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [""])[0].rstrip(".")


def _fits(gm: fx.GraphModule, size: tuple[int, int, int]) -> bool:
    try:
        Propagator(gm).run(torch.zeros(1, *size))
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
            return side_band(fits, ref, limit)
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


def input_channels(model: nn.Module) -> int:
    """The channels a model takes: its default input's, else its first convolution's, else 3."""
    if hasattr(model, "default_input_size"):
        return model.default_input_size[0]
    conv = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    return conv.in_channels if conv is not None else 3


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
