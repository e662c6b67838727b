"""A model made ready for inference: convolutionalized, batch norm folded, linear 1x1 convs
fused (`for_inference`), and such a model as the classifier it came from (ConvertedClassifier).

Saving it, and reading it back, is the business of `ninlab.runs.converted`; converting and
exporting a run, of `ninlab.runs.deploy`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import torch
from torch import nn

from ninlab.convert.dense import DenseClassifier, convolutionalize
from ninlab.convert.fuse import fold_batchnorm, fuse_linear_1x1, unfused_1x1
from ninlab.errors import NinlabError


@dataclass
class Conversion:
    """What `for_inference` did to a model."""

    input_size: tuple[int, int, int]  # the size the FC layers were sized for
    stride: int  # pixels between cells of the score grid
    folded: list[tuple[str, str]] = field(default_factory=list)  # (conv, bn) pairs
    fused: list[tuple[str, str]] = field(default_factory=list)  # (conv, 1x1 conv) pairs
    unfused: list[tuple[str, str]] = field(default_factory=list)  # (1x1 conv, what precedes it)

    def fused_text(self) -> str:
        """ "fused conv pairs: N", and when N is 0 why, from `unfused`: "(each of the 3 1x1
        convs follows a ReLU, not a conv)"."""
        text = f"fused conv pairs: {len(self.fused)}"
        if self.fused:
            return text
        if not self.unfused:
            return f"{text} (the model has no 1x1 conv to fuse)"
        kinds = Counter(kind for _, kind in self.unfused)
        mixed = len(kinds) > 1
        what = " or ".join(
            ("its chain's input" if k == "input" else f"a {k}") + (f" ({n})" if mixed else "")
            for k, n in kinds.most_common()
        )
        n = len(self.unfused)
        which = "the one 1x1 conv follows" if n == 1 else f"each of the {n} 1x1 convs follows"
        return f"{text} ({which} {what}, not a conv)"


def for_inference(
    model: nn.Module, input_shape: tuple[int, int, int] | None = None
) -> tuple[DenseClassifier, Conversion]:
    """convolutionalize, then fold_batchnorm, then fuse_linear_1x1: one fully convolutional,
    batch-norm-free model whose 1x1 grid on `input_shape` equals the original logits. The
    Conversion also says what kept each 1x1 conv left from fusing (`unfused_1x1`)."""
    dense = convolutionalize(model, input_shape)
    dense, folded = fold_batchnorm(dense)
    dense, fused = fuse_linear_1x1(dense)
    unfused = unfused_1x1(dense)
    return dense, Conversion(dense.default_input_size, dense.stride, folded, fused, unfused)


class ConvertedClassifier(nn.Module):
    """A converted model as the classifier it was converted from: (N, C, H, W) -> logits
    (N, K), the mean of its score grid (on the training size the grid is 1x1: the original
    logits; on a larger image, the mean over its crops).

    An input smaller than `DenseClassifier.smallest_side` is refused with one sentence (the
    grid would be empty).
    """

    any_input_size = True  # every side from the smallest on gives a grid (`Run.check_native`)

    def __init__(self, dense: DenseClassifier, model_name: str):
        super().__init__()
        self.dense = dense
        self.model_name = f"{model_name} (converted)"
        self.default_input_size = dense.default_input_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        (h, w), side = x.shape[-2:], self.dense.smallest_side()
        if min(h, w) < side:
            s = self.default_input_size[-1]
            raise NinlabError(
                f"{self.model_name} cannot run on a {h}x{w} input: it takes inputs of {side} px "
                f"or more a side ({s} by default); resize the images to {s} px first."
            )
        return self.dense.logits(x)  # N x K

    @property
    def stage_names(self) -> tuple[str, ...]:
        """None to give: the verbs that look inside (features, cam, report) ask for it first, and
        get one sentence instead of a missing attribute deep in torch."""
        raise NinlabError(
            f"{self.model_name} has no stages to look inside (its layers were rewritten); pass "
            "the run directory it was converted from."
        )
