"""Class activation map of one image: where the evidence for a class lies, and a box around it.

NiN models: the last block's class map itself (no gradients); the command says whether its mean
equals the logit (exact when no ReLU follows the class conv, as in nin_fast; the classic NiN has
one there, which it says). vgg_gap (GAP + Linear head): the standard CAM. Other FC heads:
Grad-CAM on the last conv stage. The box is the receptive field (size, jump, start) of the
strongest map unit, in input pixels. Writes cam-N.png (test image N) or cam-NAME.png. The map
and its probability come from one plain forward; for a run with test-time flip, the probability
that eval, predict and report give (image and mirror averaged) is printed too.
--native runs a model with a pooling head on the image at its own size (normalised as in
training, not resized), so a large scene keeps its detail and the map has more cells. The class
mapped is then the one `ninlab predict` names for the file (made like a training image: cut to
its object, at the training size), since the plain forward of a mostly empty picture averages
its evidence over the empty part too; and the strongest unit is chosen among those whose field
centre lies on the picture's foreground (ninlab.data.backdrop), never on the empty background.
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
from ninlab.data.backdrop import foreground
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
    x = run.preprocess(picked.image, args.native)
    cam = (_native_cam(run, args, picked, x, target) if args.native
           else class_activation_map(run.model, x, target))  # fmt: skip
    truth = f", true class {classes[picked.label]}" if picked.label is not None else ""
    out = Path(args.out or run.path) / f"cam-{picked.tag}.png"
    existed = out.exists()
    size = picked.image.shape[-2:] if args.native else run.config.input_size
    display = display_image(picked.image[0], size)
    plot_cam(display, cam, classes, out, f"{picked.name}{truth}", args.native)
    print(f"{picked.name}{truth}: {run.config.model} ({run.weights.name})")
    for line in cam.lines(classes, args.native):
        print(f"  {line}")
    print(_whose_probability(run, args, picked, cam))
    print(wrote(out, existed))
    return 0


def _native_cam(run, args, picked, x, target):
    """The map of the picture at its own size for the class `ninlab predict` names for it (or
    --class), its strongest unit on the picture's foreground; prints what predict names."""
    made = picked  # a test image as it is; a file made like a training image, as predict does
    if args.image is not None:
        made = pick_image(run, image=args.image, data_dir=args.data_dir, invert=args.invert,
                          trim=args.trim)  # fmt: skip
    probs = run.probabilities(made.image)[0]
    named = int(probs.argmax())
    print(f"ninlab predict names {run.classes[named]} ({100 * float(probs[named]):.2f}%) for "
          f"it, made like a training image")  # fmt: skip
    target = named if target is None else target
    return class_activation_map(run.model, x, target, foreground(picked.image[0]))


def _whose_probability(run, args, picked, cam) -> str:
    """The line that says which forward the printed probability is of."""
    if args.native:
        return ("  (the probability of one forward pass of the picture at its own size;\n"
                "  predict's is that of the picture made like a training image)")  # fmt: skip
    if run.config.tta_flip or run.config.tta_shift:  # eval, predict and report average views
        both = run.probabilities(picked.image)[0, cam.class_index].item()
        views = "shifts" if run.config.tta_shift else "flip"
        return (f"  (one plain forward; with test-time {views}, as eval and predict give it: "
                f"{100 * both:.2f}%)")  # fmt: skip
    return "  (the probability of one forward pass, as eval, predict and report give it)"
