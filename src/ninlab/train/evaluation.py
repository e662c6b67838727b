"""From uint8 images to model inputs, logits and test figures, on one process or sharded over
several (see ninlab.train.distributed)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ninlab.data import (
    random_erase,
    random_flip,
    random_translate,
    resize,
    shift,
    to_channels,
    to_float,
)
from ninlab.progress import bar as progress_bar
from ninlab.train.config import TrainConfig
from ninlab.train.distributed import ONE, World, autocast


def to_input(
    images: torch.Tensor,
    cfg: TrainConfig,
    gen: torch.Generator | None = None,
    part: slice = slice(None),
) -> torch.Tensor:
    """uint8 batch -> model input: normalise, resize, augment (when gen is given), channels.

    Returns `part` of the batch; the augmentation is drawn for the whole batch first, so a process
    that holds a slice of a global batch gets exactly the images one process would."""
    x = to_float(images[part], cfg.mean, cfg.std)
    x = resize(x, cfg.input_size)
    if gen is not None:
        x = random_translate(x, cfg.translate, gen, of=len(images), part=part)
        if cfg.flip:
            x = random_flip(x, gen, of=len(images), part=part)
        x = random_erase(x, cfg.cutout, gen, of=len(images), part=part)
    x = to_channels(x, cfg.in_chans)
    if cfg.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return x


@torch.inference_mode()
def predict_logits(
    model: nn.Module,
    images: torch.Tensor,
    cfg: TrainConfig,
    device=None,
    world: World = ONE,
    progress: bool = False,
) -> torch.Tensor:
    """Logits for uint8 images in batches (averaged with the mirror image's when cfg.tta_flip;
    with cfg.tta_shift, the log of the probabilities averaged over SHIFTS, whose softmax is
    that average).

    With several processes each computes its share and a sum gives every rank all the logits.
    On CUDA the forward runs under the run's autocast; on the CPU always in fp32. progress: a
    bar on a terminal (rank 0)."""
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    part = world.part(len(images))
    own = images[part]
    out = []
    bar = progress_bar(len(images), "testing", "img", progress and world.main)
    with bar, autocast(cfg.precision, device, training=False):
        for i in range(0, len(own), cfg.eval_batch_size):
            batch = own[i : i + cfg.eval_batch_size].to(device)
            if cfg.tta_shift:
                logits = _shift_averaged(model, batch, cfg)
            else:
                logits = _logits(model, to_input(batch, cfg), cfg)
            out.append(logits)
            bar.update(len(batch) * world.size)
    model.train(was_training)
    logits = torch.cat(out) if out else torch.zeros(0, 0, device=device)
    if world.size == 1:
        return logits
    classes = world.max(torch.tensor([logits.shape[-1]], device=device)).item()
    full = torch.zeros(len(images), classes, device=device)
    full[part] = logits.reshape(-1, classes)
    return world.sum(full)


def _logits(model: nn.Module, x: torch.Tensor, cfg: TrainConfig) -> torch.Tensor:
    logits = model(x)
    if cfg.tta_flip:
        logits = (logits + model(x.flip(-1))) / 2
    return logits.float()


# test-time shifts (cfg.tta_shift): (dy, dx, weight); the image itself counts twice
SHIFTS = ((0, 0, 2.0), (-1, 0, 1.0), (1, 0, 1.0), (0, -1, 1.0), (0, 1, 1.0))


def _shift_averaged(model: nn.Module, images: torch.Tensor, cfg: TrainConfig) -> torch.Tensor:
    """log(sum_s w_s softmax(logits(shift_s(images))) / sum_s w_s), as one logsumexp (no log 0):
    each shift moves the uint8 images by one pixel and fills the edge with black."""
    terms = [math.log(w) + _logits(model, to_input(shift(images, dy, dx), cfg), cfg).log_softmax(1)
             for dy, dx, w in SHIFTS]  # fmt: skip
    return torch.stack(terms).logsumexp(0) - math.log(sum(w for _, _, w in SHIFTS))


def evaluate(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    cfg: TrainConfig,
    world: World = ONE,
    progress: bool = False,
) -> dict:
    """Test loss (plain cross-entropy), accuracy and predictions on uint8 images (every rank
    gets the same figures)."""
    logits = predict_logits(model, images, cfg, world=world, progress=progress)
    labels = labels.to(logits.device)
    preds = logits.argmax(1)
    return {
        "loss": F.cross_entropy(logits, labels).item(),
        "acc": (preds == labels).float().mean().item(),
        "preds": preds.cpu(),
        "logits": logits.cpu(),
    }
