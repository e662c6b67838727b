"""Models: NiN networks, FC-head baselines and analysis blocks, all behind one registry."""

from ninlab.models import baselines, nin  # noqa: F401  (registers the models)
from ninlab.models._registry import (
    create_model,
    create_model_for,
    default_in_chans,
    list_models,
    model_description,
    register_model,
)
from ninlab.models.base import Classifier
from ninlab.models.blocks import BasicBlock, Bottleneck, Inception
from ninlab.models.layers import Conv1x1, GlobalAvgPool, NiNBlock, conv1x1, conv3x3
from ninlab.models.nin import NiN
from ninlab.models.spec import imported_by, load_model

__all__ = [
    "BasicBlock",
    "Bottleneck",
    "Classifier",
    "Conv1x1",
    "GlobalAvgPool",
    "Inception",
    "NiN",
    "NiNBlock",
    "conv1x1",
    "conv3x3",
    "create_model",
    "create_model_for",
    "default_in_chans",
    "imported_by",
    "list_models",
    "load_model",
    "model_description",
    "register_model",
]
