"""Exact zeros after each ReLU, per layer and per channel, trained and at initialisation.

  zeros(layer)      = (outputs == 0) / outputs, over every position of every image
  zeros(layer, c)   = the same over channel c only
  dead channel      = a channel with zeros(layer, c) = 1: zero at every position of every image
The counting lives in `ninlab.analysis.sparsity`; this module adds the same model at
initialisation, a plot by depth, and the verdict on statement 24 of the claims list ("in a
trained CNN, feature maps get sparser with depth").
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ninlab.analysis.sparsity import (
    STATEMENT,
    LayerSparsity,
    relu_channel_sparsity,
    sparser_with_depth,
)
from ninlab.plotting import figure, save_png
from ninlab.runs import Run
from ninlab.train import TrainConfig, build_model


def initial_model(config: TrainConfig) -> nn.Module:
    """The run's model as training started it: same name and classes, seeded init (config seed
    and init, as `ninlab train` does), in eval mode. The global RNG is left as it was."""
    with torch.random.fork_rng(devices=[]):
        model = build_model(config)
    return model.eval()


@dataclass
class SparsityReport:
    """Sparsity by depth of a run's model, trained and at initialisation, on the same images."""

    run: str
    weights: str
    images: int
    trained: list[LayerSparsity]
    init: list[LayerSparsity]

    @property
    def verdict(self) -> str:
        return sparser_with_depth([layer.zeros for layer in self.trained])

    @property
    def verdict_init(self) -> str:
        return sparser_with_depth([layer.zeros for layer in self.init])

    def to_dict(self) -> dict:
        return {
            "run": self.run,
            "weights": self.weights,
            "images": self.images,
            "statement": STATEMENT,
            "verdict": self.verdict,
            "verdict_at_init": self.verdict_init,
            "layers": [
                {**t.to_dict(), "init": i.to_dict()}
                for t, i in zip(self.trained, self.init, strict=True)
            ],
        }

    def table(self) -> str:
        rows = [("layer", "channels", "zeros", "at init", "dead", "dead at init")]
        for t, i in zip(self.trained, self.init, strict=True):
            rows.append(
                (
                    t.name,
                    str(len(t.channel_zero_counts)),
                    f"{100 * t.zeros:.1f}%",
                    f"{100 * i.zeros:.1f}%",
                    str(len(t.dead)),
                    str(len(i.dead)),
                )
            )
        widths = [max(len(r[k]) for r in rows) for k in range(len(rows[0]))]
        lines = [
            "  ".join(
                c.ljust(w) if k == 0 else c.rjust(w)
                for k, (c, w) in enumerate(zip(r, widths, strict=True))
            )
            for r in rows
        ]
        lines.insert(1, "-" * len(lines[0]))
        dead = [f"{t.name}: {_indices(t.dead)}" for t in self.trained if t.dead]
        lines += [
            "",
            f"zeros after each ReLU over {self.images:,} test images ({self.weights}); dead = "
            "channels zero on every image",
        ]
        if dead:
            lines.append("dead channels (trained): " + "; ".join(dead))
        lines += [
            f'statement 24, "{STATEMENT}": {self.verdict} for this run '
            f"(at initialisation: {self.verdict_init})",
        ]
        return "\n".join(lines)


def _indices(values: list[int], most: int = 16) -> str:
    shown = ", ".join(map(str, values[:most]))
    return shown if len(values) <= most else f"{shown}, ... ({len(values)} in all)"


def run_sparsity(
    run: Run, images: torch.Tensor, batch_size: int = 256, init: nn.Module | None = None
) -> SparsityReport:
    """Sparsity of a run's trained model and of its model at initialisation, on uint8 images."""
    trained = relu_channel_sparsity(run.model, images, batch_size, run.preprocess)
    init = init if init is not None else initial_model(run.config)
    at_init = relu_channel_sparsity(init, images, batch_size, run.preprocess)
    return SparsityReport(str(run.path), run.weights.name, len(images), trained, at_init)


def sparsity_figure(report: SparsityReport, title: str = ""):
    """Two panels by depth: % exact zeros, and % dead channels; trained and at initialisation."""
    depth = range(1, len(report.trained) + 1)
    fig, (ax1, ax2) = figure(1, 2, figsize=(10, 4))
    for layers, label, style in (
        (report.trained, "trained", "o-"),
        (report.init, "at initialisation", "s--"),
    ):
        ax1.plot(depth, [100 * t.zeros for t in layers], style, label=label)
        dead = [100 * len(t.dead) / len(t.channel_zero_counts) for t in layers]
        ax2.plot(depth, dead, style, label=label)
    names = [t.name.removeprefix("features.").removeprefix("head.") for t in report.trained]
    for ax in (ax1, ax2):
        ax.set_xticks(list(depth), names, rotation=60, ha="right", fontsize=7)
        ax.set_xlabel("ReLU, by depth")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    ax1.set_ylabel("exact zeros (%)")
    ax1.set_title(f"statement 24 for this run: {report.verdict}", fontsize=9)
    ax2.set_ylabel("dead channels (%)")
    ax2.set_title(f"zero on all {report.images:,} images", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def plot_sparsity(report: SparsityReport, path: str | Path, title: str = "") -> Path:
    """Write the sparsity-by-depth figure as a PNG; returns the path."""
    return save_png(sparsity_figure(report, title), path)
