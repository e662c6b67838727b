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

from ninlab.cli.options import add_data_dir, add_dataset, at_least
from ninlab.errors import NinlabError
from ninlab.runs import resume_run, train_run
from ninlab.train import RECIPES, resolve

# options that set the config of a new run; --resume takes the saved one instead
CONFIG_OPTIONS = ("recipe", "model", "dataset", "epochs", "batch_size", "lr", "optimizer", "seed",
                  "limit_train", "out")  # fmt: skip


def add_arguments(p) -> None:
    p.add_argument("--recipe", help=f"one of {', '.join(RECIPES)} (default fast)")
    p.add_argument("--model", help="a model from `ninlab models` (default: the recipe's)")
    add_dataset(p, "the data set (default fashion-mnist)")
    add_data_dir(p)
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int, metavar="N", help="training images per step")
    p.add_argument("--lr", type=float, help="peak learning rate")
    p.add_argument("--optimizer", help="sgd or adamw")
    p.add_argument("--seed", type=int)
    p.add_argument("--device", help="auto (default), cpu or cuda")
    p.add_argument(
        "--threads", type=at_least(1), help="CPU threads for torch (default: one per core)"
    )
    p.add_argument("--limit-train", type=int, metavar="N", help="train on the first N images")
    p.add_argument("--out", metavar="DIR", help="run directory (default runs/MODEL-DATASET-TIME)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args) -> int:
    given = {k: getattr(args, k) for k in CONFIG_OPTIONS if getattr(args, k) is not None}
    progress = not args.no_progress
    if args.resume:
        if given:
            flag = "--" + next(iter(given)).replace("_", "-")
            raise NinlabError(f"--resume continues a run with its saved config; drop {flag}.")
        resume_run(args.resume, device=args.device, progress=progress)
        return 0
    out = given.pop("out", None)
    cfg = resolve(given.pop("recipe", "fast"), **given, data_dir=args.data_dir,
                  device=args.device, threads=args.threads)  # fmt: skip
    train_run(cfg, out, progress=progress)
    return 0
