"""Evaluate a trained run: test loss and accuracy, per-class accuracy, confusion matrix.

Writes the confusion matrix as a picture to RUN_DIR/confusion.png, or to --out, and says so
("replaced" when a file was there).

Examples:
  ninlab eval runs/nin_fast-fashion-mnist-20261123-101500
  ninlab eval /tmp/r --dataset mnist --weights final
  ninlab eval runs/seed --limit-test 1000
  ninlab eval runs/r --json > eval.json
  ninlab eval runs/r --out /tmp/confusion.png
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ninlab.cli.options import (
    add_dataset,
    add_json,
    add_out,
    add_run_inputs,
    add_wide,
    at_least,
)
from ninlab.files import wrote
from ninlab.plotting import save_png
from ninlab.runs import CONFUSION, evaluate_run, load_run


def add_arguments(p) -> None:
    add_run_inputs(p)
    add_dataset(p, "evaluate on another data set with as many classes")
    p.add_argument("--limit-test", type=at_least(1), metavar="N",
                   help="the first N test images (default all)")  # fmt: skip
    add_wide(p)
    add_json(p)
    add_out(p, "the confusion matrix picture (default: RUN_DIR/confusion.png)")


def run(args) -> int:
    run = load_run(args.run_dir, args.weights)
    data = run.dataset(args.data_dir, args.dataset)
    ev = evaluate_run(run, data, args.limit_test, progress=True)
    print(json.dumps(ev.to_dict(), indent=2) if args.json else ev.text(args.width))
    out = Path(args.out or run.path / CONFUSION)
    existed = out.exists()
    save_png(ev.confusion_figure(), out)
    print(f"\n{wrote(out, existed)}", file=sys.stderr if args.json else sys.stdout)
    return 0
