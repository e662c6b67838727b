"""What evaluation measures per class: the confusion matrix, per-class accuracy (recall),
precision and F1, as numbers and as a picture. (The curves by epoch are in `curves`.)"""

from __future__ import annotations

import matplotlib
import torch
from matplotlib.figure import Figure

from ninlab.plotting import figure
from ninlab.terminal import WIDTH


def confusion_matrix(preds: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """counts[i, j] = test images of true class i predicted as class j."""
    idx = labels.long() * num_classes + preds.long()
    return torch.bincount(idx, minlength=num_classes**2).reshape(num_classes, num_classes)


def per_class_accuracy(confusion: torch.Tensor) -> torch.Tensor:
    """Right / images, per true class (the diagonal over the row sums)."""
    return confusion.diag().float() / confusion.sum(1).clamp(min=1).float()


def precision_recall_f1(confusion: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Per class k, from counts[true, predicted]: precision = counts[k, k] / column k's sum (of
    the images predicted k, the share that are k), recall = counts[k, k] / row k's sum (per-class
    accuracy), F1 = 2 P R / (P + R); 0 where a denominator is 0."""
    c = confusion.double()
    right = c.diag()
    precision = right / c.sum(0).clamp(min=1)
    recall = right / c.sum(1).clamp(min=1)
    f1 = 2 * precision * recall / (precision + recall).clamp(min=1e-12)
    return precision, recall, f1


def format_confusion(confusion: torch.Tensor, classes: list[str], width: int | None = WIDTH) -> str:
    """The confusion matrix as text: a row per true class, a column per predicted class. In
    `width` columns the columns are headed by class number ("0 T-shirt/top" heads row 0), or
    the matrix is left to --wide when even that is too wide; width None heads them by the
    first letters of the class names."""
    if width is None:
        cell = max(6, len(str(int(confusion.max()))) + 1)
        short = [c[:cell] for c in classes]
        lines = [" " * 14 + "".join(f"{s:>{cell + 1}}" for s in short) + "   <- predicted"]
        for name, row in zip(classes, confusion.tolist(), strict=True):
            lines.append(f"{name[:13]:<14}" + "".join(f"{v:>{cell + 1}}" for v in row))
        return "\n".join(lines)
    n, ids = len(classes), len(str(len(classes) - 1))
    cell = max(3, len(str(int(confusion.max())))) + 2
    if ids + 15 + n * cell > width:
        return f"({n} classes: too many columns for {width}; --wide or --json prints the matrix)"
    lines = [f"{'predicted ->':>{ids + 14}} " + "".join(f"{k:>{cell}}" for k in range(n))]
    for k, (name, row) in enumerate(zip(classes, confusion.tolist(), strict=True)):
        lines.append(f"{k:>{ids}} {name[:13]:<14}" + "".join(f"{v:>{cell}}" for v in row))
    return "\n".join(lines)


def row_shares(confusion: torch.Tensor) -> torch.Tensor:
    """counts[i, j] / counts[i].sum(): the share of true class i predicted as j (0 for an empty
    row)."""
    c = confusion.double()
    return c / c.sum(1, keepdim=True).clamp(min=1)


def confusion_figure(confusion: torch.Tensor, classes: list[str], title: str = "") -> Figure:
    """The counts, each cell labelled (up to 20 classes); the colour of a mistake is its share of
    the true class's images (a row-normalised view with the diagonal left out, so the mistakes
    that matter stand out); the diagonal is grey."""
    n = len(classes)
    shares = row_shares(confusion)
    off = shares.clone()
    off.fill_diagonal_(float("nan"))  # drawn as "bad": grey
    top = max(float(off.nan_to_num(0).max()), 1e-9)
    fig, ax = figure(figsize=(2.2 + 0.6 * n, 1.2 + 0.5 * n) if n <= 20 else (13, 11))
    cmap = matplotlib.colormaps["Reds"].with_extremes(bad="#dddddd")
    im = ax.imshow(100 * off.numpy(), cmap=cmap, vmin=0, vmax=100 * top)
    bar = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03)
    bar.set_label("% of the true class (mistakes only)", fontsize=9)
    if n <= 20:
        ax.set_xticks(range(n), classes, rotation=45, ha="right", fontsize=9)
        ax.set_yticks(range(n), classes, fontsize=9)
        for i in range(n):
            for j in range(n):
                dark = i != j and off[i, j] > top / 2
                ax.text(j, i, str(int(confusion[i, j])), ha="center", va="center", fontsize=9,
                        color="white" if dark else "black")  # fmt: skip
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig
