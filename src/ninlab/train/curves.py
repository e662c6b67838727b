"""Training by epoch as pictures: loss, accuracy, learning rate and throughput, from the rows of
metrics (one dict per epoch, the fields of `ninlab.runs.METRICS`), labelled from the run's config.

The train loss is the mean over an epoch's batches while the weights still change, on the
training images as the config transforms them (augmentation) and against smoothed labels; the
test loss is plain cross-entropy of the epoch's last weights on the test images. With label
smoothing ε over K classes the train loss cannot go below `smoothed_loss_floor(ε, K)`, so a train
loss above the test loss says nothing about over- or under-fitting by itself.

A panel shows its values to scale up to OUTLIER times their typical size (one loss of 1e30 would
flatten the rest of the curve into a line at 0) and never beyond HUGE; a value off that scale,
infinities included, is drawn at the panel's edge as a triangle, and the title says how many.
"""

from __future__ import annotations

import math
import statistics
import textwrap
from dataclasses import dataclass, field

from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ninlab.plotting import figure
from ninlab.train.config import TrainConfig

PANELS = ("loss", "accuracy", "lr", "speed")  # the panels, in the order curves_figure draws them
OUTLIER = 1e6  # values beyond OUTLIER x a panel's typical size are off its scale
HUGE = 1e300  # and all beyond HUGE: 1e300 draws, 1e308 overflows matplotlib's margin arithmetic


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


def _title(ax, text: str, scale: Scale | None = None, width: int = 52) -> None:
    note = scale.note() if scale else ""
    ax.set_title(textwrap.fill(text + note, width), fontsize=10)


@dataclass
class Scale:
    """The y range of a panel some of whose values are off its scale, and those values."""

    bottom: float
    top: float
    off: list[float] = field(default_factory=list)  # drawn at an edge, as triangles

    def clamp(self, v: float) -> float:
        return v if math.isnan(v) else min(max(v, self.bottom), self.top)

    def note(self) -> str:
        if not self.off:
            return ""
        n, worst = len(self.off), max(self.off, key=abs)
        return f"; {n} value{'s' * (n > 1)} off the scale (farthest {worst:.3g}) drawn at its edge"


def _scale(ax, *series: list[float]) -> Scale | None:
    """The scale of a panel some of whose values are off it (beyond OUTLIER x the lower median
    of their sizes, which one huge value cannot move, or beyond HUGE), with room for their
    marks, set on `ax`; None when every value is on it."""
    values = [v for s in series for v in s if not math.isnan(v)]
    sizes = sorted(abs(v) for v in values if 0 < abs(v) < math.inf)
    limit = min(HUGE, OUTLIER * statistics.median_low(sizes)) if sizes else HUGE
    kept = [v for v in values if abs(v) <= limit]
    if len(kept) == len(values):
        return None
    lo, hi = (min(kept), max(kept)) if kept else (0.0, 1.0)
    pad = 0.08 * ((hi - lo) or max(abs(hi), 1.0))
    ax.set_ylim(lo - pad, hi + pad)
    return Scale(lo - pad, hi + pad)


def _plot(ax, epochs: list, values: list[float], fmt: str, scale: Scale | None, **kw) -> None:
    """`ax.plot`, with the values off `scale` drawn at its edge as triangles (and noted in it)."""
    if scale is None:
        ax.plot(epochs, values, fmt, **kw)
        return
    (line,) = ax.plot(epochs, [scale.clamp(v) for v in values], fmt, **kw)
    for edge, mark, off in ((scale.top, "^", lambda v: v > scale.top),
                            (scale.bottom, "v", lambda v: v < scale.bottom)):  # fmt: skip
        at = [e for e, v in zip(epochs, values, strict=True) if off(v)]
        if at:
            ax.plot(at, [edge] * len(at), mark, color=line.get_color(), markersize=10,
                    clip_on=False)  # fmt: skip
    scale.off += [v for v in values if v > scale.top or v < scale.bottom]


def _missing(ax, what: str) -> None:
    ax.text(0.5, 0.5, f"{what}: not recorded by this run", ha="center", va="center",
            transform=ax.transAxes, fontsize=10)  # fmt: skip
    ax.axis("off")


def draw_loss(ax, history: list[dict], cfg: TrainConfig | None = None) -> None:
    train, test = _series(history, "train_loss"), _series(history, "test_loss")
    floor = smoothed_loss_floor(cfg.label_smoothing, len(cfg.classes)) if cfg else 0.0
    scale = _scale(ax, train[1], test[1], [floor] if floor > 0 else [])
    _plot(ax, *train, "o-", scale, label=textwrap.fill(train_loss_label(cfg), 40))
    _plot(ax, *test, "s-", scale, label="test loss (plain cross-entropy)")
    if floor > 0:
        ax.axhline(floor, color="gray", linestyle=":", label=f"least smoothed loss ({floor:.2f})")
    ax.set_xlabel("epoch")
    ax.set_ylabel("cross-entropy")
    ax.legend(fontsize=9)
    ax.grid(alpha=0.3)
    _title(ax, "loss: train is the mean over each epoch's batches; test, at its end", scale)


def draw_accuracy(ax, history: list[dict], cfg: TrainConfig | None = None) -> None:
    train_epochs, train = _series(history, "train_acc")
    epochs, test = _series(history, "test_acc")
    scale = _scale(ax, [100 * a for a in train], [100 * a for a in test])
    if train:
        _plot(ax, train_epochs, [100 * a for a in train], "o-", scale,
              label="train (the train loss's batches)")  # fmt: skip
    _plot(ax, epochs, [100 * a for a in test], "s-", scale, label="test")
    ax.set_xlabel("epoch")
    ax.set_ylabel("accuracy (%)")
    ax.legend(fontsize=9)
    ax.grid(alpha=0.3)
    if test:
        k = max(range(len(test)), key=lambda i: (test[i], -i))  # the earlier epoch on a tie
        star = scale.clamp(100 * test[k]) if scale else 100 * test[k]
        ax.plot([epochs[k]], [star], "*", color="black", markersize=12)
        _title(ax, f"accuracy; best test {100 * test[k]:.2f}% (epoch {epochs[k]}, the star)",
               scale)  # fmt: skip


def _one_series(ax, history: list[dict], key: str, label: str, colour: str):
    """One field by epoch on an axis from 0; (its values, the panel's Scale) (no values: the
    panel says so)."""
    epochs, values = _series(history, key)
    if not values:
        _missing(ax, label)
        return values, None
    scale = _scale(ax, values, [0.0])
    _plot(ax, epochs, values, "o-", scale, color=colour)
    ax.set_xlabel("epoch")
    ax.set_ylabel(label)
    if scale is None:
        ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    return values, scale


def draw_lr(ax, history: list[dict], cfg: TrainConfig | None = None) -> None:
    lr, scale = _one_series(ax, history, "lr", "learning rate", "tab:purple")
    if not lr:
        return
    how = ""
    if cfg is not None:
        how = f"; {cfg.schedule}, peak {cfg.lr:g}"
        if cfg.schedule == "onecycle":
            how += f" after {100 * cfg.warmup:g}% of the steps"
    _title(ax, f"learning rate at each epoch's end{how}", scale)


def draw_speed(ax, history: list[dict], cfg: TrainConfig | None = None) -> None:
    rate, scale = _one_series(ax, history, "images_per_s", "training images / s", "tab:brown")
    if rate:
        median = statistics.median(rate)
        shown = f"{median:,.0f}" if abs(median) < 1e12 else f"{median:.3g}"
        _title(ax, f"throughput: median {shown} training images/s (no eval)", scale)


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
