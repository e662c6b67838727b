"""Evaluate a trained run: test loss and accuracy, per-class accuracy, confusion matrix.

Writes confusion.png into the run directory.

Examples:
  ninlab eval runs/nin_fast-fashion-mnist-20261123-101500
  ninlab eval /tmp/r --dataset mnist --weights final
"""

from __future__ import annotations

from ninlab.cli.options import add_dataset, add_run_inputs
from ninlab.plotting import save_png
from ninlab.runs import CONFUSION, evaluate_run, load_run


def add_arguments(p) -> None:
    add_run_inputs(p)
    add_dataset(p, "evaluate on another data set with as many classes")


def run(args) -> int:
    run = load_run(args.run_dir, args.weights)
    ev = evaluate_run(run, run.dataset(args.data_dir, args.dataset))
    print(ev.text())
    out = save_png(ev.confusion_figure(), run.path / CONFUSION)
    print(f"\nwrote {out}")
    return 0
