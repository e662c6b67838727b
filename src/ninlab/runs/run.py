"""A trained run, loaded: its model with the weights and config it was trained with, and its
preprocessing, data set and history (`load_run`)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import nn

from ninlab.data import Dataset, load_dataset
from ninlab.errors import NinlabError
from ninlab.lock import DirLock
from ninlab.models import create_model_for
from ninlab.runs.converted import load_converted_run
from ninlab.runs.store import (
    CONFIG,
    WEIGHTS,
    load_state,
    q,
    read_config,
    read_facts,
    read_metrics,
    read_weights,
)
from ninlab.train import TrainConfig, predict_logits, to_input


def averaged(cfg: TrainConfig) -> str:
    """What eval, predict and report average for each image under the run's test-time
    augmentation, in words ("" for none: one forward pass; see ninlab.train.predict_logits)."""
    if cfg.tta_shift:
        flip = ", each with its mirror image" if cfg.tta_flip else ""
        return f"the probabilities of the image (counted twice) and of its four 1-px shifts{flip}"
    return "the logits of the image and of its mirror image" if cfg.tta_flip else ""


def probabilities_note(cfg: TrainConfig) -> str:
    """What the probabilities of `Run.probabilities` are, in words (predict and explore say it)."""
    if not averaged(cfg):
        return "(probabilities of one forward pass, as ninlab eval makes them)"
    kind = "shifts" if cfg.tta_shift else "flip"
    return f"(test-time {kind}, as in eval: {averaged(cfg)}, averaged)"


@dataclass
class Run:
    """A trained model with the config it was trained with."""

    path: Path
    model: nn.Module
    config: TrainConfig
    weights: Path  # the weights file loaded

    @property
    def classes(self) -> list[str]:
        return list(self.config.classes)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of the model input as trained."""
        return (self.config.in_chans, self.config.input_size, self.config.input_size)

    def preprocess(self, images: torch.Tensor, native: bool = False) -> torch.Tensor:
        """uint8 (N, C, H, W) images -> the float input this run's model was trained on:
        normalised and resized to the training size, or (native) normalised at their own size,
        for a model that takes any input size (`check_native`) or a convolutionalized one."""
        if not native:
            return to_input(images, self.config)
        return to_input(images, replace(self.config, input_size=tuple(images.shape[-2:])))

    def check_native(self) -> None:
        """One sentence when the model needs its training size (a Flatten + Linear head)."""
        if not getattr(self.model, "any_input_size", False):
            s = self.config.input_size
            raise NinlabError(
                f"{self.config.model} has a fully-connected head that takes only {s}x{s} "
                f"inputs, so it cannot run on an image at its own size; drop --native (the image "
                f"is then resized to {s}x{s})."
            )

    def probabilities(self, images: torch.Tensor) -> torch.Tensor:
        """Class probabilities (N, classes) of uint8 images, as evaluation computes them."""
        return torch.softmax(predict_logits(self.model, images, self.config), 1)

    def dataset(self, data_dir: str | None = None, name: str | None = None, log=None) -> Dataset:
        """The run's data set (or another one, `name`, with as many classes), looked for in
        data_dir first, then where the run found it; a folder is read as the run read it."""
        cfg = self.config
        data = load_dataset(name or cfg.dataset, data_dir=data_dir or cfg.data_dir,
                            folder=cfg.folder_options(), log=log)  # fmt: skip
        if data.num_classes != len(self.classes):
            raise NinlabError(
                f"{data.name} has {data.num_classes} classes but the run's model predicts "
                f"{len(self.classes)}; use a data set with the same classes."
            )
        return data

    def history(self) -> list[dict]:
        return read_metrics(self.path)

    def facts(self) -> list[dict]:
        return read_facts(self.path)


def load_run(run_dir: str | Path, weights: str = "best") -> Run:
    """Rebuild the model of a run directory and load its best (or final) weights; the other
    weights serve when the asked-for file is missing. A file written by `ninlab convert RUN_DIR`
    loads as that run with the converted model (`weights` does not apply; `path` is the file's
    folder)."""
    run_dir = Path(run_dir)
    if run_dir.is_file():
        model, config = load_converted_run(run_dir)
        return Run(path=run_dir.parent, model=model, config=config, weights=run_dir)
    config = read_config(run_dir)
    order = [WEIGHTS[weights]] + [w for w in WEIGHTS.values() if w != WEIGHTS[weights]]
    path = next((run_dir / w for w in order if (run_dir / w).is_file()), None)
    if path is None:
        owner = DirLock(run_dir).owner()
        if owner is not None and owner.alive() is not False:
            raise NinlabError(
                f"{run_dir} has no weights yet: it is training its first epoch now (process "
                f"{owner.pid} on {owner.host}, since {owner.since}); wait for that epoch to end."
            )
        raise NinlabError(
            f"{run_dir} has no weights ({' or '.join(WEIGHTS.values())}); train it first "
            f"or resume it with `ninlab train --resume {q(run_dir)}`."
        )
    meta, state = read_weights(path)  # first: the model's size from config.json must fit them
    model = create_model_for(state, run_dir / CONFIG, config.model,
                             num_classes=len(config.classes), in_chans=config.in_chans)  # fmt: skip
    load_state(model, meta, state, path, config.model)
    return Run(path=run_dir, model=model.eval(), config=config, weights=path)
