"""Classify images with a trained run: the top-3 classes with their probabilities.

Images of any size and colour (PNG, JPEG, ...) are converted to the model's channels and input
size; --index N takes image N of the run's test set instead.

Examples:
  ninlab predict runs/r shoe.png bag.jpg
  ninlab predict runs/r --index 0
"""

from __future__ import annotations

from ninlab.cli.options import add_run_inputs
from ninlab.errors import NinlabError
from ninlab.runs import load_run
from ninlab.viz.images import pick_images


def add_arguments(p) -> None:
    add_run_inputs(p)
    p.add_argument("images", metavar="IMAGE", nargs="*", help="image files")
    p.add_argument("--index", type=int, action="append", help="test image N (repeatable)")


def run(args) -> int:
    if not args.images and args.index is None:
        raise NinlabError("give image files or --index N.")
    run = load_run(args.run_dir, args.weights)
    for picked in pick_images(run, args.index or [], args.images, args.data_dir):
        probs = run.probabilities(picked.image)[0]
        top = probs.topk(min(3, len(probs)))
        truth = f" (true: {run.classes[picked.label]})" if picked.label is not None else ""
        print(f"{picked.name}{truth}")
        for p, c in zip(top.values.tolist(), top.indices.tolist(), strict=True):
            print(f"  {run.classes[c]:<14} {100 * p:6.2f}%")
    return 0
