"""1x1 convolutions <=> fully-connected layers: exact conversions, dense prediction, fusion, export.

linear.py     linear_to_conv1x1, conv1x1_to_linear, fc_to_conv, conv1x1_as_matmul
dense.py      convolutionalize -> DenseClassifier, check_sliding_window
fuse.py       fold_batchnorm, fuse_linear_1x1 (and the pairwise fold_conv_bn, fuse_convs)
export.py     PixelClassifier (uint8 pixels in), export_onnx with dynamic height and width,
              onnx_max_diff
measure.py    images_per_second
inference.py  for_inference -> (DenseClassifier, Conversion), ConvertedClassifier

Module rewrites only: saving a converted model and converting or exporting a run are in
`ninlab.runs` (converted.py, deploy.py).
"""

from ninlab.convert.dense import (
    DenseClassifier,
    SlidingWindowCheck,
    check_sliding_window,
    convolutionalize,
)
from ninlab.convert.export import PixelClassifier, export_onnx, onnx_max_diff
from ninlab.convert.fuse import (
    fold_batchnorm,
    fold_conv_bn,
    fuse_convs,
    fuse_linear_1x1,
    fuse_pair,
    unfused_1x1,
)
from ninlab.convert.inference import Conversion, ConvertedClassifier, for_inference
from ninlab.convert.linear import (
    apply_linear_per_pixel,
    conv1x1_as_matmul,
    conv1x1_to_linear,
    fc_to_conv,
    linear_to_conv1x1,
)
from ninlab.convert.measure import images_per_second

__all__ = [
    "Conversion",
    "ConvertedClassifier",
    "DenseClassifier",
    "PixelClassifier",
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
    "onnx_max_diff",
    "unfused_1x1",
]
