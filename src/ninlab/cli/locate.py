"""Find the objects in a scene larger than the training images, with the trained classifier.

The scene is made like the training images (its backdrop, grey, a gradient or noise, removed;
the objects given the training items' polarity and contrast), then a square window is put
around each object at the object's own size and classified at the training size, with its
mirror image unless --no-mirror (--scoring crops: each window as a training image; dense: by
the convolutionalized model, which sees the scene around the window). Windows whose top class
reaches --min-score are kept, the most probable and most complete first, without two on one
object (--overlap: the largest IoU of two kept windows). Each detection prints its class,
probability and three boxes: the window; the CAM box of Zhou et al. 2016 (the class map
thresholded at 20%, box of its largest region); and the receptive field of the strongest unit.
Writes locate-NAME.png (window yellow, CAM cyan, unit magenta). --invert auto reads the scene as
it is (the locator makes it like the training images itself).

Examples:
  ninlab locate runs/r --image scene.png
  ninlab locate runs/r --image scene.png --min-score 0.8 --json
  ninlab locate runs/r --image scene.png --scoring dense --threads 1
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import torch

from ninlab.cli.options import add_invert, add_json, add_out, add_run_inputs, add_wide, at_least
from ninlab.files import wrote
from ninlab.locate import METHODS, MIN_SCORE, SCORINGS, locate
from ninlab.runs import load_run
from ninlab.runs.inputs import display_image, pick_image, training_look
from ninlab.terminal import table
from ninlab.viz.locate import plot_locate


def add_arguments(p) -> None:
    add_run_inputs(p)
    p.add_argument("--image", metavar="PATH", required=True, help="the scene (PNG, JPEG, ...)")
    add_invert(p)
    least = f"least probability of a window's top class (default {MIN_SCORE:g})"
    p.add_argument("--min-score", type=float, default=MIN_SCORE, metavar="P", help=least)
    p.add_argument("--overlap", type=float, default=0.3, metavar="IOU",
                   help="most overlap (IoU) of two kept windows (default 0.3)")  # fmt: skip
    p.add_argument("--scoring", choices=SCORINGS, default="crops",
                   help="crops (default) or dense, see above")  # fmt: skip
    p.add_argument("--no-mirror", dest="mirror", action="store_false",
                   help="classify each window as it is only, not its mirror image too")  # fmt: skip
    p.add_argument("--threads", type=at_least(1), metavar="N",
                   help="CPU threads (default: torch's, one per core)")  # fmt: skip
    add_out(p, "folder for the PNG (default: RUN_DIR)", metavar="DIR")
    add_wide(p)
    add_json(p)


def run(args) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    run = load_run(args.run_dir, args.weights)
    own = args.invert == "auto"  # the scene read as it is: `locate` lifts it (ninlab.locate)
    picked = pick_image(run, image=args.image, native=True, invert="no" if own else args.invert,
                        trim="no")  # fmt: skip
    if own:
        picked.prep = replace(picked.prep, why="the locator lifts it")
    found = locate(run, picked.image, args.min_score, args.overlap, scoring=args.scoring,
                   mirror=args.mirror, look=training_look(run))  # fmt: skip
    out = Path(args.out or run.path) / f"locate-{picked.tag}.png"
    existed = out.exists()
    display = display_image(picked.image[0], picked.image.shape[-2:])
    plot_locate(display, found, run.classes, out, f"{picked.name}: {run.config.model}")
    if args.json:
        prepared = picked.prep.to_dict()
        print(json.dumps({**found.to_dict(run.classes), "prepared": prepared, "picture": str(out)},
                         indent=2))  # fmt: skip
        return 0
    print(picked.prep.line(picked.name))
    print("\n".join(_lines(found, picked.name, run.classes, args.width)))
    print(wrote(out, existed))
    return 0


def _lines(found, name: str, classes: list[str], width: int | None) -> list[str]:
    """The search in one line (the image's name on a line of its own when they do not fit in
    `width`), then a detection a line: in `width` columns a table under a header, else each box
    after its name."""
    (h, w), (a, b), (th, tw) = found.size, found.sides, found.window
    sides = f"{a} px" if a == b else f"{a}-{b} px"
    ms = 1000 * found.seconds
    search = (f"{h}x{w} px, {_count(found.windows, 'window')} of {sides} (at {th}x{tw}), "
              f"{_count(len(found.detections), 'detection')} in {ms:.0f} ms")  # fmt: skip
    head = f"{name}: {search}"
    lines = [head] if width is None or len(head) <= width else [f"{name}:", f"  {search}"]
    if width is None:
        for d in found.detections:
            boxes = "  ".join(f"{m} {_box(d.box(m))}" for m in METHODS)
            lines.append(f"  {classes[d.class_index]:<12} {100 * d.prob:6.2f}%  {boxes}")
        return lines
    rows = [(classes[d.class_index], f"{100 * d.prob:.2f}%", *(_box(d.box(m)) for m in METHODS))
            for d in found.detections]  # fmt: skip
    if rows:
        lines += ["  " + line for line in table(("class", "prob", *METHODS), rows, {1}, width)]
    return lines


def _count(n: int, noun: str) -> str:
    """ "1 window", "3 windows"."""
    return f"{n} {noun}{'s' * (n != 1)}"


def _box(b) -> str:
    """rows top-bottom, columns left-right (inclusive)."""
    return f"r{b[0]}-{b[2] - 1} c{b[1]}-{b[3] - 1}"
