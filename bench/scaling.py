"""Training throughput with W = 1, 2, ... processes (DDP), measured side by side in one run.

    python bench/scaling.py                      # CPU: W = 1 and 2, one thread each
    python bench/scaling.py --limit-train 12000 --epochs 2

Each W trains the default recipe (nin_fast, global batch 128) through `ninlab train`, W > 1 with
`--nproc W`, every process on one CPU thread (so W processes use W cores); where CUDA GPUs exist it
runs W = 1 .. #GPUs on them instead. Reported: training images/s over the whole global batch
(from metrics.jsonl: images / training seconds, evaluation excluded), the speed-up over W = 1, the
parallel efficiency (speed-up / W), the wall time of the whole command and its cost
(wall s x R / 1000, R this machine's fp32 matmul rate, measured first in this process).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from machine import describe, matmul_rate


def train(w: int, out: Path, args, cuda: bool) -> dict:
    cmd = [sys.executable, "-m", "ninlab", "train", "--epochs", str(args.epochs), "--limit-train",
           str(args.limit_train), "--out", str(out), "--no-progress", "--seed", "0"]  # fmt: skip
    cmd += ["--device", "cuda"] if cuda else ["--device", "cpu", "--threads", "1"]
    cmd += ["--nproc", str(w)] if w > 1 else []
    if args.data_dir:
        cmd += ["--data-dir", args.data_dir]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    t = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    images = sum(r["images_per_s"] * r["train_time"] for r in rows)
    seconds = sum(r["train_time"] for r in rows)
    return {"w": w, "img_s": images / seconds, "wall": wall, "acc": rows[-1]["test_acc"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--limit-train", type=int, default=6000)
    p.add_argument("--max-procs", type=int, help="largest W (default: 2 on the CPU, #GPUs)")
    p.add_argument("--data-dir", help="where the Fashion-MNIST files are (default: usual places)")
    args = p.parse_args()
    cuda = torch.cuda.is_available()
    rate = matmul_rate()
    print(describe(rate))
    top = args.max_procs or (torch.cuda.device_count() if cuda else 2)
    where = f"{torch.cuda.device_count()} x {torch.cuda.get_device_name(0)}" if cuda else "CPU"
    print(f"nin_fast, global batch 128, {args.limit_train:,} images x {args.epochs} epoch(s), "
          f"on {where}{'' if cuda else ', 1 thread per process'}")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        results = [train(w, Path(tmp) / f"w{w}", args, cuda) for w in range(1, top + 1)]
    base = results[0]["img_s"]
    print(f"\n{'W':>2} {'img/s':>8} {'speed-up':>9} {'efficiency':>11} {'wall s':>7} "
          f"{'cost':>6} {'test acc':>9}")  # fmt: skip
    for r in results:
        up = r["img_s"] / base
        cost = r["wall"] * rate / 1000
        print(f"{r['w']:>2} {r['img_s']:>8,.0f} {up:>8.2f}x {100 * up / r['w']:>10.0f}% "
              f"{r['wall']:>7.1f} {cost:>6.1f} {100 * r['acc']:>8.2f}%")  # fmt: skip
    print("cost = wall s x R / 1000; efficiency = speed-up / W")


if __name__ == "__main__":
    main()
