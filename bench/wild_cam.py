"""`ninlab cam RUN --image canvas.png --native` on one item on a larger canvas: does its box hit
the item?

    python bench/wild_cam.py RUN                          # 30 black canvases, seed 0
    python bench/wild_cam.py RUN --canvases 100 --seed 1 --backdrops black grey noise

Canvases (ninlab.locate.scenes.make_scene): one test item (28 px, never a training image) at a
random place of an 84 px canvas, on black as in the training images, or on grey or noise
(`ninlab.locate.KINDS`: a level in 50-150; each pixel uniform in 0-60), the item composited
bright over it. Each canvas is written as a PNG and mapped as the command maps it: the class that
`ninlab predict` names for the file (ninlab.runs.inputs.file_image at the run's input size, made
like a training image: cut to its object), the class map of the file at its own size
(`native`), and its strongest unit among those whose field centre lies on the picture's
foreground (ninlab.data.backdrop.foreground; `ninlab.analysis.cam.units_on`). The box is that
unit's field, clipped to the canvas. It hits when its IoU with the item's 28x28 patch is at least
0.3 (the patch is the truth, as in bench/localise.py; the tight box of the item's pixels above
10% of its maximum is given beside: a 40 px field reaches IoU 0.3 with it only when the item
fills most of its patch).

Besides, for comparison on the same canvases: the box as `cam --native` drew it before (the
class of the plain forward of the whole canvas, the strongest unit over the whole map), the map's
own maximum with predict's class, and Zhou et al.'s box (2016,
arXiv:1512.04150: the map upsampled to pixels, scaled min to max, thresholded at 0.2, the box of
its largest region; `ninlab.locate.locator`'s CAM box over the whole canvas).
Goals (issue 26): the box hits in >= 80% of canvases with the class predict names; the strongest
unit's field centre never off the item.
"""

from __future__ import annotations

import argparse
import random
import tempfile
from pathlib import Path

import torch
from PIL import Image

from ninlab.analysis.cam import class_activation_map, zhou_box
from ninlab.data.backdrop import foreground
from ninlab.locate import KINDS, make_scene
from ninlab.locate.scenes import iou
from ninlab.runs.inputs import file_image, training_look

SIZE = 84  # canvas side, px: three item widths
HIT = 0.3  # IoU with the item's patch that counts as a hit
GOAL = 0.80  # share of canvases whose box hits, with the class predict names
BACKDROPS = ("black", "grey", "noise")


def draw_canvases(data, n: int, seed: int, backdrop: str = "black"):
    """n one-item canvases of SIZE px on the backdrop, drawn from a generator seeded with
    seed x 1000 + the backdrop's place in BACKDROPS (so a backdrop's canvases do not depend on
    which others are drawn)."""
    rng = random.Random(seed * 1000 + BACKDROPS.index(backdrop))
    kind = KINDS[backdrop]
    return [make_scene(data.test_images, data.test_labels, 1, SIZE, rng, kind) for _ in range(n)]


def measure(run, data, n: int, seed: int, backdrop: str, folder: Path) -> list[dict]:
    """Per canvas: the class predict names, and the IoU of each box with the item's patch and
    tight box, for the class predict names and the true class; whether the chosen unit's
    centre lies off the item's patch."""
    look = training_look(run, data)
    out = []
    for k, scene in enumerate(draw_canvases(data, n, seed, backdrop)):
        item = scene.items[0]
        path = folder / f"canvas-{backdrop}-{k}.png"
        Image.fromarray(scene.image[0].permute(1, 2, 0).squeeze(-1).numpy()).save(path)
        picture = file_image(run, path, native=True, look=look)  # what `cam --native` maps
        made = file_image(run, path, look=look)  # what `predict` classifies
        named = int(run.probabilities(made.image)[0].argmax())
        x = run.preprocess(picture.image, native=True)
        on = foreground(picture.image[0])
        row = {"named": named, "label": item.label}
        for who, cls in (("named", named), ("true", item.label), ("plain", None)):
            cam = class_activation_map(run.model, x, cls, on)
            h, w = cam.input_size
            own = cam.field.box(*cam.peak)
            boxes = {
                "unit": cam.box,
                "peak": (max(own[0], 0), max(own[1], 0), min(own[2], h), min(own[3], w)),
                "zhou": zhou_box(cam.map.float(), cam.field, (0, 0, h, w)),
            }
            for name, box in boxes.items():
                row[who, name] = iou(box, item.patch), iou(box, item.box)
            top, left, bottom, right = item.patch
            for name, cell in (("off", cam.cell), ("peak off", cam.peak)):
                r, c = cam.field.center(*cell)
                row[who, name] = not (top <= r < bottom and left <= c < right)
        out.append(row)
    return out


def rows(run, data, canvases: int = 30, seed: int = 0, backdrop: str = "black") -> list:
    """(figure, value, goal) rows for one backdrop."""
    with tempfile.TemporaryDirectory() as tmp:
        found = measure(run, data, canvases, seed, backdrop, Path(tmp))
    n = len(found)

    def hits(who: str, box: str, truth: int = 0) -> str:
        k = sum(r[who, box][truth] >= HIT for r in found)
        mean = sum(r[who, box][truth] for r in found) / n
        return f"{k}/{n} = {k / n:.0%} (mean IoU {mean:.2f})"

    goal = f">= {GOAL:.0%}"
    off = sum(r["named", "off"] for r in found)
    before = sum(r["plain", "peak off"] for r in found)
    right = sum(r["named"] == r["label"] for r in found)
    where = f"{backdrop} {SIZE} px, seed {seed}"
    return [
        (f"cam canvas ({where}): predict's class right", f"{right}/{n}", ""),
        ("  box hits the patch, predict's class", hits("named", "unit"), goal),
        ("  box hits the patch, true class", hits("true", "unit"), goal),
        ("  box hits the tight box, predict's class", hits("named", "unit", 1), ""),
        ("  strongest unit's centre off the item", f"{off}/{n}", "0"),
        ("  before: plain forward's class, map's own maximum", hits("plain", "peak"), ""),
        ("  before: its centre off the item", f"{before}/{n}", ""),
        ("  the map's own maximum, predict's class", hits("named", "peak"), ""),
        ("  for comparison: Zhou et al.'s box", hits("named", "zhou"), ""),
        ("  Zhou et al.'s box on the tight box", hits("named", "zhou", 1), ""),
    ]


def main() -> None:
    from machine import describe, matmul_rate

    from ninlab.runs import load_run

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("run_dir", help="a run trained on fashion-mnist")
    p.add_argument("--canvases", type=int, default=30, help="canvases per backdrop (default 30)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--backdrops", nargs="+", choices=BACKDROPS, default=["black"])
    args = p.parse_args()
    print(describe(matmul_rate()))
    torch.set_num_threads(1)
    torch.set_grad_enabled(False)
    run = load_run(args.run_dir)
    data = run.dataset()
    print(f"{run.config.model} ({run.weights.name}), {args.canvases} canvases per backdrop, "
          f"seed {args.seed}; a hit: IoU >= {HIT} with the item's 28x28 patch")  # fmt: skip
    for backdrop in args.backdrops:
        for name, value, goal in rows(run, data, args.canvases, args.seed, backdrop):
            print(f"{name:<52} {value:<28} {goal}")


if __name__ == "__main__":
    main()
