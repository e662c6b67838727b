"""Convert a trained run for inference: fully convolutional, batch norm folded, 1x1 convs fused.

Writes the weights of `ninlab.convert.for_inference(model)` as safetensors (the metadata says
what was folded and fused, and holds the run's config; `ninlab.convert.load_converted` reads
it back), then checks on random inputs that the converted model gives the same logits and
measures images/s of both in this process.

Examples:
  ninlab convert runs/nin_fast --out runs/nin_fast/inference.safetensors
  ninlab convert runs/lenet --out lenet_conv.safetensors --batch-size 256 --weights final
"""

from __future__ import annotations

from ninlab.cli.options import add_batch_size, add_out, add_run_inputs, add_seed
from ninlab.convert import convert_run


def add_arguments(p) -> None:
    add_run_inputs(p)
    add_out(p, "where to write .safetensors", required=True)
    add_batch_size(p, 64, "random inputs for the check and the timing")
    add_seed(p, "the random check inputs")


def run(args) -> int:
    report = convert_run(args.run_dir, args.out, args.weights, args.batch_size, args.seed)
    print("\n".join(report.lines()))
    return 0
