"""The optimizer, the learning-rate schedule and the initialisation a TrainConfig names."""

from __future__ import annotations

import torch
from torch import nn

from ninlab.train.config import TrainConfig


def make_optimizer(model: nn.Module, cfg: TrainConfig):
    """Weight decay on conv/linear weights only (not on biases or batch-norm parameters); frozen
    parameters (a fitted whitening layer's) are left out."""
    trained = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in trained if p.dim() > 1]
    no_decay = [p for p in trained if p.dim() <= 1]
    groups = [
        {"params": decay, "weight_decay": cfg.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr)
    return torch.optim.SGD(
        groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov and cfg.momentum > 0
    )


def make_scheduler(optimizer, cfg: TrainConfig, total_steps: int):
    """'onecycle': lr rises linearly from 0 over the warm-up, then falls linearly to 0."""
    if cfg.schedule == "constant":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    warm = max(1, round(cfg.warmup * total_steps))

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        return max(0.0, (total_steps - step) / max(1, total_steps - warm))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def init_weights(model: nn.Module, kind: str) -> None:
    if kind == "xavier":
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
