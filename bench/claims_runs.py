"""The runs behind claims 22 and 23 (docs/claims.md): twins of nin_fast at 28 px, 3 seeds each.

    python bench/claims_runs.py --out runs/claims     # 12 runs, about 19 minutes on 2 CPU cores
    ninlab claims --run runs/claims/*                 # the ledger, with these runs

Twins are registered models that differ in the claimed aspect only: the same 5x5 stem, blocks,
widths and pools, trained by the same recipe (the default, `ninlab train`) at native resolution
with the same seeds.
- Claim 22, one 1x1 conv per block trains better and faster than two on a small data set:
  nin_fast against nin_fast2 (a second 1x1 conv, with batch norm and ReLU, in each of the three
  mlpconv blocks), on the first --small training images for --small-epochs epochs.
- Claim 23, NiN a little below AlexNet on Fashion-MNIST: nin_fast (GAP head) against fast_fc
  (nin_fast's features under AlexNet's FC head, fc6-fc8 with dropout 0.5, at the GAP head's width),
  on all training images for --epochs epochs.
Each run goes through `ninlab.runs.train_run` into OUT/c<claim>-<model>-seed<seed>; the twins
alternate, seed by seed, so a change in the machine's load falls on both. R, this machine's fp32
matmul rate (bench/machine.py), is measured before each run, and cost = wall s x R / 1000. Printed:
each run's final test accuracy, training time (evaluation excluded; in all, and of the fastest
epoch, which other work on the machine disturbs least), wall time and cost; per claim a table over
the seeds (mean, lowest-highest); the verdicts of claims 22 and 23 as `ninlab claims` gives them;
and the total wall time.

Evidence: on 2 CPU cores (AMD EPYC, AVX512-BF16), torch 2.13.0+cpu, R = 172-188 GFLOP/s, the 12
runs took 1,123 s (cost 201), one of them slowed by other work for 3 epochs. Claim 22: final test
accuracy 88.63% (88.46-88.77) for nin_fast against 88.73% (88.68-88.81), too close to call; the
fastest epoch 1.57 s against 1.91 s; differs. Claim 23: 92.82% (92.76-92.86) for nin_fast against
92.28% (92.19-92.33) for fast_fc: the GAP head higher, so the claim does not hold here.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from machine import describe, matmul_rate

from ninlab import train as T
from ninlab.claims.ledger import TWINS_22, TWINS_23, claim_22, claim_23, read_run
from ninlab.claims.verdicts import claims_table
from ninlab.runs import train_run

PAIRS = {22: TWINS_22[0], 23: TWINS_23[0]}  # (NiN's choice, its twin) per claim


def settings(args) -> dict[int, dict]:
    """The training overrides of each claim's runs: a small data set for 22, all of it for 23."""
    return {
        22: dict(limit_train=args.small, epochs=args.small_epochs),
        23: dict(epochs=args.epochs),
    }


def run_dirs(args) -> list[tuple[int, str, int, Path]]:
    """(claim, model, seed, run directory) of every run, in the order they train."""
    root = Path(args.out)
    return [
        (claim, model, seed, root / f"c{claim}-{model}-seed{seed}")
        for claim in PAIRS
        for seed in args.seeds
        for model in PAIRS[claim]
    ]


def train_one(claim: int, model: str, seed: int, out: Path, args) -> dict:
    rate = matmul_rate()
    cfg = T.resolve("fast", model=model, seed=seed, data_dir=args.data_dir,
                    threads=args.threads, **settings(args)[claim])  # fmt: skip
    t0 = time.perf_counter()
    history, _ = train_run(cfg, out, progress=False, log=None)
    wall = time.perf_counter() - t0
    r = {
        "claim": claim,
        "model": model,
        "seed": seed,
        "final": 100 * history[-1]["test_acc"],
        "train_s": sum(row["train_time"] for row in history),
        "epoch_s": min(row["train_time"] for row in history),
        "wall": wall,
        "rate": rate,
    }
    print(f"claim {claim} {model:<13} seed {seed}: {r['final']:.2f}% final, "
          f"{r['train_s']:.1f} s training (fastest epoch {r['epoch_s']:.2f} s), {wall:.0f} s "
          f"wall, R = {rate:.0f}, cost {wall * rate / 1000:.1f}")  # fmt: skip
    return r


def spread(values: list[float], fmt: str) -> str:
    """mean (lowest-highest)"""
    mean = sum(values) / len(values)
    return f"{mean:{fmt}} ({min(values):{fmt}}-{max(values):{fmt}})"


def table(claim: int, results: list[dict], args) -> str:
    over = settings(args)[claim]
    n = f"first {over['limit_train']:,}" if over.get("limit_train") else "all"
    lines = [
        f"claim {claim}: {n} training images, {over['epochs']} epochs, seeds "
        + ", ".join(map(str, args.seeds)),
        "model          final test acc %      fastest epoch s     wall s   cost",
    ]
    for model in PAIRS[claim]:
        rs = [r for r in results if r["claim"] == claim and r["model"] == model]
        wall = sum(r["wall"] for r in rs)
        cost = sum(r["wall"] * r["rate"] / 1000 for r in rs)
        lines.append(
            f"{model:<14} {spread([r['final'] for r in rs], '.2f'):<21} "
            f"{spread([r['epoch_s'] for r in rs], '.2f'):<19} {wall:6.0f} {cost:6.1f}"
        )
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--out", default="runs/claims", help="where the run directories go")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--small", type=int, default=6000, help="claim 22: training images")
    p.add_argument("--small-epochs", type=int, default=20, help="claim 22: epochs")
    p.add_argument("--epochs", type=int, default=5, help="claim 23: epochs on all images")
    p.add_argument("--data-dir", help="where the Fashion-MNIST files are (default: usual places)")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: one per core)")
    args = p.parse_args()
    runs = run_dirs(args)
    taken = [str(d) for *_, d in runs if d.exists()]
    if taken:
        p.error(f"{taken[0]} exists ({len(taken)} of the runs); pass a new --out.")
    t0 = time.perf_counter()
    print(describe(matmul_rate()))
    results = [train_one(claim, model, seed, out, args) for claim, model, seed, out in runs]
    total = time.perf_counter() - t0
    for claim in PAIRS:
        print("\n" + table(claim, results, args))
    records = [read_run(d) for *_, d in runs]
    print("\n" + claims_table([claim_22(records), claim_23(records)]))
    cost = sum(r["wall"] * r["rate"] / 1000 for r in results)
    print(f"\n{len(results)} runs in {total:.0f} s ({total / 60:.1f} min) wall, cost {cost:.0f}; "
          f"verdicts again: ninlab claims --run {args.out}/*")  # fmt: skip


if __name__ == "__main__":
    main()
