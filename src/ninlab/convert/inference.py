"""A trained run made ready for inference: convolutionalized, batch norm folded, linear 1x1 convs
fused, checked against the original, saved as safetensors or exported to ONNX.

for_inference     model -> (DenseClassifier, Conversion)
save_converted    safetensors whose metadata says what was done and holds the run's config
load_converted    the model back from that file
convert_run       a run directory -> converted, checked, timed and saved (`ninlab convert`)
convert_model     the same for a model named without a run (`ninlab convert --model SPEC`)
export_run        a run directory -> converted ONNX, checked with onnxruntime (`ninlab export`)
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file
from torch import nn

from ninlab.convert.dense import DenseClassifier, convolutionalize
from ninlab.convert.export import export_onnx, onnx_max_diff
from ninlab.convert.fuse import fold_batchnorm, fuse_linear_1x1
from ninlab.convert.measure import images_per_second
from ninlab.errors import NinlabError
from ninlab.files import atomic_write, writable_file
from ninlab.models import create_model, load_model
from ninlab.runs import load_run
from ninlab.train import TrainConfig

FORMAT = "ninlab.convert.for_inference"
ONNX_TOLERANCE = 1e-4  # max |onnxruntime - PyTorch| for an export to count as faithful


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


def save_converted(
    model: DenseClassifier,
    path: str | Path,
    conversion: Conversion,
    config: TrainConfig | None,
    source: dict | None = None,
) -> None:
    """Safetensors weights; the metadata says what was done and holds the run's config, or, for
    a model named without a run, `source` ({"model": spec, "kwargs": {...}})."""
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    meta = {"format": FORMAT, "conversion": json.dumps(asdict(conversion))}
    if config is not None:
        meta |= {"model": config.model, "config": json.dumps(config.to_dict())}
    else:
        meta |= {"model": source["model"], "source": json.dumps(source)}
    atomic_write(Path(path), lambda tmp: save_file(state, tmp, metadata=meta))


def load_converted(path: str | Path) -> tuple[DenseClassifier, TrainConfig | None]:
    """Rebuild a model written by `save_converted` (or `ninlab convert`): (model, config); the
    config is None for a model converted without a run (it is rebuilt from its spec)."""
    try:
        with safe_open(str(path), "pt") as f:
            meta = f.metadata() or {}
        state = load_file(str(path))
    except (SafetensorError, OSError) as e:
        raise NinlabError(f"{path} cannot be read as safetensors ({e}).") from None
    if meta.get("format") != FORMAT:
        raise NinlabError(f"{path} was not written by `ninlab convert`; convert the run first.")
    size = tuple(json.loads(meta["conversion"])["input_size"])
    if "config" in meta:
        config = TrainConfig.from_dict(json.loads(meta["config"]))
        model = create_model(config.model, num_classes=len(config.classes), in_chans=size[0])
    else:
        config, source = None, json.loads(meta["source"])
        model = load_model(source["model"], source["kwargs"])
    dense, _ = for_inference(model, size)
    dense.load_state_dict(state)
    return dense.eval(), config


def _converted_run(run_dir: str | Path, weights: str, out: Path):
    """(run, converted model, conversion), after checking that `out` can be written."""
    writable_file(out)
    run = load_run(run_dir, weights)
    try:
        dense, conversion = for_inference(run.model, run.input_shape)
    except ValueError as e:
        raise NinlabError(str(e)) from None
    return run, dense, conversion


@dataclass
class ConvertReport:
    """What `convert_run` did and measured, in this process."""

    source: str  # what was converted: "nin_fast from runs/x/best.safetensors"
    conversion: Conversion
    out: Path
    batch_size: int
    max_diff: float  # max |converted - original| over the random check inputs
    largest_logit: float  # max |original logit|, for a relative reading of max_diff
    before: float  # images/s of the original model
    after: float  # images/s of the converted model

    def lines(self) -> list[str]:
        c = self.conversion
        return [
            f"model {self.source}, input {'x'.join(map(str, c.input_size))}",
            f"folded batch norm: {len(c.folded)} pairs; fused conv pairs: {len(c.fused)}; score "
            f"grid stride {c.stride} px",
            f"check: max |converted - original| = {self.max_diff:.2e} on {self.batch_size} random "
            f"N(0,1) inputs (largest |logit| {self.largest_logit:.2e})",
            f"speed: {self.before:,.0f} -> {self.after:,.0f} images/s "
            f"({self.after / self.before:.2f}x), batch {self.batch_size}, "
            f"{torch.get_num_threads()} threads",
            f"wrote {self.out}",
        ]


def convert_run(
    run_dir: str | Path, out: str | Path, weights: str = "best", batch_size: int = 64, seed: int = 0
) -> ConvertReport:
    """Convert a run's model for inference, check its logits and time both models on the same
    `batch_size` random N(0, 1) inputs (seeded), and save the converted weights to `out`."""
    out = Path(out)
    run, dense, conversion = _converted_run(run_dir, weights, out)
    report = _check_and_time(run.model, dense, conversion, out, batch_size, seed)
    save_converted(dense, out, conversion, run.config)
    return replace(report, source=f"{run.config.model} from {run.weights}")


def convert_model(
    model: nn.Module,
    out: str | Path,
    input_shape: tuple[int, int, int] | None = None,
    batch_size: int = 64,
    seed: int = 0,
) -> ConvertReport:
    """`convert_run` for a model named without a run, as `ninlab.models.load_model` built it
    (its spec is saved, to build it again in `load_converted`), with its own weights, at
    `input_shape` (default: the model's `default_input_size`)."""
    out = Path(out)
    writable_file(out)
    spec = getattr(model, "model_name", type(model).__name__)
    input_shape = input_shape or getattr(model, "default_input_size", None)
    if input_shape is None:
        raise NinlabError(f"{spec} has no default input size; give one with --input CxHxW.")
    try:
        dense, conversion = for_inference(model.eval(), tuple(input_shape))
    except ValueError as e:
        raise NinlabError(str(e)) from None
    report = _check_and_time(model, dense, conversion, out, batch_size, seed)
    source = {"model": spec, "kwargs": getattr(model, "model_kwargs", {})}
    save_converted(dense, out, conversion, None, source)
    return replace(report, source=f"{spec} (its own weights)")


def _check_and_time(model, dense, conversion, out, batch_size, seed) -> ConvertReport:
    """The converted model's largest logit difference and both models' images/s, on the same
    `batch_size` random N(0, 1) inputs (seeded)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch_size, *conversion.input_size, generator=g)
    with torch.no_grad():
        ref = model(x)
        diff = (dense(x).flatten(1) - ref).abs().max().item()
    before = images_per_second(model, x)
    after = images_per_second(dense, x)
    return ConvertReport("", conversion, out, batch_size, diff, ref.abs().max().item(), before,
                         after)  # fmt: skip


def export_run(
    run_dir: str | Path, out: str | Path, weights: str = "best", batch_size: int = 2, seed: int = 0
) -> list[tuple[tuple[int, ...], float]] | None:
    """Export a run's converted model to ONNX (dynamic N, H, W) and compare onnxruntime with
    PyTorch on a batch at the training size and on one larger image: [(input shape, max
    |difference|)], or None when onnxruntime is not installed. A difference above
    ONNX_TOLERANCE raises NinlabError."""
    out = Path(out)
    run, dense, _ = _converted_run(run_dir, weights, out)
    export_onnx(dense, out, run.input_shape)
    g = torch.Generator().manual_seed(seed)
    c, h, w = run.input_shape
    inputs = [
        torch.randn(batch_size, c, h, w, generator=g),
        torch.randn(1, c, h + 2 * dense.stride, w + 3, generator=g),
    ]
    diffs = onnx_max_diff(out, dense, inputs)
    if diffs is None:
        return None
    if max(diffs) > ONNX_TOLERANCE:
        raise NinlabError(
            f"onnxruntime differs from PyTorch by {max(diffs):.2e} > {ONNX_TOLERANCE:g}; the "
            "export is not faithful, please report it."
        )
    return [(tuple(x.shape), d) for x, d in zip(inputs, diffs, strict=True)]
