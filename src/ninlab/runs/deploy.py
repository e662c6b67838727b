"""A run made ready to deploy: converted for inference and checked (`convert_run`, and
`convert_model` for a model named without a run), or exported to ONNX with its meaning in the
metadata (`export_run`), each timed or checked against the original in the same process."""

from __future__ import annotations

import json
import textwrap
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import nn

from ninlab.convert import (
    Conversion,
    ConvertedClassifier,
    DenseClassifier,
    PixelClassifier,
    export_onnx,
    for_inference,
    images_per_second,
    onnx_max_diff,
)
from ninlab.errors import NinlabError
from ninlab.files import writable_file
from ninlab.runs.converted import save_converted
from ninlab.runs.run import Run
from ninlab.train import TrainConfig
from ninlab.version import __version__

ONNX_TOLERANCE = 1e-4  # max |onnxruntime - PyTorch| for an export to count as faithful


def _for_inference(run: Run) -> tuple[DenseClassifier, Conversion]:
    """`for_inference` of a run's model at its training size, as one sentence when it fails."""
    if isinstance(run.model, ConvertedClassifier):
        raise NinlabError(
            f"{run.weights} is converted already; convert the run directory it came from."
        )
    try:
        return for_inference(run.model, run.input_shape)
    except ValueError as e:
        raise NinlabError(str(e)) from None


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
            f"folded batch norm: {len(c.folded)} pairs; score grid stride {c.stride} px",
            c.fused_text(),
            f"check: max |converted - original| = {self.max_diff:.2e} on {self.batch_size} random",
            f"  N(0,1) inputs (largest |logit| {self.largest_logit:.2e})",
            f"speed: {self.before:,.0f} -> {self.after:,.0f} images/s "
            f"({self.after / self.before:.2f}x), batch {self.batch_size}, "
            f"{torch.get_num_threads()} threads",
        ]


def convert_run(run: Run, out: str | Path, batch_size: int = 64, seed: int = 0) -> ConvertReport:
    """Convert a run's model (a `ninlab.runs.Run`) for inference, check its logits and time both
    models on the same `batch_size` random N(0, 1) inputs (seeded), and save the converted
    weights to `out`."""
    out = writable_file(out)
    dense, conversion = _for_inference(run)
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
    out = writable_file(out)
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


def onnx_metadata(config: TrainConfig, dense: DenseClassifier) -> dict[str, str]:
    """The metadata_props of a run's ONNX export: what a program needs to feed it and read it,
    as JSON values (or plain text for the two descriptions)."""
    c, h, w = dense.default_input_size
    low = dense.smallest_side()
    return {
        "model": config.model,
        "dataset": config.dataset,
        "classes": json.dumps(list(config.classes)),
        "channels": json.dumps(c),
        "input_size": json.dumps([h, w]),
        "min_input_size": json.dumps([low, low]),
        "input_dtype": "uint8",
        "input_range": json.dumps([0, 255]),
        "mean": json.dumps(list(config.mean)),
        "std": json.dumps(list(config.std)),
        "tta_flip": json.dumps(config.tta_flip),
        "tta_shift": json.dumps(config.tta_shift),
        "stride": json.dumps(dense.stride),
        "ninlab_version": __version__,
        "input": "images: uint8 pixels 0-255, N x channels x H x W (channels in the training "
        "images' order), H and W at least min_input_size; the graph normalises them itself: "
        "(x / 255 - mean) / std per channel",
        "outputs": "logits: N x classes, the mean of the score grid (averaged with the mirror "
        "image's when tta_flip; never over shifts, which ninlab eval averages when tta_shift); "
        "scores: N x classes x h x w, one row of scores per crop of input_size, every stride "
        "pixels",
    }


@dataclass
class ExportReport:
    """What `export_run` wrote and checked, in this process."""

    source: str  # what was exported: "nin_fast from runs/x/best.safetensors"
    out: Path
    metadata: dict[str, str]  # the ONNX file's metadata_props (`onnx_metadata`)
    checks: list[tuple[tuple[int, ...], float]] | None  # (input shape, max |ORT - PyTorch|)

    def lines(self) -> list[str]:
        m = {k: json.loads(self.metadata[k]) for k in
             ("classes", "channels", "input_size", "min_input_size", "mean", "std", "tta_flip",
              "stride")}  # fmt: skip
        (h, w), low, k = m["input_size"], m["min_input_size"][0], len(m["classes"])
        mean, std = (", ".join(f"{v:.4g}" for v in m[key]) for key in ("mean", "std"))
        flip = ", averaged with the mirror image's" if m["tta_flip"] else ""
        lines = [
            f"model {self.source}",
            f'input "images": uint8 pixels 0-255, N x {m["channels"]} x H x W, H and W >= {low}',
            f"  ({h}x{w} as trained); the graph normalises them: (x / 255 - mean) / std,",
            f"  mean {mean}, std {std}",
            f'output "logits": N x {k}, the mean of "scores"{flip};',
            f'  "scores": N x {k} x h x w, one per {h}x{w} crop, every {m["stride"]} px',
        ]
        if json.loads(self.metadata.get("tta_shift", "false")):
            lines.append("  (one pass: ninlab eval averages 1-px shifts too, as the run did)")
        lines += textwrap.wrap(
            "metadata_props: " + ", ".join(self.metadata), 80, subsequent_indent="  "
        )
        if self.checks is None:
            lines.append("onnxruntime is not installed (pip install ninlab[onnx]): check skipped")
        else:
            lines += [f"onnxruntime vs PyTorch on {'x'.join(map(str, shape))}: max |difference| "
                      f"= {diff:.2e}" for shape, diff in self.checks]  # fmt: skip
            lines.append(f"outputs equal to {ONNX_TOLERANCE:g} on both sizes")
        return lines


def export_run(run: Run, out: str | Path, batch_size: int = 2, seed: int = 0) -> ExportReport:
    """Export a run (a `ninlab.runs.Run`, also one loaded from a `ninlab convert` file) to ONNX
    as a `PixelClassifier`: input "images", uint8 pixels (N, C, H, W) with N, H, W dynamic;
    outputs "logits" (N, K) and "scores" (N, K, h, w); the run's classes, mean, std, input
    sizes and more in the metadata (`onnx_metadata`).

    When onnxruntime is installed, its outputs are compared with PyTorch's on `batch_size`
    random images at the training size and on one larger image (seeded); a difference above
    ONNX_TOLERANCE raises NinlabError."""
    out = writable_file(out)
    if isinstance(run.model, ConvertedClassifier):
        dense = run.model.dense
    else:
        dense, _ = _for_inference(run)
    cfg = run.config
    model = PixelClassifier(dense, cfg.mean, cfg.std, cfg.tta_flip).eval()
    meta = onnx_metadata(cfg, dense)
    export_onnx(model, out, run.input_shape, torch.uint8, ("logits", "scores"), meta)
    g = torch.Generator().manual_seed(seed)
    c, h, w = run.input_shape
    inputs = [
        torch.randint(0, 256, (batch_size, c, h, w), generator=g, dtype=torch.uint8),
        torch.randint(0, 256, (1, c, h + 2 * dense.stride, w + 3), generator=g, dtype=torch.uint8),
    ]
    diffs = onnx_max_diff(out, model, inputs)
    if diffs is not None and max(diffs) > ONNX_TOLERANCE:
        raise NinlabError(
            f"onnxruntime differs from PyTorch by {max(diffs):.2e} > {ONNX_TOLERANCE:g}; the "
            "export is not faithful, please report it."
        )
    shapes = [tuple(x.shape) for x in inputs]
    checks = None if diffs is None else list(zip(shapes, diffs, strict=True))
    return ExportReport(f"{cfg.model} from {run.weights}", out, meta, checks)
