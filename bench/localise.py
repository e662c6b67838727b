"""How well a plain classifier finds objects in scenes it was never trained on (`ninlab locate`).

    python bench/localise.py runs/nin_fast-fashion-mnist-...        # 200 scenes per count
    python bench/localise.py RUN --scenes 50 --scorings crops

Scenes (ninlab.locate.scenes): 112x112 black canvases holding 1, 2 or 3 test-set items (never
training images) at random places whose 28x28 patches do not overlap. An item is found when a
detection has its class and a box with IoU >= 0.5 (the criterion of Zhou et al. 2016) to its
truth box; each detection finds at most one item, and one that finds none is false. Two truth
boxes: the item's 28x28 patch (a Fashion-MNIST item is scaled so that its longer side spans
the patch), and the tight box of its pixels above 10% of its maximum (harder: a 28x28 window
cannot reach IoU 0.5 with a box narrower than 14 px). Found rates and false detections per
scene are given for each scoring (crops, dense; see `ninlab.viz.locate`) and each of the three
boxes of a detection (window, CAM, strongest unit), with the wall time per scene on one thread
(R is measured before, on all). Goals (issue 13, the default run, patch truth): one item, >= 90%
found; three items, >= 75% found with <= 0.3 false detections per scene.
"""

from __future__ import annotations

import argparse
import random
import time

import torch
from machine import describe, matmul_rate

from ninlab.locate import METHODS, SCORINGS, locate
from ninlab.locate.scenes import make_scene, score
from ninlab.runs import load_run

GOALS = {1: (0.90, None), 3: (0.75, 0.3)}  # items per scene: (found, false detections per scene)


def scenes_for(data, n: int, count: int, size: int, seed: int):
    rng = random.Random(seed * 1000 + n)
    return [make_scene(data.test_images, data.test_labels, n, size, rng) for _ in range(count)]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("run_dir", help="a run trained on fashion-mnist, mnist or kmnist")
    p.add_argument("--scenes", type=int, default=200, help="scenes per item count (default 200)")
    p.add_argument("--size", type=int, default=112, help="scene side in px (default 112)")
    p.add_argument("--min-score", type=float, default=0.5, help="see `ninlab locate`")
    p.add_argument("--overlap", type=float, default=0.3, help="see `ninlab locate`")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--weights", choices=("best", "final"), default="best")
    p.add_argument("--scorings", nargs="+", choices=SCORINGS, default=list(SCORINGS))
    args = p.parse_args()
    print(describe(matmul_rate()))
    torch.set_num_threads(1)  # the time per scene is that of one core
    run = load_run(args.run_dir, args.weights)
    data = run.dataset()
    torch.set_grad_enabled(False)
    print(f"{run.config.model} ({run.weights.name}), {args.scenes} scenes of {args.size} px "
          f"per count, items from the {len(data.test_images):,} test images, min score "
          f"{args.min_score}, overlap {args.overlap}")  # fmt: skip
    print(f"\n{'items':>5}  {'scoring':<7} {'box':<7} {'found':>6} {'tight':>6} "
          f"{'false/scene':>11} {'ms/scene':>8}  goal")  # fmt: skip
    for n in (1, 2, 3):
        scenes = scenes_for(data, n, args.scenes, args.size, args.seed)
        for scoring in args.scorings:
            found = {m: 0 for m in METHODS}
            tight = {m: 0 for m in METHODS}
            false = {m: 0 for m in METHODS}
            seconds = 0.0
            for scene in scenes:
                t0 = time.perf_counter()
                located = locate(run, scene.image, args.min_score, args.overlap, scoring=scoring)
                seconds += time.perf_counter() - t0
                for m in METHODS:
                    f, x = score(located, scene, m)
                    found[m] += f
                    false[m] += x
                    tight[m] += score(located, scene, m, "box")[0]
            for m in METHODS:
                rate, fp = found[m] / (n * args.scenes), false[m] / args.scenes
                goal = ""
                if n in GOALS:
                    want, want_fp = GOALS[n]
                    ok = rate >= want and (want_fp is None or fp <= want_fp)
                    goal = f">= {want:.0%} found" + (f", <= {want_fp} false" if want_fp else "")
                    goal += ": met" if ok else ": missed"
                print(f"{n:>5}  {scoring:<7} {m:<7} {100 * rate:5.1f}% "
                      f"{100 * tight[m] / (n * args.scenes):5.1f}% {fp:11.2f} "
                      f"{1000 * seconds / args.scenes:8.1f}  {goal}")  # fmt: skip


if __name__ == "__main__":
    main()
