"""Convert a trained run for inference: fully convolutional, batch norm folded, 1x1 convs fused.

Writes the weights of `ninlab.convert.for_inference(model)` as safetensors (the metadata says
what was folded and fused, and holds the run's config; `ninlab.runs.load_converted` reads
it back), then checks on random inputs that the converted model gives the same logits and
measures images/s of both in this process. When no conv pair fuses it says what keeps them
apart (in a NiN, the ReLU before every 1x1 conv). `ninlab predict`, `eval` and `export` take
the file written from a run in place of the run directory.

--model MODEL converts a model named without a run instead (a registry name, package.module:callable
or path/to/file.py:callable; importing it runs its code), with the weights it is built with.

Examples:
  ninlab convert runs/nin_fast --out runs/nin_fast/inference.safetensors
  ninlab convert runs/lenet --out lenet_conv.safetensors --batch-size 256 --weights final
  ninlab convert --model alexnet_fc --out alexnet_conv.safetensors --batch-size 8
  ninlab convert --model my_pkg.nets:classifier --input 3x64x64 --out classifier.safetensors
  ninlab predict runs/nin_fast/inference.safetensors --index 0
"""

from __future__ import annotations

from pathlib import Path

from ninlab.analysis import input_channels, parse_input_size
from ninlab.cli.options import add_batch_size, add_model_spec, add_out, add_run_inputs, add_seed
from ninlab.errors import NinlabError
from ninlab.files import wrote
from ninlab.models import load_model
from ninlab.runs import convert_model, convert_run, load_run


def add_arguments(p) -> None:
    add_run_inputs(p, optional=True)
    add_model_spec(p, "--model", required=False)
    p.add_argument("--input", metavar="CxHxW", help="with --model: the input size its FC layers "
                   "are sized for (default: the model's own)")  # fmt: skip
    add_out(p, "where to write .safetensors", required=True)
    add_batch_size(p, 64, "random inputs for the check and the timing")
    add_seed(p, "the random check inputs")


def run(args) -> int:
    if (args.run_dir is None) == (args.model is None):
        raise NinlabError("give a RUN_DIR or --model MODEL (one of them).")
    existed = Path(args.out).exists()
    if args.run_dir is not None:
        run = load_run(args.run_dir, args.weights)
        report = convert_run(run, args.out, args.batch_size, args.seed)
    else:
        model = load_model(args.model, args.kwargs)
        size = args.input and parse_input_size(args.input, input_channels(model))
        report = convert_model(model, args.out, size, args.batch_size, args.seed)
    print("\n".join(report.lines()))
    print(wrote(report.out, existed))
    return 0
