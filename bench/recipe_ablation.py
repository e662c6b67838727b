"""What each part of the default recipe is worth: train it with one part removed at a time.

    python bench/recipe_ablation.py                              # every variant, full recipe
    python bench/recipe_ablation.py --variants default no-bn --epochs 3

Variants (each the default recipe, same seed and epochs, with one change):
  default       as `ninlab train` runs it
  no-aug        no random translation, no flip
  no-smoothing  label smoothing 0
  constant-lr   no warm-up and no decay: the peak lr throughout
  no-bn         nin_fast without batch norm (convs get biases)
Test-time flip is measured on every variant for free: the final weights are evaluated with and
without averaging each test image's logits with those of its mirror image.
Every number printed is measured in this run; run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import torch

from ninlab import train as T
from ninlab.data import load_dataset
from ninlab.models import create_model

VARIANTS = {
    "default": {},
    "no-aug": dict(translate=0, flip=False),
    "no-smoothing": dict(label_smoothing=0.0),
    "constant-lr": dict(schedule="constant"),
    "no-bn": {},  # a model change, below
}


def run_variant(name: str, data, args) -> dict:
    cfg = T.resolve("fast", seed=args.seed, epochs=args.epochs, threads=args.threads,
                    data_dir=args.data_dir, **VARIANTS[name])  # fmt: skip
    cfg = T.prepare_config(cfg, data)
    if name == "no-bn":
        torch.manual_seed(cfg.seed)
        model = create_model(cfg.model, num_classes=len(cfg.classes), batch_norm=False)
    else:
        model = T.build_model(cfg)
    t0 = time.perf_counter()
    try:
        history = T.fit(model, data, cfg, progress=False, log=None)
    except T.Diverged as e:
        wall = time.perf_counter() - t0
        return {"name": name, "outcome": f"stopped by the guard: {e}", "wall": wall}
    wall = time.perf_counter() - t0
    plain = T.evaluate(model, data.test_images, data.test_labels, replace(cfg, tta_flip=False))
    return {
        "name": name,
        "tta": history[-1]["test_acc"],
        "plain": plain["acc"],
        "train_loss": history[-1]["train_loss"],
        "wall": wall,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument("--epochs", type=int, help="epochs per variant (default: the recipe's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-dir", help="where the Fashion-MNIST files are (default: usual places)")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: one per core)")
    args = p.parse_args()
    data = load_dataset("fashion-mnist", data_dir=args.data_dir)
    epochs = args.epochs or T.resolve("fast").epochs
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, seed {args.seed}, "
          f"{epochs} epochs per variant")  # fmt: skip
    print(f"{'variant':<14}{'test acc (flip TTA)':>20}{'without TTA':>13}{'train loss':>12}"
          f"{'wall s':>8}", flush=True)  # fmt: skip
    for name in args.variants:
        r = run_variant(name, data, args)
        if "outcome" in r:
            print(f"{name:<14}{r['outcome']}  ({r['wall']:.0f} s)")
        else:
            print(f"{name:<14}{100 * r['tta']:>19.2f}%{100 * r['plain']:>12.2f}%"
                  f"{r['train_loss']:>12.4f}{r['wall']:>8.0f}", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
