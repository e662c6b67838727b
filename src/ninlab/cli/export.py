"""Export a run to ONNX with dynamic height and width, and check it with onnxruntime.

The exported model is the run's converted model (as `ninlab convert` makes it): input
"images" (N, C, H, W) of any N, H, W at or above the training size, output "scores"
(N, classes, h, w), a 1x1 grid of logits at the training size. When onnxruntime is installed
(pip install ninlab[onnx]) its outputs on two input sizes are compared with PyTorch's.

Examples:
  ninlab export runs/nin_fast --out nin_fast.onnx
  ninlab export runs/lenet --out lenet.onnx --weights final
"""

from __future__ import annotations

from ninlab.cli.options import add_batch_size, add_out, add_run_inputs, add_seed
from ninlab.convert import export_run
from ninlab.convert.inference import ONNX_TOLERANCE


def add_arguments(p) -> None:
    add_run_inputs(p)
    add_out(p, "where to write the .onnx file", required=True)
    add_batch_size(p, 2, "random inputs at the training size for the check")
    add_seed(p, "the random check inputs")


def run(args) -> int:
    checks = export_run(args.run_dir, args.out, args.weights, args.batch_size, args.seed)
    print(f"wrote {args.out}: images (N, C, H, W) -> scores (N, classes, h, w)")
    if checks is None:
        print("onnxruntime is not installed (pip install ninlab[onnx]): output check skipped")
        return 0
    for shape, diff in checks:
        print(
            f"onnxruntime vs PyTorch on {'x'.join(map(str, shape))}: max |difference| = {diff:.2e}"
        )
    print(f"outputs equal to {ONNX_TOLERANCE:g} on both sizes")
    return 0
