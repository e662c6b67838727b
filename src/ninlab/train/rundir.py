"""Writes a run directory as training goes (layout in ninlab.runs): config, metrics, curves,
weights and an atomic checkpoint at each epoch end and on interrupt."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import torch

from ninlab.runs import atomic_write, save_weights
from ninlab.train.loop import Callback, TrainState

METRICS = ("epoch", "train_loss", "train_acc", "test_loss", "test_acc", "lr", "train_time",
           "eval_time", "elapsed", "images_per_s")  # fmt: skip


class RunWriter(Callback):
    def __init__(self, out: Path):
        self.out = Path(out)

    def write_config(self, config: dict) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        text = json.dumps(config, indent=2)
        atomic_write(self.out / "config.json", lambda tmp: Path(tmp).write_text(text))

    def on_epoch_end(self, state: TrainState) -> None:
        cfg = state.config.to_dict()
        self._write_metrics(state.history)
        plot_curves(state.history, self.out / "curves.png")
        save_weights(state.model, self.out / "final.safetensors", cfg)
        best = max(state.history, key=lambda r: r["test_acc"])
        if best is state.history[-1]:
            save_weights(state.model, self.out / "best.safetensors", cfg)
        self.save_checkpoint(state)

    def on_interrupt(self, state: TrainState) -> None:
        self.save_checkpoint(state)

    def save_checkpoint(self, state: TrainState) -> None:
        ckpt = state.checkpoint()
        atomic_write(self.out / "checkpoint.pt", lambda tmp: torch.save(ckpt, tmp))

    def _write_metrics(self, history: list[dict]) -> None:
        def write_csv(tmp):
            with open(tmp, "w", newline="") as f:
                w = csv.DictWriter(f, fieldnames=METRICS, extrasaction="ignore")
                w.writeheader()
                w.writerows(history)

        atomic_write(self.out / "metrics.csv", write_csv)
        lines = "".join(json.dumps({k: r[k] for k in METRICS}) + "\n" for r in history)
        atomic_write(self.out / "metrics.jsonl", lambda tmp: Path(tmp).write_text(lines))


def plot_curves(history: list[dict], path: Path) -> None:
    """Train and test loss, and test accuracy, by epoch (two panels)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [r["epoch"] for r in history]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.5))
    ax1.plot(
        epochs, [r["train_loss"] for r in history], "o-", label="train loss (augmented, smoothed)"
    )
    ax1.plot(epochs, [r["test_loss"] for r in history], "s-", label="test loss")
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("cross-entropy")
    ax1.legend()
    ax1.grid(alpha=0.3)
    ax2.plot(epochs, [100 * r["test_acc"] for r in history], "o-", color="tab:green")
    ax2.set_xlabel("epoch")
    ax2.set_ylabel("test accuracy (%)")
    ax2.grid(alpha=0.3)
    best = max(history, key=lambda r: r["test_acc"])
    ax2.set_title(f"best {100 * best['test_acc']:.2f}% (epoch {best['epoch']})", fontsize=10)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=100, format="png"))
    plt.close(fig)
