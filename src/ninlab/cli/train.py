"""Train a model (default: nin_fast on Fashion-MNIST) and write a run directory.

Each epoch shows a progress bar (loss, images/s, ETA) and ends with one line:
  Epoch [k/N], Train Loss: 0.3833, Test Loss: 0.3757, Acc: 85.74%  (41.2 s)
The run directory (--out, default runs/MODEL-DATASET-TIME) gets config.json, metrics.csv,
metrics.jsonl, curves.png, best/final.safetensors and checkpoint.pt. Ctrl-C or SIGTERM writes a
checkpoint and tells how to resume; a run killed outright (kill -9, a power cut) resumes from its
last epoch, or starts over from config.json. While a run trains, RUN_DIR/train.lock refuses a
second `train --out RUN_DIR` and a `--resume RUN_DIR`.

Recipes: fast (default: nin_fast at native resolution, batch norm, one-cycle SGD, 10 epochs),
whiten (nin_whiten, its frozen patch-whitening stem fitted to the data first; lr 0.1, 8 epochs,
test-time shift averaging: the cheapest to 93% found on a CPU, about half the default's cost),
long (nin_wide with shifts, flips, cutout and test-time flip, for the last half point),
best (nin_wide with shifts, flips and test-time flip, 24 epochs),
seed (the classic NiN recipe: nin_seed at 224 px, SGD lr 0.1, batch 64, 10 epochs),
d2l (nin_d2l, batch 128, Xavier init, otherwise as seed); each is a file of
ninlab/train/recipes/. Options override the recipe.

A small training set (a folder of a few hundred images, --limit-train N) gets a smaller batch and
more epochs than the recipe's 128 x 10, so that it trains for at least 600 steps; the log says
what it chose and why (ninlab.train.schedule). Only --batch-size and --epochs that you leave
unset change, and only where the recipe's file does not fix them (seed and d2l fix both, long
its epochs); the full Fashion-MNIST keeps 128 x 10.

Several processes (DistributedDataParallel; --batch-size stays the global batch): --nproc N on
this machine, or torchrun for several machines, every machine running the same command:
  torchrun --nnodes 2 --node-rank K --nproc-per-node 1 --rdzv-backend c10d \
      --rdzv-endpoint HOST:29500 -m ninlab train --out runs/ddp
The default precision is bf16 autocast where the device computes bf16 natively (a CUDA GPU that
has it, a CPU with AVX512-BF16 or AMX), else fp32; --precision fp32 turns it off. On CUDA,
cudnn.benchmark is on (off with --deterministic); --compile adds torch.compile.

A folder of your own images (one sub-folder per class, or train/ and test/ beside each other):
--data DIR. Every image is decoded once (cached in ~/.cache/ninlab/folders), made square by
padding (--fit crop: its centre) at --image-size S (default: the median shorter side, 16..64),
grey or RGB as most images are; without test/, --val-split of each class is held out.

Examples:
  ninlab train
  ninlab train --data ~/photos --epochs 3 --out runs/photos
  ninlab train --epochs 1 --limit-train 2000 --out /tmp/r
  ninlab train --recipe seed --epochs 1 --limit-train 256 --limit-test 500   # a quick look
  ninlab train --nproc 2 --epochs 1 --limit-train 2000 --out /tmp/ddp
  ninlab train --device cuda --precision bf16 --compile
  ninlab train --recipe long --out runs/long
  ninlab train --recipe seed --out runs/seed
  ninlab train --dataset cifar10 --model nin_cifar --optimizer adamw --lr 2e-3
  ninlab train --resume runs/nin_fast-fashion-mnist-20261123-101500
"""

from __future__ import annotations

from ninlab.cli.options import add_data_dir, add_dataset, at_least
from ninlab.errors import NinlabError
from ninlab.runs import resume_run, train_run
from ninlab.train import (
    PRECISIONS,
    RECIPES,
    TrainConfig,
    World,
    free_fields,
    launch_local,
    placement,
    resolve,
)

# options that set the config of a new run; --resume takes the saved one instead
CONFIG_OPTIONS = ("recipe", "model", "dataset", "epochs", "batch_size", "lr", "optimizer", "seed",
                  "limit_train", "limit_test", "out", "precision", "compile", "deterministic",
                  "sync_bn", "dist_timeout", "image_size", "image_mode", "fit",
                  "val_split")  # fmt: skip


def add_arguments(p) -> None:
    p.add_argument("--recipe", help=f"one of {', '.join(RECIPES)} (default fast)")
    p.add_argument("--model", help="a model from `ninlab models` (default: the recipe's)")
    add_dataset(p, "the data set (default fashion-mnist)")
    add_data_dir(p)
    p.add_argument(
        "--image-size",
        type=at_least(8),
        metavar="S",
        help="a folder: decode its images at S x S (default: from the folder)",
    )
    p.add_argument(
        "--image-mode",
        choices=("L", "RGB"),
        help="a folder: grey (L) or RGB (default: the mode of most images)",
    )
    p.add_argument(
        "--fit",
        choices=("pad", "crop"),
        help="non-square images: pad to a square (default) or crop the centre",
    )
    p.add_argument(
        "--val-split",
        type=float,
        metavar="P",
        help="a folder without test/: share of each class held out (default 0.1)",
    )
    p.add_argument("--epochs", type=int, help="passes over the training set "
                   "(default: the recipe's, or more for a small set)")  # fmt: skip
    p.add_argument("--batch-size", type=int, metavar="N", help="training images per step "
                   "(global; default: the recipe's, or less for a small set)")  # fmt: skip
    p.add_argument("--lr", type=float, help="peak learning rate")
    p.add_argument("--optimizer", help="sgd or adamw")
    p.add_argument("--seed", type=int)
    p.add_argument("--device", help="auto (default), cpu or cuda")
    p.add_argument(
        "--precision", choices=PRECISIONS, help="autocast (default auto: bf16 where native)"
    )
    p.add_argument("--compile", action="store_true", default=None, help="torch.compile the model")
    p.add_argument("--deterministic", action="store_true", default=None, help="no cudnn.benchmark")
    p.add_argument("--no-sync-bn", dest="sync_bn", action="store_false", default=None,
                   help="batch-norm statistics per process even on CUDA")  # fmt: skip
    p.add_argument("--nproc", type=at_least(1), help="train as N processes on this machine")
    p.add_argument("--timeout", dest="dist_timeout", type=float, metavar="S",
                   help="seconds a process waits for the others (default 300)")  # fmt: skip
    p.add_argument("--threads", type=at_least(1), help="CPU threads per process (default: cores)")
    p.add_argument("--limit-train", type=int, metavar="N", help="train on the first N images")
    p.add_argument("--limit-test", type=int, metavar="N",
                   help="test on the first N test images (default all)")  # fmt: skip
    p.add_argument("--out", metavar="DIR", help="run directory (default runs/MODEL-DATASET-TIME)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def config(args) -> TrainConfig:
    given = {k: getattr(args, k) for k in CONFIG_OPTIONS if k not in ("recipe", "out")}
    return resolve(args.recipe or "fast", **given, data_dir=args.data_dir, device=args.device,
                   threads=args.threads)  # fmt: skip


def run(args) -> int:
    given = [k for k in CONFIG_OPTIONS if getattr(args, k) is not None]
    if args.resume and given:
        flag = "--" + given[0].replace("_", "-").replace("dist-", "")
        raise NinlabError(f"--resume continues a run with its saved config; drop {flag}.")
    if args.nproc:  # the same command as N processes under torchrun; bad input is refused once
        if not args.resume:
            placement(config(args), World(size=args.nproc, local_size=args.nproc))
        return launch_local(args.nproc, without_nproc(args.argv))
    if args.resume:
        resume_run(args.resume, device=args.device, progress=not args.no_progress)
    else:
        adapt = free_fields(args.recipe or "fast", given)  # what the user left to the data
        train_run(config(args), args.out, progress=not args.no_progress, adapt=adapt)
    return 0


def without_nproc(argv: list[str]) -> list[str]:
    """The command line after `train`, without --nproc N."""
    argv = argv[argv.index("train") + 1 :]
    drop = {i for i, a in enumerate(argv) if a == "--nproc"}
    drop |= {i + 1 for i in drop} | {i for i, a in enumerate(argv) if a.startswith("--nproc=")}
    return [a for i, a in enumerate(argv) if i not in drop]
