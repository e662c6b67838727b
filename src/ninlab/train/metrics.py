"""Confusion matrix, per-class accuracy and their plot."""

from __future__ import annotations

from pathlib import Path

import torch

from ninlab.runs import atomic_write


def confusion_matrix(preds: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """counts[i, j] = test images of true class i predicted as class j."""
    idx = labels.long() * num_classes + preds.long()
    return torch.bincount(idx, minlength=num_classes**2).reshape(num_classes, num_classes)


def per_class_accuracy(confusion: torch.Tensor) -> torch.Tensor:
    return confusion.diag().float() / confusion.sum(1).clamp(min=1).float()


def format_confusion(confusion: torch.Tensor, classes: list[str]) -> str:
    width = max(6, len(str(int(confusion.max()))) + 1)
    short = [c[:width] for c in classes]
    lines = [" " * 14 + "".join(f"{s:>{width + 1}}" for s in short) + "   <- predicted"]
    for name, row in zip(classes, confusion.tolist(), strict=True):
        lines.append(f"{name[:13]:<14}" + "".join(f"{v:>{width + 1}}" for v in row))
    return "\n".join(lines)


def plot_confusion(
    confusion: torch.Tensor, classes: list[str], path: Path, title: str = ""
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(classes)
    fig, ax = plt.subplots(figsize=(1.0 + 0.55 * n, 0.8 + 0.5 * n) if n <= 20 else (12, 11))
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
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=100, format="png"))
    plt.close(fig)
