"""Where a training step's time goes, layer by layer, against this machine's roofline.

Time: torch.profiler records whole training steps (forward, loss, backward, optimizer) in the
precision training uses. Each leaf module's call runs inside a `record_function` range: that is
its forward time. Every aten op inside the range carries an autograd sequence number, and the
backward node it created carries the same one (the link torch.profiler itself draws between a
forward op and its backward), so the profiler's `autograd::engine::evaluate_function: ...`
events with those numbers are the module's backward time. What no leaf module owns (the loss,
functions called in forward, gradient accumulation, the optimizer) is `other`.

FLOPs: the summary's (ninlab.analysis.macs convention) x 3 x batch. The backward pass computes
the gradient of the input and of the weights, each as many multiply-adds as the forward (the
first layer needs no input gradient, so its backward does a third less than counted).

Bytes, a lower bound: the forward reads the input and the weights and writes the output; the
backward reads the output's gradient, the input and the weights and writes the gradients of the
input and the weights. That is 3 x input + 2 x output + 3 x weights, each at the size of the
tensor recorded (weights at the smaller of their own and the output's element size: autocast
casts them once per step).
"""

from __future__ import annotations

import contextlib
import copy
import os
import statistics
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.profiler import record_function
from torch.profiler import ProfilerActivity
from torch.profiler import profile as torch_profile

from ninlab.analysis import summary
from ninlab.errors import NinlabError
from ninlab.terminal import WIDTH, table, wrap
from ninlab.train.config import TrainConfig
from ninlab.train.distributed import autocast, precision_for
from ninlab.train.machine import copy_rate, peak_rate
from ninlab.train.optim import make_optimizer

DROP = ("type", "MB")  # columns left out in this order until the table fits
RANGE = "ninlab::layer::"  # prefix of the profiler range of one leaf module's forward call
BACKWARD = "autograd::engine::evaluate_function: "


@dataclass
class LayerProfile:
    """One leaf module over one training step (all its calls): measured seconds, counted FLOPs
    and the least bytes it must move."""

    name: str
    type: str  # "Conv2d 1x1", "Conv2d 3x3", "BatchNorm2d", ...
    forward_s: float
    backward_s: float
    flops: int  # forward and backward, the whole batch
    bytes: int  # lower bound, forward and backward

    @property
    def seconds(self) -> float:
        return self.forward_s + self.backward_s

    @property
    def intensity(self) -> float:
        """FLOP per byte moved (an upper bound, as the bytes are a lower bound)."""
        return self.flops / self.bytes if self.bytes else 0.0

    @property
    def rate(self) -> float:
        """Achieved GFLOP/s."""
        return self.flops / self.seconds / 1e9 if self.seconds else 0.0

    @property
    def is_1x1(self) -> bool:
        return self.type == "Conv2d 1x1"


@dataclass
class Profile:
    """A training step of `model`, layer by layer, and the machine it ran on."""

    model: str
    input_size: tuple[int, int, int]
    batch: int
    precision: str  # "fp32" or "bf16": what the step ran in
    peak: float  # GFLOP/s, matmul in `precision`, measured in this process
    bandwidth: float  # GB/s, memory copy, measured in this process
    step_s: float  # median wall time of a whole step without the profiler
    steps: int  # steps the profiler recorded (the layer times are their mean)
    summary_flops: int  # the summary's FLOPs of one sample's forward
    layers: list[LayerProfile] = field(default_factory=list)
    other_flops: int = 0  # FLOPs of rows of the summary that no leaf module owns (x 3 x batch)
    threads: int = 1

    @property
    def flops(self) -> int:
        """FLOP of a step: the summary's forward FLOPs x 3 (forward and backward) x batch."""
        return 3 * self.summary_flops * self.batch

    @property
    def layer_s(self) -> float:
        return sum(layer.seconds for layer in self.layers)

    @property
    def coverage(self) -> float:
        """The layers' seconds over a measured step's (the check: within 15% of 1)."""
        return self.layer_s / self.step_s

    @property
    def rate(self) -> float:
        """The whole step's GFLOP/s."""
        return self.flops / self.step_s / 1e9

    @property
    def ridge(self) -> float:
        """FLOP per byte where the memory roof meets the arithmetic one."""
        return self.peak / self.bandwidth

    def attainable(self, intensity: float) -> float:
        """GFLOP/s the roofline allows at `intensity` FLOP per byte."""
        return min(self.peak, intensity * self.bandwidth)

    def lost_s(self, layer: LayerProfile) -> float:
        """Seconds a layer takes beyond what the roofline allows it (its FLOPs or its bytes at
        the machine's peak); a layer without FLOPs loses all of its time."""
        floor = layer.bytes / self.bandwidth / 1e9
        if layer.flops:
            floor = max(floor, layer.flops / self.peak / 1e9)
        return max(0.0, layer.seconds - floor)

    def worst(self, n: int = 3) -> list[LayerProfile]:
        """The n layers losing the most time against the roofline, worst first."""
        return sorted(self.layers, key=self.lost_s, reverse=True)[:n]

    def one_by_one(self) -> str:
        """Where the 1x1 convs sit, in one sentence, from this profile's numbers."""
        ones = [lay for lay in self.layers if lay.is_1x1]
        kxk = [lay for lay in self.layers if lay.type.startswith("Conv2d") and not lay.is_1x1]
        if not ones:
            return "The model has no 1x1 convolutions."
        flops, secs = sum(lay.flops for lay in ones), sum(lay.seconds for lay in ones)
        rate = flops / secs / 1e9
        intensity = flops / sum(lay.bytes for lay in ones)
        side = "below" if intensity < self.ridge else "above"
        text = (
            f"The {len(ones)} 1x1 convs do {100 * flops / self.flops:.0f}% of the FLOPs in "
            f"{100 * secs / self.step_s:.0f}% of the step's time, at {rate:.0f} GFLOP/s "
            f"({100 * rate / self.peak:.0f}% of peak) and {intensity:.0f} FLOP/B, {side} the "
            f"ridge at {self.ridge:.0f} FLOP/B"
        )
        if kxk:
            kf, ks = sum(lay.flops for lay in kxk), sum(lay.seconds for lay in kxk)
            kb, krate = sum(lay.bytes for lay in kxk), kf / ks / 1e9
            text += (f"; the {len(kxk)} kxk convs run at {krate:.0f} GFLOP/s "
                     f"({100 * krate / self.peak:.0f}%) and {kf / kb:.0f} FLOP/B")  # fmt: skip
        return text + "."

    def table(self, width: int | None = WIDTH) -> str:
        """A row per leaf module, then their sum and the step: times in ms per step, FLOPs and
        the bytes' lower bound per step, intensity, achieved GFLOP/s and its % of the peak. In
        `width` columns the columns of DROP are left out in turn, said in a last line."""
        head = ("layer", "type", "fwd ms", "bwd ms", "% step", "MFLOP", "MB", "FLOP/B",
                "GFLOP/s", "% peak")  # fmt: skip
        rows = [
            (
                lay.name,
                lay.type,
                f"{1e3 * lay.forward_s:.2f}",
                f"{1e3 * lay.backward_s:.2f}",
                f"{100 * lay.seconds / self.step_s:.1f}",
                f"{lay.flops / 1e6:,.0f}",
                f"{lay.bytes / 1e6:.1f}",
                f"{lay.intensity:.1f}",
                f"{lay.rate:.1f}",
                f"{100 * lay.rate / self.peak:.0f}",
            )  # fmt: skip
            for lay in self.layers
        ]
        fwd = sum(lay.forward_s for lay in self.layers)
        bwd = sum(lay.backward_s for lay in self.layers)
        rows.append(("all layers", "", f"{1e3 * fwd:.2f}", f"{1e3 * bwd:.2f}",
                     f"{100 * self.coverage:.1f}", f"{(self.flops - self.other_flops) / 1e6:,.0f}",
                     "", "", "", ""))  # fmt: skip
        rows.append((f"step: {1e3 * self.step_s:.2f} ms", "", "", "", "100.0",
                     f"{self.flops / 1e6:,.0f}", "", "", f"{self.rate:.1f}",
                     f"{100 * self.rate / self.peak:.0f}"))  # fmt: skip
        keep, dropped = list(head), []
        while True:
            index = [head.index(n) for n in keep]
            numbers = range(1 + ("type" in keep), len(keep))  # right-aligned: all but the names
            cells = [[r[i] for i in index] for r in rows]
            lines = table(keep, cells, right=numbers, width=width, rule=True)
            if width is None or max(map(len, lines)) <= width or len(dropped) == len(DROP):
                break
            dropped.append(DROP[len(dropped)])
            keep.remove(dropped[-1])
        lines.insert(len(lines) - 2, "-" * max(map(len, lines)))
        shape = "x".join(map(str, self.input_size))
        label = " " * 10
        worst = ", ".join(f"{lay.name} ({1e3 * self.lost_s(lay):.1f} ms)" for lay in self.worst())
        facts = [
            ("model", f"{self.model}, input {shape}, batch {self.batch}, {self.precision}, "
                      f"{self.threads} threads, CPU"),
            ("peak", f"{self.peak:.0f} GFLOP/s ({self.precision} matmul), memory "
                     f"{self.bandwidth:.1f} GB/s (copy): ridge at {self.ridge:.0f} FLOP/B"),
            ("step", f"{1e3 * self.step_s:.1f} ms (median of {2 * self.steps}, no profiler), "
                     f"{self.batch / self.step_s:,.0f} images/s, {self.rate:.1f} GFLOP/s = "
                     f"{100 * self.rate / self.peak:.0f}% of peak"),
            ("layers", self._coverage_words()),
            ("FLOPs", f"{self.flops:,} = 3 x the summary's {self.summary_flops:,} x batch "
                      "(forward + backward: input and weight gradients)"),
            ("bytes", "a lower bound: 3 x input + 2 x output + 3 x weights"),
            ("worst", f"losing most time against the roofline: {worst}"),
            ("1x1", self.one_by_one()),
        ]  # fmt: skip
        lines.append("")
        for key, text in facts:
            lines += wrap(text, width, f"{key:<10}", label)
        if dropped:
            cols = " and ".join(dropped) + (" columns" if len(dropped) > 1 else " column")
            lines += wrap(f"(--wide adds the {cols})", width)
        return "\n".join(lines)

    def _coverage_words(self) -> str:
        rest = 1e3 * (self.step_s - self.layer_s)
        text = (f"their times add up to {100 * self.coverage:.0f}% of the step (mean of "
                f"{self.steps} profiled steps against the median of {2 * self.steps} "
                "others); ")  # fmt: skip
        if rest >= 0:
            return text + (f"the other {rest:.1f} ms are the loss, functions called in forward, "
                           "gradient accumulation and the optimizer")  # fmt: skip
        return text + (f"{-rest:.1f} ms more than a step: the profiler's own cost and the "
                       "spread from step to step")  # fmt: skip

    def to_dict(self) -> dict:
        return {
            "model": self.model,
            "input_size": list(self.input_size),
            "batch": self.batch,
            "precision": self.precision,
            "threads": self.threads,
            "peak_gflops": self.peak,
            "bandwidth_gbs": self.bandwidth,
            "step_s": self.step_s,
            "profiled_steps": self.steps,
            "flops": self.flops,
            "summary_flops": self.summary_flops,
            "layer_s": self.layer_s,
            "coverage": self.coverage,
            "layers": [
                {
                    "name": lay.name,
                    "type": lay.type,
                    "forward_s": lay.forward_s,
                    "backward_s": lay.backward_s,
                    "flops": lay.flops,
                    "bytes": lay.bytes,
                    "intensity": lay.intensity,
                    "gflops": lay.rate,
                    "of_peak": lay.rate / self.peak,
                }
                for lay in self.layers
            ],
            "other_flops": self.other_flops,
            "one_by_one": self.one_by_one(),
        }


def _kind(m: nn.Module) -> str:
    if isinstance(m, nn.Conv2d):
        k = "x".join(map(str, m.kernel_size))
        return f"Conv2d {k}" + (" dw" if m.groups > 1 and m.groups == m.in_channels else "")
    return type(m).__name__


def _tensors(value) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (tuple, list)):
        return [t for v in value for t in _tensors(v)]
    if isinstance(value, dict):
        return [t for v in value.values() for t in _tensors(v)]
    return []


def _nbytes(tensors: list[torch.Tensor]) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


class _Ranges:
    """Forward hooks that put each call of a leaf module in a profiler range named after it, and
    note the bytes of its inputs, outputs and weights (one call's worth per step)."""

    def __init__(self, model: nn.Module):
        self.leaves = {m: name for name, m in model.named_modules() if not list(m.children())}
        self.bytes: dict[str, int] = defaultdict(int)
        self.record = False
        self.open: list = []
        self.handles = []
        for m in self.leaves:
            self.handles.append(m.register_forward_pre_hook(self._enter))
            self.handles.append(m.register_forward_hook(self._exit))

    def _enter(self, m, args):
        r = record_function(RANGE + self.leaves[m])
        r.__enter__()
        self.open.append(r)

    def _exit(self, m, args, out):
        self.open.pop().__exit__(None, None, None)
        if self.record:
            ins, outs = _nbytes(_tensors(args)), _tensors(out)
            size = min((t.element_size() for t in outs), default=4)
            weights = sum(p.numel() * min(p.element_size(), size) for p in m.parameters())
            self.bytes[self.leaves[m]] += 3 * ins + 2 * _nbytes(outs) + 3 * weights

    def remove(self):
        for h in self.handles:
            h.remove()


def _loss(out, smoothing: float) -> torch.Tensor:
    """Cross-entropy against fixed labels for logits (N, classes); else the output's mean (what a
    feature extractor or a block gives back), which reaches every parameter as well."""
    out = _tensors(out)[0]
    if out.dim() == 2:
        labels = torch.arange(len(out), device=out.device) % out.shape[1]
        return F.cross_entropy(out.float(), labels, label_smoothing=smoothing)
    return out.float().mean()


def profile(
    model: nn.Module,
    input_size: tuple[int, int, int] | None = None,
    batch: int = 128,
    precision: str = "auto",
    channels_last: bool = True,
    config: TrainConfig | None = None,
    steps: int = 5,
) -> Profile:
    """Profile training steps of a copy of `model` on the CPU (the model itself is left as it
    was): after two warm-up steps, `steps` times two steps timed without the profiler and one
    step under it. A layer's time is its mean over the profiled steps, a step's the median of
    the others. The optimizer is the one `config` (default: the fast recipe) names; the input is
    random, of `input_size` (default: the model's own). Peak and bandwidth are measured first."""
    device = torch.device("cpu")
    precision = precision_for(precision, device)
    s = summary(model, input_size)
    net = copy.deepcopy(model).cpu().train()
    if channels_last:
        net.to(memory_format=torch.channels_last)
    peak, bandwidth = peak_rate(precision), copy_rate()
    x = torch.randn(batch, *s.input_size, generator=torch.Generator().manual_seed(0))
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    if not any(p.requires_grad for p in net.parameters()):
        raise NinlabError(f"{s.model} has no trainable parameters, so it has no training step "
                          "to profile.")  # fmt: skip
    cfg = config or TrainConfig()
    opt = make_optimizer(net, cfg)

    def step():
        with autocast(precision, device):
            loss = _loss(net(x), cfg.label_smoothing)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    ranges = _Ranges(net)
    walls: list[float] = []
    forward: dict[str, float] = defaultdict(float)
    backward: dict[str, float] = defaultdict(float)
    try:
        for _ in range(2):
            step()
        ranges.record = True
        step()
        ranges.record = False
        # a profiled step after two plain ones, `steps` times: both see the same machine
        for _ in range(steps):
            for _ in range(2):
                t = time.perf_counter()
                step()
                walls.append(time.perf_counter() - t)
            with _kineto_quiet(), torch_profile(activities=[ProfilerActivity.CPU]) as prof:
                step()
            for total, part in zip((forward, backward), _attribute(prof.events()), strict=True):
                for name, seconds in part.items():
                    total[name] += seconds
    finally:
        ranges.remove()
    names = [n for n in ranges.leaves.values() if n in forward]
    flops = _layer_flops(s, names, batch)
    layers = [
        LayerProfile(
            n,
            _kind(net.get_submodule(n)),
            forward[n] / steps,
            backward[n] / steps,
            flops[n],
            ranges.bytes[n],
        )  # fmt: skip
        for n in names
    ]
    return Profile(
        model=getattr(model, "model_name", type(model).__name__),
        input_size=s.input_size,
        batch=batch,
        precision=precision,
        peak=peak,
        bandwidth=bandwidth,
        step_s=statistics.median(walls),
        steps=steps,
        summary_flops=s.flops,
        layers=layers,
        other_flops=3 * s.flops * batch - sum(flops.values()),
        threads=torch.get_num_threads(),
    )


@contextlib.contextmanager
def _kineto_quiet():
    """Keep the profiler's own C++ lines ("USDT: ... profiler_start") off stderr: torch 2.13's
    Kineto prints them at a level that no environment variable turns off."""
    sys.stderr.flush()
    saved, null = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


def _attribute(events) -> tuple[dict[str, float], dict[str, float]]:
    """Seconds of forward and backward per leaf module name, summed over the recorded events."""
    forward: dict[str, float] = defaultdict(float)
    backward: dict[str, float] = defaultdict(float)
    owner: dict[int, str] = {}
    for e in events:
        if e.name.startswith(RANGE):
            name = e.name[len(RANGE) :]
            forward[name] += e.cpu_time_total / 1e6
            todo = list(e.cpu_children)
            while todo:
                child = todo.pop()
                if child.sequence_nr >= 0:
                    owner[child.sequence_nr] = name
                todo += child.cpu_children
    for e in events:
        if e.name.startswith(BACKWARD) and e.cpu_parent is None and e.sequence_nr in owner:
            backward[owner[e.sequence_nr]] += e.cpu_time_total / 1e6
    return forward, backward


def _layer_flops(s, names: list[str], batch: int) -> dict[str, int]:
    """Each leaf's FLOPs over a step: the summary rows of its calls, x 3 x batch."""
    return {n: 3 * batch * sum(s.layers[i].flops for i in s.outputs.get(n, [])) for n in names}
