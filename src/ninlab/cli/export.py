"""Export a run to ONNX that carries its own meaning, and check it with onnxruntime.

The exported graph takes uint8 pixels and normalises them itself: input "images", uint8
(N, C, H, W) in 0-255, any N, and H and W at or above the smallest size it gives a score for
(the metadata's min_input_size). Outputs: "logits" (N, classes), as `ninlab eval` computes
them, and "scores" (N, classes, h, w), one per crop of the training size. The metadata
(metadata_props) holds the class names, mean, std, input size, minimum size, channels, the
input's dtype and range, the ninlab version and the model name; docs/conversion.md shows a 10-line
onnxruntime program that classifies a PNG with it. RUN_DIR may also be a file written by
`ninlab convert`. When onnxruntime is installed (pip install ninlab[onnx]) its outputs on two
input sizes are compared with PyTorch's.

Examples:
  ninlab export runs/nin_fast --out nin_fast.onnx
  ninlab export runs/lenet --out lenet.onnx --weights final
  ninlab export runs/nin_fast/inference.safetensors --out nin_fast.onnx
"""

from __future__ import annotations

from pathlib import Path

from ninlab.cli.options import add_batch_size, add_out, add_run_inputs, add_seed
from ninlab.files import wrote
from ninlab.runs import export_run, load_run


def add_arguments(p) -> None:
    add_run_inputs(p)
    add_out(p, "where to write the .onnx file", required=True)
    add_batch_size(p, 2, "random images at the training size for the check")
    add_seed(p, "the random check images")


def run(args) -> int:
    existed = Path(args.out).exists()
    report = export_run(load_run(args.run_dir, args.weights), args.out, args.batch_size, args.seed)
    print("\n".join(report.lines()))
    print(wrote(report.out, existed))
    return 0
