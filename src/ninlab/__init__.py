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

__all__ = [
    "BasicBlock",
    "Bottleneck",
    "Inception",
    "NiN",
    "NiNBlock",
    "NinlabError",
    "__version__",
    "check_sliding_window",
    "conv1x1",
    "convolutionalize",
    "create_model",
    "fold_batchnorm",
    "fuse_linear_1x1",
    "list_models",
    "load_dataset",
    "receptive_field",
    "relu_sparsity",
    "summary",
]
