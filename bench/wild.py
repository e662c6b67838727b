"""Outside the lab: every figure of issue 26 beside its goal, on cases this bench makes itself.

    python bench/wild.py RUN                      # photos, scenes, canvases; seed 0
    python bench/wild.py RUN --folders            # and small folders trained from scratch
    python bench/wild.py RUN --seed 1 --items 20 --scenes 10 --canvases 50

RUN is a run trained on Fashion-MNIST (`ninlab train`). No case is a fixed file: each part draws
its own from the test split (and, for folders, from shapes it draws) with the seed printed:
- photos (bench/wild_photos.py): test items the run gets right, made photo-like in ten kinds;
- scenes (bench/wild_scenes.py): items on black, grey, gradient and noisy backgrounds,
  mirrored, and at 20-56 px, found by `ninlab locate`;
- canvases (bench/wild_cam.py): one item on an 84-px canvas, boxed by `ninlab cam --native`;
- folders (bench/wild_folders.py, --folders: it trains, minutes): small folders trained by
  `ninlab train --data DIR` with no options, against a small sweep.
The first line is this machine's fp32 matmul rate R (bench/machine.py), as in every bench.
"""

from __future__ import annotations

import argparse
import time

import torch
import wild_cam
import wild_folders
import wild_photos
import wild_scenes
from machine import describe, matmul_rate

from ninlab.runs import load_run


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("run_dir", help="a run trained on fashion-mnist")
    p.add_argument("--seed", type=int, default=0, help="draws every case (default 0)")
    p.add_argument("--items", type=int, default=10, help="photos: items per kind (default 10)")
    p.add_argument("--scenes", type=int, default=30, help="per kind and seed (default 30)")
    p.add_argument("--canvases", type=int, default=30, help="one-item canvases (default 30)")
    p.add_argument("--folders", action="store_true", help="also train the small folders")
    args = p.parse_args()
    print(describe(matmul_rate()))
    run = load_run(args.run_dir)
    data = run.dataset()
    scene_seeds = range(args.seed, args.seed + 3)  # a kind moves by 9 points from seed to seed
    print(f"{run.path}: {run.config.model} ({run.weights.name}), seed {args.seed} (scenes: seeds "
          f"{' '.join(map(str, scene_seeds))})")  # fmt: skip
    parts = [
        ("photos", lambda: wild_photos.rows(run, data, args.items, args.seed)),
        ("scenes", lambda: wild_scenes.rows(run, data, args.scenes, scene_seeds)),
        ("canvases", lambda: wild_cam.rows(run, data, args.canvases, args.seed)),
    ]
    if args.folders:
        parts.append(("folders", lambda: wild_folders.rows(args.seed)))
    for name, rows in parts:
        t0 = time.perf_counter()
        with torch.set_grad_enabled(name not in ("photos", "scenes")):  # cam and training need it
            found = rows()
        print(f"\n{name} ({time.perf_counter() - t0:.0f} s)")
        width = max(len(f) for f, _, _ in found)
        for figure, value, goal in found:
            print(f"  {figure:<{width}}  {value:<44} {goal}".rstrip())


if __name__ == "__main__":
    main()
