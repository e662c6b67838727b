"""ONNX export with dynamic height and width, checked with onnxruntime.

A run is exported as a `PixelClassifier`: the graph takes uint8 pixels and normalises them
itself, and the file's metadata (ONNX `metadata_props`) says what the outputs mean, so that
onnxruntime, numpy and PIL are all a user needs (docs/conversion.md).
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import logging
import warnings
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from ninlab.convert.dense import DenseClassifier
from ninlab.errors import NinlabError
from ninlab.files import atomic_write


class PixelClassifier(nn.Module):
    """uint8 pixels (N, C, H, W) -> (logits (N, K), scores (N, K, h, w)), as evaluation sees them.

    The pixels are normalised as `ninlab.data.to_float` does in training, (x / 255 - mean) /
    std per channel; `scores` is the converted model's grid (one score per crop of the training
    size), `logits` its mean, averaged with the mirror image's when the run evaluates with
    test-time flip (`ninlab.train.predict_logits`). On the training size the grid is 1x1 and
    `logits` are the run's own.
    """

    def __init__(
        self, dense: DenseClassifier, mean: Sequence[float], std: Sequence[float], tta_flip: bool
    ):
        super().__init__()
        c = dense.default_input_size[0]
        self.dense = dense
        self.tta_flip = tta_flip
        self.register_buffer("mean", _per_channel(mean, c))  # 1 x C x 1 x 1
        self.register_buffer("std", _per_channel(std, c))

    def forward(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = (pixels.float() / 255.0 - self.mean) / self.std  # N x C x H x W
        scores = self.dense(x)  # N x K x h x w
        logits = scores.mean(dim=(2, 3))  # N x K
        if self.tta_flip:
            logits = (logits + self.dense(x.flip(-1)).mean(dim=(2, 3))) / 2
        return logits, scores


def _per_channel(values: Sequence[float], c: int) -> torch.Tensor:
    """One value per channel (a single value serves every channel), as a 1 x C x 1 x 1 tensor."""
    return torch.tensor(values, dtype=torch.float32).expand(c).reshape(1, c, 1, 1).clone()


def export_onnx(
    model: nn.Module,
    path: str | Path,
    input_shape: tuple[int, int, int],
    dtype: torch.dtype = torch.float32,
    outputs: Sequence[str] = ("scores",),
    metadata: dict[str, str] | None = None,
) -> None:
    """Write `model` as ONNX: input "images" (N, C, H, W) of `dtype` with N, H and W dynamic,
    the outputs named `outputs` (a DenseClassifier's one: "scores" (N, K, h, w); a
    PixelClassifier's two: "logits", "scores"), and `metadata` as the model's metadata_props.

    Uses the torch.export-based exporter (`dynamo=True`), quietly.
    """
    missing = [m for m in ("onnx", "onnxscript") if importlib.util.find_spec(m) is None]
    if missing:
        raise NinlabError(
            f"ONNX export needs the package(s) {', '.join(missing)}, not installed here; "
            'pip install "ninlab[onnx]" (or pip install -e ".[onnx]" in a checkout).'
        )
    model = model.eval()
    x = torch.zeros(2, *input_shape, dtype=dtype)
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            model,
            (x,),
            input_names=["images"],
            output_names=list(outputs),
            dynamic_shapes=({0: "batch", 2: "height", 3: "width"},),
            dynamo=True,
            verbose=False,
        )
        program.model.metadata_props.update(metadata or {})
        atomic_write(path, lambda tmp: program.save(tmp))


def onnx_max_diff(
    path: str | Path, model: nn.Module, inputs: list[torch.Tensor]
) -> list[float] | None:
    """max |onnxruntime - PyTorch| over all outputs, for each input; None when onnxruntime is
    not installed."""
    try:
        import onnxruntime as ort
    except ImportError:
        return None
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    model = model.eval()
    diffs = []
    with torch.no_grad():
        for x in inputs:
            got = session.run(None, {"images": x.numpy()})
            want = model(x)
            want = want if isinstance(want, tuple) else (want,)
            pairs = zip(got, want, strict=True)
            diffs.append(max((torch.from_numpy(g) - w).abs().max().item() for g, w in pairs))
    return diffs
