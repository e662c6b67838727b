"""Models ready for inference: convolutionalized, batch norm folded, linear 1x1 convs
fused, checked against the original, saved as safetensors or exported to ONNX.

for_inference       model -> (DenseClassifier, Conversion)
save_converted      safetensors whose metadata says what was done and holds the run's config
load_converted      the model back from that file
load_converted_run  that file as its run's classifier, with the run's config (what
                    `ninlab.runs.load_run` gives for it, so that predict and eval take it)
convert_run         a run -> converted, checked, timed and saved (`ninlab convert`)
convert_model       the same for a model named without a run (`ninlab convert --model SPEC`)
export_run          a run -> ONNX that takes uint8 pixels and carries its meaning in its
                    metadata, checked with onnxruntime (`ninlab export`)

The functions on a run take a `ninlab.runs.Run` (from `load_run`), not its directory: `runs`
reads converted files through this module, so this module does not import `runs`.
"""

from __future__ import annotations

import json
import textwrap
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
from torch import nn

from ninlab.checksum import check_weights, read_safetensors, save_sealed
from ninlab.convert.dense import DenseClassifier, convolutionalize
from ninlab.convert.export import PixelClassifier, export_onnx, onnx_max_diff
from ninlab.convert.fuse import fold_batchnorm, fuse_linear_1x1, unfused_1x1
from ninlab.convert.measure import images_per_second
from ninlab.errors import NinlabError
from ninlab.files import writable_file
from ninlab.models import create_model_for, imported_by, load_model
from ninlab.train import TrainConfig
from ninlab.version import __version__

FORMAT = "ninlab.convert.for_inference"
ONNX_TOLERANCE = 1e-4  # max |onnxruntime - PyTorch| for an export to count as faithful


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


def save_converted(
    model: DenseClassifier,
    path: str | Path,
    conversion: Conversion,
    config: TrainConfig | None,
    source: dict | None = None,
) -> None:
    """Safetensors weights; the metadata says what was done and holds the run's config, or, for
    a model named without a run, `source` ({"model": spec, "kwargs": {...}})."""
    meta = {"format": FORMAT, "conversion": json.dumps(asdict(conversion))}
    if config is not None:
        meta |= {"model": config.model, "config": json.dumps(config.to_dict())}
    else:
        meta |= {"model": source["model"], "source": json.dumps(source)}
    save_sealed(path, model.state_dict(), meta)  # checked by load_converted


def load_converted(
    path: str | Path, trust_code: bool = False
) -> tuple[DenseClassifier, TrainConfig | None]:
    """Rebuild a model written by `save_converted` (or `ninlab convert`): (model, config); the
    config is None for a model converted without a run (it is rebuilt from its spec).

    Opening the file runs no code of its own: a registry model is built from its name, and a
    file whose model is `package.module:callable` or `file.py:callable` is refused in one
    sentence unless `trust_code` is True (as with `trust_remote_code`: say yes only to a file
    whose author you trust, since importing the module runs it)."""
    return _built_from(path, *_read_converted(path), trust_code)


def _read_converted(path) -> tuple[dict, dict]:
    """(metadata, tensors) of a file written by `save_converted`, checksum checked."""
    meta, state = read_safetensors(path)
    if meta.get("format") != FORMAT:
        raise NinlabError(
            f"{path} was not written by `ninlab convert`; pass a run directory, or convert the "
            "run first."
        )
    check_weights(path, meta, state, _again(meta))  # before anything is built from the metadata
    return meta, state


def _again(meta: dict) -> str:
    return "convert the run again" if "config" in meta else "convert the model again"


def _built_from(path, meta: dict, state: dict, trust_code: bool):
    """The converted model that `meta` describes, with the weights `state`: (model, config)."""
    try:  # ValueError: not JSON; KeyError, TypeError: fields missing or of the wrong type
        size = tuple(json.loads(meta["conversion"])["input_size"])
        if "config" in meta:
            config = TrainConfig.from_dict(json.loads(meta["config"]))
            model = create_model_for(state, path, config.model, num_classes=len(config.classes),
                                     in_chans=size[0])  # fmt: skip
        else:
            config, (spec, kwargs) = None, _source(meta)
            if imported_by(spec) is None:
                model = create_model_for(state, path, spec, **kwargs)
            else:
                _check_trusted(path, spec, trust_code)
                model = load_model(spec, kwargs)
        dense, _ = for_inference(model, size)
        dense.load_state_dict(state)
    except (ValueError, KeyError, TypeError, RuntimeError) as e:
        why = str(e).strip().splitlines()[0][:120] if str(e).strip() else type(e).__name__
        raise NinlabError(f"{path} is damaged ({why}); {_again(meta)}.") from None
    return dense.eval(), config


def _source(meta: dict) -> tuple[str, dict]:
    """The (spec, kwargs) of a model converted without a run."""
    source = json.loads(meta["source"])
    spec, kwargs = source["model"], source["kwargs"]
    if not isinstance(spec, str) or not isinstance(kwargs, dict):
        raise TypeError("its source is not a model name and a dict of arguments")
    return spec, kwargs


def _check_trusted(path, spec: str, trust_code: bool) -> None:
    """One sentence, naming what would be imported, unless the user trusts the file's code."""
    if trust_code:
        return
    raise NinlabError(
        f"{path} was converted from {spec!r}: building it would import and run "
        f"{imported_by(spec)!r}, and opening a file runs no code without your say-so; if you "
        "trust the file's author, call ninlab.convert.load_converted(path, trust_code=True)."
    )


def load_converted_run(path: str | Path) -> tuple[ConvertedClassifier, TrainConfig]:
    """A file written by `ninlab convert RUN_DIR` as the classifier of that run (logits from the
    converted model, `ConvertedClassifier`) and the run's config: what `ninlab.runs.load_run`
    returns for such a file, so that `predict` and `eval` take it in place of the run. A file
    converted from a model named without a run is refused before its model is built."""
    meta, state = _read_converted(path)
    if "config" not in meta:
        try:
            spec = _source(meta)[0]
        except (ValueError, KeyError, TypeError):
            spec = None
        code = imported_by(spec) if spec else None
        raise NinlabError(
            f"{path} was converted from {repr(spec) if spec else 'a model'} named without a "
            "run, so it has no classes or normalisation"
            + (f" (and building it would import and run {code!r}, which opening a file never "
               "does)" if code else "")
            + "; convert a run (`ninlab convert RUN_DIR --out FILE`) to use it here."
        )  # fmt: skip
    dense, config = _built_from(path, meta, state, trust_code=False)
    return ConvertedClassifier(dense, config.model).eval(), config


def _for_inference(run) -> tuple[DenseClassifier, Conversion]:
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


def convert_run(run, out: str | Path, batch_size: int = 64, seed: int = 0) -> ConvertReport:
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
        "stride": json.dumps(dense.stride),
        "ninlab_version": __version__,
        "input": "images: uint8 pixels 0-255, N x channels x H x W (channels in the training "
        "images' order), H and W at least min_input_size; the graph normalises them itself: "
        "(x / 255 - mean) / std per channel",
        "outputs": "logits: N x classes, the mean of the score grid (averaged with the mirror "
        "image's when tta_flip); scores: N x classes x h x w, one row of scores per crop of "
        "input_size, every stride pixels",
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


def export_run(run, out: str | Path, batch_size: int = 2, seed: int = 0) -> ExportReport:
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
