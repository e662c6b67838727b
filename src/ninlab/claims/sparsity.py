"""Claim 24 of the ledger, "in a trained CNN, feature maps get sparser (more exact zeros after
ReLU) with depth": its verdict on a run's model, trained and at initialisation, told in words
beside the numbers. The zeros are counted by `ninlab.analysis.relu_zeros`; `ninlab.viz.sparsity`
draws them. Dead channels are told as counts ("1 of 128"), not percentages.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ninlab.analysis.relu_zeros import LayerSparsity, relu_channel_sparsity
from ninlab.claims.verdicts import DIFFERS, FAILS, HOLDS
from ninlab.runs import Run
from ninlab.terminal import WIDTH, first_of, wrap
from ninlab.train import TrainConfig, build_model

STATEMENT = "in a trained CNN, feature maps get sparser (more exact zeros after ReLU) with depth"
FLAT = 10  # percentage points: zeros that spread less than this over depth "stay" at one level
# what each verdict of `sparser_with_depth` says, once: the words end with it
CONCLUSION = {
    HOLDS: "sparser with depth",
    DIFFERS: "sparser overall, not at every depth",
    FAILS: "not sparser with depth",
}


def sparser_with_depth(fractions: list[float]) -> str:
    """Statement 24's verdict (STATEMENT) on zero fractions in depth order (`ninlab claims`, `ninlab
    sparsity`): holds if they never decrease, differs if only the last exceeds the first, else
    does not hold."""
    monotone = all(b >= a for a, b in zip(fractions, fractions[1:], strict=False))
    return HOLDS if monotone else DIFFERS if fractions[-1] > fractions[0] else FAILS


def zeros_words(fractions: list[float]) -> str:
    """The verdict of `sparser_with_depth` on zero fractions in depth order, in plain words with
    the numbers behind it, ending ": " + CONCLUSION[verdict]. Percentages are rounded to whole
    numbers; a spread max - min under FLAT points is told as a range (47–55%)."""
    verdict = sparser_with_depth(fractions)
    pct = [100 * f for f in fractions]
    first, last, lo, hi = pct[0], pct[-1], min(pct), max(pct)
    steps = len(pct) - 1
    falls = sum(b < a for a, b in zip(pct, pct[1:], strict=False))
    ends = f"from {first:.0f}% at the first ReLU to {last:.0f}% at the last"
    # the range, where first and last do not already show it
    shown = {f"{lo:.0f}", f"{hi:.0f}"} <= {f"{first:.0f}", f"{last:.0f}"}
    extent = "" if shown else f" (range {lo:.0f}–{hi:.0f}%)"
    flat = hi - lo < FLAT
    if verdict == HOLDS:
        rise = all(b > a for a, b in zip(pct, pct[1:], strict=False))
        said = f"zeros {'rise at every depth' if rise else 'never fall with depth'}, {ends}"
    elif verdict == DIFFERS and flat:
        said = (
            f"zeros stay at {lo:.0f}–{hi:.0f}% at every depth, ending {_points(last - first)} "
            f"above the start but falling at {falls} of {steps} steps"
        )
    elif verdict == DIFFERS:
        said = f"zeros go {ends}{extent} but fall at {falls} of {steps} steps"
    elif flat:
        said = f"zeros stay at {lo:.0f}–{hi:.0f}% at every depth"
    else:
        said = f"zeros {'fall' if last < first else 'go'} {ends}{extent}"
    return f"{said}: {CONCLUSION[verdict]}"


def _points(d: float) -> str:
    """A difference of percentages in points: '6 points', '0.4 points', '1 point'."""
    shown = f"{d:.0f}" if d >= 0.95 else f"{d:.1f}"
    return f"{shown} point{'' if shown == '1' else 's'}"


def dead_words(layers: list[LayerSparsity]) -> str:
    """Dead channels as counts, named by layer: '1 dead channel of 1,152 (features.block3.relu:
    channel 17)', or 'no dead channel among 1,152'."""
    total = sum(len(t.channel_zero_counts) for t in layers)
    dead = [t for t in layers if t.dead]
    n = sum(len(t.dead) for t in dead)
    if not n:
        return f"no dead channel among {total:,}"
    where = "; ".join(
        f"{t.name}: channel{'s' if len(t.dead) > 1 else ''} {first_of(t.dead, 16)}" for t in dead
    )
    return f"{n} dead channel{'s' if n > 1 else ''} of {total:,} ({where})"


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

    def words(self) -> str:
        """The verdict on the trained model in plain words beside its numbers (`zeros_words`)."""
        return zeros_words([layer.zeros for layer in self.trained])

    def dead_words(self) -> str:
        """The trained model's dead channels as counts, named by layer (`dead_words`)."""
        return dead_words(self.trained)

    def to_dict(self) -> dict:
        return {
            "run": self.run,
            "weights": self.weights,
            "images": self.images,
            "statement": STATEMENT,
            "verdict": self.verdict,
            "verdict_at_init": self.verdict_init,
            "words": self.words(),
            "dead_words": self.dead_words(),
            "layers": [
                {**t.to_dict(), "init": i.to_dict()}
                for t, i in zip(self.trained, self.init, strict=True)
            ],
        }

    def table(self, width: int | None = WIDTH) -> str:
        """What `ninlab sparsity` prints: a row per ReLU, then the verdict in words, wrapped to
        `width` columns (None: unwrapped)."""
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
        over = (f"zeros after each ReLU over {self.images:,} test images ({self.weights}); "
                "dead = zero on every image")  # fmt: skip
        claim = (f"(claim 24 of `ninlab claims`: {self.verdict}; at initialisation: "
                 f"{self.verdict_init})")  # fmt: skip
        lines.append("")
        for text in (over, f"trained: {self.dead_words()}", self.words(), claim):
            lines += wrap(text, width, indent="  ")
        return "\n".join(lines)


def run_sparsity(
    run: Run,
    images: torch.Tensor,
    batch_size: int = 256,
    init: nn.Module | None = None,
    progress: bool = False,
) -> SparsityReport:
    """Sparsity of a run's trained model and of its model at initialisation, on uint8 images
    (progress: a bar per pass, on a terminal)."""
    bars = ("sparsity, trained", "sparsity, at init") if progress else (None, None)
    trained = relu_channel_sparsity(run.model, images, batch_size, run.preprocess, bars[0])
    init = init if init is not None else initial_model(run.config)
    at_init = relu_channel_sparsity(init, images, batch_size, run.preprocess, bars[1])
    return SparsityReport(str(run.path), run.weights.name, len(images), trained, at_init)
