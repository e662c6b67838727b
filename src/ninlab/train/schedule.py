"""How many images a step takes and how many epochs a run lasts, chosen from the number of
training images where the user (and the recipe's file) left them unset.

The fast recipe's batch 128 x 10 epochs was tuned on Fashion-MNIST's 60,000 images: 4,690
optimizer steps. On a folder of 162 images the same recipe is 2 steps an epoch and 20 in all,
too few for the weights and the batch-norm statistics to settle: three classes of simple shapes
stayed at chance (33.33%). Measured, a run wants about MIN_STEPS steps and the recipe's epochs
over the data, and a smaller batch gives more steps for the same images seen. So the rule keeps
the recipe's epochs and halves the batch until they make MIN_STEPS steps; at MIN_BATCH it adds
epochs instead. The full Fashion-MNIST already has more steps, and keeps the recipe's batch
and epochs.

The rule reads only the number of training images (after --limit-train), the recipe's values and
the number of processes, so every process of a torchrun computes the same, and a folder of N
images gets the schedule of the built-in set at --limit-train N. A run records the values chosen
in config.json, so `--resume` keeps them.

Evidence (docs/your-images.md has the whole sweep and `python bench/wild_folders.py`): `fit` on
the first 500 and 2,000 Fashion-MNIST training images, final accuracy on the first 2,000 test
images, 2 CPU cores, torch 2.13.0+cpu, seed 0 (and 1). 500 images: the recipe's 40 steps 78.30%;
320 steps 81.55-82.60%; 630-640 steps 82.05% and 81.20% at batch 8 x 10 epochs, 83.15% and
83.15% at 16 x 20, 82.75% at 32 x 40; 1,260-1,280 steps 82.60-83.85%. 2,000 images: the recipe's
160 steps 85.55%; 315 steps (32 x 5) 85.30%; 630 (32 x 10) 87.45% and 87.25%; 1,260 (32 x 20)
87.90%. A peak lr of 0.025 or 0.1 did no better than the recipe's 0.05.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable
from dataclasses import replace

from ninlab.train.config import RECIPES, TrainConfig

ADAPTABLE = ("batch_size", "epochs")  # the fields the rule may choose
MIN_STEPS = 600  # steps a run should have at least (Evidence: twice as many gain < 1 point)
MIN_BATCH = 16  # the batch is not halved below this (Evidence: 8 lost 1.5 points to 16)


def free_fields(recipe: str, given: Iterable[str]) -> tuple[str, ...]:
    """The fields of ADAPTABLE that `adapt_schedule` may choose: those neither the user set
    (`given`: the options on the command line) nor the recipe's file sets (seed and d2l fix
    their batch and epochs, as published; long its 32 epochs)."""
    fixed = set(given) | set(RECIPES.get(recipe, {}))
    return tuple(f for f in ADAPTABLE if f not in fixed)


def adapt_schedule(
    cfg: TrainConfig, n_train: int, free: Collection[str] = ADAPTABLE, world_size: int = 1
) -> tuple[TrainConfig, str | None]:
    """The config with the fields of `free` (batch_size, epochs) chosen for `n_train` training
    images, and the line that says what and why (None when nothing changed).

    batch = the largest power of two <= n_train x cfg.epochs / MIN_STEPS, within
    MIN_BATCH..cfg.batch_size (and a multiple of `world_size`); epochs = the least number, at
    least cfg.epochs, that makes MIN_STEPS steps of that batch. With the fast recipe's 128 x 10:
    162 images, batch 16 and 55 epochs of 11 steps; 500 images, batch 16 and 19 epochs of 32
    steps; 2,000 images, batch 32 and 10 epochs of 63 steps; 60,000 images, batch 128 and 10
    epochs of 469 steps, as the recipe says."""
    batch, epochs = cfg.batch_size, cfg.epochs
    if "batch_size" in free:
        fits = n_train * cfg.epochs / MIN_STEPS  # the batch that gives MIN_STEPS in cfg.epochs
        batch = min(cfg.batch_size, max(MIN_BATCH, 2 ** math.floor(math.log2(max(fits, 1)))))
        batch = max(world_size, batch // world_size * world_size)  # each process an equal share
    per_epoch = math.ceil(n_train / batch)
    if "epochs" in free:
        epochs = max(cfg.epochs, math.ceil(MIN_STEPS / per_epoch))
    if (batch, epochs) == (cfg.batch_size, cfg.epochs):
        return cfg, None
    was = {k: f" (not {v})" if v != now else "" for k, v, now in
           (("batch", cfg.batch_size, batch), ("epochs", cfg.epochs, epochs))}  # fmt: skip
    line = (f"schedule: {n_train:,} training images, so batch {batch}{was['batch']} and {epochs} "
            f"epoch{'s' * (epochs != 1)}{was['epochs']}: {epochs * per_epoch:,} steps (at least "
            f"{MIN_STEPS:,} wanted)")  # fmt: skip
    return replace(cfg, batch_size=batch, epochs=epochs), line
