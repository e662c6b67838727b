"""Feature maps of one image, stage by stage: a PNG grid with the input beside it.

One row per stage (for a NiN, each mlpconv block's output; the last is the class maps), its
channels ordered by mean activation, strongest first, on one colour scale per stage. The class
maps are labelled with their class and mean (for a NiN, the class's logit), and the three
strongest are printed. Writes features-N.png (test image N) or features-NAME.png (an image file)
into the run directory or --out. An image file is made like the training images, and a line
says how (--invert, --trim: see `ninlab predict --help`); --show FILE writes what the model sees.

Examples:
  ninlab features runs/r --index 0
  ninlab features runs/r --image shoe.png --out /tmp/maps --channels 16
  ninlab features runs/r --image scene.png --native
  ninlab features runs/r --image shoe.jpg --invert no --show /tmp/shoe-input.png
"""

from __future__ import annotations

from pathlib import Path

from ninlab.analysis.stages import class_map_stage, stage_outputs, strongest_classes
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
from ninlab.runs.inputs import display_image, pick_image, save_input
from ninlab.viz.features import plot_features


def add_arguments(p) -> None:
    add_run_inputs(p)
    add_image_source(p)
    add_native(p)
    add_preparation(p)
    add_show(p)
    add_out(p, "folder for the PNG (default: RUN_DIR)", metavar="DIR")
    p.add_argument(
        "--channels", type=int, default=32, help="most channels shown per stage (default 32)"
    )


def run(args) -> int:
    run = load_run(args.run_dir, args.weights)
    if args.native:
        run.check_native()
    picked = pick_image(run, args.index, args.image, args.data_dir, args.native,
                        invert=args.invert, trim=args.trim)  # fmt: skip
    if picked.prep:
        print(picked.prep.line(picked.name))
    if args.show:
        print(f"wrote {save_input(picked.image, args.show)}")
    outputs = stage_outputs(run.model, run.preprocess(picked.image, args.native))
    truth = f", true class {run.classes[picked.label]}" if picked.label is not None else ""
    out = Path(args.out or run.path) / f"features-{picked.tag}.png"
    existed = out.exists()
    size = picked.image.shape[-2:] if args.native else run.config.input_size
    display = display_image(picked.image[0], size)
    plot_features(display, outputs, out, args.channels, f"{picked.name}{truth}", run.classes)
    print(f"{picked.name}{truth}: {run.config.model} ({run.weights.name})")
    class_stage = class_map_stage(outputs, run.classes)
    for name, o in outputs.items():
        shape = "x".join(map(str, o.shape[1:]))
        zeros = (o == 0).float().mean().item()
        print(f"  {name:<24} {shape:>12}  mean {o.mean().item():8.4f}  zeros {100 * zeros:5.1f}%")
        if name == class_stage:
            print(_strongest_line(strongest_classes(o[0], run.classes)))
    print(wrote(out, existed))
    return 0


def _strongest_line(top: list[tuple[str, float]], width: int = 100) -> str:
    """The line "  strongest class maps: Ankle boot 2.31, Sneaker 1.02, ..." in at most `width`
    columns: class names too long to fit are cut short."""
    head = "  strongest class maps: "
    means = [f" {m:.2f}" for _, m in top]
    room = (width - len(head) - 2 * (len(top) - 1) - sum(map(len, means))) // len(top)
    names = [n if len(n) <= room else n[: room - 1] + "…" for n, _ in top]
    return head + ", ".join(n + m for n, m in zip(names, means, strict=True))
