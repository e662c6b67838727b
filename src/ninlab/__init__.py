"""ninlab: Network-in-Network models and 1x1 convolutions: train, convert, analyse, look inside."""

__version__ = "0.1.0"

from ninlab.analysis import receptive_field, relu_sparsity, summary  # noqa: E402
from ninlab.convert import (  # noqa: E402
    check_sliding_window,
    convolutionalize,
    fold_batchnorm,
    fuse_linear_1x1,
)
from ninlab.data import load_dataset  # noqa: E402
from ninlab.errors import NinlabError  # noqa: E402
from ninlab.models import (  # noqa: E402
    BasicBlock,
    Bottleneck,
    Inception,
    NiN,
    NiNBlock,
    conv1x1,
    create_model,
    list_models,
)
from ninlab.runs import load_run  # noqa: E402
from ninlab.train import TrainConfig, fit  # noqa: E402
from ninlab.viz import (  # noqa: E402
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
    "check_sliding_window",
    "class_activation_map",
    "class_activation_maps",
    "conv1x1",
    "convolutionalize",
    "create_model",
    "fit",
    "fold_batchnorm",
    "fuse_linear_1x1",
    "list_models",
    "load_dataset",
    "load_run",
    "receptive_field",
    "relu_channel_sparsity",
    "relu_sparsity",
    "run_sparsity",
    "stage_outputs",
    "summary",
]
