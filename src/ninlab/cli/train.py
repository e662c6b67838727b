"""Train a model (default: nin_fast on Fashion-MNIST) and write a run directory.

Each epoch shows a progress bar (loss, images/s, ETA) and ends with one line:
  Epoch [k/N], Train Loss: 0.3833, Test Loss: 0.3757, Acc: 85.74%  (41.2 s, 1,530 img/s)
The run directory (--out, default runs/MODEL-DATASET-TIME) gets config.json, metrics.csv,
metrics.jsonl, curves.png, best/final.safetensors and checkpoint.pt. Ctrl-C or SIGTERM writes a
checkpoint and tells how to resume.

Recipes: fast (default: nin_fast, native resolution, batch norm, augmentation, one-cycle SGD),
seed (the classic NiN recipe: nin_seed at 224 px, SGD lr 0.1, batch 64, 10 epochs),
d2l (nin_d2l, batch 128, Xavier init, otherwise as seed). Options override the recipe.

Examples:
  ninlab train
  ninlab train --epochs 1 --limit-train 2000 --out /tmp/r
  ninlab train --recipe seed --out runs/seed
  ninlab train --dataset cifar10 --model nin_cifar --optimizer adamw --lr 2e-3
  ninlab train --resume runs/nin_fast-fashion-mnist-20261123-101500
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path

from ninlab import train as T
from ninlab.cli.options import add_data_dir
from ninlab.errors import NinlabError


def add_arguments(p) -> None:
    p.add_argument("--recipe", default="fast", help=f"one of {', '.join(T.RECIPES)} (default fast)")
    p.add_argument("--model", help="a model from `ninlab models` (default: the recipe's)")
    p.add_argument("--dataset", help="fashion-mnist (default), mnist, kmnist, cifar10, cifar100")
    add_data_dir(p)
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float, help="peak learning rate")
    p.add_argument("--optimizer", help="sgd or adamw")
    p.add_argument("--seed", type=int)
    p.add_argument("--device", help="auto (default), cpu or cuda")
    p.add_argument("--threads", type=int, help="CPU threads for torch (default: one per core)")
    p.add_argument("--limit-train", type=int, metavar="N", help="train on the first N images")
    p.add_argument("--out", metavar="DIR", help="run directory (default runs/MODEL-DATASET-TIME)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args) -> int:
    progress = not args.no_progress
    out = None
    try:
        if args.resume:
            given = [
                k
                for k in (
                    "recipe",
                    "model",
                    "dataset",
                    "epochs",
                    "batch_size",
                    "lr",
                    "optimizer",
                    "seed",
                    "limit_train",
                    "out",
                )  # fmt: skip
                if getattr(args, k) not in (None, "fast")
            ]
            if given:
                flag = "--" + given[0].replace("_", "-")
                raise NinlabError(f"--resume continues a run with its saved config; drop {flag}.")
            history, out = T.resume(args.resume, device=args.device, progress=progress)
        else:
            cfg = T.resolve(
                args.recipe,
                model=args.model,
                dataset=args.dataset,
                data_dir=args.data_dir,
                epochs=args.epochs,
                batch_size=args.batch_size,
                lr=args.lr,
                optimizer=args.optimizer,
                seed=args.seed,
                device=args.device,
                threads=args.threads,
                limit_train=args.limit_train,
            )
            out = args.out or T.default_out(cfg)
            history, out = T.train(cfg, out, progress=progress)
    except T.Interrupted as e:
        run_dir = args.resume or out
        print(f"\nninlab: {e}; checkpoint written. Resume with: ninlab train --resume {run_dir}")
        return 128 + (e.signum or signal.SIGINT)
    except T.Diverged as e:
        run_dir = Path(args.resume or out)
        kept = (
            f" The checkpoint of the last good epoch is kept in {run_dir}."
            if (run_dir / "checkpoint.pt").is_file()
            else ""
        )
        print(f"\nninlab: error: {e}{kept}", file=sys.stderr)
        return 3
    best = max(history, key=lambda r: r["test_acc"])
    total = history[-1]["elapsed"]
    print(
        f"done in {total:.1f} s: final accuracy {100 * history[-1]['test_acc']:.2f}%, best "
        f"{100 * best['test_acc']:.2f}% (epoch {best['epoch']}); run directory {out}"
    )
    return 0
