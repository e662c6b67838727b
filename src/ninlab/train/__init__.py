"""Training: TrainConfig and recipes, fit(), evaluation, and the run directory it writes."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import torch

from ninlab.data import Dataset, load_dataset
from ninlab.data.transforms import channel_stats
from ninlab.errors import NinlabError
from ninlab.models import create_model
from ninlab.train.config import RECIPES, TrainConfig, resolve, validate
from ninlab.train.loop import (
    Callback,
    Diverged,
    Interrupted,
    TrainState,
    evaluate,
    fit,
    init_weights,
    pick_device,
    predict_logits,
    to_input,
)
from ninlab.train.rundir import RunWriter, plot_curves

__all__ = [
    "RECIPES",
    "Callback",
    "Diverged",
    "Interrupted",
    "RunWriter",
    "TrainConfig",
    "TrainState",
    "build_model",
    "evaluate",
    "fit",
    "plot_curves",
    "predict_logits",
    "prepare_config",
    "resolve",
    "to_input",
    "train",
    "validate",
]


def prepare_config(cfg: TrainConfig, data: Dataset) -> TrainConfig:
    """Fill in what comes from the data and the model: classes, channels, input size, mean/std."""
    c = data.image_shape[0]
    model = create_model(cfg.model, num_classes=data.num_classes, in_chans=c)
    mean, std = cfg.mean, cfg.std
    if mean is None or std is None:
        n = min(cfg.limit_train or len(data.train_images), len(data.train_images))
        mean, std = channel_stats(data.train_images[:n])
    return replace(
        cfg,
        classes=list(data.classes),
        in_chans=model.default_input_size[0] if cfg.in_chans is None else cfg.in_chans,
        input_size=cfg.input_size or model.default_input_size[-1],
        mean=list(mean),
        std=list(std),
    )


def build_model(cfg: TrainConfig) -> torch.nn.Module:
    """The model of a prepared config, initialised from cfg.seed."""
    torch.manual_seed(cfg.seed)
    model = create_model(cfg.model, num_classes=len(cfg.classes), in_chans=cfg.in_chans)
    init_weights(model, cfg.init)
    return model


def default_out(cfg: TrainConfig) -> Path:
    return Path("runs") / f"{cfg.model}-{cfg.dataset}-{time.strftime('%Y%m%d-%H%M%S')}"


def train(cfg: TrainConfig, out: str | Path | None = None, progress: bool = True, log=print):
    """Train from a config into a new run directory; returns (history, run directory)."""
    data = load_dataset(cfg.dataset, data_dir=cfg.data_dir)
    cfg = prepare_config(cfg, data)
    out = Path(out) if out else default_out(cfg)
    if (out / "checkpoint.pt").exists() or (out / "final.safetensors").exists():
        raise NinlabError(
            f"{out} already holds a run; continue it with `ninlab train --resume {out}` or "
            "pass another --out."
        )
    writer = RunWriter(out)
    writer.write_config(cfg.to_dict())
    model = build_model(cfg)
    if log:
        params = sum(p.numel() for p in model.parameters())
        log(
            f"{cfg.model} ({params:,} parameters) on {cfg.dataset}: "
            f"{min(cfg.limit_train or 10**12, len(data.train_images)):,} train / "
            f"{len(data.test_images):,} test images at {cfg.input_size} px, recipe {cfg.recipe}, "
            f"{cfg.epochs} epochs, device {pick_device(cfg.device)}, "
            f"{torch.get_num_threads() if not cfg.threads else cfg.threads} threads; run in {out}"
        )
    history = fit(model, data, cfg, callbacks=[writer], progress=progress, log=log)
    return history, out


def resume(run_dir: str | Path, device: str | None = None, progress: bool = True, log=print):
    """Continue an interrupted run from its checkpoint.pt; returns (history, run directory)."""
    run_dir = Path(run_dir)
    ckpt_path = run_dir / "checkpoint.pt"
    if not ckpt_path.is_file():
        raise NinlabError(f"{run_dir} has no checkpoint.pt to resume from.")
    try:
        ckpt = torch.load(ckpt_path, weights_only=True, map_location="cpu")
    except Exception as e:  # a damaged file: say which and why, keep the run as it is
        raise NinlabError(f"{ckpt_path} cannot be read ({e}).") from None
    cfg = TrainConfig.from_dict(ckpt["config"])
    if device:
        cfg = replace(cfg, device=device)
    if ckpt["epoch"] >= cfg.epochs:
        raise NinlabError(f"{run_dir} already finished its {cfg.epochs} epochs.")
    data = load_dataset(cfg.dataset, data_dir=cfg.data_dir)
    model = create_model(cfg.model, num_classes=len(cfg.classes), in_chans=cfg.in_chans)
    if log:
        log(f"resuming {run_dir} at epoch {ckpt['epoch'] + 1}, step {ckpt['step']}")
    history = fit(
        model, data, cfg, callbacks=[RunWriter(run_dir)], resume=ckpt, progress=progress, log=log
    )
    return history, run_dir
