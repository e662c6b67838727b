"""A 1x1 convolution computed as a convolution and as a Linear, side by side, on this CPU.

    python bench/conv1x1.py                          # nin_whiten and nin_fast, batch 128
    python bench/conv1x1.py --models nin_fast --repeats 40

ninlab's 1x1 convs (`ninlab.models.Conv1x1`) run a channels-last input on the CPU as one F.linear
over the channels of every pixel; nn.Conv2d(in, out, 1) runs it through oneDNN's convolution.
Both have the same weights and give the same numbers. For each model this prints:
1. per 1x1 layer, the forward and backward of both on the same input (channels-last, the batch
   the recipes train with), in fp32 and, where this CPU has bf16 units, in bf16 autocast;
2. a whole training step of the model (forward, loss, backward, SGD) as ninlab builds it, against
   the same model with every Conv1x1 replaced by an nn.Conv2d holding its weights, in the
   precision training uses here.
Times are medians of --repeats runs that alternate between the two, so both see the same machine.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from machine import (
    bf16_native,
    bf16_rate,
    describe,
    matmul_rate,
    roofline,
    training_step_flops,
)
from torch import nn

from ninlab.models import Conv1x1, create_model
from ninlab.train.distributed import autocast, precision_for

CPU = torch.device("cpu")


def as_conv2d(model: nn.Module) -> nn.Module:
    """`model` (in place) with every Conv1x1 replaced by an nn.Conv2d holding its weights."""
    for m in list(model.modules()):
        for child_name, child in list(m.named_children()):
            if isinstance(child, Conv1x1):
                conv = nn.Conv2d(child.in_channels, child.out_channels, 1, child.stride,
                                 bias=child.bias is not None)  # fmt: skip
                conv.load_state_dict(child.state_dict())
                setattr(m, child_name, conv.to(memory_format=torch.channels_last))
    return model


def side_by_side(a, b, repeats: int) -> tuple[float, float]:
    """Median seconds of the calls a() and b(), alternating, after two warm-up calls of each."""
    for _ in range(2):
        a(), b()
    ta, tb = [], []
    for _ in range(repeats):
        for f, times in ((a, ta), (b, tb)):
            t = time.perf_counter()
            f()
            times.append(time.perf_counter() - t)
    return statistics.median(ta), statistics.median(tb)


def layer_inputs(model: nn.Module, x: torch.Tensor) -> list[tuple[str, Conv1x1, tuple]]:
    """(name, layer, input shape) of each Conv1x1 that a forward of x reaches."""
    shapes, hooks = {}, []

    def keep(name):
        def hook(m, args) -> None:  # a pre-hook that returned a value would replace the input
            shapes.setdefault(name, tuple(args[0].shape))

        return hook

    for name, m in model.named_modules():
        if isinstance(m, Conv1x1):
            hooks.append(m.register_forward_pre_hook(keep(name)))
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    return [(n, model.get_submodule(n), s) for n, s in shapes.items()]


def layer_seconds(layer: Conv1x1, shape: tuple, precision: str, repeats: int):
    """(Conv2d s, Conv1x1 s) for one forward and backward of the layer on a random input."""
    new = Conv1x1(layer.in_channels, layer.out_channels, 1, bias=layer.bias is not None)
    old = nn.Conv2d(new.in_channels, new.out_channels, 1, bias=new.bias is not None)
    old.load_state_dict(new.state_dict())
    for m in (new, old):
        m.to(memory_format=torch.channels_last)
    x = torch.randn(shape).contiguous(memory_format=torch.channels_last).requires_grad_(True)

    def run(m):
        def f():
            with autocast(precision, CPU):
                y = m(x)
            y.backward(torch.ones_like(y))

        return f

    return side_by_side(run(old), run(new), repeats)


def step_seconds(model: nn.Module, x, y, precision: str, repeats: int, other: nn.Module):
    """(other s, model s) for one training step of each, alternating."""

    def run(m):
        opt = torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9)

        def f():
            with autocast(precision, CPU):
                loss = F.cross_entropy(m(x), y)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)

        return f

    return side_by_side(run(other), run(model), repeats)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--models", nargs="+", default=["nin_whiten", "nin_fast"])
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--repeats", type=int, default=20, help="timed runs of each, alternating")
    args = p.parse_args()
    torch.manual_seed(0)
    rate, rate_bf16 = matmul_rate(), bf16_rate()
    print(describe(rate, rate_bf16))
    train_precision = precision_for("auto", CPU)
    precisions = ["fp32", "bf16"] if bf16_native() else ["fp32"]
    for name in args.models:
        model = create_model(name).train().to(memory_format=torch.channels_last)
        c, h, w = model.default_input_size
        x = torch.randn(args.batch_size, c, h, w).contiguous(memory_format=torch.channels_last)
        y = torch.randint(0, 10, (args.batch_size,))
        print(f"\n{name}, batch {args.batch_size}: forward + backward of each 1x1 layer, ms")
        heads = "".join(f"{p + ' conv':>11}{'linear':>8}{'ratio':>7}" for p in precisions)
        print(f"{'layer':<24}{'input':>16}{'out':>6}{heads}")
        for layer_name, layer, shape in layer_inputs(model, x):
            row = f"{layer_name:<24}{'x'.join(map(str, shape[1:])):>16}{layer.out_channels:>6}"
            for precision in precisions:
                old, new = layer_seconds(layer, shape, precision, args.repeats)
                row += f"{1e3 * old:>11.2f}{1e3 * new:>8.2f}{old / new:>6.2f}x"
            print(row)
        flops = training_step_flops(model, x, y)
        other = as_conv2d(create_model(name).train()).to(memory_format=torch.channels_last)
        other.load_state_dict(model.state_dict())
        old, new = step_seconds(model, x, y, train_precision, args.repeats, other)
        roof = roofline(train_precision, rate, rate_bf16)
        print(f"training step in {train_precision} ({flops / 1e9:.2f} GFLOP): "
              f"nn.Conv2d {1e3 * old:.2f} ms ({args.batch_size / old:,.0f} images/s, "
              f"{flops / old / 1e9 / roof:.0%} of the roofline), Conv1x1 {1e3 * new:.2f} ms "
              f"({args.batch_size / new:,.0f} images/s, {flops / new / 1e9 / roof:.0%}): "
              f"{old / new:.2f}x")  # fmt: skip


if __name__ == "__main__":
    main()
