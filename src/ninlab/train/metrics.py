"""What training measures, as numbers and as pictures: the confusion matrix, per-class accuracy,
and the curves of loss and accuracy by epoch."""

from __future__ import annotations

import torch
from matplotlib.figure import Figure

from ninlab.plotting import figure


def confusion_matrix(preds: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """counts[i, j] = test images of true class i predicted as class j."""
    idx = labels.long() * num_classes + preds.long()
    return torch.bincount(idx, minlength=num_classes**2).reshape(num_classes, num_classes)


def per_class_accuracy(confusion: torch.Tensor) -> torch.Tensor:
    """Right / images, per true class (the diagonal over the row sums)."""
    return confusion.diag().float() / confusion.sum(1).clamp(min=1).float()


def format_confusion(confusion: torch.Tensor, classes: list[str]) -> str:
    width = max(6, len(str(int(confusion.max()))) + 1)
    short = [c[:width] for c in classes]
    lines = [" " * 14 + "".join(f"{s:>{width + 1}}" for s in short) + "   <- predicted"]
    for name, row in zip(classes, confusion.tolist(), strict=True):
        lines.append(f"{name[:13]:<14}" + "".join(f"{v:>{width + 1}}" for v in row))
    return "\n".join(lines)


def confusion_figure(confusion: torch.Tensor, classes: list[str], title: str = "") -> Figure:
    """The counts as a heat map, each cell labelled (up to 20 classes)."""
    n = len(classes)
    fig, ax = figure(figsize=(1.0 + 0.55 * n, 0.8 + 0.5 * n) if n <= 20 else (12, 11))
    ax.imshow(confusion.numpy(), cmap="Blues")
    if n <= 20:
        ax.set_xticks(range(n), classes, rotation=45, ha="right")
        ax.set_yticks(range(n), classes)
        top = int(confusion.max())
        for i in range(n):
            for j in range(n):
                v = int(confusion[i, j])
                color = "white" if v > top / 2 else "black"
                ax.text(j, i, str(v), ha="center", va="center", fontsize=8, color=color)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def curves_figure(history: list[dict]) -> Figure:
    """Train and test loss, and test accuracy, by epoch (two panels), from the metrics rows."""
    epochs = [r["epoch"] for r in history]
    fig, (ax1, ax2) = figure(1, 2, figsize=(9, 3.5))
    ax1.plot(
        epochs,
        [r["train_loss"] for r in history],
        "o-",
        label="train loss (augmented, label-smoothed batches)",
    )
    ax1.plot(epochs, [r["test_loss"] for r in history], "s-", label="test loss")
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("cross-entropy")
    ax1.legend(fontsize=8)
    ax1.grid(alpha=0.3)
    ax2.plot(epochs, [100 * r["test_acc"] for r in history], "o-", color="tab:green")
    ax2.set_xlabel("epoch")
    ax2.set_ylabel("test accuracy (%)")
    ax2.grid(alpha=0.3)
    best = max(history, key=lambda r: r["test_acc"])
    ax2.set_title(f"best {100 * best['test_acc']:.2f}% (epoch {best['epoch']})", fontsize=10)
    fig.tight_layout()
    return fig
