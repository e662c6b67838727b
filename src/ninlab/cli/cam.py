"""Class activation map of one image: where the evidence for a class lies, and a box around it.

NiN models: the last block's class map itself (no gradients); the command says whether its mean
equals the logit (exact when no ReLU follows the class conv, as in nin_fast; the classic NiN has
one there, which it says). vgg_gap (GAP + Linear head): the standard CAM. Other FC heads:
Grad-CAM on the last conv stage. The box is the receptive field (size, jump, start) of the
strongest map unit, in input pixels. Writes cam-N.png (test image N) or cam-NAME.png. The map
and its probability come from one plain forward; for a run with test-time flip, the probability
that eval, predict and report give (image and mirror averaged) is printed too.
--native runs a model with a pooling head on the image at its own size (normalised as in
training, not resized), so a large scene keeps its detail and the map has more cells.
An image file is made like the training images, and a line says how (--invert, --trim: see
`ninlab predict --help`); --show FILE writes what the model sees.

Examples:
  ninlab cam runs/r --index 0
  ninlab cam runs/r --index 7 --class Sneaker
  ninlab cam runs/r --image shoe.png --class "ankle boot" --out /tmp/cams
  ninlab cam runs/r --image scene.png --native   # the scene at its own size, not squeezed
  ninlab cam runs/r --image shoe.jpg --show /tmp/shoe-input.png
"""

from __future__ import annotations

from pathlib import Path

from ninlab.analysis.cam import class_activation_map
from ninlab.cli.options import (
    add_image_source,
    add_native,
    add_out,
    add_preparation,
    add_run_inputs,
    add_show,
)
from ninlab.files import wrote
from ninlab.runs import load_run
from ninlab.runs.inputs import class_index, display_image, pick_image, save_input
from ninlab.viz.cam import plot_cam


def add_arguments(p) -> None:
    add_run_inputs(p)
    add_image_source(p)
    add_native(p)
    add_preparation(p)
    add_show(p)
    p.add_argument(
        "--class",
        dest="class_name",
        metavar="NAME",
        help="the class to map (default: the predicted one)",
    )
    add_out(p, "folder for the PNG (default: RUN_DIR)", metavar="DIR")


def run(args) -> int:
    run = load_run(args.run_dir, args.weights)
    classes = run.classes
    target = class_index(args.class_name, classes) if args.class_name is not None else None
    if args.native:
        run.check_native()
    picked = pick_image(run, args.index, args.image, args.data_dir, args.native,
                        invert=args.invert, trim=args.trim)  # fmt: skip
    if picked.prep:
        print(picked.prep.line(picked.name))
    if args.show:
        print(f"wrote {save_input(picked.image, args.show)}")
    cam = class_activation_map(run.model, run.preprocess(picked.image, args.native), target)
    truth = f", true class {classes[picked.label]}" if picked.label is not None else ""
    out = Path(args.out or run.path) / f"cam-{picked.tag}.png"
    existed = out.exists()
    size = picked.image.shape[-2:] if args.native else run.config.input_size
    display = display_image(picked.image[0], size)
    plot_cam(display, cam, classes, out, f"{picked.name}{truth}")
    print(f"{picked.name}{truth}: {run.config.model} ({run.weights.name})")
    for line in cam.lines(classes):
        print(f"  {line}")
    if run.config.tta_flip and not args.native:  # eval, predict and report average with a mirror
        both = run.probabilities(picked.image)[0, cam.class_index].item()
        print(f"  (one plain forward; with test-time flip, as eval and predict give it: "
              f"{100 * both:.2f}%)")  # fmt: skip
    else:
        print("  (the probability of one forward pass, as eval, predict and report give it)")
    print(wrote(out, existed))
    return 0
