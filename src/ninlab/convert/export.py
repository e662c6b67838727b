"""ONNX export of a converted model with dynamic height and width, checked with onnxruntime."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import logging
import warnings
from pathlib import Path

import torch
from torch import nn

from ninlab.errors import NinlabError
from ninlab.files import atomic_write


def export_onnx(model: nn.Module, path: str | Path, input_shape: tuple[int, int, int]) -> None:
    """Write `model` as ONNX: input "images" (N, C, H, W) with N, H and W dynamic, output
    "scores" (N, K, h, w) for a DenseClassifier.

    Uses the torch.export-based exporter (`dynamo=True`), quietly.
    """
    missing = [m for m in ("onnx", "onnxscript") if importlib.util.find_spec(m) is None]
    if missing:
        raise NinlabError(
            f"ONNX export needs the package(s) {', '.join(missing)}, not installed here; "
            'pip install "ninlab[onnx]" (or pip install -e ".[onnx]" in a checkout).'
        )
    model = model.eval()
    x = torch.zeros(2, *input_shape)
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            model,
            (x,),
            input_names=["images"],
            output_names=["scores"],
            dynamic_shapes=({0: "batch", 2: "height", 3: "width"},),
            dynamo=True,
            verbose=False,
        )
        atomic_write(path, lambda tmp: program.save(tmp))


def onnx_max_diff(
    path: str | Path, model: nn.Module, inputs: list[torch.Tensor]
) -> list[float] | None:
    """max |onnxruntime - PyTorch| for each input, or None when onnxruntime is not installed."""
    try:
        import onnxruntime as ort
    except ImportError:
        return None
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    model = model.eval()
    diffs = []
    with torch.no_grad():
        for x in inputs:
            (got,) = session.run(["scores"], {"images": x.numpy()})
            diffs.append((torch.from_numpy(got) - model(x)).abs().max().item())
    return diffs
