"""This machine's roofline, measured in the calling process: the matmul rate of a precision (its
peak of arithmetic) and the copy rate of memory (its peak of traffic).

A layer doing F FLOP while it must move at least B bytes can run no faster than
min(peak, F/B x bandwidth) (Williams, Waterman, Patterson, "Roofline", CACM 2009): below the
ridge point, an intensity F/B of peak / bandwidth FLOP per byte, memory bounds it; above it,
arithmetic does.
"""

from __future__ import annotations

import time

import torch

from ninlab.train.distributed import native_bf16

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def matmul_rate(n: int = 2048, repeats: int = 10, dtype: torch.dtype = torch.float32) -> float:
    """Best rate in GFLOP/s of n x n products in `dtype` on the CPU, all of torch's threads
    (2 n^3 FLOP each)."""
    g = torch.Generator().manual_seed(0)
    a, b = (torch.randn(n, n, generator=g).to(dtype) for _ in range(2))
    a @ b  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best / 1e9


def peak_rate(precision: str) -> float:
    """The matmul rate a step in `precision` ("fp32" or "bf16") is held against, GFLOP/s. Where
    bf16 is emulated (no AVX512-BF16 or AMX) it is measured on three 512 x 512 products: a
    2048 x 2048 one takes about a minute there."""
    if precision == "fp32":
        return matmul_rate()
    if native_bf16(torch.device("cpu")):
        return matmul_rate(dtype=DTYPES[precision])
    return matmul_rate(512, 3, DTYPES[precision])


def copy_rate(megabytes: int = 256, repeats: int = 5) -> float:
    """Best memory rate in GB/s of copying one float32 tensor of `megabytes` into another
    (each byte read once and written once: 2 x size per copy), all of torch's threads."""
    a = torch.ones(megabytes * 2**20 // 4)
    b = torch.empty_like(a)
    b.copy_(a)  # warm-up: the pages of b are touched
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        b.copy_(a)
        best = min(best, time.perf_counter() - t)
    return 2 * a.numel() * 4 / best / 1e9
