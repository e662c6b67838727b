"""Training: TrainConfig and its recipes (data files in recipes/), the schedule a small training
set gets, fit() with its callbacks, evaluation and its metrics.

This package knows nothing of files: `ninlab.runs` writes a run directory through fit()'s
callbacks and reads it back.
"""

from __future__ import annotations

import torch

from ninlab.models import create_model
from ninlab.train.config import (
    PRECISIONS,
    RECIPES,
    TrainConfig,
    prepare_config,
    resolve,
    validate,
)
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
from ninlab.train.schedule import adapt_schedule, free_fields

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
    "adapt_schedule",
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
    "free_fields",
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


def build_model(cfg: TrainConfig) -> torch.nn.Module:
    """The model of a prepared config, initialised from cfg.seed."""
    torch.manual_seed(cfg.seed)
    model = create_model(cfg.model, num_classes=len(cfg.classes), in_chans=cfg.in_chans)
    init_weights(model, cfg.init)
    return model
