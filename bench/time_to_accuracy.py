"""Time to accuracy of the default recipe (`ninlab train` with no options) on Fashion-MNIST.

    python bench/time_to_accuracy.py                 # seed 0
    python bench/time_to_accuracy.py --seeds 0 1 2   # the README's table

For each seed: trains the default recipe into a fresh run directory and prints the wall time
(from the start of `ninlab.runs.train_run`, data loading included) at which the test accuracy,
measured after each epoch, first reached 90, 91, 92, 93 and 94%, then the final and best
accuracy and the training images/s. Run it on an otherwise idle machine: other work on the
cores slows it down.
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

import torch

from ninlab import train as T
from ninlab.runs import train_run

THRESHOLDS = (0.90, 0.91, 0.92, 0.93, 0.94)


class WallClock(T.Callback):
    """Wall seconds since `t0` at the end of each epoch (after its evaluation)."""

    def __init__(self, t0: float):
        self.t0, self.at_epoch_end = t0, []

    def on_epoch_end(self, state):
        self.at_epoch_end.append(time.perf_counter() - self.t0)


def run_seed(seed: int, out: Path, args) -> dict:
    cfg = T.resolve("fast", seed=seed, data_dir=args.data_dir, threads=args.threads)
    t0 = time.perf_counter()
    clock = WallClock(t0)
    history, _ = train_run(cfg, out, progress=False, log=print, callbacks=[clock])
    wall = time.perf_counter() - t0
    reached = {}
    for thr in THRESHOLDS:
        hit = next((i for i, r in enumerate(history) if r["test_acc"] >= thr), None)
        reached[thr] = None if hit is None else (clock.at_epoch_end[hit], hit + 1)
    train_time = sum(r["train_time"] for r in history)
    seen = sum(r["images_per_s"] * r["train_time"] for r in history)
    return {
        "seed": seed,
        "reached": reached,
        "final": history[-1]["test_acc"],
        "best": max(r["test_acc"] for r in history),
        "img_s": seen / train_time,
        "wall": wall,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--data-dir", help="where the Fashion-MNIST files are (default: usual places)")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: one per core)")
    p.add_argument("--out", help="keep the run directories here (default: a temporary folder)")
    args = p.parse_args()
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{platform.processor() or platform.machine()}, python {platform.python_version()}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.out or tmp)
        results = [run_seed(s, root / f"seed{s}", args) for s in args.seeds]
    head = "seed " + " ".join(f"{int(100 * t)}%".rjust(11) for t in THRESHOLDS)
    print("\nwall time (s) at which test accuracy first reached (epoch in brackets):")
    print(head + "   final    best    img/s   total s")
    for r in results:
        cells = []
        for thr in THRESHOLDS:
            hit = r["reached"][thr]
            cells.append("-".rjust(11) if hit is None else f"{hit[0]:.0f} ({hit[1]})".rjust(11))
        print(
            f"{r['seed']:>4} " + " ".join(cells) + f"  {100 * r['final']:6.2f}% "
            f"{100 * r['best']:6.2f}% {r['img_s']:8,.0f} {r['wall']:9.0f}"
        )
    if len(results) > 1:
        finals = [100 * r["final"] for r in results]
        print(
            f"final accuracy over {len(results)} seeds: mean {sum(finals) / len(finals):.2f}%, "
            f"min {min(finals):.2f}%, max {max(finals):.2f}%; longest run "
            f"{max(r['wall'] for r in results):.0f} s"
        )


if __name__ == "__main__":
    main()
