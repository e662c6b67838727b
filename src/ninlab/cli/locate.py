"""Find the objects in a scene larger than the training images, with the trained classifier.

Windows of the training size, every --stride pixels, are classified (--scoring crops: each as a
training image; dense: all at once by the convolutionalized model, which sees a little of the
scene around each window). Windows with foreground whose top class reaches --min-score are
kept, the most probable and most complete first, without two on one object (--overlap: the
largest IoU of two kept windows). Each detection prints its class, probability and three boxes:
the window; the CAM box of Zhou et al. 2016 (the class map thresholded at 20%, box of its
largest region); and the receptive field of the strongest unit. The scene is normalised as in
training but not resized. Writes locate-NAME.png (window yellow, CAM cyan, unit magenta).

Examples:
  ninlab locate runs/r --image scene.png
  ninlab locate runs/r --image scene.png --min-score 0.8 --json
  ninlab locate runs/r --image scene.png --scoring dense --stride 8
"""

from __future__ import annotations

import json
from pathlib import Path

from ninlab.cli.options import add_json, add_out, add_run_inputs, at_least
from ninlab.runs import load_run
from ninlab.viz.images import display_image, pick_image
from ninlab.viz.locate import METHODS, SCORINGS, locate, plot_locate


def add_arguments(p) -> None:
    add_run_inputs(p)
    p.add_argument("--image", metavar="PATH", required=True, help="the scene (PNG, JPEG, ...)")
    p.add_argument("--min-score", type=float, default=0.5, metavar="P",
                   help="least probability of a window's top class (default 0.5)")  # fmt: skip
    p.add_argument("--overlap", type=float, default=0.3, metavar="IOU",
                   help="most overlap (IoU) of two kept windows (default 0.3)")  # fmt: skip
    p.add_argument("--stride", type=at_least(1), default=2, metavar="PX",
                   help="pixels between windows (default 2)")  # fmt: skip
    p.add_argument("--scoring", choices=SCORINGS, default="crops",
                   help="crops (default) or dense, see above")  # fmt: skip
    add_out(p, "folder for the PNG (default: RUN_DIR)", metavar="DIR")
    add_json(p)


def run(args) -> int:
    run = load_run(args.run_dir, args.weights)
    picked = pick_image(run, image=args.image, native=True)
    found = locate(run, picked.image, args.min_score, args.overlap, stride=args.stride,
                   scoring=args.scoring)  # fmt: skip
    out = Path(args.out or run.path) / f"locate-{picked.tag}.png"
    display = display_image(picked.image[0], picked.image.shape[-2:])
    plot_locate(display, found, run.classes, out, f"{picked.name}: {run.config.model}")
    if args.json:
        print(json.dumps({**found.to_dict(run.classes), "picture": str(out)}, indent=2))
        return 0
    h, w = found.size
    print(f"{picked.name}: {h}x{w} px, {found.grid[0]}x{found.grid[1]} windows of "
          f"{found.window[0]}x{found.window[1]} every {found.stride} px, "
          f"{len(found.detections)} detection(s) in {1000 * found.seconds:.0f} ms")  # fmt: skip
    for d in found.detections:
        boxes = "  ".join(f"{m} {_box(d.box(m))}" for m in METHODS)
        print(f"  {run.classes[d.class_index]:<12} {100 * d.prob:6.2f}%  {boxes}")
    print(f"wrote {out}")
    return 0


def _box(b) -> str:
    """rows top-bottom, columns left-right (inclusive)."""
    return f"r{b[0]}-{b[2] - 1} c{b[1]}-{b[3] - 1}"
