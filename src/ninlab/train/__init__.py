"""Training: TrainConfig and recipes, fit() with its callbacks, evaluation and its metrics.

This package knows nothing of files: `ninlab.runs` writes a run directory through fit()'s
callbacks and reads it back.
"""

from __future__ import annotations

from dataclasses import replace

import torch

from ninlab.data import Dataset
from ninlab.data.transforms import channel_stats
from ninlab.models import create_model
from ninlab.train.config import PRECISIONS, RECIPES, TrainConfig, resolve, validate
from ninlab.train.curves import PANELS, curve_figure, curves_figure, smoothed_loss_floor
from ninlab.train.distributed import (
    World,
    current_world,
    device_for,
    launch_local,
    precision_for,
    process_group,
)
from ninlab.train.evaluation import evaluate, predict_logits, to_input
from ninlab.train.loop import (
    Callback,
    Diverged,
    Interrupted,
    TrainState,
    fit,
    placement,
)
from ninlab.train.metrics import (
    confusion_figure,
    confusion_matrix,
    format_confusion,
    per_class_accuracy,
    precision_recall_f1,
)
from ninlab.train.optim import init_weights

__all__ = [
    "PANELS",
    "PRECISIONS",
    "RECIPES",
    "Callback",
    "Diverged",
    "Interrupted",
    "TrainConfig",
    "TrainState",
    "World",
    "build_model",
    "confusion_figure",
    "confusion_matrix",
    "current_world",
    "curve_figure",
    "curves_figure",
    "device_for",
    "evaluate",
    "fit",
    "format_confusion",
    "launch_local",
    "per_class_accuracy",
    "placement",
    "precision_for",
    "precision_recall_f1",
    "predict_logits",
    "prepare_config",
    "process_group",
    "resolve",
    "smoothed_loss_floor",
    "to_input",
    "validate",
]


def prepare_config(cfg: TrainConfig, data: Dataset) -> TrainConfig:
    """Fill in what comes from the data and the model: classes, channels, input size, mean/std.

    The input size is the model's default, except on a folder of images decoded at S px that
    is larger: a model with a pooling head (GAP) then trains at S itself. A folder run also
    records the size and mode the folder was decoded at, so that later reads match."""
    c, side = data.image_shape[0], data.image_shape[-1]
    model = create_model(cfg.model, num_classes=data.num_classes, in_chans=c)
    mean, std = cfg.mean, cfg.std
    if mean is None or std is None:
        n = min(cfg.limit_train or len(data.train_images), len(data.train_images))
        mean, std = channel_stats(data.train_images[:n])
    size = model.default_input_size[-1]
    if data.root is not None:
        cfg = replace(cfg, dataset=data.root, image_size=side, image_mode="L" if c == 1 else "RGB")
        size = max(size, side) if model.any_input_size else size
    return replace(
        cfg,
        classes=list(data.classes),
        in_chans=model.default_input_size[0] if cfg.in_chans is None else cfg.in_chans,
        input_size=cfg.input_size or size,
        mean=list(mean),
        std=list(std),
    )


def build_model(cfg: TrainConfig) -> torch.nn.Module:
    """The model of a prepared config, initialised from cfg.seed."""
    torch.manual_seed(cfg.seed)
    model = create_model(cfg.model, num_classes=len(cfg.classes), in_chans=cfg.in_chans)
    init_weights(model, cfg.init)
    return model
