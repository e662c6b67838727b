"""Export a run to ONNX with dynamic height and width, and check it with onnxruntime.

The exported model is the run's converted model (as `ninlab convert` makes it): input
"images" (N, C, H, W) of any N, H, W at or above the training size, output "scores"
(N, classes, h, w), a 1x1 grid of logits at the training size. When onnxruntime is installed
(pip install ninlab[onnx]) its outputs on two input sizes are compared with PyTorch's.

Examples:
  ninlab export runs/nin_fast --onnx nin_fast.onnx
  ninlab export runs/lenet --onnx lenet.onnx --which final
"""

from __future__ import annotations

from pathlib import Path

import torch

from ninlab.cli.convert import add_common, load
from ninlab.convert import export_onnx, onnx_max_diff
from ninlab.errors import NinlabError

TOLERANCE = 1e-4


def add_arguments(p) -> None:
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run directory written by `ninlab train`")
    p.add_argument("--onnx", metavar="FILE", required=True, help="where to write the .onnx file")
    add_common(p)
    p.set_defaults(batch=2)


def run(args) -> int:
    out = Path(args.onnx)
    if not out.parent.is_dir():
        raise NinlabError(f"folder {out.parent} does not exist; create it or pick another --onnx.")
    run_, shape, dense, _ = load(args)
    export_onnx(dense, out, shape)
    print(f"wrote {out}: images (N, {shape[0]}, H, W) -> scores (N, classes, h, w)")
    torch.manual_seed(args.seed)
    c, h, w = shape
    inputs = [torch.randn(args.batch, c, h, w), torch.randn(1, c, h + 2 * dense.stride, w + 3)]
    diffs = onnx_max_diff(out, dense, inputs)
    if diffs is None:
        print("onnxruntime is not installed (pip install ninlab[onnx]): output check skipped")
        return 0
    for x, d in zip(inputs, diffs, strict=True):
        size = "x".join(map(str, x.shape))
        print(f"onnxruntime vs PyTorch on {size}: max |difference| = {d:.2e}")
    if max(diffs) > TOLERANCE:
        raise NinlabError(
            f"onnxruntime differs from PyTorch by {max(diffs):.2e} > {TOLERANCE:g}; the export "
            f"is not faithful, please report it."
        )
    print(f"outputs equal to {TOLERANCE:g} on both sizes")
    return 0
