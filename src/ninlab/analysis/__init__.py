"""Analysis of any PyTorch model, as numbers: per-layer parameters, MACs and receptive fields,
the 1x1 comparisons, exact zeros after each ReLU, and class activation maps. Judging the numbers
against the claims is `ninlab.claims`'s business; drawing them, `ninlab.viz`'s.

The MAC/FLOP convention is defined once, in `ninlab.analysis.macs`, receptive fields in
`ninlab.analysis.fields`; `ninlab.analysis.propagate` runs a model's graph for the summary; the
with-versus-without tables of `ninlab compare` are in `ninlab.analysis.compare`; zeros after
ReLU in `ninlab.analysis.relu_zeros`; class activation maps in `ninlab.analysis.cam`.
"""

from ninlab.analysis.cam import CAM, cam_method, class_activation_map, class_activation_maps
from ninlab.analysis.fields import Field
from ninlab.analysis.relu_zeros import LayerSparsity, relu_channel_sparsity, relu_sparsity
from ninlab.analysis.stages import class_map_stage, stage_outputs, strongest_classes
from ninlab.analysis.summary import (
    Layer,
    Summary,
    input_channels,
    parse_input_size,
    receptive_field,
    summary,
    working_sizes,
)

__all__ = [
    "CAM",
    "LayerSparsity",
    "cam_method",
    "class_activation_map",
    "class_activation_maps",
    "Field",
    "Layer",
    "Summary",
    "input_channels",
    "parse_input_size",
    "receptive_field",
    "relu_channel_sparsity",
    "relu_sparsity",
    "stage_outputs",
    "strongest_classes",
    "class_map_stage",
    "summary",
    "working_sizes",
]
