"""Training speed of the classic recipe (`--recipe seed`) next to the default, in one process.

    python bench/seed_recipe.py               # 200 steps of each
    python bench/seed_recipe.py --steps 300

Both recipes train on Fashion-MNIST with their own model, batch size, input size and optimizer,
for --steps steps each (the first --warmup steps are not timed), with the same thread count.
Printed: training images/s of each, their ratio, and the projected wall time of the classic
recipe's 10 epochs of 60,000 images (training only; its evaluations would add to it).
"""

from __future__ import annotations

import argparse
import time

import torch

from ninlab import train as T
from ninlab.data import load_dataset


class StepClock(T.Callback):
    """perf_counter() after each step; asks fit() to stop after `steps` steps."""

    def __init__(self, steps: int):
        self.steps, self.times = steps, []

    def on_batch_end(self, state):
        self.times.append(time.perf_counter())
        if len(self.times) == self.steps:
            state.request_stop("benchmark done")


def images_per_second(recipe: str, data, args) -> tuple[float, T.TrainConfig]:
    cfg = T.resolve(recipe, data_dir=args.data_dir, threads=args.threads)
    cfg = T.prepare_config(cfg, data)
    model = T.build_model(cfg)
    clock = StepClock(args.steps)
    try:
        T.fit(model, data, cfg, callbacks=[clock], progress=False, log=None)
    except T.Interrupted:
        pass  # the clock stopped it
    timed = clock.times[args.warmup - 1 :]
    return (len(timed) - 1) * cfg.batch_size / (timed[-1] - timed[0]), cfg


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--steps", type=int, default=200, help="training steps per recipe")
    p.add_argument("--warmup", type=int, default=5, help="first steps left out of the timing")
    p.add_argument("--data-dir", help="where the Fashion-MNIST files are (default: usual places)")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: one per core)")
    args = p.parse_args()
    if args.steps <= args.warmup + 1:
        p.error("--steps must exceed --warmup + 1")
    data = load_dataset("fashion-mnist", data_dir=args.data_dir)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.steps} steps each")
    fast, fast_cfg = images_per_second("fast", data, args)
    seed, seed_cfg = images_per_second("seed", data, args)
    for name, ips, cfg in (("default", fast, fast_cfg), ("seed", seed, seed_cfg)):
        print(
            f"{name:>8}: {cfg.model} at {cfg.input_size} px, batch {cfg.batch_size}: "
            f"{ips:,.1f} training images/s"
        )
    print(f"ratio default / seed: {fast / seed:.1f}x")
    hours = 10 * len(data.train_images) / seed / 3600
    n = len(data.train_images)
    print(f"classic recipe, 10 epochs of {n:,} images: {hours:.1f} h projected (training only)")


if __name__ == "__main__":
    main()
