"""ninlab training on a CUDA GPU: throughput by precision, the classic recipe, time to 93%.

    python bench/gpu.py             # everything (the classic recipe's 10 epochs take longest)
    python bench/gpu.py --quick     # throughput only

Where no CUDA GPU exists it says so and exits 0. Otherwise, on GPU 0, measured in this run:
1. training images/s of nin_fast (28 px, batch 128) and nin_seed (224 px, batch 64) in fp32, bf16
   autocast, and bf16 + torch.compile (steps 20..70 of an epoch, timed with CUDA syncs);
2. the classic recipe (`--recipe seed`: nin_seed at 224 px, SGD 0.1, batch 64, 10 epochs): wall
   time and final accuracy, beside the published 85.74%;
3. the default recipe (`ninlab train`): wall time at which the test accuracy first reached 93%.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from machine import describe, matmul_rate

from ninlab.data import load_dataset
from ninlab.runs import train_run
from ninlab.train import Callback, Interrupted, build_model, fit, prepare_config, resolve

FIRST, LAST = 20, 70  # timed steps


class StepClock(Callback):
    def __init__(self):
        self.t = {}

    def on_batch_end(self, state):
        if state.step in (FIRST, LAST):
            torch.cuda.synchronize()
            self.t[state.step] = time.perf_counter()
        if state.step == LAST:
            state.request_stop("measured")


def images_per_second(recipe: str, data, precision: str, compile: bool) -> float:
    cfg = resolve(recipe, device="cuda", precision=precision, compile=compile)
    cfg = prepare_config(cfg, data)
    clock = StepClock()
    try:
        fit(build_model(cfg), data, cfg, callbacks=[clock], progress=False, log=None)
    except Interrupted:
        pass
    return (LAST - FIRST) * cfg.batch_size / (clock.t[LAST] - clock.t[FIRST])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true", help="throughput only")
    p.add_argument("--data-dir", help="where the Fashion-MNIST files are (default: usual places)")
    args = p.parse_args()
    if not torch.cuda.is_available():
        print("no GPU here: torch.cuda.is_available() is False; nothing to measure.")
        return
    print(describe(matmul_rate()))
    print(f"GPU 0: {torch.cuda.get_device_name(0)}, bf16: {torch.cuda.is_bf16_supported()}")
    data = load_dataset("fashion-mnist", data_dir=args.data_dir)
    print("\ntraining images/s (steps 20-70)")
    for recipe, name in (("fast", "nin_fast 28 px"), ("seed", "nin_seed 224 px")):
        cells = []
        for precision, compile in (("fp32", False), ("bf16", False), ("bf16", True)):
            rate = images_per_second(recipe, data, precision, compile)
            cells.append(f"{precision}{' + compile' if compile else ''} {rate:,.0f}")
        print(f"  {name:<16} " + "   ".join(cells))
    if args.quick:
        return
    with tempfile.TemporaryDirectory() as tmp:
        for recipe, goal in (("seed", None), ("fast", 0.93)):
            t0 = time.perf_counter()
            cfg = resolve(recipe, device="cuda", data_dir=args.data_dir)
            history, _ = train_run(cfg, Path(tmp) / recipe, progress=False, log=None)
            wall = time.perf_counter() - t0
            line = f"recipe {recipe}: {100 * history[-1]['test_acc']:.2f}% in {wall:.0f} s"
            if goal is None:
                line += " (published classic run: 85.74%)"
            else:
                hit = next((r for r in history if r["test_acc"] >= goal), None)
                line += f"; {goal:.0%} first at {hit['elapsed']:.0f} s" if hit else "; 93% missed"
            print(line)


if __name__ == "__main__":
    main()
