"""Seeing inside a model: feature maps, sparsity by depth, class activation maps, HTML report.

Each picture has a function that returns numbers (usable in a notebook) and one that draws them;
the `ninlab features`, `sparsity`, `cam` and `report` verbs are thin layers over these.
"""

from ninlab.viz.cam import CAM, cam_method, class_activation_map, class_activation_maps, plot_cam
from ninlab.viz.features import channel_grid, plot_features, stage_outputs
from ninlab.viz.images import Picked, class_index, display_image, pick_image
from ninlab.viz.report import Report, build_report
from ninlab.viz.sparsity import (
    LayerSparsity,
    SparsityReport,
    initial_model,
    plot_sparsity,
    relu_channel_sparsity,
    run_sparsity,
    sparser_with_depth,
)

__all__ = [
    "CAM",
    "LayerSparsity",
    "Picked",
    "Report",
    "SparsityReport",
    "build_report",
    "cam_method",
    "channel_grid",
    "class_activation_map",
    "class_activation_maps",
    "class_index",
    "display_image",
    "initial_model",
    "pick_image",
    "plot_cam",
    "plot_features",
    "plot_sparsity",
    "relu_channel_sparsity",
    "run_sparsity",
    "sparser_with_depth",
    "stage_outputs",
]
