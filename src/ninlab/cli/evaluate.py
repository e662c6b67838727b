"""Evaluate a trained run: test loss and accuracy, per-class accuracy, confusion matrix.

Writes confusion.png into the run directory.

Examples:
  ninlab eval runs/nin_fast-fashion-mnist-20261123-101500
  ninlab eval /tmp/r --dataset mnist --weights final
"""

from __future__ import annotations

from ninlab.cli.options import add_data_dir, add_weights
from ninlab.data import load_dataset
from ninlab.errors import NinlabError
from ninlab.runs import load_run
from ninlab.train import TrainConfig, evaluate
from ninlab.train.metrics import (
    confusion_matrix,
    format_confusion,
    per_class_accuracy,
    plot_confusion,
)


def add_arguments(p) -> None:
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--dataset", help="evaluate on another data set with the same classes count")
    add_data_dir(p)
    add_weights(p)


def run(args) -> int:
    run = load_run(args.run_dir, args.weights)
    cfg = TrainConfig.from_dict(run.config)
    data = load_dataset(args.dataset or cfg.dataset, data_dir=args.data_dir or cfg.data_dir)
    if data.num_classes != len(run.classes) or data.image_shape[0] not in (1, 3):
        raise NinlabError(
            f"{data.name} has {data.num_classes} classes but the run's model predicts "
            f"{len(run.classes)}; evaluate it on a data set with the same classes."
        )
    ev = evaluate(run.model, data.test_images, data.test_labels, cfg)
    conf = confusion_matrix(ev["preds"], data.test_labels, data.num_classes)
    print(f"run {run.path} ({cfg.model}, {run.weights.name}) on {data.name} test set")
    print(f"test loss {ev['loss']:.4f}, accuracy {100 * ev['acc']:.2f}% "
          f"({int(conf.diag().sum()):,}/{len(data.test_labels):,})")  # fmt: skip
    print("\nper-class accuracy")
    for name, acc in zip(data.classes, per_class_accuracy(conf).tolist(), strict=True):
        print(f"  {name:<14} {100 * acc:6.2f}%")
    print("\nconfusion matrix (rows: true class)")
    print(format_confusion(conf, list(data.classes)))
    out = run.path / "confusion.png"
    plot_confusion(
        conf, list(data.classes), out, f"{cfg.model} on {data.name}: {100 * ev['acc']:.2f}%"
    )
    print(f"\nwrote {out}")
    return 0
