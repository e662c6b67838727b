"""A run directory: what `ninlab train` writes and every other verb reads.

RUN_DIR/config.json        the resolved TrainConfig (model, dataset, input size, mean/std, ...)
RUN_DIR/metrics.csv|jsonl  one row per epoch
RUN_DIR/curves.png         losses and accuracy by epoch
RUN_DIR/final.safetensors  weights after the last epoch   } metadata: model name, config
RUN_DIR/best.safetensors   weights of the best test epoch }
RUN_DIR/checkpoint.pt      optimizer, scheduler and RNG states, for --resume
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file
from torch import nn

from ninlab.data.transforms import resize, to_channels, to_float
from ninlab.errors import NinlabError
from ninlab.models import create_model

WEIGHTS = ("best.safetensors", "final.safetensors")


@dataclass
class Run:
    """A trained model with the config it was trained with."""

    path: Path
    model: nn.Module
    config: dict
    weights: Path

    @property
    def classes(self) -> list[str]:
        return self.config["classes"]

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (N, C, H, W) images -> the float input this run's model was trained on."""
        return preprocess(images, self.config)


def preprocess(images: torch.Tensor, config: dict) -> torch.Tensor:
    """Resize, normalise and match channels exactly as training did (config: input_size, mean, std,
    in_chans)."""
    x = to_float(images, config["mean"], config["std"])
    x = resize(x, config["input_size"])
    return to_channels(x, config["in_chans"])


def atomic_write(path: Path, write) -> None:
    """Write through a temporary file in the same folder, fsync, then rename: never half a file."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give what open() would
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def save_weights(model: nn.Module, path: Path, config: dict) -> None:
    """Weights as safetensors with the model name and the config in the metadata."""
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    meta = {"model": config["model"], "config": json.dumps(config)}
    atomic_write(path, lambda tmp: save_file(state, tmp, metadata=meta))


def read_config(run_dir: str | Path) -> dict:
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise NinlabError(f"run directory {run_dir} does not exist; pass the --out of a train run.")
    cfg = run_dir / "config.json"
    if not cfg.is_file():
        raise NinlabError(f"{run_dir} has no config.json; it is not a ninlab run directory.")
    try:
        return json.loads(cfg.read_text())
    except json.JSONDecodeError as e:
        raise NinlabError(f"{cfg} is not valid JSON ({e}); the run directory is damaged.") from None


def load_run(run_dir: str | Path, which: str = "best") -> Run:
    """Rebuild the model of a run directory and load its best (or final) weights."""
    run_dir = Path(run_dir)
    config = read_config(run_dir)
    order = [f"{which}.safetensors"] + [w for w in WEIGHTS if w != f"{which}.safetensors"]
    path = next((run_dir / w for w in order if (run_dir / w).is_file()), None)
    if path is None:
        raise NinlabError(
            f"{run_dir} has no weights (best.safetensors or final.safetensors); train it first "
            f"or resume it with `ninlab train --resume {run_dir}`."
        )
    model = create_model(
        config["model"], num_classes=len(config["classes"]), in_chans=config["in_chans"]
    )
    load_weights(model, path, config["model"])
    model.eval()
    return Run(path=run_dir, model=model, config=config, weights=path)


def _some(names: list[str], most: int = 5) -> str:
    shown = ", ".join(names[:most])
    return shown if len(names) <= most else f"{shown}, ... ({len(names)} in all)"


def load_weights(model: nn.Module, path: Path, model_name: str) -> None:
    """Load safetensors weights, naming the tensors that do not fit the model."""
    try:
        with safe_open(str(path), "pt") as f:
            saved_name = (f.metadata() or {}).get("model")
        state = load_file(str(path))
    except (SafetensorError, OSError) as e:
        raise NinlabError(f"{path} cannot be read as safetensors ({e}).") from None
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or unexpected or wrong:
        parts = []
        if wrong:
            parts.append(
                "shapes differ for "
                + ", ".join(
                    f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in wrong[:5]
                )
            )
        if missing:
            parts.append(f"missing {_some(missing)}")
        if unexpected:
            parts.append(f"unexpected {_some(unexpected)}")
        saved = f" (saved from {saved_name})" if saved_name else ""
        raise NinlabError(f"{path}{saved} does not fit model {model_name}: {'; '.join(parts)}.")
    model.load_state_dict(state)
