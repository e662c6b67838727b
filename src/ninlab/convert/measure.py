"""Throughput measured in the running process: warm up, then the best of several repeats."""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
from torch import nn


@torch.no_grad()
def images_per_second(
    model: nn.Module | Callable, x: torch.Tensor, repeats: int = 5, warmup: int = 2
) -> float:
    """x.shape[0] / (fastest of `repeats` timed calls of model(x)), after `warmup` calls.

    The fastest run is the one least disturbed by other work on the machine.
    """
    for _ in range(warmup):
        model(x)
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        model(x)
        best = min(best, time.perf_counter() - t)
    return x.shape[0] / best
