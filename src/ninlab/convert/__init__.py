"""1x1 convolutions <=> fully-connected layers: exact conversions, dense prediction, fusion, export.

linear.py   linear_to_conv1x1, conv1x1_to_linear, fc_to_conv, conv1x1_as_matmul
dense.py    convolutionalize -> DenseClassifier, check_sliding_window, min_input_size
fuse.py     fold_batchnorm, fuse_linear_1x1 (and the pairwise fold_conv_bn, fuse_convs)
export.py   export_onnx with dynamic height and width, onnx_max_diff
measure.py  images_per_second
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file
from torch import nn

from ninlab.convert.dense import (
    DenseClassifier,
    SlidingWindowCheck,
    check_sliding_window,
    convolutionalize,
    min_input_size,
    total_stride,
)
from ninlab.convert.export import export_onnx, onnx_max_diff
from ninlab.convert.fuse import fold_batchnorm, fold_conv_bn, fuse_convs, fuse_linear_1x1, fuse_pair
from ninlab.convert.linear import (
    apply_linear_per_pixel,
    conv1x1_as_matmul,
    conv1x1_to_linear,
    fc_to_conv,
    linear_to_conv1x1,
)
from ninlab.convert.measure import images_per_second
from ninlab.errors import NinlabError


@dataclass
class Conversion:
    """What `for_inference` did to a model."""

    input_size: tuple[int, int, int]  # the size the FC layers were sized for
    stride: int  # pixels between cells of the score grid
    folded: list[tuple[str, str]] = field(default_factory=list)  # (conv, bn) pairs
    fused: list[tuple[str, str]] = field(default_factory=list)  # (conv, 1x1 conv) pairs


def for_inference(
    model: nn.Module, input_shape: tuple[int, int, int] | None = None
) -> tuple[DenseClassifier, Conversion]:
    """convolutionalize, then fold_batchnorm, then fuse_linear_1x1: one fully convolutional,
    batch-norm-free model whose 1x1 grid on `input_shape` equals the original logits."""
    dense = convolutionalize(model, input_shape)
    dense, folded = fold_batchnorm(dense)
    dense, fused = fuse_linear_1x1(dense)
    return dense, Conversion(dense.default_input_size, dense.stride, folded, fused)


def save_converted(model: DenseClassifier, path: str | Path, conversion: Conversion, config: dict):
    """Safetensors weights; the metadata says what was done and holds the run's config."""
    from ninlab.runs import atomic_write

    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    meta = {
        "model": config["model"],
        "format": "ninlab.convert.for_inference",
        "conversion": json.dumps(asdict(conversion)),
        "config": json.dumps(config),
    }
    atomic_write(Path(path), lambda tmp: save_file(state, tmp, metadata=meta))


def load_converted(path: str | Path) -> tuple[DenseClassifier, dict]:
    """Rebuild a model written by `save_converted` (or `ninlab convert`): (model, config)."""
    from ninlab.models import create_model

    try:
        with safe_open(str(path), "pt") as f:
            meta = f.metadata() or {}
        state = load_file(str(path))
    except (SafetensorError, OSError) as e:
        raise NinlabError(f"{path} cannot be read as safetensors ({e}).") from None
    if meta.get("format") != "ninlab.convert.for_inference":
        raise NinlabError(f"{path} was not written by `ninlab convert`; convert the run first.")
    config = json.loads(meta["config"])
    size = json.loads(meta["conversion"])["input_size"]
    model = create_model(config["model"], num_classes=len(config["classes"]), in_chans=size[0])
    dense, _ = for_inference(model, tuple(size))
    dense.load_state_dict(state)
    return dense.eval(), config


__all__ = [
    "Conversion",
    "DenseClassifier",
    "SlidingWindowCheck",
    "apply_linear_per_pixel",
    "check_sliding_window",
    "conv1x1_as_matmul",
    "conv1x1_to_linear",
    "convolutionalize",
    "export_onnx",
    "fc_to_conv",
    "fold_batchnorm",
    "fold_conv_bn",
    "for_inference",
    "fuse_convs",
    "fuse_linear_1x1",
    "fuse_pair",
    "images_per_second",
    "linear_to_conv1x1",
    "load_converted",
    "min_input_size",
    "onnx_max_diff",
    "save_converted",
    "total_stride",
]
