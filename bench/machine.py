"""This machine's fp32 and bf16 matrix-multiply rates, and the FLOP of a training step, measured
in the calling process.

R (GFLOP/s) is the best of ten products of two 2048 x 2048 float32 matrices on all of torch's
threads (2 * 2048^3 FLOP each), measured by `ninlab.train.machine.matmul_rate`, as `ninlab
profile` measures its peak. Benchmarks print it and state a cost as
wall seconds x R / 1000: TFLOP at this machine's peak, a figure that travels between machines
better than seconds do. The bf16 rate, measured the same way, is the roofline of a step trained
in bf16 autocast; where the processor has no bf16 units (no AVX512-BF16 or AMX) torch emulates
bf16 hundreds of times slower than fp32, `--precision auto` trains in fp32, and fp32's R is the
roofline instead (`roofline`).
"""

from __future__ import annotations

import platform

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from ninlab.train.distributed import native_bf16
from ninlab.train.machine import matmul_rate, peak_rate  # noqa: F401 (the benches import R from here)


def bf16_native() -> bool:
    """Whether this CPU computes bf16 natively (what `--precision auto` decides by)."""
    return native_bf16(torch.device("cpu"))


def bf16_rate() -> float:
    """Best bf16 matmul rate in GFLOP/s: as R where bf16 is native; where it is emulated, of three
    512 x 512 products (a 2048 x 2048 one would take about a minute there)."""
    return peak_rate("bf16")


def roofline(precision: str, rate: float, rate_bf16: float) -> float:
    """The matmul rate a step trained in `precision` ("fp32" or "bf16") is held against."""
    return rate_bf16 if precision == "bf16" else rate


def describe(rate: float, rate_bf16: float | None = None) -> str:
    """Two lines: torch, threads, processor and R; then the bf16 rate (measured here when not
    given) and whether it is native."""
    rate_bf16 = bf16_rate() if rate_bf16 is None else rate_bf16
    how = ("native: training runs in bf16 autocast" if bf16_native() else
           "emulated, no AVX512-BF16 or AMX: training runs in fp32, held against R")  # fmt: skip
    return (
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{platform.processor() or platform.machine()}, R = {rate:.0f} GFLOP/s "
        "(fp32 matmul, best of 10 2048x2048 products)\n"
        f"bf16 matmul rate = {rate_bf16:.1f} GFLOP/s ({how})"
    )


def training_step_flops(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> int:
    """FLOP of one training step on the batch (x, y): forward, cross-entropy and backward, as
    PyTorch's FlopCounterMode counts them (2 per multiply-add of convolutions and matmuls; the
    optimizer's elementwise update is not counted). Leaves the model's gradients unset."""
    with FlopCounterMode(display=False) as counter:
        F.cross_entropy(model(x), y).backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops()


def training_images_per_second(history: list[dict]) -> float:
    """Training images/s over a whole run (evaluation excluded), from fit()'s per-epoch rows."""
    seconds = sum(r["train_time"] for r in history)
    return sum(r["images_per_s"] * r["train_time"] for r in history) / seconds
