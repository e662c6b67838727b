"""Exact zeros after each ReLU over the test set: per layer, per channel, dead channels.

The same numbers for the model at initialisation (same name, seed and init as the run), a plot
by depth (sparsity.png in the run directory, sparsity-N.png with --limit N, or --out), and in
words the verdict on claim 24 of `ninlab claims`: "in a trained CNN, feature maps get sparser
(more exact zeros after ReLU) with depth". A dead channel is zero at every position of every
test image; they are told as counts ("1 dead channel of 624"), named by layer.

Examples:
  ninlab sparsity runs/r
  ninlab sparsity runs/r --json > sparsity.json
  ninlab sparsity runs/seed --limit 1000
"""

from __future__ import annotations

import json
import sys

from ninlab.claims.sparsity import run_sparsity
from ninlab.cli.options import (
    add_batch_size,
    add_json,
    add_limit,
    add_out,
    add_run_inputs,
    add_wide,
)
from ninlab.files import writable_file, wrote
from ninlab.runs import load_run
from ninlab.viz.sparsity import plot_sparsity


def add_arguments(p) -> None:
    add_run_inputs(p)
    add_wide(p)
    add_json(p)
    add_out(p, "the plot (default: RUN_DIR/sparsity.png, or sparsity-N.png with --limit N)")
    add_limit(p)
    add_batch_size(p, 256)


def run(args) -> int:
    run = load_run(args.run_dir, args.weights)
    # a pass over part of the test set does not replace the plot of the whole one
    default = run.path / (f"sparsity-{args.limit}.png" if args.limit else "sparsity.png")
    out = writable_file(args.out or default)  # before the pass over the test set
    existed = out.exists()
    data = run.dataset(args.data_dir)
    report = run_sparsity(run, data.test_images[: args.limit], args.batch_size, progress=True)
    plot_sparsity(report, out, f"{run.config.model} on {data.name} ({run.weights.name})")
    if args.json:
        print(json.dumps({**report.to_dict(), "plot": str(out)}, indent=2))
        print(wrote(out, existed), file=sys.stderr)
    else:
        print(report.table(args.width))
        print(wrote(out, existed))
    return 0
