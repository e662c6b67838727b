"""Time and cost to accuracy of a recipe on Fashion-MNIST, through `ninlab.runs.train_run`.

    python bench/time_to_accuracy.py                              # the default recipe, seed 0
    python bench/time_to_accuracy.py --seeds 0 1 2                # the table in docs/training.md
    python bench/time_to_accuracy.py --recipe long --seeds 0 1 2

First it measures R, this machine's fp32 matmul rate (bench/machine.py), and the FLOP of one real
training step of the recipe's model with FlopCounterMode. Then, for each seed, it trains the recipe
into a fresh run directory and prints the wall time (from the start of `train_run`, data loading
included) at which the test accuracy, measured after each epoch, first reached 90 to 94% and its
cost = wall s x R / 1000 (TFLOP at this machine's peak; R is measured again before each seed, so a
machine that slows down under other work also shows a lower R, and so is the bf16 matmul rate,
printed beside it as "bf16"). Last come the final and best accuracy, the training images/s
(evaluation excluded) and the training FLOP/s as % of the roofline: the bf16 matmul rate when the
run trained in bf16, else R (bench/machine.py).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from machine import (
    bf16_rate,
    describe,
    matmul_rate,
    roofline,
    training_images_per_second,
    training_step_flops,
)

from ninlab import train as T
from ninlab.data import epoch_generator, load_dataset
from ninlab.runs import train_run
from ninlab.train.distributed import World, device_for, precision_for

THRESHOLDS = (0.90, 0.91, 0.92, 0.93, 0.94)


class WallClock(T.Callback):
    """Wall seconds since `t0` at the end of each epoch (after its evaluation)."""

    def __init__(self, t0: float):
        self.t0, self.at_epoch_end = t0, []

    def on_epoch_end(self, state):
        self.at_epoch_end.append(time.perf_counter() - self.t0)


def flops_per_image(cfg: T.TrainConfig) -> float:
    """FLOP of one training step of the recipe's model on its first batch, per image."""
    data = load_dataset(cfg.dataset, data_dir=cfg.data_dir)
    cfg = T.prepare_config(cfg, data)
    n = cfg.batch_size
    x = T.to_input(data.train_images[:n], cfg, epoch_generator(0, 0))
    return training_step_flops(T.build_model(cfg).train(), x, data.train_labels[:n]) / n


def run_seed(seed: int, out: Path, args, flops: float) -> dict:
    rate, rate_bf16 = matmul_rate(), bf16_rate()
    cfg = T.resolve(args.recipe, seed=seed, data_dir=args.data_dir, threads=args.threads)
    precision = precision_for(cfg.precision, device_for(cfg.device, World()))
    t0 = time.perf_counter()
    clock = WallClock(t0)
    history, _ = train_run(cfg, out, progress=False, log=print, callbacks=[clock])
    wall = time.perf_counter() - t0
    reached = {}
    for thr in THRESHOLDS:
        hit = next((i for i, r in enumerate(history) if r["test_acc"] >= thr), None)
        reached[thr] = None if hit is None else (clock.at_epoch_end[hit], hit + 1)
    img_s = training_images_per_second(history)
    print(f"seed {seed}: R = {rate:.0f}, bf16 {rate_bf16:.1f} GFLOP/s before the run; trained "
          f"in {precision}; {wall:.0f} s in all")  # fmt: skip
    return {
        "seed": seed,
        "rate": rate,
        "reached": reached,
        "final": history[-1]["test_acc"],
        "best": max(r["test_acc"] for r in history),
        "img_s": img_s,
        "precision": precision,
        "of_r": img_s * flops / (roofline(precision, rate, rate_bf16) * 1e9),
        "wall": wall,
        "recipe": args.recipe,
        "rate_bf16": rate_bf16,
        "epochs": [  # (wall s at the epoch's end, test accuracy): bench/accuracy_cost.py draws them
            [t, r["test_acc"]] for t, r in zip(clock.at_epoch_end, history, strict=True)
        ],
    }


def table(results: list[dict]) -> str:
    head = "seed     R  bf16 " + " ".join(f"{int(100 * t)}%".rjust(13) for t in THRESHOLDS)
    lines = [head + "   final    best   img/s  % of roof  total s  cost"]
    for r in results:
        cells = []
        for thr in THRESHOLDS:
            hit = r["reached"][thr]
            cell = "-" if hit is None else f"{hit[0]:.0f} s {hit[0] * r['rate'] / 1000:.0f}"
            cells.append(cell.rjust(13))
        rates = f"{r['seed']:>4} {r['rate']:5.0f} {r['rate_bf16']:5.0f} "
        lines.append(
            rates + " ".join(cells) + f"  {100 * r['final']:6.2f}% "
            f"{100 * r['best']:6.2f}% {r['img_s']:7,.0f} {100 * r['of_r']:5.0f}% "
            f"{r['precision']:>4} {r['wall']:8.0f} {r['wall'] * r['rate'] / 1000:5.0f}"
        )
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--recipe", default="fast", choices=list(T.RECIPES))
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--data-dir", help="where the Fashion-MNIST files are (default: usual places)")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: one per core)")
    p.add_argument("--out", help="keep the run directories and results.json here (default: a "
                   "temporary folder)")  # fmt: skip
    args = p.parse_args()
    cfg = T.resolve(args.recipe, data_dir=args.data_dir, threads=args.threads)
    print(describe(matmul_rate()))
    flops = flops_per_image(cfg)
    print(f"recipe {args.recipe}: {cfg.model}, one training step (forward + backward, batch "
          f"{cfg.batch_size}) = {flops / 1e6:.1f} MFLOP per image (FlopCounterMode)")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.out or tmp)
        results = [run_seed(s, root / f"seed{s}", args, flops) for s in args.seeds]
        if args.out:
            saved = root / "results.json"
            saved.write_text(json.dumps({"recipe": args.recipe, "seeds": results}, indent=1))
            print(f"wrote {saved} (bench/accuracy_cost.py draws it)")
    print("\nwall time (s) and cost (wall s x R / 1000) at which test accuracy first reached:")
    print(table(results))
    finals = [100 * r["final"] for r in results]
    hits = [(r["reached"][0.93], r["rate"]) for r in results]
    missed = sum(hit is None for hit, _ in hits)
    worst = max((hit[0] * rate / 1000 for hit, rate in hits if hit), default=0)
    to93 = f"{missed} seed(s) never reached 93%" if missed else f"cost to 93% at most {worst:.0f}"
    low, high = (f"{100 * f(r['of_r'] for r in results):.0f}" for f in (min, max))
    print(
        f"final accuracy over {len(results)} seed(s): mean {sum(finals) / len(finals):.2f}%, "
        f"min {min(finals):.2f}%, max {max(finals):.2f}%; {to93}; training at "
        f"{low if low == high else f'{low}-{high}'}% of the roofline (R in fp32, the bf16 rate "
        "in bf16)"
    )


if __name__ == "__main__":
    main()
