"""Classify images with a trained run: the top-3 classes with their probabilities.

An image file (PNG, JPEG, ...) is made like the run's training images, and one line says how:
its size and mode, the model's, how it was made square (padded with its border colour, or first
cut to its object so that it fills the frame as the training items do: --trim), and whether it
was inverted (--invert: auto removes the backdrop, a plane or a curve fitted to the border, and
gives the object the training items' polarity and contrast: a dark shoe on white or on grey
becomes a light one on black for Fashion-MNIST). --show FILE writes what the model sees, one
file per image. --index N takes image N of the run's test set, as it is.

Examples:
  ninlab predict runs/r shoe.png bag.jpg
  ninlab predict runs/r shoe.jpg --show /tmp/shoe-input.png
  ninlab predict runs/r scan.png --invert no --trim no
  ninlab predict runs/r --index 0
"""

from __future__ import annotations

from ninlab.cli.options import add_preparation, add_run_inputs, add_show
from ninlab.errors import NinlabError
from ninlab.runs import load_run
from ninlab.runs.inputs import input_path, pick_images, save_input
from ninlab.runs.run import probabilities_note


def add_arguments(p) -> None:
    add_run_inputs(p)
    p.add_argument("images", metavar="IMAGE", nargs="*", help="image files")
    p.add_argument("--index", type=int, action="append", help="test image N (repeatable)")
    add_preparation(p)
    add_show(p)


def run(args) -> int:
    if not args.images and args.index is None:
        raise NinlabError("give image files or --index N.")
    run = load_run(args.run_dir, args.weights)
    picked = pick_images(run, args.index or [], args.images, args.data_dir,
                         invert=args.invert, trim=args.trim)  # fmt: skip
    for one in picked:
        probs = run.probabilities(one.image)[0]
        top = probs.topk(min(3, len(probs)))
        truth = f" (true: {run.classes[one.label]})" if one.label is not None else ""
        print(one.prep.line(one.name) if one.prep else f"{one.name}{truth}")
        for p, c in zip(top.values.tolist(), top.indices.tolist(), strict=True):
            print(f"  {run.classes[c]:<14} {100 * p:6.2f}%")
        if args.show:
            shown = input_path(args.show, one.tag, many=len(picked) > 1)
            print(f"wrote {save_input(one.image, shown)}")
    print(probabilities_note(run.config))
    return 0
