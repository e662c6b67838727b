"""ninlab: Network-in-Network models and 1x1 convolutions: train, convert, analyse, look inside."""

from ninlab.analysis import receptive_field, relu_sparsity, summary
from ninlab.claims import check_claims
from ninlab.convert import (
    check_sliding_window,
    convert_run,
    convolutionalize,
    export_run,
    fold_batchnorm,
    fuse_linear_1x1,
)
from ninlab.data import load_dataset
from ninlab.errors import NinlabError
from ninlab.models import (
    BasicBlock,
    Bottleneck,
    Inception,
    NiN,
    NiNBlock,
    conv1x1,
    create_model,
    list_models,
)
from ninlab.runs import evaluate_run, load_run, resume_run, train_run
from ninlab.train import TrainConfig, fit
from ninlab.version import __version__
from ninlab.viz import (
    build_report,
    class_activation_map,
    class_activation_maps,
    relu_channel_sparsity,
    run_sparsity,
    stage_outputs,
)

__all__ = [
    "BasicBlock",
    "Bottleneck",
    "Inception",
    "NiN",
    "NiNBlock",
    "NinlabError",
    "TrainConfig",
    "__version__",
    "build_report",
    "check_claims",
    "check_sliding_window",
    "class_activation_map",
    "class_activation_maps",
    "conv1x1",
    "convert_run",
    "convolutionalize",
    "create_model",
    "evaluate_run",
    "export_run",
    "fit",
    "fold_batchnorm",
    "fuse_linear_1x1",
    "list_models",
    "load_dataset",
    "load_run",
    "receptive_field",
    "relu_channel_sparsity",
    "relu_sparsity",
    "resume_run",
    "run_sparsity",
    "stage_outputs",
    "summary",
    "train_run",
]
