"""The run: what `ninlab train` writes and every other verb reads. This package owns the run
directory; no other module opens its files.

store.py       every file of a run directory, written and read (the formats and their checks)
converted.py   the file `ninlab convert` writes, and reading it back without running its code
run.py         Run (a trained model with its config, preprocessing, data set and history),
               load_run
session.py     train_run, resume_run: training into a run directory, locked, killed at any
               moment without a torn file
evaluation.py  Evaluation, evaluate_run: a run's model on a test set
inputs.py      what a run looks at: a test item or an image file, prepared as its training
               images were
deploy.py      convert_run, convert_model, export_run: a run made ready for inference, checked
"""

from ninlab.runs.converted import load_converted, load_converted_run, save_converted
from ninlab.runs.deploy import (
    ONNX_TOLERANCE,
    ConvertReport,
    ExportReport,
    convert_model,
    convert_run,
    export_run,
    onnx_metadata,
)
from ninlab.runs.evaluation import Evaluation, evaluate_run
from ninlab.runs.run import Run, load_run
from ninlab.runs.session import RunWriter, default_out, resume_run, train_run
from ninlab.runs.store import (
    BEST,
    CHECKPOINT,
    CONFIG,
    CONFUSION,
    CURVES,
    FACTS,
    FILES,
    METRICS,
    WEIGHTS,
    check_run,
    load_weights,
    read_checkpoint,
    read_config,
    read_facts,
    read_metrics,
    read_weights,
    save_weights,
)

__all__ = [
    "BEST",
    "CHECKPOINT",
    "CONFIG",
    "CONFUSION",
    "CURVES",
    "FACTS",
    "FILES",
    "METRICS",
    "ONNX_TOLERANCE",
    "WEIGHTS",
    "ConvertReport",
    "Evaluation",
    "ExportReport",
    "Run",
    "RunWriter",
    "check_run",
    "convert_model",
    "convert_run",
    "default_out",
    "evaluate_run",
    "export_run",
    "load_converted",
    "load_converted_run",
    "load_run",
    "load_weights",
    "onnx_metadata",
    "read_checkpoint",
    "read_config",
    "read_facts",
    "read_metrics",
    "read_weights",
    "resume_run",
    "save_converted",
    "save_weights",
    "train_run",
]
