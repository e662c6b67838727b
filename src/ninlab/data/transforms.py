"""Batched image transforms on tensors, run on the training device (no per-sample Python loop).

Every function takes a batch (N, C, H, W) and, where random, a torch.Generator so that a seed
fixes the result.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def to_device(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A small CPU tensor (random draws) on `device`; to a GPU through pinned memory and without
    waiting, so that the training loop never blocks on the copy."""
    if device.type != "cuda":
        return t.to(device)
    return t.contiguous().pin_memory().to(device, non_blocking=True)


def to_float(images: torch.Tensor, mean: float | list[float], std: float | list[float]):
    """uint8 [0, 255] -> float32 (x / 255 - mean) / std, per channel."""
    c = images.shape[1]
    mean_t = torch.as_tensor(mean, dtype=torch.float32, device=images.device).reshape(-1, 1, 1)
    std_t = torch.as_tensor(std, dtype=torch.float32, device=images.device).reshape(-1, 1, 1)
    mean_t, std_t = mean_t.expand(c, 1, 1), std_t.expand(c, 1, 1)
    return (images.float() / 255.0 - mean_t) / std_t


def channel_stats(images: torch.Tensor) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of uint8 images, on the [0, 1] scale.

    The sums are of whole numbers below 2**53 in float64, hence exact: the result does not depend
    on the thread count or the summation order (a resumed run sees the same normalisation).
    """
    s = torch.zeros(images.shape[1], dtype=torch.float64)
    ss = torch.zeros_like(s)
    for i in range(0, len(images), 4096):  # bounded memory on 50,000 x 3 x 32 x 32
        x = images[i : i + 4096].to("cpu", torch.float64)
        s += x.sum(dim=(0, 2, 3))
        ss += (x * x).sum(dim=(0, 2, 3))
    n = images.numel() // images.shape[1]
    mean = s / n
    var = (ss - s * mean) / max(n - 1, 1)
    return (mean / 255).tolist(), (var.clamp_min(0).sqrt() / 255).tolist()


def resize(x: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of a float batch (no-op when the size already matches)."""
    size = (size, size) if isinstance(size, int) else tuple(size)
    if tuple(x.shape[-2:]) == size:
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=False)


def shift(images: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """Every image moved dy px down and dx px right (negative: up, left), the uncovered edge
    filled with 0: black, for uint8 images."""
    h, w = images.shape[-2:]
    out = torch.zeros_like(images)
    out[..., max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = images[
        ..., max(-dy, 0) : h - max(dy, 0), max(-dx, 0) : w - max(dx, 0)
    ]
    return out


def random_translate(
    x: torch.Tensor,
    max_shift: int,
    generator: torch.Generator | None = None,
    of: int | None = None,
    part: slice = slice(None),
):
    """Shift each image by its own (dy, dx) in [-max_shift, max_shift], filling with zeros.

    Done as one gather: pad by max_shift, then index rows dy..dy+H and columns dx..dx+W per image.
    When x is `part` of a batch of `of` images, the shifts are drawn for the whole batch and x
    gets its part's, so the result does not depend on how a batch is split between processes.
    """
    if max_shift <= 0:
        return x
    n, c, h, w = x.shape
    s = max_shift
    padded = F.pad(x, (s, s, s, s))
    off = to_device(
        torch.randint(0, 2 * s + 1, (2, of or n), generator=generator)[:, part], x.device
    )
    rows = (off[0, :, None] + torch.arange(h, device=x.device))[:, None, :, None]  # N 1 H 1
    cols = (off[1, :, None] + torch.arange(w, device=x.device))[:, None, None, :]  # N 1 1 W
    batch = torch.arange(n, device=x.device)[:, None, None, None]
    chan = torch.arange(c, device=x.device)[None, :, None, None]
    return padded[batch, chan, rows, cols]


def random_flip(
    x: torch.Tensor,
    generator: torch.Generator | None = None,
    p: float = 0.5,
    of: int | None = None,
    part: slice = slice(None),
):
    """Mirror each image left-right with probability p (drawn for a batch of `of`, as above)."""
    flip = to_device((torch.rand(of or x.shape[0], generator=generator) < p)[part], x.device)
    return torch.where(flip[:, None, None, None], x.flip(-1), x)


def random_erase(
    x: torch.Tensor,
    size: int,
    generator: torch.Generator | None = None,
    of: int | None = None,
    part: slice = slice(None),
):
    """Cutout (DeVries & Taylor 2017, arXiv:1708.04552): set a size x size square around a random
    centre of each image to 0 (the mean, after normalisation), clipped at the borders. One mask
    for the whole batch, built by comparing row and column indices with each image's centre."""
    if size <= 0:
        return x
    n, _, h, w = x.shape
    centre = torch.rand(2, of or n, generator=generator)[:, part]  # (row, column) in [0, 1)
    cy = to_device((centre[0] * h).long(), x.device)
    cx = to_device((centre[1] * w).long(), x.device)
    lo = size // 2  # rows cy - lo .. cy - lo + size - 1
    rows = torch.arange(h, device=x.device)[None, :] - (cy[:, None] - lo)  # N x H
    cols = torch.arange(w, device=x.device)[None, :] - (cx[:, None] - lo)  # N x W
    inside_r, inside_c = (rows >= 0) & (rows < size), (cols >= 0) & (cols < size)
    keep = ~(inside_r[:, :, None] & inside_c[:, None, :])  # N x H x W
    return x * keep[:, None].to(x.dtype)


def to_channels(x: torch.Tensor, channels: int) -> torch.Tensor:
    """Match a batch's channel count to a model's: 1 -> 3 by repetition, 3 -> 1 by luminance."""
    c = x.shape[1]
    if c == channels:
        return x
    if c == 1:
        return x.expand(-1, channels, -1, -1).contiguous()
    if channels == 1 and c >= 3:
        weights = torch.tensor([0.299, 0.587, 0.114], device=x.device, dtype=x.dtype)
        return (x[:, :3] * weights[None, :, None, None]).sum(1, keepdim=True)
    raise ValueError(f"cannot convert {c} channels to {channels}")
