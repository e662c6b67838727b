"""How long an epoch will take here, said before it starts, so that a slow run (the classic
recipe at 224 px on a CPU: minutes per epoch) says so in its first lines, not after minutes of
silence.

Measured, not guessed: two training steps of a copy of the model on the first batch (the second
timed: the first pays for kernel selection and allocation) and one test batch, then scaled by the
steps per epoch and the test batches. The copy has its own optimizer and the global random state
is restored afterwards, so the run trains exactly as it would without the estimate.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import replace

import torch
import torch.nn.functional as F
from torch import nn

from ninlab.train.config import TrainConfig
from ninlab.train.distributed import autocast
from ninlab.train.evaluation import predict_logits, to_input
from ninlab.train.optim import make_optimizer


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def epoch_seconds(
    model: nn.Module,
    cfg: TrainConfig,
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    n_test: int,
    test_x: torch.Tensor,
) -> tuple[float, float]:
    """(seconds of training per epoch, seconds per test pass) of `model` with `cfg` on this
    device: one timed step x steps per epoch, one timed test batch x test batches."""
    device = next(model.parameters()).device
    twin = copy.deepcopy(model).train()
    optimizer = make_optimizer(twin, cfg)
    batch = min(cfg.batch_size, len(train_x))
    cuda = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):
        gen = torch.Generator(device=train_x.device).manual_seed(0)
        x, y = to_input(train_x[:batch], cfg, gen), train_y[:batch]
        for _ in range(2):
            _sync(device)
            start = time.perf_counter()
            with autocast(cfg.precision, device):
                loss = F.cross_entropy(twin(x), y, label_smoothing=cfg.label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            _sync(device)
            step = time.perf_counter() - start
        test = test_x[: min(cfg.eval_batch_size, n_test)]
        _sync(device)
        start = time.perf_counter()
        # one pass, as every epoch's test but the last takes under tta_shift
        predict_logits(twin, test, replace(cfg, tta_shift=False), device)
        _sync(device)
        per_batch = time.perf_counter() - start
    steps = math.ceil(len(train_x) / cfg.batch_size)
    return step * steps, per_batch * math.ceil(n_test / max(len(test), 1))


def estimate_line(seconds: tuple[float, float]) -> str:
    """What fit() logs: "about 1 min 52 s per epoch here (1 min 45 s training, 7 s testing:
    timed)"."""
    train, test = seconds
    return (
        f"about {_duration(train + test)} per epoch here ({_duration(train)} training, "
        f"{_duration(test)} testing: timed)"
    )


def _duration(s: float) -> str:
    if s < 10:
        return f"{s:.1f} s"
    if s < 90:
        return f"{s:.0f} s"
    m, s = divmod(round(s), 60)
    return f"{m} min {s} s" if m < 60 else f"{m // 60} h {m % 60} min"
