"""ninlab: Network-in-Network models and 1x1 convolutions: train, convert, analyse, look inside.

Models
    create_model(name, num_classes=10)   a model of the registry (NiN family, FC-head baselines)
    list_models()                        the names create_model accepts
Training
    TrainConfig(epochs=1, ...)           the default recipe ("fast") with changes
    TrainConfig.from_recipe("seed", ...) a recipe of ninlab/train/recipes/, with changes
    train_run(cfg, out)                  train into a run directory (what `ninlab train` does)
    fit(model, data, cfg)                the training loop alone: no files, returns the history
    load_dataset(name)                   a data set as uint8 tensors (found, fetched, checked)
Runs
    load_run(run_dir)                    a run's model, config and weights, ready to predict
    evaluate_run(run)                    test loss, accuracy, per-class accuracy, confusion
    resume_run(run_dir)                  continue an interrupted run from its checkpoint
Analysis
    summary(model, input_size)           per layer: shape, parameters, MACs, receptive field
    receptive_field(model, layer)        one layer's receptive field
    check_claims(run_dirs)               the claims ledger, each claim checked
Conversion
    convert_run(run_dir, out)            fold, fuse and convolutionalize a run's model, checked
    export_run(run_dir, out)             the converted model as ONNX, checked with onnxruntime
Pictures
    class_activation_map(model, x)       where in the image the class evidence lies (CAM)
    stage_outputs(model, x)              every stage's feature maps
    run_sparsity(run, images)            exact zeros after each ReLU, trained and at init
    build_report(run)                    one self-contained HTML page about a run

Every verb of the `ninlab` command is a few lines over one of these. The model classes and layers
(NiN, NiNBlock, Inception, BasicBlock, Bottleneck) are in ninlab.models, the parts of the training
engine (prepare_config, evaluate, callbacks) in ninlab.train; errors a user can cause are
NinlabError, with one sentence that says what to do.
"""

from ninlab.analysis import (
    class_activation_map,
    class_activation_maps,
    receptive_field,
    relu_channel_sparsity,
    relu_sparsity,
    stage_outputs,
    summary,
)
from ninlab.claims import check_claims, run_sparsity
from ninlab.convert import check_sliding_window, convolutionalize, fold_batchnorm, fuse_linear_1x1
from ninlab.data import load_dataset
from ninlab.errors import NinlabError
from ninlab.models import conv1x1, create_model, list_models
from ninlab.runs import convert_run, evaluate_run, export_run, load_run, resume_run, train_run
from ninlab.train import TrainConfig, fit
from ninlab.version import __version__
from ninlab.viz import build_report

# Functions, the config and the error only: help(ninlab) documents every class named here with
# all it inherits, which for an nn.Module is some 1,100 lines of torch (see help(ninlab.models)).
__all__ = [
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
