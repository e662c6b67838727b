"""This machine's fp32 matrix-multiply rate R, and the FLOP of a training step, measured in the
calling process.

R (GFLOP/s) is the best of `repeats` products of two 2048 x 2048 float32 matrices on all of
torch's threads (2 * 2048^3 FLOP each). Benchmarks print it and state a cost as
wall seconds x R / 1000: TFLOP at this machine's peak, a figure that travels between machines
better than seconds do.
"""

from __future__ import annotations

import platform
import time

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def matmul_rate(n: int = 2048, repeats: int = 10) -> float:
    """Best fp32 matmul rate in GFLOP/s on the CPU, all threads."""
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(n, n, generator=g), torch.randn(n, n, generator=g)
    a @ b  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best / 1e9


def describe(rate: float) -> str:
    """One line: torch, threads, processor and R."""
    return (
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{platform.processor() or platform.machine()}, R = {rate:.0f} GFLOP/s "
        "(fp32 matmul, best of 10 2048x2048 products)"
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
