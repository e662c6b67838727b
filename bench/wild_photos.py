"""Photos off a plain background: do test items keep their class when made photo-like?

    python bench/wild_photos.py RUN                 # 10 items x 10 kinds, seed 0
    python bench/wild_photos.py RUN --items 30 --seed 1

Items: test images that the run gets right (drawn by the seed). Each becomes a product photo, as
Fashion-MNIST's own items were before their makers trimmed and inverted them: the item scaled up
(bilinear) to 150-200 px, drawn dark on a light backdrop (backdrop - v (backdrop - 15) / 255 for
an item pixel v), in RGB; then changed in one of ten kinds, its parameters drawn at random:

- jpeg: saved as JPEG at quality 40;
- rotate: turned by 3-6 degrees either way, the corners filled with the backdrop;
- tint: the red, green and blue channels scaled by a warm or cold light (0.7-1.0 each);
- margin: the item takes 25-40% of a wide frame;
- blur+noise: a Gaussian blur of radius 1.5-2.5 px, then Gaussian noise of deviation 6-10;
- shadow: the item's silhouette, moved 4-8% of the frame down and to one side and blurred by
  3-5% of it, darkens the backdrop to 55-75% of its brightness behind the item;
- gradient: the backdrop falls from 250 to 110-150 across the frame, in a random direction;
- texture: the backdrop carries a woven pattern of stripes and blotches of +-15-25 levels;
- crop: a non-square photo (3:2 or 2:3) whose shorter side the item fills to 90-100%, off centre;
- contrast: the item only 40-70 levels darker than its backdrop at its darkest.

A photo keeps its class when `ninlab predict RUN photo` (ninlab.runs.inputs.file_image, the run's
default preparation) names the item's class. Goal (issue 26): >= 90 of 100.
"""

from __future__ import annotations

import argparse
import math
import random
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageFilter

KINDS = ("jpeg", "rotate", "tint", "margin", "blur+noise", "shadow", "gradient", "texture",
         "crop", "contrast")  # fmt: skip
GOAL = 0.90


def product_photo(
    item: np.ndarray, side: int, at: tuple[int, int], backdrop: np.ndarray, depth: float = 1.0
) -> np.ndarray:
    """A 28 x 28 uint8 item scaled to side px and drawn dark on `backdrop` (H x W x 3 float) at
    (top, left): pixel = backdrop - depth v (backdrop - 15) / 255. Returns H x W x 3 float."""
    big = np.asarray(Image.fromarray(item).resize((side, side), Image.BILINEAR), np.float32)
    out = backdrop.copy()
    t, l = at
    region = out[t : t + side, l : l + side]
    region -= depth * big[:, :, None] / 255 * (region - 15)
    return out


def flat(h: int, w: int, level: float) -> np.ndarray:
    return np.full((h, w, 3), level, np.float32)


def make_photo(item: np.ndarray, kind: str, rng: random.Random) -> tuple[Image.Image, str]:
    """One photo of a 28 x 28 uint8 item in one kind; returns the image and its file suffix."""
    side = rng.randrange(150, 201)
    level = rng.uniform(225, 250)
    margin = round(side * rng.uniform(0.08, 0.15))
    n = side + 2 * margin
    at = (margin, margin)
    backdrop, depth, suffix = flat(n, n, level), 1.0, ".png"
    if kind == "margin":
        n = round(side / rng.uniform(0.25, 0.40))
        backdrop = flat(n, n, level)
        at = ((n - side) // 2 + rng.randrange(-side // 4, side // 4 + 1),
              (n - side) // 2 + rng.randrange(-side // 4, side // 4 + 1))  # fmt: skip
    elif kind == "crop":
        fill = rng.uniform(0.90, 1.0)
        short = round(side / fill)
        long = round(short * 1.5)
        wide = rng.random() < 0.5
        h, w = (short, long) if wide else (long, short)
        backdrop = flat(h, w, level)
        slack = long - side
        off = rng.randrange(slack // 6, slack - slack // 6 + 1)
        at = ((short - side) // 2, off) if wide else (off, (short - side) // 2)
    elif kind == "gradient":
        low = rng.uniform(110, 150)
        angle = rng.uniform(0, 2 * math.pi)
        r, c = np.mgrid[0:n, 0:n] / (n - 1) - 0.5
        t = (r * math.sin(angle) + c * math.cos(angle)) / math.sqrt(0.5) + 0.5  # 0-1 roughly
        backdrop = np.repeat((250 - (250 - low) * np.clip(t, 0, 1))[:, :, None], 3, 2)
        backdrop = backdrop.astype(np.float32)
    elif kind == "texture":
        amp = rng.uniform(15, 25)
        period = rng.uniform(4, 9)
        r, c = np.mgrid[0:n, 0:n]
        weave = np.sin(2 * math.pi * r / period) * np.sin(2 * math.pi * c / period)
        g = np.random.default_rng(rng.randrange(2**32))
        blotch = np.asarray(Image.fromarray(g.uniform(0, 255, (n // 8, n // 8)).astype(np.uint8))
                            .resize((n, n), Image.BICUBIC), np.float32) / 127.5 - 1  # fmt: skip
        pattern = amp * (0.6 * weave + 0.4 * blotch)
        backdrop = level - amp + np.repeat(pattern[:, :, None], 3, 2).astype(np.float32)
    elif kind == "contrast":
        depth = rng.uniform(40, 70) / (level - 15)
    elif kind == "shadow":
        big = Image.fromarray(item).resize((side, side), Image.BILINEAR)
        sil = Image.new("L", (n, n), 0)
        dx = round(n * rng.uniform(0.04, 0.08)) * rng.choice((-1, 1))
        dy = round(n * rng.uniform(0.04, 0.08))
        sil.paste(big.point(lambda v: 255 if v > 25 else 0), (at[1] + dx, at[0] + dy))
        sil = sil.filter(ImageFilter.GaussianBlur(n * rng.uniform(0.03, 0.05)))
        dark = rng.uniform(0.55, 0.75)
        shade = 1 - (1 - dark) * np.asarray(sil, np.float32) / 255
        backdrop = backdrop * shade[:, :, None]
    photo = product_photo(item, side, at, backdrop, depth)
    if kind == "tint":
        photo = photo * np.array([rng.uniform(0.7, 1.0) for _ in range(3)], np.float32)
    img = Image.fromarray(np.clip(photo + 0.5, 0, 255).astype(np.uint8), "RGB")
    if kind == "rotate":
        fill = tuple(int(level) for _ in range(3))
        img = img.rotate(rng.uniform(3, 6) * rng.choice((-1, 1)), Image.BILINEAR, fillcolor=fill)
    elif kind == "blur+noise":
        img = img.filter(ImageFilter.GaussianBlur(rng.uniform(1.5, 2.5)))
        g = np.random.default_rng(rng.randrange(2**32))
        noisy = np.asarray(img, np.float32) + g.normal(
            0, rng.uniform(6, 10), (img.height, img.width, 1)
        )
        img = Image.fromarray(np.clip(noisy + 0.5, 0, 255).astype(np.uint8), "RGB")
    elif kind == "jpeg":
        suffix = ".jpg"
    return img, suffix


def right_items(run, data, count: int, rng: random.Random) -> list[int]:
    """`count` test indices drawn at random among those the run classifies right."""
    order = list(range(len(data.test_images)))
    rng.shuffle(order)
    picked = []
    with torch.no_grad():
        for i in order:
            x = run.preprocess(data.test_images[i : i + 1])
            if int(run.model(x).argmax(1)) == int(data.test_labels[i]):
                picked.append(i)
            if len(picked) == count:
                return picked
    return picked


def measure(run, data, items: int, seed: int, folder: Path) -> dict[str, tuple[int, int, dict]]:
    """kind -> (kept, shown, {wrong class name: count}) over `items` right items per kind."""
    from ninlab.runs.inputs import file_image, training_look

    rng = random.Random(seed)
    indices = right_items(run, data, items, rng)
    look = training_look(run, data)
    out = {}
    for kind in KINDS:
        kept, wrong = 0, {}
        for i in indices:
            img, suffix = make_photo(data.test_images[i, 0].numpy(), kind, rng)
            path = folder / f"{kind.replace('+', '-')}-{i}{suffix}"
            img.save(path, quality=40) if suffix == ".jpg" else img.save(path)
            picked = file_image(run, path, look=look)
            with torch.no_grad():
                k = int(run.model(run.preprocess(picked.image)).argmax(1))
            if k == int(data.test_labels[i]):
                kept += 1
            else:
                name = run.classes[k]
                wrong[name] = wrong.get(name, 0) + 1
        out[kind] = (kept, len(indices), wrong)
    return out


def rows(run, data, items: int = 10, seed: int = 0, keep: Path | None = None) -> list:
    """(figure, value, goal) rows: one per kind and the total."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        found = measure(run, data, items, seed, folder)
    out, total, shown = [], 0, 0
    for kind, (k, n, wrong) in found.items():
        worst = ", ".join(f"{c} {m}" for c, m in sorted(wrong.items(), key=lambda t: -t[1])[:2])
        out.append((f"photos: {kind}", f"{k}/{n}" + (f" (wrong: {worst})" if worst else ""), ""))
        total, shown = total + k, shown + n
    out.append(("photos: all kinds", f"{total}/{shown} = {total / shown:.0%}",
                f">= {GOAL:.0%}"))  # fmt: skip
    return out


def main() -> None:
    from machine import describe, matmul_rate

    from ninlab.runs import load_run

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("run_dir", help="a run trained on fashion-mnist")
    p.add_argument("--items", type=int, default=10, help="right test items per kind (default 10)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--keep", type=Path, help="write the photos into this folder and keep them")
    args = p.parse_args()
    print(describe(matmul_rate()))
    run = load_run(args.run_dir)
    print(f"{run.config.model}, {args.items} items per kind, seed {args.seed}")
    for name, value, goal in rows(run, run.dataset(), args.items, args.seed, args.keep):
        print(f"{name:<22} {value:<40} {goal}")


if __name__ == "__main__":
    main()
