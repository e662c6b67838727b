"""A run's model on a test set: loss, accuracy, per-class accuracy and the confusion matrix, as
`ninlab eval` prints them, each computed once (`evaluate_run`)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import torch
import torch.nn.functional as F
from matplotlib.figure import Figure

from ninlab.data import Dataset
from ninlab.runs.run import Run
from ninlab.terminal import WIDTH, wrap
from ninlab.train import (
    confusion_figure,
    confusion_matrix,
    format_confusion,
    per_class_accuracy,
    predict_logits,
)


@dataclass
class Evaluation:
    """A run's model on test images: loss, predictions and everything derived from them (each
    computed once, on first use)."""

    run: Run
    data: str  # the data set's name
    labels: torch.Tensor  # N
    logits: torch.Tensor  # N x classes (with the run's test-time flip, as in training)

    @cached_property
    def loss(self) -> float:
        """Plain cross-entropy (no label smoothing), as training reports the test loss."""
        return F.cross_entropy(self.logits, self.labels).item()

    @cached_property
    def preds(self) -> torch.Tensor:
        return self.logits.argmax(1)

    @cached_property
    def probabilities(self) -> torch.Tensor:
        """N x classes: softmax of the logits (in float64, so that small ones keep digits)."""
        return torch.softmax(self.logits.double(), 1)

    @cached_property
    def confidence(self) -> torch.Tensor:
        """The probability of the predicted class, per image."""
        return self.probabilities.max(1).values

    @cached_property
    def confusion(self) -> torch.Tensor:
        return confusion_matrix(self.preds, self.labels, len(self.run.classes))

    @cached_property
    def correct(self) -> int:
        return int((self.preds == self.labels).sum())

    @cached_property
    def accuracy(self) -> float:
        return self.correct / len(self.labels)

    @cached_property
    def per_class(self) -> list[float]:
        return per_class_accuracy(self.confusion).tolist()

    def text(self, width: int | None = WIDTH) -> str:
        """What `ninlab eval` prints: loss, accuracy, per-class accuracy, confusion matrix, in
        `width` columns (None: the matrix with class names atop its columns, however wide)."""
        classes = self.run.classes
        head = (f"run {self.run.path} ({self.run.config.model}, {self.run.weights.name}) on "
                f"{self.data} test set")  # fmt: skip
        lines = [
            *wrap(head, width, indent="  "),
            f"test loss {self.loss:.4f}, accuracy {100 * self.accuracy:.2f}% "
            f"({self.correct:,}/{len(self.labels):,})",
            "",
            "per-class accuracy",
        ]
        lines += [
            f"  {c:<14} {100 * a:6.2f}%" for c, a in zip(classes, self.per_class, strict=True)
        ]
        lines += [
            "",
            "confusion matrix (rows: true class)",
            format_confusion(self.confusion, classes, width),
        ]
        return "\n".join(lines)

    def to_dict(self) -> dict:
        """What `ninlab eval --json` prints: the numbers of `text`, the matrix as counts[true]
        [predicted]."""
        return {
            "run": str(self.run.path),
            "model": self.run.config.model,
            "weights": self.run.weights.name,
            "data": self.data,
            "images": len(self.labels),
            "loss": self.loss,
            "accuracy": self.accuracy,
            "correct": self.correct,
            "classes": list(self.run.classes),
            "per_class_accuracy": self.per_class,
            "confusion": self.confusion.tolist(),
        }

    def confusion_figure(self) -> Figure:
        title = f"{self.run.config.model} on {self.data}: {100 * self.accuracy:.2f}%"
        return confusion_figure(self.confusion, self.run.classes, title)


def evaluate_run(
    run: Run, data: Dataset | None = None, limit: int | None = None, progress: bool = False
) -> Evaluation:
    """The run's model on (the first `limit` images of) the test set of `data` (default: the
    run's own data set); progress: a bar on a terminal."""
    data = data or run.dataset()
    images, labels = data.test_images[:limit], data.test_labels[:limit]
    logits = predict_logits(run.model, images, run.config, progress=progress)
    return Evaluation(run, data.name, labels.to(logits.device), logits)
