"""Write a small folder of generated images, one sub-folder per class, to try `--data DIR` on.

    python examples/shapes.py /tmp/shapes            # 3 classes x 500 images, 2 corrupt files
    ninlab data /tmp/shapes
    ninlab train --data /tmp/shapes --epochs 3 --out /tmp/shapes-run

Classes: circle, square, triangle, each a filled shape of random colour, size and position on a
dark background of random shade. The files mix what real folders hold: PNG and JPEG, sizes from
24x24 to 64x48, some RGBA (transparent background) and some grayscale, and two corrupt files (an
empty "broken.png" and a truncated JPEG) that ninlab must skip and list.
"""

from __future__ import annotations

import argparse
import io
import random
from pathlib import Path

from PIL import Image, ImageDraw

CLASSES = ("circle", "square", "triangle")


def shape_image(kind: str, rng: random.Random) -> Image.Image:
    """One image of a shape: random size, aspect, position, colour and background."""
    w, h = rng.randint(24, 64), rng.randint(24, 48)
    back = rng.randint(0, 60)
    img = Image.new("RGB", (w, h), (back, back, back))
    side = rng.randint(min(w, h) // 2, min(w, h) - 2)
    x, y = rng.randint(0, w - side), rng.randint(0, h - side)
    colour = tuple(rng.randint(120, 255) for _ in range(3))
    draw = ImageDraw.Draw(img)
    if kind == "circle":
        draw.ellipse((x, y, x + side, y + side), fill=colour)
    elif kind == "square":
        draw.rectangle((x, y, x + side, y + side), fill=colour)
    else:
        draw.polygon([(x, y + side), (x + side, y + side), (x + side / 2, y)], fill=colour)
    return img


def write_folder(root: str | Path, per_class: int = 500, seed: int = 0) -> Path:
    """The folder described in the module doc; returns its path."""
    root, rng = Path(root), random.Random(seed)
    for kind in CLASSES:
        (root / kind).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            img = shape_image(kind, rng)
            if i % 10 == 3:  # grayscale
                img = img.convert("L")
            elif i % 10 == 7:  # transparent background
                alpha = img.convert("L").point(lambda v: 255 if v > 80 else 0)
                img = img.convert("RGBA")
                img.putalpha(alpha)
            if i % 2 and img.mode != "RGBA":
                img.save(root / kind / f"{kind}-{i:03d}.jpg", quality=90)
            else:
                img.save(root / kind / f"{kind}-{i:03d}.png")
    (root / "circle" / "broken.png").write_bytes(b"")
    jpeg = io.BytesIO()
    shape_image("square", rng).save(jpeg, "JPEG")
    (root / "square" / "truncated.jpg").write_bytes(jpeg.getvalue()[: len(jpeg.getvalue()) // 3])
    return root


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("out", help="the folder to write (created)")
    p.add_argument("--per-class", type=int, default=500, help="images per class (default 500)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    root = write_folder(args.out, args.per_class, args.seed)
    print(f"wrote {args.per_class * len(CLASSES) + 2} files in {len(CLASSES)} classes to {root}")


if __name__ == "__main__":
    main()
