"""Training by epoch as pictures: loss, accuracy, learning rate and throughput, from the rows of
metrics (one dict per epoch, the fields of `ninlab.runs.METRICS`), labelled from the run's config.

The train loss is the mean over an epoch's batches while the weights still change, on the
training images as the config transforms them (augmentation) and against smoothed labels; the
test loss is plain cross-entropy of the epoch's last weights on the test images. With label
smoothing ε over K classes the train loss cannot go below `smoothed_loss_floor(ε, K)`, so a train
loss above the test loss says nothing about over- or under-fitting by itself.
"""

from __future__ import annotations

import math
import statistics
import textwrap

from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ninlab.plotting import figure
from ninlab.train.config import TrainConfig

PANELS = ("loss", "accuracy", "lr", "speed")  # the panels, in the order curves_figure draws them


def smoothed_loss_floor(smoothing: float, classes: int) -> float:
    """The least cross-entropy any model reaches against labels smoothed by ε over K classes:
    the entropy of the target q (PyTorch's label_smoothing: q_true = 1 - ε + ε/K, others ε/K),
    H(q) = -q_true ln q_true - (K - 1) (ε/K) ln(ε/K). For ε = 0.1, K = 10: 0.500."""
    if smoothing <= 0 or classes < 2:
        return 0.0
    other = smoothing / classes
    true = 1 - smoothing + other
    return -true * math.log(true) - (classes - 1) * other * math.log(other)


def train_loss_label(cfg: TrainConfig | None) -> str:
    """What the train loss was measured on, from the config ("train loss" without one)."""
    if cfg is None:
        return "train loss"
    aug = cfg.augmentation() or "no augmentation"
    smooth = f"label smoothing {cfg.label_smoothing:g}" if cfg.label_smoothing else "no smoothing"
    return f"train loss ({aug}; {smooth})"


def _series(history: list[dict], key: str) -> tuple[list[int], list[float]]:
    """(epochs, values) of the rows that recorded `key` (older runs lack some fields)."""
    rows = [r for r in history if isinstance(r.get(key), int | float)]
    return [r["epoch"] for r in rows], [float(r[key]) for r in rows]


def _title(ax, text: str, width: int = 52) -> None:
    ax.set_title(textwrap.fill(text, width), fontsize=10)


def _missing(ax, what: str) -> None:
    ax.text(0.5, 0.5, f"{what}: not recorded by this run", ha="center", va="center",
            transform=ax.transAxes, fontsize=10)  # fmt: skip
    ax.axis("off")


def draw_loss(ax, history: list[dict], cfg: TrainConfig | None = None) -> None:
    ax.plot(*_series(history, "train_loss"), "o-", label=textwrap.fill(train_loss_label(cfg), 40))
    ax.plot(*_series(history, "test_loss"), "s-", label="test loss (plain cross-entropy)")
    floor = smoothed_loss_floor(cfg.label_smoothing, len(cfg.classes)) if cfg else 0.0
    if floor > 0:
        ax.axhline(floor, color="gray", linestyle=":", label=f"least smoothed loss ({floor:.2f})")
    ax.set_xlabel("epoch")
    ax.set_ylabel("cross-entropy")
    ax.legend(fontsize=9)
    ax.grid(alpha=0.3)
    _title(ax, "loss: train is the mean over each epoch's batches; test, at its end")


def draw_accuracy(ax, history: list[dict], cfg: TrainConfig | None = None) -> None:
    epochs, train = _series(history, "train_acc")
    if train:
        ax.plot(epochs, [100 * a for a in train], "o-", label="train (the train loss's batches)")
    epochs, test = _series(history, "test_acc")
    ax.plot(epochs, [100 * a for a in test], "s-", label="test")
    ax.set_xlabel("epoch")
    ax.set_ylabel("accuracy (%)")
    ax.legend(fontsize=9)
    ax.grid(alpha=0.3)
    if test:
        k = max(range(len(test)), key=lambda i: (test[i], -i))  # the earlier epoch on a tie
        ax.plot([epochs[k]], [100 * test[k]], "*", color="black", markersize=12)
        _title(ax, f"accuracy; best test {100 * test[k]:.2f}% (epoch {epochs[k]}, the star)")


def _one_series(ax, history: list[dict], key: str, label: str, colour: str) -> list[float]:
    """One field by epoch on an axis from 0; its values (none: the panel says so)."""
    epochs, values = _series(history, key)
    if not values:
        _missing(ax, label)
        return values
    ax.plot(epochs, values, "o-", color=colour)
    ax.set_xlabel("epoch")
    ax.set_ylabel(label)
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    return values


def draw_lr(ax, history: list[dict], cfg: TrainConfig | None = None) -> None:
    if not _one_series(ax, history, "lr", "learning rate", "tab:purple"):
        return
    how = ""
    if cfg is not None:
        how = f"; {cfg.schedule}, peak {cfg.lr:g}"
        if cfg.schedule == "onecycle":
            how += f" after {100 * cfg.warmup:g}% of the steps"
    _title(ax, f"learning rate at each epoch's end{how}")


def draw_speed(ax, history: list[dict], cfg: TrainConfig | None = None) -> None:
    rate = _one_series(ax, history, "images_per_s", "training images / s", "tab:brown")
    if rate:
        _title(ax, f"throughput: median {statistics.median(rate):,.0f} training images/s (no eval)")


DRAW = {"loss": draw_loss, "accuracy": draw_accuracy, "lr": draw_lr, "speed": draw_speed}


def curve_figure(panel: str, history: list[dict], cfg: TrainConfig | None = None) -> Figure:
    """One panel of PANELS as its own figure (5 x 3.8 inches: the report's size)."""
    fig, ax = figure(figsize=(5, 3.8))
    DRAW[panel](ax, history, cfg)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole
    fig.tight_layout()
    return fig


def curves_figure(history: list[dict], cfg: TrainConfig | None = None) -> Figure:
    """All of PANELS, 2 x 2 (RUN_DIR/curves.png)."""
    fig, axes = figure(2, 2, figsize=(10, 7.6))
    for panel, ax in zip(PANELS, axes.flat, strict=True):
        DRAW[panel](ax, history, cfg)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole
    fig.tight_layout()
    return fig
